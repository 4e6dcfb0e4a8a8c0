//! `/v1/deliveries`: the delivery log (contract §3 Deliveries).

use std::collections::HashMap;

use actix_web::{web, HttpRequest, HttpResponse};
use diesel_async::AsyncConnection as _;
use hookwire_core::messages::DeliveryStatus;
use uuid::Uuid;

use crate::auth::Caller;
use crate::db::models::{Delivery, DeliveryFilter, EventRow};
use crate::pagination::{Collection, Cursor, LogPage, Paging};
use crate::AppState;
use hookwire_api::deliveries as api;
use hookwire_api::page::Paged as _;
use hookwire_http::error::{ApiError, FieldError};
use hookwire_http::typed;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/deliveries").route(web::get().to(list)))
        .service(web::resource("/deliveries/{id}").route(web::get().to(retrieve)))
        .service(web::resource("/deliveries/{id}/retry").route(web::post().to(retry)));
}

/// A new attempt now, whatever the delivery's status, to the webhook as it is configured now.
#[utoipa::path(
    post,
    path = "/v1/deliveries/{id}/retry",
    tag = "deliveries",
    summary = "A new attempt now",
    description = "Sends the delivery again now, whatever its status, to the webhook as it is configured now; the attempt is numbered on from the log's. A failed or exhausted delivery shows `retrying` until the attempt is recorded. Of a delivery still under way (`pending`, `retrying`), the retries that were waiting are dropped by dispatchers once told: the attempt now and its own retries replace them. A delivery `waiting` in its subject's line (`ordering: \"subject\"`) leaves the line and is sent now, out of order.",
    params(("id" = String, Path, description = "Delivery id")),
    responses(
        (status = 202, description = "Queued", body = hookwire_api::deliveries::RetryAccepted),
        (status = 404, description = "No such delivery", body = hookwire_api::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The webhook was deleted, or the event's payload erased", body = hookwire_api::Problem, content_type = "application/problem+json"),
        crate::routes::KeyErrors,
    )
)]
pub(crate) async fn retry(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
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
    let event = EventRow::find(&mut conn, d.event_id)
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
    let mut task = crate::delivery_tasks::resend(&state, &w, &d, &event.into_event(), resent_at);
    // Of an ordered webhook's delivery: one waiting in its line leaves it and goes now, out of
    // order; the line's delivery out stays its line's, so its outcome still moves the line on.
    // It leaves its line only once the broker has the task.
    let line = d.subject.as_deref().unwrap_or("");
    conn.transaction::<_, ApiError, _>(async |conn| {
        let place = crate::db::lines::leave(conn, d.webhook_id, line, d.id).await?;
        task.in_line = place == crate::db::lines::Place::Busy;
        crate::delivery_tasks::send(&state, crate::delivery_tasks::Via::Dispatchers, &[task], &[]).await
    })
    .await?;
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
        1 => DeliveryStatus::Retrying,
        _ => status(&d),
    };
    let accepted = api::RetryAccepted {
        delivery_id: d.id,
        status,
    };
    drop(conn);
    let what = ("delivery.retried", "delivery", d.id.to_string());
    crate::audit::sent(
        &state,
        &crate::audit::By::caller(&caller, &req),
        d.tenant_id,
        what,
        &accepted,
    )
    .await;
    Ok(HttpResponse::Accepted().json(accepted))
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

/// The status the log holds; a value the code does not know reads as `pending`, which no
/// writer produces (the column's check constraint names the five).
fn status(d: &Delivery) -> DeliveryStatus {
    DeliveryStatus::parse(&d.status).unwrap_or(DeliveryStatus::Pending)
}

/// The status shown, and the delivery it waits for: a delivery waiting in its line shows
/// `waiting` (its row says `pending`, or `retrying` after a recover put it back in line).
fn shown(d: &Delivery, waiting: &HashMap<Uuid, Option<Uuid>>) -> (DeliveryStatus, Option<Uuid>) {
    match waiting.get(&d.id) {
        Some(for_) => (DeliveryStatus::Waiting, *for_),
        None => (status(d), None),
    }
}

fn view(d: &Delivery, waiting: &HashMap<Uuid, Option<Uuid>>) -> api::Delivery {
    let (status, waiting_for) = shown(d, waiting);
    api::Delivery {
        id: d.id,
        webhook_id: d.webhook_id,
        event_id: d.event_id,
        event_type: d.event_type.clone(),
        subject: d.subject.clone(),
        status,
        waiting_for,
        attempts: d.attempts.max(0) as u32,
        response_status: d.response_status.map(|s| s as u16),
        response_body: d.response_body.clone(),
        error: d.error.clone(),
        duration_ms: d.duration_ms.map(|ms| ms.max(0) as u32),
        is_test: d.is_test,
        created_at: d.created_at,
        last_attempt_at: d.last_attempt_at,
        next_retry_at: d.next_retry_at,
    }
}

#[utoipa::path(
    get,
    path = "/v1/deliveries",
    tag = "deliveries",
    summary = "The delivery log, newest first",
    params(hookwire_api::deliveries::DeliveryQuery),
    responses(
        (status = 200, description = "A page of deliveries", body = hookwire_api::Page<hookwire_api::deliveries::Delivery>),
        (status = 400, description = "Invalid query", body = hookwire_api::Problem, content_type = "application/problem+json"),
        crate::routes::KeyErrors,
    )
)]
pub(crate) async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    caller.require("webhooks:read")?;
    let query: api::DeliveryQuery = typed::query(req.query_string())?;
    let paging = Paging::new(query.paging(), 500);
    let cursor = match query.cursor.as_deref().map(Cursor::decode) {
        // The schema's pattern admits only what decodes.
        Some(None) => {
            return Err(ApiError::Validation(vec![FieldError::new(
                "cursor",
                "is not a cursor of this API",
            )]))
        }
        Some(c) => c,
        None => None,
    };
    let filter = DeliveryFilter {
        webhook_id: query.webhook_id,
        event_id: query.event_id,
        event_type: query.event_type,
        status: query.status.map(|s| s.as_str().to_owned()),
        is_test: query.is_test,
        since: query.since,
        until: query.until,
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
    let ids: Vec<Uuid> = rows.iter().map(|d| d.id).collect();
    let waiting = crate::db::lines::waiting_for(&mut conn, &ids).await?;
    let results = rows.iter().map(|d| view(d, &waiting)).collect();
    Ok(HttpResponse::Ok().json(Collection::of_log(
        &req,
        &state.config.http.public_url,
        paging,
        read,
        count.value,
        results,
        count.exact,
    )))
}

#[utoipa::path(
    get,
    path = "/v1/deliveries/{id}",
    tag = "deliveries",
    summary = "A delivery with its attempts and payload",
    params(("id" = String, Path, description = "Delivery id")),
    responses(
        (status = 200, description = "The delivery", body = hookwire_api::deliveries::DeliveryDetail),
        (status = 404, description = "No such delivery", body = hookwire_api::Problem, content_type = "application/problem+json"),
        crate::routes::KeyErrors,
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
    let waiting = crate::db::lines::waiting_for(&mut conn, &[d.id]).await?;
    let (status, waiting_for) = shown(&d, &waiting);
    let event = EventRow::find(&mut conn, d.event_id).await?;
    let payload_expunged_at = event.as_ref().and_then(|e| e.expunged_at);
    // The body the receiver got, rebuilt from the event as the dispatcher builds it.
    let payload = event
        .filter(|e| e.expunged_at.is_none())
        .map(|e| e.into_event().request_json());
    let attempts = attempts
        .iter()
        .map(|a| api::Attempt {
            attempt: a.attempt.max(0) as u32,
            attempted_at: a.attempted_at,
            response_status: a.response_status.map(|s| s as u16),
            duration_ms: a.duration_ms.max(0) as u32,
            error: a.error.clone(),
            signature: a.signature.clone(),
        })
        .collect();
    let body = api::DeliveryDetail {
        id: d.id,
        webhook_id: d.webhook_id,
        event_id: d.event_id,
        event_type: d.event_type.clone(),
        subject: d.subject.clone(),
        status,
        waiting_for,
        attempt_count: d.attempts.max(0) as u32,
        attempts,
        response_status: d.response_status.map(|s| s as u16),
        response_body: d.response_body.clone(),
        error: d.error.clone(),
        duration_ms: d.duration_ms.map(|ms| ms.max(0) as u32),
        is_test: d.is_test,
        created_at: d.created_at,
        last_attempt_at: d.last_attempt_at,
        next_retry_at: d.next_retry_at,
        payload,
        payload_expunged_at,
    };
    Ok(HttpResponse::Ok().json(body))
}
