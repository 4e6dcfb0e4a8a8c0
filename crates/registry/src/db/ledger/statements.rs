//! The statements a batch is written with, each prepared once per connection.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use diesel::sql_types::{Array, Bool, Int4, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use hookwire_core::messages::Event;
use uuid::Uuid;

use crate::db::models::Webhook;
use crate::db::prepared::Prepared;

use super::*;

/// Inserts the batch's events not in the log yet; says which of them it wrote erased. An event
/// an erasure request names (by id, or by subject when accepted until the request) is written
/// with a JSON `null` payload and the request's time as `expunged_at`: it was still in the
/// ledger queue when the request was made (`EventRow::expunge`).
pub(super) async fn write_events(conn: &mut AsyncPgConnection, events: &[Event]) -> diesel::QueryResult<Vec<Uuid>> {
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
pub(super) async fn keep_superseded(
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
pub(super) struct Applied {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
}

/// Inserts or moves forward each delivery's row; returns the ids whose row took this batch's
/// state (a row already at a later attempt keeps it). A receiver's answer to an erased event is
/// not kept (an attempt under way when the erasure was made completes, and reports afterwards).
/// A delivery is made at its event's time, so, as for events, only one made before the latest
/// erasure request needs its event looked up.
pub(super) async fn write_deliveries(
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

pub(super) async fn write_attempts(conn: &mut AsyncPgConnection, attempts: &[&AttemptRow]) -> diesel::QueryResult<()> {
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

pub(super) async fn write_stats(
    conn: &mut AsyncPgConnection,
    stats: &HashMap<Uuid, WebhookStats>,
) -> diesel::QueryResult<()> {
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
pub(super) struct Check {
    pub(super) deactivated: Vec<Webhook>,
    pub(super) deactivated_before: Vec<Webhook>,
    pub(super) statements: u64,
}

/// How long a webhook deactivated automatically is reported again by the batches that carry its
/// failures: the publisher's idempotency keys last as long, so a report past it would be a new
/// event rather than a duplicate.
pub(super) const REPORTED_AGAIN_FOR: chrono::TimeDelta = chrono::TimeDelta::hours(24);

pub(super) async fn disable_failing(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
    after: Duration,
) -> diesel::QueryResult<Check> {
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
