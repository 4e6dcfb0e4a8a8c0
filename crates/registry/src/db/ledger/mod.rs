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

mod statements;

use statements::*;
use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use hookwire_core::messages::{DeliveryStatus, Event, LedgerMessage};
use uuid::Uuid;

use crate::db::models::Webhook;

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
            in_line: false,
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
