//! Retention: the delivery log (deliveries, their attempts, the events' payloads) is kept for
//! `retention.deliveries`, and past it for as long as a delivery is still pending or being
//! retried; idempotency keys for the 24 h they mean something; rate-limit rows only while they
//! hold back a caller. A background task deletes the rest every
//! `retention.interval`, in chunks, so no statement holds locks or bloats the WAL for long.
//!
//! The log's tables are cut by primary key, with no index of their own for it: delivery and
//! event ids are UUIDv7, whose first 48 bits are the creation time in milliseconds, so "older
//! than the cutoff" is "id below the smallest UUIDv7 of the cutoff's millisecond". Every replica
//! may run the task; `SKIP LOCKED` keeps them from waiting on one another.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl as _};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::RetentionConfig;
use crate::db::DbPool;
use crate::metrics::Metrics;

/// Most rows one statement deletes.
const CHUNK: i64 = 5_000;

/// The smallest UUIDv7 created at `at`: every v7 id made before `at`'s millisecond sorts below
/// it (PostgreSQL compares uuids bytewise, and v7 starts with the big-endian millisecond).
pub fn v7_floor(at: DateTime<Utc>) -> Uuid {
    let ms = u64::try_from(at.timestamp_millis()).unwrap_or(0) & 0xFFFF_FFFF_FFFF;
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    Uuid::from_bytes(bytes)
}

/// Runs the retention pass every `config.interval` until `cancel` fires.
pub async fn run(config: RetentionConfig, pool: DbPool, metrics: Arc<Metrics>, cancel: CancellationToken) {
    if config.interval.is_zero() {
        tracing::info!("retention is off (retention.interval = 0)");
        return;
    }
    let mut tick = tokio::time::interval(config.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let pass = async {
            let mut conn = pool.get().await.map_err(|e| e.to_string())?;
            prune(&mut conn, &config, &metrics, &cancel)
                .await
                .map_err(|e| e.to_string())
        };
        if let Err(e) = pass.await {
            tracing::warn!(error = %e, "retention pass failed; it runs again at the next interval");
        }
    }
}

/// What one statement deletes: a table's name (the metric's label) and its SQL, which takes the
/// chunk size (`$1`) and its cutoff (`$2`), if it has one.
struct Rule {
    table: &'static str,
    cutoff: Cutoff,
    sql: &'static str,
}

enum Cutoff {
    /// The smallest id of the delivery log's retention cutoff.
    LogId,
    /// When an idempotency key created before it expired.
    KeysExpired,
    /// None: the statement compares with `now()` itself.
    Clock,
}

const RULES: [Rule; 5] = [
    // The log's three tables, in this order: a delivery still pending or being retried keeps
    // its attempts and its event (the event is what a retry by hand sends again).
    Rule {
        table: "delivery_attempts",
        cutoff: Cutoff::LogId,
        sql: "DELETE FROM delivery_attempts WHERE (delivery_id, attempt) IN (
                  SELECT a.delivery_id, a.attempt FROM delivery_attempts a
                  WHERE a.delivery_id < $2 AND NOT EXISTS (
                      SELECT 1 FROM deliveries d
                      WHERE d.id = a.delivery_id AND d.status IN ('pending', 'retrying'))
                  ORDER BY a.delivery_id LIMIT $1 FOR UPDATE SKIP LOCKED)",
    },
    Rule {
        table: "deliveries",
        cutoff: Cutoff::LogId,
        sql: "DELETE FROM deliveries WHERE id IN (
                  SELECT id FROM deliveries WHERE id < $2 AND status NOT IN ('pending', 'retrying')
                  ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)",
    },
    Rule {
        table: "events",
        cutoff: Cutoff::LogId,
        sql: "DELETE FROM events WHERE id IN (
                  SELECT e.id FROM events e
                  WHERE e.id < $2 AND NOT EXISTS (
                      SELECT 1 FROM deliveries d WHERE d.id < $2 AND d.event_id = e.id)
                  ORDER BY e.id LIMIT $1 FOR UPDATE SKIP LOCKED)",
    },
    Rule {
        table: "idempotency_keys",
        cutoff: Cutoff::KeysExpired,
        sql: "DELETE FROM idempotency_keys WHERE (scope, key) IN (
                  SELECT scope, key FROM idempotency_keys WHERE created_at < $2
                  LIMIT $1 FOR UPDATE SKIP LOCKED)",
    },
    // A bucket whose theoretical arrival time has passed lets its next request through exactly
    // as a missing row does.
    Rule {
        table: "rate_limits",
        cutoff: Cutoff::Clock,
        sql: "DELETE FROM rate_limits WHERE bucket IN (
                  SELECT bucket FROM rate_limits WHERE tat < now() LIMIT $1 FOR UPDATE SKIP LOCKED)",
    },
];

/// One pass: every rule, chunk after chunk, until a chunk comes back short.
pub async fn prune(
    conn: &mut AsyncPgConnection,
    config: &RetentionConfig,
    metrics: &Metrics,
    cancel: &CancellationToken,
) -> diesel::QueryResult<()> {
    let keep = chrono::Duration::from_std(config.deliveries).unwrap_or(chrono::Duration::MAX);
    let log_cutoff = v7_floor(Utc::now() - keep);
    let keys_expired = Utc::now() - chrono::Duration::hours(crate::db::idempotency::RETENTION_HOURS);
    for rule in &RULES {
        let mut deleted = 0;
        loop {
            let chunk = diesel::sql_query(rule.sql).bind::<BigInt, _>(CHUNK);
            let n = match rule.cutoff {
                Cutoff::LogId => chunk.bind::<SqlUuid, _>(log_cutoff).execute(conn).await?,
                Cutoff::KeysExpired => chunk.bind::<Timestamptz, _>(keys_expired).execute(conn).await?,
                Cutoff::Clock => chunk.execute(conn).await?,
            };
            deleted += n;
            if (n as i64) < CHUNK || cancel.is_cancelled() {
                break;
            }
            // Room for the ledger writer between chunks.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if deleted > 0 {
            metrics.retention_deleted(rule.table).inc_by(deleted as u64);
            tracing::info!(table = rule.table, deleted, "retention removed old rows");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_sorts_between_the_ids_of_the_millisecond_before_and_its_own() {
        let at = Utc::now();
        let floor = v7_floor(at);
        let ms = |d: DateTime<Utc>| {
            let ms = u64::try_from(d.timestamp_millis()).unwrap();
            Uuid::new_v7(uuid::Timestamp::from_unix(
                uuid::NoContext,
                ms / 1000,
                u32::try_from(ms % 1000).unwrap() * 1_000_000,
            ))
        };
        let before = ms(at - chrono::Duration::milliseconds(1));
        let same = ms(at);
        // Uuid's Ord is bytewise, as PostgreSQL's.
        assert!(before < floor, "{before} < {floor}");
        assert!(floor <= same, "{floor} <= {same}");
        assert_eq!(floor.get_version_num(), 0, "the floor is a bound, not an id");
    }
}
