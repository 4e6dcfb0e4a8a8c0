//! Per-key rate limits shared by every registry replica: GCRA (the generic cell rate algorithm)
//! over one PostgreSQL row per key and limit. An allowed request costs one statement; a refused
//! one costs a second, to say when to come back.
//!
//! A limit of `count` per `period` has an emission interval `T = period / count`. The row holds
//! the theoretical arrival time (TAT) of the next request; a request is allowed when
//! `max(TAT, now) + T - now <= period`, which lets a full `count` through at once and then one
//! every `T`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Text, Timestamptz};
use diesel::{OptionalExtension as _, QueryableByName};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Deserialize;

/// `count` requests per `period`.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct Limit {
    /// Requests allowed per period.
    pub count: u32,
    /// The period, e.g. `1h`.
    #[serde(with = "hookwire_core::config::humantime_serde")]
    pub period: Duration,
}

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

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// Counts one request against `bucket`.
pub async fn check(conn: &mut AsyncPgConnection, bucket: &str, limit: Limit) -> diesel::QueryResult<Decision> {
    let count = limit.count.max(1);
    let period = limit.period.max(Duration::from_millis(1));
    let t = period / count;
    let allowed: Option<Row> = diesel::sql_query(
        "WITH c AS (SELECT clock_timestamp() AS now)
         INSERT INTO rate_limits AS r (bucket, tat)
         SELECT $1, c.now + $2 * interval '1 microsecond' FROM c
         ON CONFLICT (bucket) DO UPDATE
             SET tat = GREATEST(r.tat, (SELECT now FROM c)) + $2 * interval '1 microsecond'
             WHERE GREATEST(r.tat, (SELECT now FROM c)) + $2 * interval '1 microsecond'
                   - (SELECT now FROM c) <= $3 * interval '1 microsecond'
         RETURNING r.tat AS tat, (SELECT now FROM c) AS now",
    )
    .bind::<Text, _>(bucket)
    .bind::<BigInt, _>(micros(t))
    .bind::<BigInt, _>(micros(period))
    .get_result(conn)
    .await
    .optional()?;
    let secs = |d: chrono::Duration| (d.num_milliseconds().max(0) as u64).div_ceil(1000);
    let t_chrono = chrono::Duration::from_std(t).unwrap_or(chrono::Duration::MAX);
    let period_chrono = chrono::Duration::from_std(period).unwrap_or(chrono::Duration::MAX);
    match allowed {
        Some(row) => {
            let used = row.tat - row.now;
            let left = (period_chrono - used).num_microseconds().unwrap_or(0).max(0);
            let remaining = (left / t_chrono.num_microseconds().unwrap_or(1).max(1)) as u32;
            Ok(Decision {
                allowed: true,
                limit: count,
                remaining,
                reset: secs(used),
                retry_after: 0,
            })
        }
        None => {
            let row: Row = diesel::sql_query("SELECT tat, clock_timestamp() AS now FROM rate_limits WHERE bucket = $1")
                .bind::<Text, _>(bucket)
                .get_result(conn)
                .await?;
            Ok(Decision {
                allowed: false,
                limit: count,
                remaining: 0,
                reset: secs(row.tat - row.now),
                retry_after: secs(row.tat + t_chrono - period_chrono - row.now).max(1),
            })
        }
    }
}
