//! `/v1/internal/…`: what the other services read from the registry, behind the admin token.

use actix_web::{web, HttpResponse};

use crate::auth::Admin;
use crate::db::models::Webhook;
use crate::error::ApiError;
use crate::notices::subscription;
use crate::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/internal/subscriptions", web::get().to(subscriptions));
}

/// Every webhook's routing view: the publisher's snapshot (secrets stay sealed).
async fn subscriptions(state: web::Data<AppState>, _: Admin) -> Result<HttpResponse, ApiError> {
    let mut conn = state.pool.get().await?;
    let all = Webhook::all(&mut conn).await?;
    let policy = state.config.webhooks.default_retry_policy;
    let body: Vec<_> = all.iter().map(|w| subscription(w, policy)).collect();
    Ok(HttpResponse::Ok().json(body))
}
