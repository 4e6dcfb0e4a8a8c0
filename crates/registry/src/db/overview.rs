//! The queries behind the operator's overview (`GET /v1/admin/overview`), across tenants. Each
//! reads a recent window by the time-ordered ids (UUIDv7), so it walks an index, not the log.

use diesel::sql_types::{BigInt, Double, Integer, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel::QueryableByName;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use hookwire_api::overview as api;
use uuid::Uuid;

#[derive(QueryableByName)]
struct Rates {
    #[diesel(sql_type = BigInt)]
    total: i64,
    #[diesel(sql_type = BigInt)]
    succeeded: i64,
    #[diesel(sql_type = BigInt)]
    failed: i64,
}

/// Deliveries routed in the last minute: all of them, those that succeeded, those that failed.
pub async fn last_minute(conn: &mut AsyncPgConnection) -> diesel::QueryResult<(i64, i64, i64)> {
    let since = hookwire_core::id::v7_floor(chrono::Utc::now() - chrono::Duration::seconds(60));
    let r: Rates = diesel::sql_query(
        "SELECT count(*) AS total,
                count(*) FILTER (WHERE status = 'success') AS succeeded,
                count(*) FILTER (WHERE status IN ('failed', 'exhausted')) AS failed
         FROM deliveries WHERE id >= $1",
    )
    .bind::<SqlUuid, _>(since)
    .get_result(conn)
    .await?;
    Ok((r.total, r.succeeded, r.failed))
}

#[derive(QueryableByName)]
struct Brief {
    #[diesel(sql_type = BigInt)]
    count: i64,
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    tenant_id: Uuid,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    url: String,
    #[diesel(sql_type = Integer)]
    failure_count: i32,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    failing_since: Option<chrono::DateTime<chrono::Utc>>,
    #[diesel(sql_type = Nullable<Text>)]
    disabled_reason: Option<String>,
}

const BRIEF: &str = "SELECT count(*) OVER () AS count, id, tenant_id, name, url, failure_count,
                            failing_since, disabled_reason FROM webhooks";

async fn webhooks(conn: &mut AsyncPgConnection, filter_and_order: &str) -> diesel::QueryResult<api::WebhookList> {
    let rows: Vec<Brief> = diesel::sql_query(format!("{BRIEF} {filter_and_order} LIMIT 10"))
        .load(conn)
        .await?;
    Ok(api::WebhookList {
        count: <[Brief]>::first(&rows).map_or(0, |r| r.count),
        webhooks: rows
            .into_iter()
            .map(|r| api::WebhookBrief {
                id: r.id,
                tenant_id: r.tenant_id,
                name: r.name,
                url: r.url,
                failure_count: r.failure_count,
                failing_since: r.failing_since,
                disabled_reason: r.disabled_reason,
            })
            .collect(),
    })
}

/// Active webhooks whose deliveries all fail, longest failing first.
pub async fn failing(conn: &mut AsyncPgConnection) -> diesel::QueryResult<api::WebhookList> {
    webhooks(
        conn,
        "WHERE is_active AND failing_since IS NOT NULL ORDER BY failing_since, id",
    )
    .await
}

/// Deactivated webhooks, most recently changed first.
pub async fn disabled(conn: &mut AsyncPgConnection) -> diesel::QueryResult<api::WebhookList> {
    webhooks(conn, "WHERE NOT is_active ORDER BY modified_at DESC, id").await
}

#[derive(QueryableByName)]
struct Slow {
    #[diesel(sql_type = SqlUuid)]
    webhook_id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    tenant_id: Uuid,
    #[diesel(sql_type = Text)]
    url: String,
    #[diesel(sql_type = BigInt)]
    attempts: i64,
    #[diesel(sql_type = Double)]
    mean_ms: f64,
    #[diesel(sql_type = Double)]
    p95_ms: f64,
}

/// The ten receivers slowest on average over the attempts of the last ten minutes' deliveries.
pub async fn slowest(conn: &mut AsyncPgConnection) -> diesel::QueryResult<Vec<api::SlowReceiver>> {
    let since = hookwire_core::id::v7_floor(chrono::Utc::now() - chrono::Duration::minutes(10));
    let rows: Vec<Slow> = diesel::sql_query(
        "SELECT d.webhook_id, w.tenant_id, w.url, count(*) AS attempts,
                avg(a.duration_ms)::float8 AS mean_ms,
                percentile_cont(0.95) WITHIN GROUP (ORDER BY a.duration_ms)::float8 AS p95_ms
         FROM delivery_attempts a
         JOIN deliveries d ON d.id = a.delivery_id AND d.id >= $1
         JOIN webhooks w ON w.id = d.webhook_id
         WHERE a.delivery_id >= $1
         GROUP BY d.webhook_id, w.tenant_id, w.url
         ORDER BY mean_ms DESC
         LIMIT 10",
    )
    .bind::<SqlUuid, _>(since)
    .load(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| api::SlowReceiver {
            webhook_id: r.webhook_id,
            tenant_id: r.tenant_id,
            url: r.url,
            attempts: r.attempts,
            mean_ms: r.mean_ms,
            p95_ms: r.p95_ms,
        })
        .collect())
}
