//! `/v1/listen`: the registry's side of `hookwire listen` (`hookwire_core::relay`). A session is
//! a temporary webhook whose URL names the session; dispatchers publish its signed requests to the
//! relay exchange, and the registry that holds the CLI's stream passes them on as server-sent
//! events. The CLI's answers may reach any registry: each publishes them to the dispatcher's reply
//! queue. A session whose stream is not held expires with its webhook (`sweep`).

use std::time::Duration;

use actix_web::web::Bytes;
use actix_web::{web, HttpResponse};
use futures_util::StreamExt as _;
use hookwire_api::listen as api;
use hookwire_broker::lapin::message::Delivery;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::auth::Caller;
use crate::db::models::{ListenSession, Webhook, LISTEN_LEASE};
use crate::db::DbPool;
use crate::notices::Notices;
use crate::AppState;
use hookwire_http::error::ApiError;
use hookwire_http::typed;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/listen").route(web::post().to(start)))
        .service(web::resource("/listen/{id}").route(web::delete().to(stop)))
        .service(web::resource("/listen/{id}/requests").route(web::get().to(requests)))
        .service(web::resource("/listen/{id}/responses").route(web::post().to(respond)));
}

/// How often the stream renews its session and says it is alive.
const HEARTBEAT: Duration = Duration::from_secs(20);

async fn session_of(state: &AppState, caller: &Caller, id: &str) -> Result<ListenSession, ApiError> {
    let id: Uuid = id.parse().map_err(|_| ApiError::NotFound("listen session"))?;
    let mut conn = state.pool.get().await?;
    ListenSession::find(&mut conn, caller.tenant_id(), id)
        .await?
        .ok_or(ApiError::NotFound("listen session"))
}

#[utoipa::path(
    post,
    path = "/v1/listen",
    tag = "listen",
    summary = "Start a listen session: a temporary webhook relayed to this caller",
    description = "Creates a webhook on the given patterns whose deliveries are relayed to whoever holds `GET /v1/listen/{id}/requests`. It counts against the key's webhook limit while it lives; it is deleted by `DELETE /v1/listen/{id}`, or two minutes after its stream was last held.",
    request_body = hookwire_api::listen::ListenIn,
    responses(
        (status = 201, description = "The session, with the webhook's signing secret", body = hookwire_api::listen::Listening),
        (status = 400, description = "Invalid patterns", body = hookwire_api::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Missing scope, or the key's webhook limit reached", body = hookwire_api::Problem, content_type = "application/problem+json"),
        crate::routes::KeyErrors,
    )
)]
pub(crate) async fn start(
    state: web::Data<AppState>,
    caller: Caller,
    req: actix_web::HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require("webhooks:write")?;
    let body: api::ListenIn = typed::body(payload, state.config.http.max_body_bytes).await?;
    let id = hookwire_core::id::v7();
    // The URL is checked as any, then replaced by the relay's, which no caller can send.
    let hook: hookwire_api::webhooks::WebhookIn = serde_json::from_value(json!({
        "url": "https://1.1.1.1/",
        "name": "hookwire listen",
        "description": format!("temporary: relayed to `hookwire listen` session {id}"),
        "events": body.events,
    }))
    .expect("a webhook body");
    let by = crate::audit::By::caller(&caller, &req);
    let relay = Some(hookwire_core::relay::url(&id));
    let w = super::webhooks::create_webhook(&state, &caller, &by, hook, relay).await?;
    let now = crate::db::now();
    let session = ListenSession {
        id,
        tenant_id: caller.tenant_id(),
        webhook_id: w.id,
        created_at: now,
        expires_at: now + LISTEN_LEASE,
    };
    let mut conn = state.pool.get().await?;
    ListenSession::insert(&mut conn, &session).await?;
    let secret = state
        .secrets
        .keyring
        .open(&w.secret_sealed)
        .map_err(ApiError::internal)?;
    tracing::info!(listen = %id, webhook_id = %w.id, "listen session started");
    Ok(HttpResponse::Created().json(api::Listening {
        id,
        webhook_id: w.id,
        secret,
        events: w.events,
        expires_at: session.expires_at,
    }))
}

#[utoipa::path(
    delete,
    path = "/v1/listen/{id}",
    tag = "listen",
    summary = "End a listen session and delete its webhook",
    params(("id" = Uuid, Path, description = "Listen session id")),
    responses(
        (status = 204, description = "Ended"),
        (status = 404, description = "No such live session", body = hookwire_api::Problem, content_type = "application/problem+json"),
        crate::routes::KeyErrors,
    )
)]
pub(crate) async fn stop(
    state: web::Data<AppState>,
    caller: Caller,
    req: actix_web::HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require("webhooks:write")?;
    let session = session_of(&state, &caller, &id).await?;
    let mut conn = state.pool.get().await?;
    if let Some(w) = Webhook::find(&mut conn, caller.tenant_id(), session.webhook_id).await? {
        drop(conn);
        super::webhooks::deleted(&state, &crate::audit::By::caller(&caller, &req), &w).await?;
    }
    tracing::info!(listen = %session.id, "listen session ended");
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    get,
    path = "/v1/listen/{id}/requests",
    tag = "listen",
    summary = "The session's relayed requests, as server-sent events",
    description = "A `text/event-stream`: each `request` event's data is a `RelayedRequest`; a comment every 20 s keeps it alive and the session with it. Hold one stream per session.",
    params(("id" = Uuid, Path, description = "Listen session id")),
    responses(
        (status = 200, description = "The stream", content_type = "text/event-stream", body = hookwire_api::listen::RelayedRequest),
        (status = 404, description = "No such live session", body = hookwire_api::Problem, content_type = "application/problem+json"),
        crate::routes::KeyErrors,
    )
)]
pub(crate) async fn requests(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let session = session_of(&state, &caller, &id).await?;
    let unavailable = |e: hookwire_broker::lapin::Error| {
        tracing::warn!(error = %e, "a listen stream could not reach the broker");
        ApiError::Unavailable("the broker is unavailable; retry shortly")
    };
    // Its own connection: the stream's queue lives exactly as long as the CLI holds it.
    let connection = hookwire_broker::connect(&state.config.broker, "hookwire-registry listen")
        .await
        .map_err(unavailable)?;
    let channel = connection.create_channel().await.map_err(unavailable)?;
    let key = session.id.to_string();
    let exchange = state.topology.relay_exchange();
    let (_, consumer) = hookwire_broker::private_queue(&channel, Some((&exchange, &key)), "hookwire-listen")
        .await
        .map_err(unavailable)?;
    let pool = state.pool.clone();
    let mut beat = tokio::time::interval(HEARTBEAT);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let held = (consumer, beat, pool, session.id, connection, channel);
    let stream = futures_util::stream::unfold(Some(held), |held| async move {
        let (mut consumer, mut beat, pool, id, connection, channel) = held?;
        let chunk = tokio::select! {
            next = consumer.next() => match next {
                Some(Ok(delivery)) => event(&delivery),
                _ => return None,
            },
            _ = beat.tick() => {
                let renewed = match pool.get().await {
                    Ok(mut conn) => ListenSession::renew(&mut conn, id).await.unwrap_or(true),
                    Err(_) => true,
                };
                if !renewed {
                    return Some((Ok(Bytes::from_static(b"event: ended\ndata: {}\n\n")), None));
                }
                Bytes::from_static(b": alive\n\n")
            }
        };
        Some((
            Ok::<_, std::convert::Infallible>(chunk),
            Some((consumer, beat, pool, id, connection, channel)),
        ))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .streaming(stream))
}

/// One relayed request as a server-sent event.
fn event(delivery: &Delivery) -> Bytes {
    let props = &delivery.properties;
    let request = match serde_json::from_slice::<hookwire_core::relay::RelayRequest>(&delivery.data) {
        Ok(r) if r.kind == hookwire_core::relay::REQUEST_KIND => r,
        _ => return Bytes::from_static(b": a relayed request that does not decode was dropped\n\n"),
    };
    let out = api::RelayedRequest {
        correlation_id: props
            .correlation_id()
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default(),
        reply_to: props.reply_to().as_ref().map(|r| r.to_string()).unwrap_or_default(),
        headers: request
            .headers
            .into_iter()
            .map(|(name, value)| api::Header { name, value })
            .collect(),
        body: request.body,
    };
    Bytes::from(format!(
        "event: request\ndata: {}\n\n",
        serde_json::to_string(&out).expect("serializes")
    ))
}

#[utoipa::path(
    post,
    path = "/v1/listen/{id}/responses",
    tag = "listen",
    summary = "What the local receiver answered to a relayed request",
    description = "The answer becomes the attempt's result in the delivery log: a 2xx succeeds, anything else is retried by the webhook's policy. Any registry takes it. Not counted by the key's rate limit.",
    params(("id" = Uuid, Path, description = "Listen session id")),
    request_body = hookwire_api::listen::RelayedResponse,
    responses(
        (status = 202, description = "Passed to the dispatcher waiting for it"),
        (status = 400, description = "Invalid fields", body = hookwire_api::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such live session", body = hookwire_api::Problem, content_type = "application/problem+json"),
        crate::routes::KeyErrors,
    )
)]
pub(crate) async fn respond(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    session_of(&state, &caller, &id).await?;
    let body: api::RelayedResponse = typed::body(payload, state.config.http.max_body_bytes).await?;
    let reply = hookwire_core::relay::RelayReply {
        kind: hookwire_core::relay::REPLY_KIND.into(),
        status: body.status,
        body: body.body,
        error: body.error,
        duration_ms: body.duration_ms,
    };
    let bytes = serde_json::to_vec(&reply).expect("serializes");
    state
        .link
        .reply(&body.reply_to, &body.correlation_id, &bytes)
        .await
        .map_err(|_| ApiError::Unavailable("the broker is unavailable; retry shortly"))?;
    Ok(HttpResponse::Accepted().finish())
}

/// Every 30 s, deletes the webhooks of listen sessions that expired, and tells the services.
pub async fn sweep(pool: DbPool, notices: Notices, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Ok(mut conn) = pool.get().await else { continue };
        match ListenSession::delete_expired(&mut conn).await {
            Ok(gone) if !gone.is_empty() => {
                tracing::info!(webhooks = gone.len(), "expired listen sessions removed");
                let ids: Vec<Uuid> = gone.iter().map(|(id, _)| *id).collect();
                notices.deleted(&ids).await;
                let by = crate::audit::By::system("a `hookwire listen` session expired");
                for (id, tenant_id) in gone {
                    let change = crate::audit::Change {
                        tenant_id: Some(tenant_id),
                        action: "webhook.deleted",
                        resource_type: "webhook",
                        resource_id: id.to_string(),
                        changes: json!({}),
                    };
                    crate::audit::record(&mut conn, &by, change).await;
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "removing expired listen sessions failed"),
        }
    }
}
