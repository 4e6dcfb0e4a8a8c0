//! Retention: the delivery log (deliveries, their attempts, the events' payloads) is kept for
//! `retention.deliveries`, and past it for as long as a delivery is still pending or being
//! retried; idempotency keys (of events and of API requests) for the 24 h they mean something;
//! rate-limit rows only while they hold back a caller. A background task deletes the rest every
//! `retention.interval`, in chunks, so no statement holds locks or bloats the WAL for long.
//! Each pass also deletes the logs of deleted tenants, found through the tenant's index
//! (500,000 deliveries with their events and attempts: 100 chunks, 7 s).
//! Each chunk deletes by `ctid` the rows its sub-select chose (a TID scan; with `IN (keys)` the
//! planner scanned the whole attempts table for every chunk), and the next chunk starts after the
//! last key deleted. A pass over 1 million old deliveries, as many attempts and 100,000 events
//! (1,000 deliveries still being retried, kept) took about 14 s here (debug build, scratch
//! database; 13.5 s when "still under way" was read once per pass instead of in every chunk).
//!
//! The log's tables are cut by primary key, with no index of their own for it: delivery and
//! event ids are UUIDv7, whose first 48 bits are the creation time in milliseconds, so "older
//! than the cutoff" is "id below the smallest UUIDv7 of the cutoff's millisecond". Every replica
//! may run the task; `SKIP LOCKED` keeps them from waiting on one another.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sql_types::{BigInt, Nullable, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl as _};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::RetentionConfig;
use crate::db::DbPool;
use crate::metrics::Metrics;

/// Most rows one statement deletes.
const CHUNK: i64 = 5_000;

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
        match pass.await {
            Ok(()) => {
                metrics.retention_passes.inc();
            }
            Err(e) => tracing::warn!(error = %e, "retention pass failed; it runs again at the next interval"),
        }
    }
}

const KEYS_EXPIRE: chrono::TimeDelta = chrono::TimeDelta::hours(crate::db::event_keys::RETENTION_HOURS);

/// Which rows of a table one pass deletes. `choose` selects their `ctid`s in key order; a chunk is
/// `choose LIMIT $1`, and the log's tables continue from the last key deleted (`$3`), so no chunk
/// walks again over the index entries of rows the chunks before it deleted.
struct Rule {
    table: &'static str,
    choose: &'static str,
    binds: Binds,
}

/// The parameters of `choose` after the chunk size.
enum Binds {
    /// `$2` the log's cutoff id, `$3` the `key` to continue from (the column `choose` orders by).
    Log { key: &'static str },
    /// `$2` the time `after` ago: rows made before it expired. Like `Clock`, a small table,
    /// deleted without keyset pagination.
    Expired { after: chrono::TimeDelta },
    /// None: `choose` compares with `now()` itself.
    Clock,
}

// A delivery still pending or being retried keeps its attempts and its event (the event is what a
// retry by hand sends again). Each chunk checks that in its own statement, so a delivery the ledger
// writes or starts again during a pass is seen by the next chunk, not missed until the next pass:
// an attempt looks up its delivery (an anti-join; the bounds repeated on `d.id` keep the planner's
// merge join from walking the deliveries' index from its start every chunk); the events' chunks read the old deliveries
// still under way (an InitPlan, once per chunk; few rows, as the deliveries rule before them left
// only those below the cutoff). Its statistics are stale by then, but measured on a scratch copy
// (2 million newer deliveries, 1 million old ones just deleted, analyzed before the delete) the
// planner still reads them by primary key, not the whole table.
const RULES: [Rule; 10] = [
    Rule {
        table: "delivery_attempts",
        choose: "SELECT ctid FROM delivery_attempts a
                 WHERE delivery_id >= $3 AND delivery_id < $2
                   AND NOT EXISTS (SELECT 1 FROM deliveries d
                                   WHERE d.id = a.delivery_id AND d.status IN ('pending', 'retrying')
                                     AND d.id >= $3 AND d.id < $2)
                 ORDER BY delivery_id",
        binds: Binds::Log { key: "delivery_id" },
    },
    Rule {
        table: "deliveries",
        choose: "SELECT ctid FROM deliveries
                 WHERE id >= $3 AND id < $2 AND status NOT IN ('pending', 'retrying')
                 ORDER BY id",
        binds: Binds::Log { key: "id" },
    },
    Rule {
        table: "events",
        choose: "SELECT ctid FROM events
                 WHERE id >= $3 AND id < $2
                   AND id <> ALL(ARRAY(
                       SELECT event_id FROM deliveries WHERE id < $2 AND status IN ('pending', 'retrying')))
                 ORDER BY id",
        binds: Binds::Log { key: "id" },
    },
    // The audit log is kept as long as the delivery log.
    Rule {
        table: "audit_log",
        choose: "SELECT ctid FROM audit_log WHERE id >= $3 AND id < $2 ORDER BY id",
        binds: Binds::Log { key: "id" },
    },
    Rule {
        table: "idempotency_keys",
        choose: "SELECT ctid FROM idempotency_keys WHERE created_at < $2",
        binds: Binds::Expired { after: KEYS_EXPIRE },
    },
    Rule {
        table: "api_idempotency_keys",
        choose: "SELECT ctid FROM api_idempotency_keys WHERE created_at < $2",
        binds: Binds::Expired { after: KEYS_EXPIRE },
    },
    // An erasure request is looked for by the ledger until the events it names can no longer
    // arrive with a result (30 days of retries at most).
    Rule {
        table: "event_erasures",
        choose: "SELECT ctid FROM event_erasures WHERE requested_at < $2",
        binds: Binds::Expired {
            after: crate::db::models::EXPUNGED_LISTED_FOR,
        },
    },
    // A resend is listed in the routing snapshot while a task of the chain it replaced can
    // still come back.
    Rule {
        table: "delivery_resends",
        choose: "SELECT ctid FROM delivery_resends WHERE resent_at < $2",
        binds: Binds::Expired {
            after: hookwire_core::retry::RESENDS_KEPT,
        },
    },
    // A portal session is listed (and can be revoked) for a day after it ended.
    Rule {
        table: "portal_sessions",
        choose: "SELECT ctid FROM portal_sessions WHERE expires_at < $2",
        binds: Binds::Expired {
            after: chrono::TimeDelta::days(1),
        },
    },
    // A bucket whose theoretical arrival time has passed lets its next request through exactly
    // as a missing row does.
    Rule {
        table: "rate_limits",
        choose: "SELECT ctid FROM rate_limits WHERE tat < now()",
        binds: Binds::Clock,
    },
];

/// One chunk of a deleted tenant's log (`$1`, at most `$2` deliveries): the deliveries with their
/// attempts, and the events that were the tenant's own (an event without a tenant went to every
/// tenant's webhooks and stays for the others). The tenant's index finds its deliveries.
const PURGE_TENANT: &str =
    "WITH d AS (SELECT id, event_id FROM deliveries WHERE tenant_id = $1 LIMIT $2 FOR UPDATE SKIP LOCKED),
     a AS (DELETE FROM delivery_attempts WHERE delivery_id IN (SELECT id FROM d)),
     e AS (DELETE FROM events WHERE id IN (SELECT event_id FROM d) AND tenant_id = $1),
     gone AS (DELETE FROM deliveries WHERE id IN (SELECT id FROM d) RETURNING id)
     SELECT count(*) AS deleted, NULL::uuid AS last FROM gone";

#[derive(diesel::QueryableByName)]
struct Chunk {
    #[diesel(sql_type = BigInt)]
    deleted: i64,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    last: Option<Uuid>,
}

/// One pass: every rule, chunk after chunk, until a chunk comes back short.
pub async fn prune(
    conn: &mut AsyncPgConnection,
    config: &RetentionConfig,
    metrics: &Metrics,
    cancel: &CancellationToken,
) -> diesel::QueryResult<()> {
    let keep = chrono::Duration::from_std(config.deliveries).unwrap_or(chrono::Duration::MAX);
    let log_cutoff = hookwire_core::id::v7_floor(Utc::now() - keep);
    for rule in &RULES {
        let sql = format!(
            "WITH gone AS (
                 DELETE FROM {table} WHERE ctid = ANY(ARRAY({choose} LIMIT $1 FOR UPDATE SKIP LOCKED))
                 RETURNING {key} AS k)
             SELECT count(*) AS deleted, (SELECT k FROM gone ORDER BY k DESC LIMIT 1) AS last FROM gone",
            table = rule.table,
            choose = rule.choose,
            key = match rule.binds {
                Binds::Log { key } => key,
                _ => "NULL::uuid",
            },
        );
        let deleted = chunk_after_chunk(conn, cancel, |after| {
            let query = diesel::sql_query(&sql).into_boxed::<Pg>().bind::<BigInt, _>(CHUNK);
            match rule.binds {
                Binds::Log { .. } => query.bind::<SqlUuid, _>(log_cutoff).bind::<SqlUuid, _>(after),
                Binds::Expired { after } => query.bind::<Timestamptz, _>(Utc::now() - after),
                Binds::Clock => query,
            }
        })
        .await?;
        if deleted > 0 {
            metrics.retention_deleted(rule.table).inc_by(deleted.unsigned_abs());
            tracing::info!(table = rule.table, deleted, "retention removed old rows");
        }
    }
    purge_deleted_tenants(conn, keep, metrics, cancel).await
}

/// Runs the chunk `query(after)` makes, `after` the last key the chunk before deleted (nil at
/// first), until one deletes fewer than [`CHUNK`] rows or the task is stopped, with room for the
/// ledger writer between chunks; says how many rows they deleted.
async fn chunk_after_chunk<'q>(
    conn: &mut AsyncPgConnection,
    cancel: &CancellationToken,
    mut query: impl FnMut(Uuid) -> BoxedSqlQuery<'q, Pg, SqlQuery>,
) -> diesel::QueryResult<i64> {
    let (mut deleted, mut after) = (0, Uuid::nil());
    loop {
        let chunk: Chunk = query(after).get_result(conn).await?;
        deleted += chunk.deleted;
        after = chunk.last.unwrap_or(after);
        if chunk.deleted < CHUNK || cancel.is_cancelled() {
            return Ok(deleted);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Deletes the delivery logs of deleted tenants. A tenant stays listed for `keep` after its
/// deletion, and each pass deletes what its in-flight results wrote since; past `keep` the
/// rules above would take those rows anyway.
async fn purge_deleted_tenants(
    conn: &mut AsyncPgConnection,
    keep: chrono::Duration,
    metrics: &Metrics,
    cancel: &CancellationToken,
) -> diesel::QueryResult<()> {
    use crate::db::schema::deleted_tenants;
    use diesel::QueryDsl as _;
    let tenants: Vec<(Uuid, DateTime<Utc>)> = deleted_tenants::table
        .select((deleted_tenants::tenant_id, deleted_tenants::deleted_at))
        .load(conn)
        .await?;
    for (tenant, deleted_at) in tenants {
        let deleted = chunk_after_chunk(conn, cancel, |_| {
            diesel::sql_query(PURGE_TENANT)
                .into_boxed::<Pg>()
                .bind::<SqlUuid, _>(tenant)
                .bind::<BigInt, _>(CHUNK)
        })
        .await?;
        if deleted > 0 {
            metrics.retention_deleted("deliveries").inc_by(deleted.unsigned_abs());
            tracing::info!(%tenant, deleted, "retention removed a deleted tenant's deliveries");
        }
        if deleted_at < Utc::now() - keep {
            diesel::delete(deleted_tenants::table.find(tenant))
                .execute(conn)
                .await?;
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
        let floor = hookwire_core::id::v7_floor(at);
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
