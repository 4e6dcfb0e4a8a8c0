//! Erasing event payloads (`POST /v1/admin/events/expunge`) for a data-protection request.

use actix_web::{web, HttpRequest, HttpResponse};
use diesel_async::AsyncPgConnection;
use hookwire_api as api;

use super::admin::AdminErrors;
use crate::auth::Admin;
use crate::db::models::{Erase, EventRow, Expunged};
use crate::AppState;
use hookwire_http::error::ApiError;
use hookwire_http::typed;

/// Erases event payloads: one event, or every event with a subject, optionally only one
/// tenant's: see `EventRow::expunge`. Dispatchers are to be told of the events it names
/// (`Notices::expunged`).
pub async fn expunge(
    conn: &mut AsyncPgConnection,
    by: &crate::audit::By,
    body: api::erasure::ExpungeIn,
) -> Result<Expunged, ApiError> {
    let (erased, tenant_id, named) = match &body {
        api::erasure::ExpungeIn::Event(e) => (
            EventRow::expunge(conn, Erase::Event(e.event_id), e.tenant_id).await?,
            e.tenant_id,
            e.event_id.to_string(),
        ),
        api::erasure::ExpungeIn::Subject(s) => (
            EventRow::expunge(conn, Erase::Subject(&s.subject), s.tenant_id).await?,
            s.tenant_id,
            format!("subject:{}", s.subject),
        ),
    };
    let change = crate::audit::Change {
        tenant_id,
        action: "events.expunged",
        resource_type: "events",
        resource_id: named,
        changes: serde_json::json!({ "payloads": { "after": crate::audit::json(&expunged_view(&erased)) } }),
    };
    crate::audit::record(conn, by, change).await;
    Ok(erased)
}

/// The answer to an erasure.
pub fn expunged_view(e: &Expunged) -> api::erasure::Expunged {
    api::erasure::Expunged {
        events_expunged: e.events.len() as u64,
        deliveries_cleared: e.deliveries as u64,
        deliveries_stopped: e.in_flight as u64,
    }
}

#[utoipa::path(
    post,
    path = "/v1/admin/events/expunge",
    tag = "admin",
    summary = "Erase event payloads (a data-protection request)",
    description = "Names events by `event_id`, or by `subject` (every event with it), optionally of one tenant (`tenant_id`). Each event's `data` becomes `null` in the log (`payload_expunged_at` in a delivery's detail), the receivers' response bodies recorded for its deliveries are erased, and dispatchers end its deliveries not yet attempted without sending them (status `failed`, error `payload_expunged`); it can no longer be retried, recovered or replayed. A request already under way completes (its response body is not kept). Events not in the log yet (a ledger backlog) are written erased when they arrive: by subject, those accepted until this request; the request is kept 31 days for that. Events erased before are counted once. Answers how many events and deliveries it erased in the log.",
    request_body = hookwire_api::erasure::ExpungeIn,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Erased", body = hookwire_api::erasure::Expunged),
        (status = 400, description = "Neither or both of event_id and subject, or a malformed one", body = hookwire_api::Problem, content_type = "application/problem+json"),
        AdminErrors,
    )
)]
pub(crate) async fn expunge_events(
    state: web::Data<AppState>,
    _: Admin,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = typed::body(payload, state.config.http.max_body_bytes).await?;
    let mut conn = state.pool.get().await?;
    let erased = expunge(&mut conn, &crate::audit::By::admin(&req), body).await?;
    state.notices.expunged(&erased.events).await;
    tracing::info!(
        events = erased.events.len(),
        deliveries = erased.deliveries,
        "event payloads erased"
    );
    Ok(HttpResponse::Ok().json(expunged_view(&erased)))
}
