//! What a webhook can be asked to do: send a test event, recover failed deliveries, replay
//! missed events, count its deliveries.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use diesel_async::AsyncPgConnection;
use hookwire_core::messages::{DeliveryStatus, LedgerMessage};
use hookwire_core::patterns;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::auth::Caller;
use crate::db::models::{EventType, Webhook};
use crate::delivery_tasks::Via;
use crate::AppState;
use hookwire_api::webhooks as api;
use hookwire_http::error::{ApiError, FieldError};
use hookwire_http::typed;

use super::find;

/// The catalog types the webhook's patterns take, each with whether it is archived.
async fn types_taken(conn: &mut AsyncPgConnection, w: &Webhook) -> Result<Vec<(String, bool)>, ApiError> {
    let mut catalog = EventType::all_values(conn).await?;
    catalog.retain(|(t, _)| patterns::any_matches(&w.events, t));
    Ok(catalog)
}

/// Sends a test event, marked as a test in the log. By default of one of the webhook's types
/// with `data` `{"hookwire_test": true, "webhook_id"}`; or of the type asked (one the webhook
/// takes), with the type's example (`"example": true`) or the `data` given (checked against
/// the type's schema).
#[utoipa::path(
    post,
    path = "/v1/webhooks/{id}/test",
    tag = "webhooks",
    summary = "Send a test event",
    request_body(content = Option<hookwire_api::webhooks::TestIn>, description = "Optional: which type, and which data"),
    params(("id" = String, Path, description = "Webhook id")),
    responses(
        (status = 202, description = "Sent", body = hookwire_api::webhooks::TestSent),
        (status = 400, description = "A type the webhook does not take, data its schema refuses, or no example", body = hookwire_api::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such webhook", body = hookwire_api::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Broker unavailable", body = hookwire_api::Problem, content_type = "application/problem+json"),
        crate::routes::KeyErrors,
    )
)]
pub(crate) async fn send_test(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require("webhooks:write")?;
    let body: api::TestIn = typed::optional_body(payload, state.config.http.max_body_bytes).await?;
    let w = find(&state, &caller, &id).await?;
    let mut conn = state.pool.get().await?;
    let mut errors = Vec::new();
    let (data, example) = (body.data, body.example.unwrap_or(false));
    let taken = types_taken(&mut conn, &w).await?;
    let event_type = match body.event_type {
        Some(t) if taken.iter().any(|(v, _)| *v == t) => Some(t),
        Some(_) => {
            errors.push(FieldError::new("event_type", "is not a type this webhook takes"));
            None
        }
        // One of its types customers see, else one it still gets though archived.
        None => taken
            .into_iter()
            .map(|(t, archived)| (archived, t))
            .min()
            .map(|(_, t)| t),
    };
    if data.is_some() && example {
        errors.push(FieldError::new(
            "example",
            "send either `data` or `example: true`, not both",
        ));
    }
    let catalog = match &event_type {
        Some(t) => EventType::find(&mut conn, t).await?,
        None => None,
    };
    let data = match (data, catalog) {
        (Some(data), Some(t)) => {
            let violations = t
                .schema
                .map_or_else(Vec::new, |s| hookwire_core::schema::check(&s, &data, 5));
            if !violations.is_empty() {
                errors.push(FieldError::new(
                    "data",
                    format!("does not match the type's schema: {}", violations.join("; ")),
                ));
            }
            data
        }
        (None, Some(t)) if example => t.example.unwrap_or_else(|| {
            errors.push(FieldError::new(
                "example",
                format!("the event type `{}` has no example", t.value),
            ));
            Value::Null
        }),
        (data, _) => data.unwrap_or_else(|| json!({"hookwire_test": true, "webhook_id": w.id})),
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let Some(event_type) = event_type else {
        return Err(ApiError::bad_request(
            "no_event_type",
            "no catalog type matches this webhook's events",
        ));
    };
    let event = hookwire_core::messages::Event {
        id: hookwire_core::id::v7(),
        event_type,
        tenant_id: Some(w.tenant_id),
        subject: None,
        channels: Vec::new(),
        data,
        is_test: true,
        created_at: Utc::now(),
    };
    let task = crate::delivery_tasks::task(&state, &w, hookwire_core::id::v7(), &event, 0);
    let record = crate::delivery_tasks::routed(&event, &task);
    crate::delivery_tasks::send(&state, Via::Dispatchers, std::slice::from_ref(&task), &[record]).await?;
    let sent = api::TestSent {
        event_id: event.id,
        delivery_id: task.delivery_id,
        event_type: event.event_type,
    };
    let what = ("webhook.test_sent", "webhook", w.id.to_string());
    crate::audit::sent(
        &state,
        &crate::audit::By::caller(&caller, &req),
        w.tenant_id,
        what,
        &sent,
    )
    .await;
    Ok(HttpResponse::Accepted().json(sent))
}

/// Most deliveries one recover or replay call sends; the answer says when there were more.
const PER_CALL: i64 = 10_000;

/// Retries every failed or exhausted delivery of the webhook created since `since`.
#[utoipa::path(
    post,
    path = "/v1/webhooks/{id}/recover",
    tag = "webhooks",
    summary = "Retry failed and exhausted deliveries since a time",
    request_body = hookwire_api::webhooks::RecoverIn,
    params(("id" = String, Path, description = "Webhook id")),
    responses(
        (status = 202, description = "Retries sent", body = hookwire_api::webhooks::Recovered),
        (status = 400, description = "Invalid since", body = hookwire_api::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such webhook", body = hookwire_api::Problem, content_type = "application/problem+json"),
        crate::routes::KeyErrors,
    )
)]
pub(crate) async fn recover(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require("webhooks:write")?;
    let w = find(&state, &caller, &id).await?;
    let api::RecoverIn { since } = typed::body(payload, state.config.http.max_body_bytes).await?;
    let mut conn = state.pool.get().await?;
    let failed =
        crate::db::models::Delivery::failed_since(&mut conn, caller.tenant_id(), w.id, since, PER_CALL).await?;
    let event_ids: Vec<Uuid> = failed.iter().map(|d| d.event_id).collect();
    let events = crate::db::models::EventRow::find_many(&mut conn, &event_ids).await?;
    let (mut tasks, mut sent) = (Vec::with_capacity(failed.len()), Vec::with_capacity(failed.len()));
    let resent_at = Utc::now();
    for d in &failed {
        if let Some(event) = events.get(&d.event_id) {
            tasks.push(crate::delivery_tasks::resend(&state, &w, d, event, resent_at));
            sent.push(d);
        }
    }
    crate::delivery_tasks::send(&state, Via::backlog_of(&w), &tasks, &[]).await?;
    // Confirmed by the broker: until their attempts are recorded they are `retrying`, so
    // recovering again does not send them twice.
    let (ids, attempts): (Vec<Uuid>, Vec<i32>) = sent.iter().map(|d| (d.id, d.attempts)).unzip();
    crate::routes::deliveries::marked_retrying(&mut conn, &ids, &attempts).await;
    let recovered = api::Recovered {
        retried: tasks.len() as u32,
        more: failed.len() as i64 == PER_CALL,
    };
    let what = ("webhook.recovered", "webhook", w.id.to_string());
    crate::audit::sent(
        &state,
        &crate::audit::By::caller(&caller, &req),
        w.tenant_id,
        what,
        &recovered,
    )
    .await;
    Ok(HttpResponse::Accepted().json(recovered))
}

/// Sends the webhook the events it takes that were published in `[since, until)` and never sent
/// to it: published before it existed, before it took their type, or while it was inactive.
#[utoipa::path(
    post,
    path = "/v1/webhooks/{id}/replay",
    tag = "webhooks",
    summary = "Send the events since a time that the webhook never got",
    description = "Each event the webhook takes as it is configured now (types, channels, test mode; its tenant's events and feed events) published in `[since, until)` (`until` defaults to now) and never delivered to it becomes a new delivery, oldest first, with the event's own `webhook-id`. At most 10,000 per call: when `more` is true, call again. The log keeps events for `retention.deliveries`.",
    request_body = hookwire_api::webhooks::ReplayIn,
    params(("id" = String, Path, description = "Webhook id")),
    responses(
        (status = 202, description = "Deliveries sent", body = hookwire_api::webhooks::Replayed),
        (status = 400, description = "Invalid times", body = hookwire_api::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such webhook", body = hookwire_api::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The webhook is not active", body = hookwire_api::Problem, content_type = "application/problem+json"),
        crate::routes::KeyErrors,
    )
)]
pub(crate) async fn replay(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require("webhooks:write")?;
    let w = find(&state, &caller, &id).await?;
    let api::ReplayIn { since, until } = typed::body(payload, state.config.http.max_body_bytes).await?;
    // A window that ends before it starts holds nothing: nothing is sent.
    if !w.is_active {
        return Err(ApiError::Conflict {
            code: "webhook_inactive",
            detail: "the webhook is not active: activate it (`is_active: true`) to replay events to it".into(),
        });
    }
    let until = until.map_or_else(Utc::now, |u| u.min(Utc::now()));
    let mut conn = state.pool.get().await?;
    let types: Vec<String> = types_taken(&mut conn, &w).await?.into_iter().map(|(t, _)| t).collect();
    let mut missed = crate::db::models::EventRow::missed_by(&mut conn, &w, &types, (since, until), PER_CALL).await?;
    // Into an ordered webhook's lines in the order the events were accepted.
    missed.sort_by_key(|e| e.created_at);
    if missed.is_empty() {
        return Ok(HttpResponse::Accepted().json(api::Replayed {
            replayed: 0,
            more: false,
        }));
    }
    let tasks: Vec<_> = missed
        .iter()
        // The id the publisher gives this event's delivery to this webhook: a replay sent twice
        // before the log has the first is one delivery in the log, and retention cuts it with
        // its event.
        .map(|e| crate::delivery_tasks::task(&state, &w, hookwire_core::id::delivery(e.id, w.id), e, 0))
        .collect();
    let records = missed
        .iter()
        .zip(&tasks)
        .map(|(e, t)| crate::delivery_tasks::routed(e, t))
        .collect();
    crate::delivery_tasks::send(&state, Via::backlog_of(&w), &tasks, &[LedgerMessage::batch(records)]).await?;
    let replayed = api::Replayed {
        replayed: tasks.len() as u32,
        more: missed.len() as i64 == PER_CALL,
    };
    let what = ("webhook.replayed", "webhook", w.id.to_string());
    crate::audit::sent(
        &state,
        &crate::audit::By::caller(&caller, &req),
        w.tenant_id,
        what,
        &replayed,
    )
    .await;
    Ok(HttpResponse::Accepted().json(replayed))
}

/// How the webhook's deliveries of a window fared.
#[utoipa::path(
    get,
    path = "/v1/webhooks/{id}/stats",
    tag = "webhooks",
    summary = "How the webhook's deliveries fared over a window",
    description = "Counts by status of the deliveries created in `[since, until)` (default: the last 24 hours), and `success_rate`: success over the deliveries that ended (success, failed, exhausted), null when none did.",
    params(
        ("id" = String, Path, description = "Webhook id"),
        hookwire_api::webhooks::StatsQuery,
    ),
    responses(
        (status = 200, description = "The counts", body = hookwire_api::webhooks::WebhookStats),
        (status = 400, description = "Invalid times", body = hookwire_api::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such webhook", body = hookwire_api::Problem, content_type = "application/problem+json"),
        crate::routes::KeyErrors,
    )
)]
pub(crate) async fn stats(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    caller.require("webhooks:read")?;
    let api::StatsQuery { since, until } = typed::query(req.query_string())?;
    let until = until.unwrap_or_else(Utc::now);
    let since = since.unwrap_or(until - chrono::Duration::hours(24));
    // A window that ends before it starts holds nothing: every count is 0.
    let w = find(&state, &caller, &id).await?;
    let mut conn = state.pool.get().await?;
    let window = (since, until);
    let rows = crate::db::models::Delivery::count_by_status(&mut conn, caller.tenant_id(), w.id, window).await?;
    let waiting = crate::db::lines::waiting_by_status(&mut conn, caller.tenant_id(), w.id, window).await?;
    let of = |rows: &[(String, i64)], status: DeliveryStatus| {
        rows.iter()
            .find(|(s, _)| s == status.as_str())
            .map_or(0, |(_, n)| (*n).max(0) as u64)
    };
    let count = |status| of(&rows, status);
    // A delivery waiting in its line shows `pending` (or `retrying`) in its row: counted apart.
    let not_waiting = |status| count(status).saturating_sub(of(&waiting, status));
    let counts = api::StatusCounts {
        waiting: waiting.iter().map(|(_, n)| (*n).max(0) as u64).sum(),
        pending: not_waiting(DeliveryStatus::Pending),
        retrying: not_waiting(DeliveryStatus::Retrying),
        success: count(DeliveryStatus::Success),
        failed: count(DeliveryStatus::Failed),
        exhausted: count(DeliveryStatus::Exhausted),
    };
    let ended = counts.success + counts.failed + counts.exhausted;
    Ok(HttpResponse::Ok().json(api::WebhookStats {
        webhook_id: w.id,
        since,
        until,
        total: rows.iter().map(|(_, n)| (*n).max(0) as u64).sum(),
        success_rate: (ended > 0).then(|| counts.success as f64 / ended as f64),
        counts,
    }))
}
