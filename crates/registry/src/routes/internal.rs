//! `/v1/internal/…`: what the other services read from the registry, behind the internal token
//! (`HOOKWIRE_INTERNAL_TOKEN`; the admin token is taken too).

use std::collections::HashSet;

use actix_web::http::header::{ETag, EntityTag, Header as _, IfNoneMatch};
use actix_web::{web, HttpRequest, HttpResponse};

use crate::auth::Internal;
use crate::db::event_keys;
use crate::db::models::{Delivery, EventRow, EventType, Webhook};
use crate::notices::subscription;
use crate::AppState;
use hookwire_core::event_keys::{Answers, Claims, Settle};
use hookwire_core::messages::RoutingSnapshot;
use hookwire_http::error::ApiError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/internal/routing").route(web::get().to(routing)))
        .service(web::resource("/internal/idempotency/claim").route(web::post().to(claim)))
        .service(web::resource("/internal/idempotency/settle").route(web::post().to(settle)));
}

/// Claims idempotency keys for events about to be published; one answer per claim, in order.
/// All of a request's keys are claimed in one statement.
async fn claim(state: web::Data<AppState>, _: Internal, body: web::Json<Claims>) -> Result<HttpResponse, ApiError> {
    let mut seen = HashSet::with_capacity(body.claims.len());
    if let Some(c) = body.claims.iter().find(|c| !seen.insert((&c.scope, &c.key))) {
        return Err(ApiError::bad_request(
            "repeated_idempotency_key",
            format!(
                "idempotency_key `{}` is claimed twice in one request (scope `{}`); claim it once",
                c.key, c.scope
            ),
        ));
    }
    let mut conn = state.pool.get().await?;
    let results = event_keys::claim(&mut conn, &body.claims).await?;
    Ok(HttpResponse::Ok().json(Answers { results }))
}

/// Settles claims, all of a request's keys in one statement.
async fn settle(state: web::Data<AppState>, _: Internal, body: web::Json<Settle>) -> Result<HttpResponse, ApiError> {
    let mut conn = state.pool.get().await?;
    event_keys::settle(&mut conn, &body.claims, body.settlement()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Every webhook's routing view and the catalog: the publisher's snapshot (secrets stay sealed),
/// with its version as the `ETag`; `304 Not Modified` when `If-None-Match` names the current one.
/// The version is taken before the data, so data sent is never older than the version it carries.
async fn routing(state: web::Data<AppState>, _: Internal, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let mut conn = state.pool.get().await?;
    let tag = EntityTag::new_strong(Webhook::routing_version(&mut conn).await?);
    let held = match IfNoneMatch::parse(&req) {
        Ok(IfNoneMatch::Items(tags)) => tags.iter().any(|t| t.weak_eq(&tag)),
        Ok(IfNoneMatch::Any) => true,
        Err(_) => false,
    };
    if held {
        return Ok(HttpResponse::NotModified().insert_header(ETag(tag)).finish());
    }
    let webhooks = Webhook::all(&mut conn).await?;
    let event_types = EventType::catalog(&mut conn).await?;
    let expunged = EventRow::expunged_recently(&mut conn).await?;
    let resent = Delivery::resent_recently(&mut conn).await?;
    let producer_tokens = crate::db::models::ProducerToken::live(&mut conn).await?;
    let tenant_limits = crate::db::models::Tenant::limits(&mut conn).await?;
    let policy = state.config.webhooks.default_retry_policy;
    Ok(HttpResponse::Ok().insert_header(ETag(tag)).json(RoutingSnapshot {
        subscriptions: webhooks.iter().map(|w| subscription(w, policy)).collect(),
        event_types,
        expunged,
        resent,
        producer_tokens: producer_tokens.iter().map(|t| t.grant()).collect(),
        tenant_limits,
    }))
}
