//! The delivery log's writer: a batch of ledger messages (routed events and attempt results, in
//! any order) becomes at most six statements in one transaction, however large the batch.
//! Writes are idempotent, so a batch redelivered after a crash is written again harmlessly, and
//! a delivery row only moves forward: an older message never overwrites a newer state.
//!
//! A delivery's latest attempt lives in its row (outcome columns and `signature`). An attempt
//! gets a row of its own in `delivery_attempts` only once a later attempt supersedes it, or when
//! it arrives after a later one. A delivery that succeeds at its first attempt is one row.
//!
//! Each statement is prepared once per connection (`db::prepared`).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::sql_types::{Array, Bool, Int4, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};
use hookwire_core::messages::{DeliveryStatus, Event, LedgerMessage};
use uuid::Uuid;

use crate::db::models::Webhook;
use crate::db::prepared::Prepared;

/// The latest known state of one delivery within a batch.
#[derive(Debug, Clone)]
struct DeliveryState {
    webhook_id: Uuid,
    tenant_id: Uuid,
    event_id: Uuid,
    event_type: String,
    subject: Option<String>,
    status: DeliveryStatus,
    attempts: i32,
    response_status: Option<i32>,
    response_body: Option<String>,
    error: Option<String>,
    duration_ms: Option<i32>,
    is_test: bool,
    created_at: DateTime<Utc>,
    last_attempt_at: Option<DateTime<Utc>>,
    next_retry_at: Option<DateTime<Utc>>,
    /// The latest attempt's signature header (none while pending).
    signature: Option<String>,
}

#[derive(Debug)]
struct AttemptRow {
    delivery_id: Uuid,
    attempt: i32,
    attempted_at: DateTime<Utc>,
    response_status: Option<i32>,
    error: Option<String>,
    duration_ms: i32,
    signature: String,
}

#[derive(Debug, Default)]
struct WebhookStats {
    last_triggered_at: Option<DateTime<Utc>>,
    last_success_at: Option<DateTime<Utc>>,
    last_failure_at: Option<DateTime<Utc>>,
    /// Failed attempts after the batch's last success (all of them when there was none).
    failures_since_success: i32,
    /// When the first of those failures happened.
    first_failure_since_success: Option<DateTime<Utc>>,
    had_success: bool,
}

/// Ledger messages folded together, ready to write.
#[derive(Debug, Default)]
pub struct Batch {
    events: Vec<Event>,
    deliveries: HashMap<Uuid, DeliveryState>,
    attempts: Vec<AttemptRow>,
    /// Attempt times per webhook, to compute `failures_since_success` in order.
    outcomes: HashMap<Uuid, Vec<(DateTime<Utc>, bool)>>,
    len: usize,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn keep_latest(&mut self, id: Uuid, state: DeliveryState) {
        match self.deliveries.get(&id) {
            Some(existing) if existing.attempts > state.attempts => {}
            _ => {
                self.deliveries.insert(id, state);
            }
        }
    }

    pub fn add(&mut self, message: LedgerMessage) {
        if let LedgerMessage::Batch { entries } = message {
            for entry in entries {
                self.add(entry);
            }
            return;
        }
        self.len += 1;
        match message {
            LedgerMessage::Batch { .. } => unreachable!("batches are unpacked above"),
            LedgerMessage::EventRouted { event, deliveries } => {
                for d in deliveries {
                    self.keep_latest(
                        d.delivery_id,
                        DeliveryState {
                            webhook_id: d.webhook_id,
                            tenant_id: d.tenant_id,
                            event_id: event.id,
                            event_type: event.event_type.clone(),
                            subject: event.subject.clone(),
                            status: DeliveryStatus::Pending,
                            attempts: 0,
                            response_status: None,
                            response_body: None,
                            error: None,
                            duration_ms: None,
                            is_test: event.is_test,
                            created_at: event.created_at,
                            last_attempt_at: None,
                            next_retry_at: None,
                            signature: None,
                        },
                    );
                }
                self.events.push(event);
            }
            LedgerMessage::AttemptRecorded(a) => {
                let attempt = i32::try_from(a.attempt).unwrap_or(i32::MAX);
                let succeeded = a.status == DeliveryStatus::Success;
                self.outcomes
                    .entry(a.webhook_id)
                    .or_default()
                    .push((a.attempted_at, succeeded));
                self.attempts.push(AttemptRow {
                    delivery_id: a.delivery_id,
                    attempt,
                    attempted_at: a.attempted_at,
                    response_status: a.response_status.map(i32::from),
                    error: a.error.clone(),
                    duration_ms: i32::try_from(a.duration_ms).unwrap_or(i32::MAX),
                    signature: a.signature.clone(),
                });
                self.keep_latest(
                    a.delivery_id,
                    DeliveryState {
                        webhook_id: a.webhook_id,
                        tenant_id: a.tenant_id,
                        event_id: a.event_id,
                        event_type: a.event_type,
                        subject: a.subject,
                        status: a.status,
                        attempts: attempt,
                        response_status: a.response_status.map(i32::from),
                        response_body: a.response_body,
                        error: a.error,
                        duration_ms: Some(i32::try_from(a.duration_ms).unwrap_or(i32::MAX)),
                        is_test: a.is_test,
                        created_at: a.event_created_at,
                        last_attempt_at: Some(a.attempted_at),
                        next_retry_at: a.next_retry_at,
                        signature: Some(a.signature),
                    },
                );
            }
        }
    }

    /// The deliveries this batch moves past a first attempt, with the attempt it moves them to:
    /// the attempt their rows hold now may have to move out first.
    fn superseding(&self) -> (Vec<Uuid>, Vec<i32>) {
        self.deliveries
            .iter()
            .filter(|(_, d)| d.attempts > 1)
            .map(|(id, d)| (*id, d.attempts))
            .unzip()
    }

    /// Per webhook: its attempts of this batch in time order, folded into counters.
    fn stats(&self) -> HashMap<Uuid, WebhookStats> {
        let mut all = HashMap::with_capacity(self.outcomes.len());
        for (webhook_id, outcomes) in &self.outcomes {
            let mut outcomes = outcomes.clone();
            outcomes.sort_by_key(|(at, _)| *at);
            let stats: &mut WebhookStats = all.entry(*webhook_id).or_default();
            for (at, succeeded) in outcomes {
                stats.last_triggered_at = Some(at);
                if succeeded {
                    stats.last_success_at = Some(at);
                    stats.failures_since_success = 0;
                    stats.first_failure_since_success = None;
                    stats.had_success = true;
                } else {
                    stats.last_failure_at = Some(at);
                    stats.failures_since_success += 1;
                    stats.first_failure_since_success.get_or_insert(at);
                }
            }
        }
        all
    }

    /// How many SQL statements `write` ran for this batch before the deactivation check (for
    /// the statements-per-delivery figure): one per non-empty part.
    fn statements(&self, superseding: bool, attempts_apart: bool) -> u64 {
        let parts = [
            !self.events.is_empty(),
            superseding,
            !self.deliveries.is_empty(),
            attempts_apart,
            !self.outcomes.is_empty(),
        ];
        parts.iter().filter(|p| **p).count() as u64
    }

    fn exhausted(&self) -> Vec<Exhausted> {
        self.deliveries
            .iter()
            .filter(|(_, d)| {
                d.status == DeliveryStatus::Exhausted && !hookwire_core::patterns::is_reserved(&d.event_type)
            })
            .map(|(id, d)| Exhausted {
                delivery_id: *id,
                webhook_id: d.webhook_id,
                tenant_id: d.tenant_id,
                event_id: d.event_id,
                event_type: d.event_type.clone(),
                attempts: d.attempts,
                response_status: d.response_status,
                error: d.error.clone(),
                last_attempt_at: d.last_attempt_at,
                is_test: d.is_test,
            })
            .collect()
    }

    /// Writes the batch in one transaction. Safe to call again after a failure.
    #[tracing::instrument(name = "ledger_write", skip_all, fields(messages = self.len))]
    pub async fn write(
        &self,
        conn: &mut AsyncPgConnection,
        auto_disable_after: Duration,
    ) -> diesel::QueryResult<Written> {
        let stats = self.stats();
        conn.transaction::<_, diesel::result::Error, _>(async |conn| {
            let expunged = write_events(conn, &self.events).await?;
            let superseding = self.superseding();
            keep_superseded(conn, &superseding).await?;
            let applied = write_deliveries(conn, &self.deliveries).await?;
            // An attempt stays in its delivery's row if it is the state just written there.
            let apart: Vec<&AttemptRow> = self
                .attempts
                .iter()
                .filter(|a| !applied.contains(&a.delivery_id) || self.deliveries[&a.delivery_id].attempts != a.attempt)
                .collect();
            write_attempts(conn, &apart).await?;
            write_stats(conn, &stats).await?;
            let failing: Vec<Uuid> = stats
                .iter()
                .filter(|(_, s)| s.failures_since_success > 0)
                .map(|(id, _)| *id)
                .collect();
            let check = disable_failing(conn, &failing, auto_disable_after).await?;
            Ok(Written {
                deactivated: check.deactivated,
                deactivated_before: check.deactivated_before,
                exhausted: self.exhausted(),
                expunged,
                statements: self.statements(!superseding.0.is_empty(), !apart.is_empty()) + check.statements,
            })
        })
        .await
    }
}

/// What writing a batch did.
pub struct Written {
    /// The webhooks the batch deactivated: failing without a success for longer than
    /// `auto_disable_after`.
    pub deactivated: Vec<Webhook>,
    /// The batch's other failing webhooks, deactivated automatically by an earlier write in the
    /// last 24 h: a batch written again after a crash finds here the webhooks its first write
    /// deactivated, so their operational event is published again (under the same idempotency
    /// key) rather than lost.
    pub deactivated_before: Vec<Webhook>,
    /// The batch's deliveries that ran out of retries, except those of Hookwire's own events
    /// (an operational event about one would follow one about the other, without end). Written
    /// again after a redelivered batch, so they are reported at least once.
    pub exhausted: Vec<Exhausted>,
    /// The batch's events it wrote erased, named by an erasure request made before they
    /// reached the log: dispatchers are to be told, to end their retries unsent.
    pub expunged: Vec<Uuid>,
    /// SQL statements run (its transaction's begin and commit not counted).
    pub statements: u64,
}

/// A delivery that ran out of retries.
#[derive(Debug, Clone, PartialEq)]
pub struct Exhausted {
    pub delivery_id: Uuid,
    pub webhook_id: Uuid,
    pub tenant_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub attempts: i32,
    pub response_status: Option<i32>,
    pub error: Option<String>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub is_test: bool,
}

/// Inserts the batch's events not in the log yet; says which of them it wrote erased. An event
/// an erasure request names (by id, or by subject when accepted until the request) is written
/// with a JSON `null` payload and the request's time as `expunged_at`: it was still in the
/// ledger queue when the request was made (`EventRow::expunge`).
async fn write_events(conn: &mut AsyncPgConnection, events: &[Event]) -> diesel::QueryResult<Vec<Uuid>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    // channels travel as JSON arrays: PostgreSQL cannot unnest an array of arrays row by row.
    // Only an event accepted before the latest request can be named by one (an id is erased
    // once it exists; a subject's events up to the request), and the latest is read once per
    // statement: events written as they come are newer, and cost no lookup; only a backlog
    // written after an erasure pays for the lookups. The `OFFSET 0` keeps the planner from running the lookups once per use of `at`.
    Prepared::new(
        "WITH written AS (
             INSERT INTO events (id, tenant_id, event_type, subject, channels, payload, is_test,
                                 created_at, expunged_at)
             SELECT t.id, t.tenant_id, t.event_type, t.subject,
                    ARRAY(SELECT jsonb_array_elements_text(t.channels)),
                    CASE WHEN x.at IS NULL THEN t.payload ELSE 'null'::jsonb END,
                    t.is_test, t.created_at, x.at
             FROM UNNEST($1, $2, $3, $4, $5, $6, $7, $8)
                  AS t(id, tenant_id, event_type, subject, channels, payload, is_test, created_at)
             CROSS JOIN LATERAL (
                 SELECT CASE WHEN t.created_at <= (SELECT max(requested_at) FROM event_erasures)
                        THEN LEAST(
                            (SELECT min(r.requested_at) FROM event_erasures r
                             WHERE r.event_id = t.id
                               AND (r.tenant_id IS NULL OR r.tenant_id = t.tenant_id)),
                            (SELECT min(r.requested_at) FROM event_erasures r
                             WHERE r.subject = t.subject AND r.requested_at >= t.created_at
                               AND (r.tenant_id IS NULL OR r.tenant_id = t.tenant_id)))
                        END AS at
                 OFFSET 0) x
             ON CONFLICT (id) DO NOTHING
             RETURNING id, expunged_at)
         SELECT id FROM written WHERE expunged_at IS NOT NULL",
    )
    .bind::<Array<SqlUuid>, _>(events.iter().map(|e| e.id).collect::<Vec<_>>())
    .bind::<Array<Nullable<SqlUuid>>, _>(events.iter().map(|e| e.tenant_id).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(events.iter().map(|e| e.event_type.clone()).collect::<Vec<_>>())
    .bind::<Array<Nullable<Text>>, _>(events.iter().map(|e| e.subject.clone()).collect::<Vec<_>>())
    .bind::<Array<Jsonb>, _>(events.iter().map(|e| serde_json::json!(e.channels)).collect::<Vec<_>>())
    .bind::<Array<Jsonb>, _>(events.iter().map(|e| e.data.clone()).collect::<Vec<_>>())
    .bind::<Array<Bool>, _>(events.iter().map(|e| e.is_test).collect::<Vec<_>>())
    .bind::<Array<Timestamptz>, _>(events.iter().map(|e| e.created_at).collect::<Vec<_>>())
    .load::<Applied>(conn)
    .await
    .map(|rows| rows.into_iter().map(|r| r.id).collect())
}

/// Before a delivery row takes a later attempt, the attempt it holds moves to `delivery_attempts`.
async fn keep_superseded(
    conn: &mut AsyncPgConnection,
    (ids, attempts): &(Vec<Uuid>, Vec<i32>),
) -> diesel::QueryResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    Prepared::new(
        "INSERT INTO delivery_attempts (delivery_id, attempt, attempted_at, response_status, error,
                                        duration_ms, signature)
         SELECT d.id, d.attempts, d.last_attempt_at, d.response_status, d.error,
                COALESCE(d.duration_ms, 0), d.signature
         FROM deliveries d JOIN UNNEST($1, $2) AS t(id, attempts) ON d.id = t.id
         WHERE d.attempts BETWEEN 1 AND t.attempts - 1
           AND d.signature IS NOT NULL AND d.last_attempt_at IS NOT NULL
         ON CONFLICT ON CONSTRAINT delivery_attempts_pkey DO NOTHING",
    )
    .bind::<Array<SqlUuid>, _>(ids)
    .bind::<Array<Int4>, _>(attempts)
    .execute(conn)
    .await
    .map(drop)
}

#[derive(diesel::QueryableByName)]
struct Applied {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
}

/// Inserts or moves forward each delivery's row; returns the ids whose row took this batch's
/// state (a row already at a later attempt keeps it). A receiver's answer to an erased event is
/// not kept (an attempt under way when the erasure was made completes, and reports afterwards).
/// A delivery is made at its event's time, so, as for events, only one made before the latest
/// erasure request needs its event looked up.
async fn write_deliveries(
    conn: &mut AsyncPgConnection,
    deliveries: &HashMap<Uuid, DeliveryState>,
) -> diesel::QueryResult<HashSet<Uuid>> {
    if deliveries.is_empty() {
        return Ok(HashSet::new());
    }
    let rows: Vec<(&Uuid, &DeliveryState)> = deliveries.iter().collect();
    macro_rules! col {
        ($f:expr) => {
            rows.iter().map($f).collect::<Vec<_>>()
        };
    }
    Prepared::new(
        "INSERT INTO deliveries (id, webhook_id, tenant_id, event_id, event_type, subject, status,
                                 attempts, response_status, response_body, error, duration_ms,
                                 is_test, created_at, last_attempt_at, next_retry_at, signature)
         SELECT t.id, t.webhook_id, t.tenant_id, t.event_id, t.event_type, t.subject, t.status,
                t.attempts, t.response_status,
                CASE WHEN t.response_body IS NOT NULL
                          AND t.created_at <= (SELECT max(requested_at) FROM event_erasures)
                          AND EXISTS (SELECT 1 FROM events e
                                      WHERE e.id = t.event_id AND e.expunged_at IS NOT NULL)
                     THEN NULL ELSE t.response_body END,
                t.error, t.duration_ms, t.is_test, t.created_at, t.last_attempt_at, t.next_retry_at,
                t.signature
         FROM UNNEST($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
              AS t(id, webhook_id, tenant_id, event_id, event_type, subject, status, attempts,
                   response_status, response_body, error, duration_ms, is_test, created_at,
                   last_attempt_at, next_retry_at, signature)
         ON CONFLICT (id) DO UPDATE SET
             status = excluded.status, attempts = excluded.attempts,
             response_status = excluded.response_status, response_body = excluded.response_body,
             error = excluded.error, duration_ms = excluded.duration_ms,
             last_attempt_at = excluded.last_attempt_at, next_retry_at = excluded.next_retry_at,
             signature = excluded.signature
         WHERE deliveries.attempts < excluded.attempts
         RETURNING id",
    )
    .bind::<Array<SqlUuid>, _>(col!(|(id, _)| **id))
    .bind::<Array<SqlUuid>, _>(col!(|(_, d)| d.webhook_id))
    .bind::<Array<SqlUuid>, _>(col!(|(_, d)| d.tenant_id))
    .bind::<Array<SqlUuid>, _>(col!(|(_, d)| d.event_id))
    .bind::<Array<Text>, _>(col!(|(_, d)| d.event_type.clone()))
    .bind::<Array<Nullable<Text>>, _>(col!(|(_, d)| d.subject.clone()))
    .bind::<Array<Text>, _>(col!(|(_, d)| d.status.as_str().to_owned()))
    .bind::<Array<Int4>, _>(col!(|(_, d)| d.attempts))
    .bind::<Array<Nullable<Int4>>, _>(col!(|(_, d)| d.response_status))
    .bind::<Array<Nullable<Text>>, _>(col!(|(_, d)| d.response_body.clone()))
    .bind::<Array<Nullable<Text>>, _>(col!(|(_, d)| d.error.clone()))
    .bind::<Array<Nullable<Int4>>, _>(col!(|(_, d)| d.duration_ms))
    .bind::<Array<Bool>, _>(col!(|(_, d)| d.is_test))
    .bind::<Array<Timestamptz>, _>(col!(|(_, d)| d.created_at))
    .bind::<Array<Nullable<Timestamptz>>, _>(col!(|(_, d)| d.last_attempt_at))
    .bind::<Array<Nullable<Timestamptz>>, _>(col!(|(_, d)| d.next_retry_at))
    .bind::<Array<Nullable<Text>>, _>(col!(|(_, d)| d.signature.clone()))
    .load::<Applied>(conn)
    .await
    .map(|rows| rows.into_iter().map(|r| r.id).collect())
}

async fn write_attempts(conn: &mut AsyncPgConnection, attempts: &[&AttemptRow]) -> diesel::QueryResult<()> {
    if attempts.is_empty() {
        return Ok(());
    }
    Prepared::new(
        "INSERT INTO delivery_attempts (delivery_id, attempt, attempted_at, response_status, error,
                                        duration_ms, signature)
         SELECT * FROM UNNEST($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT ON CONSTRAINT delivery_attempts_pkey DO NOTHING",
    )
    .bind::<Array<SqlUuid>, _>(attempts.iter().map(|a| a.delivery_id).collect::<Vec<_>>())
    .bind::<Array<Int4>, _>(attempts.iter().map(|a| a.attempt).collect::<Vec<_>>())
    .bind::<Array<Timestamptz>, _>(attempts.iter().map(|a| a.attempted_at).collect::<Vec<_>>())
    .bind::<Array<Nullable<Int4>>, _>(attempts.iter().map(|a| a.response_status).collect::<Vec<_>>())
    .bind::<Array<Nullable<Text>>, _>(attempts.iter().map(|a| a.error.clone()).collect::<Vec<_>>())
    .bind::<Array<Int4>, _>(attempts.iter().map(|a| a.duration_ms).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(attempts.iter().map(|a| a.signature.clone()).collect::<Vec<_>>())
    .execute(conn)
    .await
    .map(drop)
}

async fn write_stats(conn: &mut AsyncPgConnection, stats: &HashMap<Uuid, WebhookStats>) -> diesel::QueryResult<()> {
    if stats.is_empty() {
        return Ok(());
    }
    let rows: Vec<(&Uuid, &WebhookStats)> = stats.iter().collect();
    Prepared::new(
        "UPDATE webhooks AS w SET
             last_triggered_at = GREATEST(w.last_triggered_at, s.last_triggered_at),
             last_success_at = GREATEST(w.last_success_at, s.last_success_at),
             last_failure_at = GREATEST(w.last_failure_at, s.last_failure_at),
             failure_count = CASE WHEN s.had_success THEN s.failures ELSE w.failure_count + s.failures END,
             failing_since = CASE WHEN s.failures = 0 THEN NULL
                                  WHEN s.had_success THEN s.first_failure
                                  ELSE COALESCE(w.failing_since, s.first_failure) END
         FROM UNNEST($1, $2, $3, $4, $5, $6, $7)
              AS s(id, last_triggered_at, last_success_at, last_failure_at, failures, had_success, first_failure)
         WHERE w.id = s.id",
    )
    .bind::<Array<SqlUuid>, _>(rows.iter().map(|(id, _)| **id).collect::<Vec<_>>())
    .bind::<Array<Nullable<Timestamptz>>, _>(rows.iter().map(|(_, s)| s.last_triggered_at).collect::<Vec<_>>())
    .bind::<Array<Nullable<Timestamptz>>, _>(rows.iter().map(|(_, s)| s.last_success_at).collect::<Vec<_>>())
    .bind::<Array<Nullable<Timestamptz>>, _>(rows.iter().map(|(_, s)| s.last_failure_at).collect::<Vec<_>>())
    .bind::<Array<Int4>, _>(rows.iter().map(|(_, s)| s.failures_since_success).collect::<Vec<_>>())
    .bind::<Array<Bool>, _>(rows.iter().map(|(_, s)| s.had_success).collect::<Vec<_>>())
    .bind::<Array<Nullable<Timestamptz>>, _>(
        rows.iter()
            .map(|(_, s)| s.first_failure_since_success)
            .collect::<Vec<_>>(),
    )
    .execute(conn)
    .await
    .map(drop)
}

/// What the deactivation check found (see [`Written`]), and the statements it ran.
struct Check {
    deactivated: Vec<Webhook>,
    deactivated_before: Vec<Webhook>,
    statements: u64,
}

/// How long a webhook deactivated automatically is reported again by the batches that carry its
/// failures: the publisher's idempotency keys last as long, so a report past it would be a new
/// event rather than a duplicate.
const REPORTED_AGAIN_FOR: chrono::TimeDelta = chrono::TimeDelta::hours(24);

async fn disable_failing(conn: &mut AsyncPgConnection, ids: &[Uuid], after: Duration) -> diesel::QueryResult<Check> {
    use crate::db::schema::webhooks::dsl as w;
    use diesel::{ExpressionMethods as _, QueryDsl as _, SelectableHelper as _};
    if ids.is_empty() {
        return Ok(Check {
            deactivated: Vec::new(),
            deactivated_before: Vec::new(),
            statements: 0,
        });
    }
    let now = crate::db::now();
    let cutoff = now - chrono::Duration::from_std(after).unwrap_or(chrono::Duration::MAX);
    let reason = format!(
        "deactivated automatically: every delivery failed for more than {}",
        hookwire_core::config::humantime_serde::re::humantime::format_duration(after)
    );
    let deactivated: Vec<Webhook> = diesel::update(
        w::webhooks
            .filter(w::id.eq_any(ids))
            .filter(w::is_active.eq(true))
            .filter(w::failing_since.lt(cutoff)),
    )
    .set((
        w::is_active.eq(false),
        w::disabled_reason.eq(reason),
        w::modified_at.eq(now),
    ))
    .returning(Webhook::as_returning())
    .get_results(conn)
    .await?;
    let others: Vec<Uuid> = ids
        .iter()
        .filter(|id| !deactivated.iter().any(|d| d.id == **id))
        .copied()
        .collect();
    if others.is_empty() {
        return Ok(Check {
            deactivated,
            deactivated_before: Vec::new(),
            statements: 1,
        });
    }
    let deactivated_before = w::webhooks
        .filter(w::id.eq_any(&others))
        .filter(w::is_active.eq(false))
        .filter(w::disabled_reason.is_not_null())
        .filter(w::modified_at.gt(now - REPORTED_AGAIN_FOR))
        .select(Webhook::as_select())
        .load::<Webhook>(conn)
        .await?;
    Ok(Check {
        deactivated,
        deactivated_before,
        statements: 2,
    })
}

#[cfg(test)]
mod tests {
    use hookwire_core::messages::AttemptRecord;

    use super::*;

    fn attempt(event_type: &str, attempt: u32, status: DeliveryStatus) -> LedgerMessage {
        let at = Utc::now();
        LedgerMessage::AttemptRecorded(AttemptRecord {
            delivery_id: Uuid::from_u128(u128::from(attempt) + event_type.len() as u128 * 100),
            webhook_id: Uuid::from_u128(1),
            tenant_id: Uuid::from_u128(2),
            event_id: Uuid::from_u128(3),
            event_type: event_type.into(),
            subject: None,
            is_test: false,
            event_created_at: at,
            attempt,
            attempted_at: at,
            response_status: Some(500),
            response_body: None,
            error: None,
            duration_ms: 1,
            signature: "v1,x".into(),
            status,
            next_retry_at: None,
        })
    }

    #[test]
    fn exhausted_deliveries_are_reported_except_those_of_hookwires_own_events() {
        let mut batch = Batch::default();
        batch.add(attempt("task.created", 3, DeliveryStatus::Exhausted));
        batch.add(attempt("task.created", 1, DeliveryStatus::Retrying));
        batch.add(attempt("hookwire.delivery_exhausted", 3, DeliveryStatus::Exhausted));
        let exhausted = batch.exhausted();
        assert_eq!(exhausted.len(), 1, "{exhausted:?}");
        assert_eq!(
            (exhausted[0].event_type.as_str(), exhausted[0].attempts),
            ("task.created", 3)
        );
    }
}
