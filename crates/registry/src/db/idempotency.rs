//! Idempotency keys of ingested events (see the migration for the states).

use diesel::sql_types::{Text, Uuid as SqlUuid};
use diesel::{OptionalExtension as _, QueryableByName};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How long a key holds: the contract's 24 hours.
pub const RETENTION_HOURS: i64 = 24;
/// A pending claim older than this is taken over.
pub const PENDING_TIMEOUT_SECONDS: i64 = 30;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claim {
    pub scope: String,
    pub key: String,
    pub event_id: Uuid,
}

/// The answer to one claim.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Claimed {
    /// The key is this publisher's: publish, then complete (or release).
    New,
    /// Accepted before: answer with the first event id and send nothing.
    Duplicate { event_id: Uuid },
    /// Another publisher is accepting it right now.
    InProgress,
}

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
    // Insert, or take over an expired key or an abandoned pending claim, in one statement.
    let taken: Option<Taken> = diesel::sql_query(format!(
        "INSERT INTO idempotency_keys AS k (scope, key, event_id, state) VALUES ($1, $2, $3, 'pending')
         ON CONFLICT ON CONSTRAINT idempotency_keys_pkey DO UPDATE
             SET event_id = excluded.event_id, state = 'pending', created_at = now(), updated_at = now()
             WHERE k.created_at < now() - interval '{RETENTION_HOURS} hours'
                OR (k.state = 'pending' AND k.updated_at < now() - interval '{PENDING_TIMEOUT_SECONDS} seconds')
         RETURNING k.event_id"
    ))
    .bind::<Text, _>(&c.scope)
    .bind::<Text, _>(&c.key)
    .bind::<SqlUuid, _>(c.event_id)
    .get_result(conn)
    .await
    .optional()?;
    if taken.is_some_and(|t| t.event_id == c.event_id) {
        return Ok(Claimed::New);
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

/// Marks a claim done (its publish was confirmed), or releases it (nothing was sent).
pub async fn settle(conn: &mut AsyncPgConnection, c: &Claim, done: bool) -> diesel::QueryResult<()> {
    let sql = if done {
        "UPDATE idempotency_keys SET state = 'done', updated_at = now() WHERE scope = $1 AND key = $2 AND event_id = $3"
    } else {
        "DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND event_id = $3 AND state = 'pending'"
    };
    diesel::sql_query(sql)
        .bind::<Text, _>(&c.scope)
        .bind::<Text, _>(&c.key)
        .bind::<SqlUuid, _>(c.event_id)
        .execute(conn)
        .await
        .map(drop)
}
