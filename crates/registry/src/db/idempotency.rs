//! Idempotency keys of ingested events (see the migrations `…_idempotency`,
//! `…_idempotency_unconfirmed` for the states and `…_idempotency_holder` for who holds a claim).

use std::collections::HashMap;

use diesel::sql_types::{Array, Nullable, Text, Uuid as SqlUuid};
use diesel::QueryableByName;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use hookwire_core::idempotency::{Claim, Claimed, Settlement};
use uuid::Uuid;

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

/// Claims as the column arrays the statements below unnest: `$1` scope, `$2` key, `$3` event id,
/// `$4` holder.
struct Columns<'a> {
    scopes: Vec<&'a str>,
    keys: Vec<&'a str>,
    event_ids: Vec<Uuid>,
    holders: Vec<Option<Uuid>>,
}

impl<'a> Columns<'a> {
    fn of(claims: &'a [Claim]) -> Self {
        Self {
            scopes: claims.iter().map(|c| c.scope.as_str()).collect(),
            keys: claims.iter().map(|c| c.key.as_str()).collect(),
            event_ids: claims.iter().map(|c| c.event_id).collect(),
            holders: claims.iter().map(|c| c.holder).collect(),
        }
    }
}

/// Claims every key of a request in one statement (one commit, however many keys): insert;
/// or take over a key that expired (a new event), a pending claim whose publisher died
/// mid-publish or an unconfirmed one (the same event again, so its receivers can tell the copies
/// are one). One answer per claim, in order. Each (scope, key) may appear once.
///
/// Rows are locked in (scope, key) order, so requests claiming overlapping keys wait for each
/// other instead of deadlocking.
pub async fn claim(conn: &mut AsyncPgConnection, claims: &[Claim]) -> diesel::QueryResult<Vec<Claimed>> {
    if claims.is_empty() {
        return Ok(Vec::new());
    }
    let expired = format!("k.created_at < now() - interval '{RETENTION_HOURS} hours'");
    let taken_sql = format!(
        "INSERT INTO idempotency_keys AS k (scope, key, event_id, state, holder)
         SELECT scope, key, event_id, 'pending', holder
         FROM UNNEST($1, $2, $3, $4) AS c(scope, key, event_id, holder)
         ORDER BY scope, key
         ON CONFLICT ON CONSTRAINT idempotency_keys_pkey DO UPDATE
             SET event_id = CASE WHEN {expired} THEN excluded.event_id ELSE k.event_id END,
                 created_at = CASE WHEN {expired} THEN now() ELSE k.created_at END,
                 state = 'pending', updated_at = now(), holder = excluded.holder
             WHERE {expired}
                OR (k.state = 'pending' AND k.updated_at < now() - interval '{PENDING_TIMEOUT_SECONDS} seconds')
                OR k.state = 'unconfirmed'
         RETURNING k.scope, k.key, k.event_id, k.state"
    );
    // Each statement commits by itself: the common answer (every key new) is one statement and
    // one commit, and the keys' row locks are held no longer than that statement.
    let columns = Columns::of(claims);
    let taken: Vec<Key> = diesel::sql_query(&taken_sql)
        .bind::<Array<Text>, _>(&columns.scopes)
        .bind::<Array<Text>, _>(&columns.keys)
        .bind::<Array<SqlUuid>, _>(&columns.event_ids)
        .bind::<Array<Nullable<SqlUuid>>, _>(&columns.holders)
        .load(conn)
        .await?;
    let existing: Vec<Key> = if taken.len() == claims.len() {
        Vec::new()
    } else {
        // The keys held by others, as they are now.
        diesel::sql_query(
            "SELECT k.scope, k.key, k.event_id, k.state
             FROM idempotency_keys k JOIN UNNEST($1, $2) AS c(scope, key) USING (scope, key)",
        )
        .bind::<Array<Text>, _>(&columns.scopes)
        .bind::<Array<Text>, _>(&columns.keys)
        .load(conn)
        .await?
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

/// Settles claims this publisher holds, in one statement: `Done` whatever the state and holder
/// (a confirmed publish settles the key, even one that another publisher resumed meanwhile: the
/// event is stored either way); `Released` and `Unconfirmed` only a claim still pending under its
/// event id and, when the claim names its holder, still held by it. Rows are locked in
/// (scope, key) order first, as `claim` locks them, so a settle and a producer's retry claiming
/// the same keys cannot deadlock.
pub async fn settle(conn: &mut AsyncPgConnection, claims: &[Claim], how: Settlement) -> diesel::QueryResult<()> {
    if claims.is_empty() {
        return Ok(());
    }
    let still_held = match how {
        Settlement::Done => "",
        Settlement::Released | Settlement::Unconfirmed => {
            "AND k.state = 'pending' AND k.holder IS NOT DISTINCT FROM c.holder"
        }
    };
    let change = match how {
        Settlement::Done => "UPDATE idempotency_keys k SET state = 'done', updated_at = now() FROM held",
        Settlement::Released => "DELETE FROM idempotency_keys k USING held",
        Settlement::Unconfirmed => "UPDATE idempotency_keys k SET state = 'unconfirmed', updated_at = now() FROM held",
    };
    let columns = Columns::of(claims);
    diesel::sql_query(format!(
        "WITH held AS (
             SELECT k.scope, k.key
             FROM idempotency_keys k
             JOIN UNNEST($1, $2, $3, $4) AS c(scope, key, event_id, holder)
               ON k.scope = c.scope AND k.key = c.key AND k.event_id = c.event_id {still_held}
             ORDER BY k.scope, k.key
             FOR UPDATE OF k)
         {change} WHERE k.scope = held.scope AND k.key = held.key"
    ))
    .bind::<Array<Text>, _>(&columns.scopes)
    .bind::<Array<Text>, _>(&columns.keys)
    .bind::<Array<SqlUuid>, _>(&columns.event_ids)
    .bind::<Array<Nullable<SqlUuid>>, _>(&columns.holders)
    .execute(conn)
    .await
    .map(drop)
}
