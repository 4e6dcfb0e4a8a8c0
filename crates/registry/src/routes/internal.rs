//! `/v1/internal/…`: what the other services read from the registry, behind the admin token.

use actix_web::{web, HttpResponse};

use crate::auth::Admin;
use crate::db::idempotency;
use crate::db::models::{EventType, Webhook};
use crate::notices::subscription;
use crate::AppState;
use hookwire_core::idempotency::{Answers, Claims, Settle};
use hookwire_core::messages::RoutingSnapshot;
use hookwire_http::error::ApiError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/internal/routing", web::get().to(routing))
        .route("/internal/idempotency/claim", web::post().to(claim))
        .route("/internal/idempotency/settle", web::post().to(settle));
}

/// Claims idempotency keys for events about to be published; one answer per claim, in order.
async fn claim(state: web::Data<AppState>, _: Admin, body: web::Json<Claims>) -> Result<HttpResponse, ApiError> {
    let mut conn = state.pool.get().await?;
    let mut results = Vec::with_capacity(body.claims.len());
    for c in &body.claims {
        results.push(idempotency::claim(&mut conn, c).await?);
    }
    Ok(HttpResponse::Ok().json(Answers { results }))
}

async fn settle(state: web::Data<AppState>, _: Admin, body: web::Json<Settle>) -> Result<HttpResponse, ApiError> {
    let how = body.settlement();
    let mut conn = state.pool.get().await?;
    for c in &body.claims {
        idempotency::settle(&mut conn, c, how).await?;
    }
    Ok(HttpResponse::NoContent().finish())
}

/// Every webhook's routing view and the catalog: the publisher's snapshot (secrets stay sealed).
async fn routing(state: web::Data<AppState>, _: Admin) -> Result<HttpResponse, ApiError> {
    let mut conn = state.pool.get().await?;
    let webhooks = Webhook::all(&mut conn).await?;
    let event_types = EventType::catalog(&mut conn).await?;
    let policy = state.config.webhooks.default_retry_policy;
    Ok(HttpResponse::Ok().json(RoutingSnapshot {
        subscriptions: webhooks.iter().map(|w| subscription(w, policy)).collect(),
        event_types,
    }))
}
