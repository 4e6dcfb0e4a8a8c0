//! Per-key rate limits shared by every registry replica: GCRA (the generic cell rate algorithm)
//! over one PostgreSQL row per key and limit. An allowed request costs one statement, which also
//! finds its key; a refused one costs a second, to say when to come back. The table is UNLOGGED
//! (migration 17): a GET writes only its bucket, and commits without waiting for a WAL flush.
//!
//! A limit of `count` per `period` has an emission interval `T = period / count`. The row holds
//! the theoretical arrival time (TAT) of the next request; a request is allowed when
//! `max(TAT, now) + T - now <= period`, which lets a full `count` through at once and then one
//! every `T`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Bytea, Nullable, Text, Timestamptz};
use diesel::{OptionalExtension as _, QueryableByName};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::db::models::{key_by_hash, ApiKey};
use crate::db::prepared::Prepared;

pub use crate::config::Limit;

/// The answer for one request, and the `RateLimit-*` header values.
#[derive(Debug, Clone, Copy)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the full quota is back.
    pub reset: u64,
    /// Seconds until a refused request may be sent again.
    pub retry_after: u64,
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Timestamptz)]
    tat: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    now: DateTime<Utc>,
}

/// A key found, and its request's count.
#[derive(QueryableByName)]
struct Admission {
    #[diesel(embed)]
    key: ApiKey,
    /// The bucket's new TAT; `None` when the request was refused.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    tat: Option<DateTime<Utc>>,
    #[diesel(sql_type = Timestamptz)]
    now: DateTime<Utc>,
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// `$1` a key's hash, `$2` the bucket's kind, `$3` the emission interval and `$4` the period in
/// microseconds: the key as `k` and the request counted in its bucket (`tat` null when refused).
const ADMIT: &str = concat!(
    "WITH ",
    key_by_hash!(),
    ",
     c AS (SELECT clock_timestamp() AS now),
     counted AS (
         INSERT INTO rate_limits AS r (bucket, tat)
         SELECT k.id::text || ':' || $2, c.now + $3 * interval '1 microsecond' FROM k, c
         ON CONFLICT (bucket) DO UPDATE
             SET tat = GREATEST(r.tat, (SELECT now FROM c)) + $3 * interval '1 microsecond'
             WHERE GREATEST(r.tat, (SELECT now FROM c)) + $3 * interval '1 microsecond'
                   - (SELECT now FROM c) <= $4 * interval '1 microsecond'
         RETURNING r.tat)
     SELECT k.*, (SELECT tat FROM counted) AS tat, (SELECT now FROM c) AS now FROM k"
);

/// Finds the live API key whose hash is `key_hash` (as `ApiKey::find_by_hash`) and counts one
/// request against its bucket `kind` (`{key id}:{kind}`), in one statement: a request's
/// authentication and its rate limit are one round trip to PostgreSQL. `None` when there is no
/// such key (nothing is counted). Prepared once per connection (`db::prepared`).
pub async fn admit(
    conn: &mut AsyncPgConnection,
    key_hash: &[u8],
    kind: &str,
    limit: Limit,
) -> diesel::QueryResult<Option<(ApiKey, Decision)>> {
    let count = limit.count.max(1);
    let period = limit.period.max(Duration::from_millis(1));
    let t = period / count;
    let found: Option<Admission> = Prepared::new(ADMIT)
        .bind::<Bytea, _>(key_hash)
        .bind::<Text, _>(kind)
        .bind::<BigInt, _>(micros(t))
        .bind::<BigInt, _>(micros(period))
        .get_result(conn)
        .await
        .optional()?;
    let Some(found) = found else {
        return Ok(None);
    };
    let secs = |d: chrono::Duration| (d.num_milliseconds().max(0) as u64).div_ceil(1000);
    let t_chrono = chrono::Duration::from_std(t).unwrap_or(chrono::Duration::MAX);
    let period_chrono = chrono::Duration::from_std(period).unwrap_or(chrono::Duration::MAX);
    let decision = match found.tat {
        Some(tat) => {
            let used = tat - found.now;
            let left = (period_chrono - used).num_microseconds().unwrap_or(0).max(0);
            let remaining = (left / t_chrono.num_microseconds().unwrap_or(1).max(1)) as u32;
            Decision {
                allowed: true,
                limit: count,
                remaining,
                reset: secs(used),
                retry_after: 0,
            }
        }
        None => {
            let row: Row = diesel::sql_query("SELECT tat, clock_timestamp() AS now FROM rate_limits WHERE bucket = $1")
                .bind::<Text, _>(format!("{}:{kind}", found.key.id))
                .get_result(conn)
                .await?;
            Decision {
                allowed: false,
                limit: count,
                remaining: 0,
                reset: secs(row.tat - row.now),
                retry_after: secs(row.tat + t_chrono - period_chrono - row.now).max(1),
            }
        }
    };
    Ok(Some((found.key, decision)))
}
