//! `/v1/admin/overview`: the system at a glance, for the operator's dashboard.

use actix_web::{web, HttpResponse};
use hookwire_api::overview as api;

use super::admin::AdminErrors;
use crate::auth::Admin;
use crate::db::overview;
use crate::AppState;
use hookwire_http::error::ApiError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/admin/overview").route(web::get().to(show)));
}

#[utoipa::path(
    get,
    path = "/v1/admin/overview",
    tag = "admin",
    summary = "The system at a glance: throughput, queue depths, failing, disabled and slow webhooks",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The overview", body = hookwire_api::overview::Overview),
        AdminErrors,
    )
)]
pub(crate) async fn show(state: web::Data<AppState>, _: Admin) -> Result<HttpResponse, ApiError> {
    let queues = state.topology.queues();
    let depths = state.link.queue_depths(&queues).await;
    let mut conn = state.pool.get().await?;
    let (total, succeeded, failed) = overview::last_minute(&mut conn).await?;
    let per_second = |n: i64| n as f64 / 60.0;
    Ok(HttpResponse::Ok().json(api::Overview {
        at: chrono::Utc::now(),
        deliveries_per_second: per_second(total),
        succeeded_per_second: per_second(succeeded),
        failed_per_second: per_second(failed),
        queues: depths.map(|d| {
            d.into_iter()
                .map(|(queue, messages)| api::QueueDepth { queue, messages })
                .collect()
        }),
        failing: overview::failing(&mut conn).await?,
        disabled: overview::disabled(&mut conn).await?,
        slowest: overview::slowest(&mut conn).await?,
    }))
}
