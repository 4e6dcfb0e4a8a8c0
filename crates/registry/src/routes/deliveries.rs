//! `/v1/deliveries`: the delivery log (contract §3 Deliveries).

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use hookwire_core::messages::DeliveryStatus;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::auth::Caller;
use crate::db::models::{Delivery, DeliveryFilter};
use crate::pagination::{Collection, Cursor, LogPage, Paging, PARAMS};
use crate::AppState;
use hookwire_http::error::{ApiError, FieldError};
use hookwire_http::input;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/deliveries", web::get().to(list))
        .route("/deliveries/{id}", web::get().to(retrieve))
        .route("/deliveries/{id}/retry", web::post().to(retry));
}

/// A new attempt now, whatever the delivery's status, to the webhook as it is configured now.
#[utoipa::path(
    post,
    path = "/v1/deliveries/{id}/retry",
    tag = "deliveries",
    summary = "A new attempt now",
    description = "Sends the delivery again now, whatever its status, to the webhook as it is configured now; the attempt is numbered on from the log's. A failed or exhausted delivery shows `retrying` until the attempt is recorded. Of a delivery still under way (`pending`, `retrying`), the retries that were waiting are dropped by dispatchers once told: the attempt now and its own retries replace them.",
    params(("id" = String, Path, description = "Delivery id")),
    responses(
        (status = 202, description = "Queued", body = crate::openapi::RetryAccepted),
        (status = 404, description = "No such delivery", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The webhook was deleted, or the event's payload erased", body = crate::openapi::Problem, content_type = "application/problem+json"),
        crate::openapi::KeyErrors,
    )
)]
pub(crate) async fn retry(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require("webhooks:write")?;
    let mut conn = state.pool.get().await?;
    let d = find(&mut conn, &caller, &id).await?;
    let w = crate::db::models::Webhook::find(&mut conn, caller.tenant_id(), d.webhook_id)
        .await?
        .ok_or_else(|| ApiError::Conflict {
            code: "webhook_deleted",
            detail: "the delivery's webhook was deleted; it cannot be retried".into(),
        })?;
    let event = crate::db::models::EventRow::find(&mut conn, d.event_id)
        .await?
        .ok_or(ApiError::NotFound("event"))?;
    if let Some(at) = event.expunged_at {
        return Err(ApiError::Conflict {
            code: "payload_expunged",
            detail: format!(
                "the event's payload was erased at {}; it cannot be sent again",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        });
    }
    let resent_at = chrono::Utc::now();
    let task = crate::tasks::resend(&state, &w, &d, &event.into_event(), resent_at);
    crate::tasks::send(&state, &[task], &[]).await?;
    // The broker has the task: from here on the answer is 202 whatever the database says, so
    // a client is never told to send again a retry that went out. What fails is logged.
    //
    // A delivery still under way has a chain of retries (or its first attempt) waiting:
    // dispatchers are told to drop it, so this task's chain is its only one. Told after the
    // task is confirmed: a notice without its task would leave the delivery with no chain.
    // Noted in the log too, for the routing snapshot of dispatchers that start after the
    // notice; the notice goes out even if the note failed.
    if matches!(d.status.as_str(), "pending" | "retrying") {
        if let Err(e) = Delivery::record_resend(&mut conn, d.id, resent_at).await {
            tracing::warn!(
                delivery_id = %d.id,
                error = %e,
                "a retry by hand was sent but not noted for the routing snapshot: a dispatcher that \
                 starts before the replaced chain's next retry, without the notice, sends it too"
            );
        }
        state.notices.resent(d.id, resent_at).await;
    }
    // As after a recover: a failed or exhausted delivery shows `retrying` until the attempt is
    // recorded; any other keeps its status until then.
    let status = match marked_retrying(&mut conn, &[d.id], &[d.attempts]).await {
        1 => "retrying",
        _ => d.status.as_str(),
    };
    Ok(HttpResponse::Accepted().json(json!({"delivery_id": d.id, "status": status})))
}

/// [`Delivery::mark_retrying`] for retries the broker has confirmed: a database error is logged
/// and counts as none marked, as the retries went out all the same (the next retry or recover
/// before their attempts are recorded may send them again: at least once).
pub(crate) async fn marked_retrying(
    conn: &mut diesel_async::AsyncPgConnection,
    ids: &[Uuid],
    attempts: &[i32],
) -> usize {
    Delivery::mark_retrying(conn, ids, attempts, chrono::Utc::now())
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(
                deliveries = ids.len(),
                error = %e,
                "retries were sent but not marked retrying in the log"
            );
            0
        })
}

/// The caller's delivery named in the path; a malformed id names nothing, the same 404.
async fn find(conn: &mut diesel_async::AsyncPgConnection, caller: &Caller, id: &str) -> Result<Delivery, ApiError> {
    let id: Uuid = id.parse().map_err(|_| ApiError::NotFound("delivery"))?;
    Delivery::find(conn, caller.tenant_id(), id)
        .await?
        .ok_or(ApiError::NotFound("delivery"))
}

fn view(d: &Delivery) -> Value {
    json!({
        "id": d.id,
        "webhook_id": d.webhook_id,
        "event_id": d.event_id,
        "event_type": d.event_type,
        "subject": d.subject,
        "status": d.status,
        "attempts": d.attempts,
        "response_status": d.response_status,
        "response_body": d.response_body,
        "error": d.error,
        "duration_ms": d.duration_ms,
        "is_test": d.is_test,
        "created_at": d.created_at,
        "last_attempt_at": d.last_attempt_at,
        "next_retry_at": d.next_retry_at,
    })
}

#[utoipa::path(
    get,
    path = "/v1/deliveries",
    tag = "deliveries",
    summary = "The delivery log, newest first",
    params(("limit" = Option<i64>, Query,), ("offset" = Option<i64>, Query,), ("page" = Option<i64>, Query,), ("page_size" = Option<i64>, Query,), ("webhook_id" = Option<String>, Query,), ("event_id" = Option<String>, Query, description = "The deliveries of one event: the `webhook-id` its receivers got"), ("event_type" = Option<String>, Query,), ("status" = Option<String>, Query,), ("is_test" = Option<bool>, Query,), ("since" = Option<String>, Query,), ("until" = Option<String>, Query,), ("cursor" = Option<String>, Query, description = "Where to read on from: taken from a page's `next` or `previous` link (instead of an offset or a page)")),
    responses(
        (status = 200, description = "A page of deliveries", body = crate::openapi::DeliveryList),
        (status = 400, description = "Invalid query", body = crate::openapi::Problem, content_type = "application/problem+json"),
        crate::openapi::KeyErrors,
    )
)]
pub(crate) async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    caller.require("webhooks:read")?;
    let mut allowed = vec![
        "webhook_id",
        "event_id",
        "event_type",
        "status",
        "is_test",
        "since",
        "until",
        "cursor",
    ];
    allowed.extend(PARAMS);
    let params = input::query(req.query_string(), &allowed)?;
    let paging = Paging::from_params(&params, 500, 500)?;
    let cursor = Cursor::from_params(&params)?;
    let status = params.get("status").cloned();
    if let Some(s) = &status {
        if DeliveryStatus::parse(s).is_none() {
            return Err(ApiError::Validation(vec![FieldError::new(
                "status",
                "must be one of pending, retrying, success, failed, exhausted",
            )]));
        }
    }
    let filter = DeliveryFilter {
        webhook_id: input::parse_param::<Uuid>(&params, "webhook_id", "a UUID")?,
        event_id: input::parse_param::<Uuid>(&params, "event_id", "a UUID")?,
        event_type: params.get("event_type").cloned(),
        status,
        is_test: input::parse_param(&params, "is_test", "true or false")?,
        since: input::parse_param::<DateTime<Utc>>(&params, "since", "an RFC 3339 time")?,
        until: input::parse_param::<DateTime<Utc>>(&params, "until", "an RFC 3339 time")?,
    };
    let mut conn = state.pool.get().await?;
    let (count, more, rows) = Delivery::list(
        &mut conn,
        caller.tenant_id(),
        &filter,
        (paging.page, cursor),
        state.config.http.count_limit,
    )
    .await?;
    let read = LogPage {
        cursor,
        more,
        newest: rows.first().map(|d| (d.created_at, d.id)),
        oldest: rows.last().map(|d| (d.created_at, d.id)),
    };
    let results = rows.iter().map(view).collect();
    Ok(HttpResponse::Ok().json(
        Collection::of_log(&req, &state.config.http.public_url, paging, read, count.value, results)
            .count_exact(count.exact),
    ))
}

#[utoipa::path(
    get,
    path = "/v1/deliveries/{id}",
    tag = "deliveries",
    summary = "A delivery with its attempts and payload",
    params(("id" = String, Path, description = "Delivery id")),
    responses(
        (status = 200, description = "The delivery", body = crate::openapi::DeliveryDetail),
        (status = 404, description = "No such delivery", body = crate::openapi::Problem, content_type = "application/problem+json"),
        crate::openapi::KeyErrors,
    )
)]
pub(crate) async fn retrieve(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require("webhooks:read")?;
    let mut conn = state.pool.get().await?;
    let d = find(&mut conn, &caller, &id).await?;
    let attempts = d.load_attempts(&mut conn).await?;
    let payload = Delivery::payload(&mut conn, d.event_id).await?;
    // In the detailed view `attempts` is the list of attempts (contract §3); its length was the
    // number the collection shows, kept as `attempt_count`.
    let mut body = view(&d);
    body["attempt_count"] = json!(d.attempts);
    body["attempts"] = json!(attempts
        .iter()
        .map(|a| json!({
            "attempt": a.attempt,
            "attempted_at": a.attempted_at,
            "response_status": a.response_status,
            "duration_ms": a.duration_ms,
            "error": a.error,
            "signature": a.signature,
        }))
        .collect::<Vec<_>>());
    let (payload, expunged_at) = payload.unwrap_or((Value::Null, None));
    body["payload"] = payload;
    body["payload_expunged_at"] = json!(expunged_at);
    Ok(HttpResponse::Ok().json(body))
}
