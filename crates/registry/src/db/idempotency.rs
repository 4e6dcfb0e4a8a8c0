//! Idempotency keys of ingested events (see the migrations `…_idempotency`,
//! `…_idempotency_unconfirmed` for the states and `…_idempotency_holder` for who holds a claim).

use diesel::sql_types::{Nullable, Text, Uuid as SqlUuid};
use diesel::{OptionalExtension as _, QueryableByName};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use hookwire_core::idempotency::{Claim, Claimed, Settlement};
use uuid::Uuid;

/// How long a key holds: the contract's 24 hours.
pub const RETENTION_HOURS: i64 = 24;
/// A pending claim older than this is taken over.
pub const PENDING_TIMEOUT_SECONDS: i64 = 30;

#[derive(QueryableByName)]
struct Existing {
    #[diesel(sql_type = SqlUuid)]
    event_id: Uuid,
    #[diesel(sql_type = Text)]
    state: String,
}

#[derive(QueryableByName)]
struct Taken {
    #[diesel(sql_type = SqlUuid)]
    event_id: Uuid,
}

pub async fn claim(conn: &mut AsyncPgConnection, c: &Claim) -> diesel::QueryResult<Claimed> {
    // In one statement: insert; or take over a key that expired (a new event), a pending claim
    // whose publisher died mid-publish or an unconfirmed one (the same event again, so its
    // receivers can tell the copies are one).
    let expired = format!("k.created_at < now() - interval '{RETENTION_HOURS} hours'");
    let taken: Option<Taken> = diesel::sql_query(format!(
        "INSERT INTO idempotency_keys AS k (scope, key, event_id, state, holder) VALUES ($1, $2, $3, 'pending', $4)
         ON CONFLICT ON CONSTRAINT idempotency_keys_pkey DO UPDATE
             SET event_id = CASE WHEN {expired} THEN excluded.event_id ELSE k.event_id END,
                 created_at = CASE WHEN {expired} THEN now() ELSE k.created_at END,
                 state = 'pending', updated_at = now(), holder = excluded.holder
             WHERE {expired}
                OR (k.state = 'pending' AND k.updated_at < now() - interval '{PENDING_TIMEOUT_SECONDS} seconds')
                OR k.state = 'unconfirmed'
         RETURNING k.event_id"
    ))
    .bind::<Text, _>(&c.scope)
    .bind::<Text, _>(&c.key)
    .bind::<SqlUuid, _>(c.event_id)
    .bind::<Nullable<SqlUuid>, _>(c.holder)
    .get_result(conn)
    .await
    .optional()?;
    if let Some(t) = taken {
        return Ok(if t.event_id == c.event_id {
            Claimed::New
        } else {
            Claimed::Resume { event_id: t.event_id }
        });
    }
    let existing: Existing =
        diesel::sql_query("SELECT event_id, state FROM idempotency_keys WHERE scope = $1 AND key = $2")
            .bind::<Text, _>(&c.scope)
            .bind::<Text, _>(&c.key)
            .get_result(conn)
            .await?;
    Ok(if existing.state == "done" {
        Claimed::Duplicate {
            event_id: existing.event_id,
        }
    } else {
        Claimed::InProgress
    })
}

/// Settles a claim this publisher holds (still pending under its event id, and, when the claim
/// names its holder, still held by it).
pub async fn settle(conn: &mut AsyncPgConnection, c: &Claim, how: Settlement) -> diesel::QueryResult<()> {
    let sql = match how {
        Settlement::Done => {
            // Whatever the state and holder: a confirmed publish settles the key, even one that
            // another publisher resumed meanwhile (the event is stored either way).
            "UPDATE idempotency_keys SET state = 'done', updated_at = now()
             WHERE scope = $1 AND key = $2 AND event_id = $3"
        }
        Settlement::Released => {
            "DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND event_id = $3 AND state = 'pending'
                 AND holder IS NOT DISTINCT FROM $4"
        }
        Settlement::Unconfirmed => {
            "UPDATE idempotency_keys SET state = 'unconfirmed', updated_at = now()
             WHERE scope = $1 AND key = $2 AND event_id = $3 AND state = 'pending'
                 AND holder IS NOT DISTINCT FROM $4"
        }
    };
    let query = diesel::sql_query(sql)
        .bind::<Text, _>(&c.scope)
        .bind::<Text, _>(&c.key)
        .bind::<SqlUuid, _>(c.event_id);
    match how {
        Settlement::Done => query.execute(conn).await,
        Settlement::Released | Settlement::Unconfirmed => {
            query.bind::<Nullable<SqlUuid>, _>(c.holder).execute(conn).await
        }
    }
    .map(drop)
}
