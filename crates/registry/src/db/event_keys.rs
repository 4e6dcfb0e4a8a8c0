//! Idempotency keys of ingested events (see the migrations `…_idempotency`,
//! `…_idempotency_unconfirmed` for the states and `…_idempotency_holder` for who holds a claim).

use std::collections::HashMap;

use diesel::data_types::PgInterval;
use diesel::sql_types::{Array, Interval, Nullable, Text, Uuid as SqlUuid};
use diesel::QueryableByName;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use hookwire_core::event_keys::{Claim, Claimed, Settlement};
use uuid::Uuid;

use crate::db::prepared::Prepared;

/// How long a key holds: the contract's 24 hours.
pub const RETENTION_HOURS: i64 = 24;
/// A pending claim older than this is taken over.
pub const PENDING_TIMEOUT_SECONDS: i64 = 30;

#[derive(QueryableByName)]
struct Key {
    #[diesel(sql_type = Text)]
    scope: String,
    #[diesel(sql_type = Text)]
    key: String,
    #[diesel(sql_type = SqlUuid)]
    event_id: Uuid,
    #[diesel(sql_type = Text)]
    state: String,
}

/// A statement over claims as the column arrays it unnests: `$1` scope, `$2` key, `$3` event id,
/// `$4` holder.
fn over<'a>(sql: &'static str, claims: &'a [Claim]) -> Prepared<'a> {
    Prepared::new(sql)
        .bind::<Array<Text>, _>(claims.iter().map(|c| c.scope.as_str()).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(claims.iter().map(|c| c.key.as_str()).collect::<Vec<_>>())
        .bind::<Array<SqlUuid>, _>(claims.iter().map(|c| c.event_id).collect::<Vec<_>>())
        .bind::<Array<Nullable<SqlUuid>>, _>(claims.iter().map(|c| c.holder).collect::<Vec<_>>())
}

const RETENTION: PgInterval = PgInterval {
    microseconds: RETENTION_HOURS * 3_600_000_000,
    days: 0,
    months: 0,
};
const PENDING_TIMEOUT: PgInterval = PgInterval {
    microseconds: PENDING_TIMEOUT_SECONDS * 1_000_000,
    days: 0,
    months: 0,
};

/// Insert each key, or take it over (see [`claim`]); `$5` is the keys' retention, `$6` the
/// pending timeout.
const CLAIM: &str = "INSERT INTO idempotency_keys AS k (scope, key, event_id, state, holder)
     SELECT scope, key, event_id, 'pending', holder
     FROM UNNEST($1, $2, $3, $4) AS c(scope, key, event_id, holder)
     ORDER BY scope, key
     ON CONFLICT ON CONSTRAINT idempotency_keys_pkey DO UPDATE
         SET event_id = CASE WHEN k.created_at < now() - $5 THEN excluded.event_id ELSE k.event_id END,
             created_at = CASE WHEN k.created_at < now() - $5 THEN now() ELSE k.created_at END,
             state = 'pending', updated_at = now(), holder = excluded.holder
         WHERE k.created_at < now() - $5
            OR (k.state = 'pending' AND k.updated_at < now() - $6)
            OR k.state = 'unconfirmed'
     RETURNING k.scope, k.key, k.event_id, k.state";

/// The keys held by others, as they are now.
const HELD: &str = "SELECT k.scope, k.key, k.event_id, k.state
     FROM idempotency_keys k JOIN UNNEST($1, $2) AS c(scope, key) USING (scope, key)";

/// Claims every key of a request in one statement (one commit, however many keys): insert;
/// or take over a key that expired (a new event), a pending claim whose publisher died
/// mid-publish or an unconfirmed one (the same event again, so its receivers can tell the copies
/// are one). One answer per claim, in order. Each (scope, key) may appear once.
///
/// Rows are locked in (scope, key) order, so requests claiming overlapping keys wait for each
/// other instead of deadlocking. The claim commits durably before anything is published: a key
/// lost to a crash after its event went out would let a retry send the event under a new id.
pub async fn claim(conn: &mut AsyncPgConnection, claims: &[Claim]) -> diesel::QueryResult<Vec<Claimed>> {
    if claims.is_empty() {
        return Ok(Vec::new());
    }
    // Each statement commits by itself: the common answer (every key new) is one statement and
    // one commit, and the keys' row locks are held no longer than that statement.
    let taken: Vec<Key> = over(CLAIM, claims)
        .bind::<Interval, _>(RETENTION)
        .bind::<Interval, _>(PENDING_TIMEOUT)
        .load(conn)
        .await?;
    let existing: Vec<Key> = if taken.len() == claims.len() {
        Vec::new()
    } else {
        over(HELD, claims).load(conn).await?
    };
    let index = |rows: Vec<Key>| -> HashMap<(String, String), (Uuid, String)> {
        rows.into_iter()
            .map(|k| ((k.scope, k.key), (k.event_id, k.state)))
            .collect()
    };
    let (taken, existing) = (index(taken), index(existing));
    Ok(claims
        .iter()
        .map(|c| {
            let id = (c.scope.clone(), c.key.clone());
            match (taken.get(&id), existing.get(&id)) {
                (Some((event_id, _)), _) if *event_id == c.event_id => Claimed::New,
                (Some((event_id, _)), _) => Claimed::Resume { event_id: *event_id },
                (None, Some((event_id, state))) if state == "done" => Claimed::Duplicate { event_id: *event_id },
                // Held by another publisher right now, or released (deleted) between the two
                // statements: either way, the producer's retry shortly will settle it.
                (None, _) => Claimed::InProgress,
            }
        })
        .collect())
}

/// The statement that settles claims (`every` one, or those `still_held` by their holder): rows
/// are locked in (scope, key) order first, as `claim` locks them, then changed. Its first filter
/// makes the statement's commit asynchronous: `set_config(…, true)` lasts until its implicit
/// transaction ends, so the connection's later commits stay durable.
macro_rules! settle {
    (every, $change:literal) => {
        settle!(@ "", $change)
    };
    (still_held, $change:literal) => {
        settle!(@ "AND k.state = 'pending' AND k.holder IS NOT DISTINCT FROM c.holder", $change)
    };
    (@ $filter:literal, $change:literal) => {
        concat!(
            "WITH held AS (
                 SELECT k.scope, k.key
                 FROM idempotency_keys k
                 JOIN UNNEST($1, $2, $3, $4) AS c(scope, key, event_id, holder)
                   ON k.scope = c.scope AND k.key = c.key AND k.event_id = c.event_id ",
            $filter,
            "
                 WHERE (SELECT set_config('synchronous_commit', 'off', true)) = 'off'
                 ORDER BY k.scope, k.key
                 FOR UPDATE OF k) ",
            $change,
            " WHERE k.scope = held.scope AND k.key = held.key"
        )
    };
}

/// Settles claims this publisher holds, in one statement: `Done` whatever the state and holder
/// (a confirmed publish settles the key, even one that another publisher resumed meanwhile: the
/// event is stored either way); `Released` and `Unconfirmed` only a claim still pending under its
/// event id and, when the claim names its holder, still held by it. Rows are locked in
/// (scope, key) order first, as `claim` locks them, so a settle and a producer's retry claiming
/// the same keys cannot deadlock.
///
/// It commits without waiting for the WAL flush (the producer's answer waits for this
/// statement, and a flush costs about a millisecond on the benchmark machine's disk). What
/// PostgreSQL's crash can lose is the settlement, never the claim, and a key left pending is
/// what a settle that failed leaves too: the next claim after 30 s resumes it under the same
/// event id.
pub async fn settle(conn: &mut AsyncPgConnection, claims: &[Claim], how: Settlement) -> diesel::QueryResult<()> {
    if claims.is_empty() {
        return Ok(());
    }
    let sql = match how {
        Settlement::Done => settle!(
            every,
            "UPDATE idempotency_keys k SET state = 'done', updated_at = now() FROM held"
        ),
        Settlement::Released => settle!(still_held, "DELETE FROM idempotency_keys k USING held"),
        Settlement::Unconfirmed => settle!(
            still_held,
            "UPDATE idempotency_keys k SET state = 'unconfirmed', updated_at = now() FROM held"
        ),
    };
    over(sql, claims).execute(conn).await.map(drop)
}
