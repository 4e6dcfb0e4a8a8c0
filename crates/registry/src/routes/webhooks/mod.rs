//! `/v1/webhooks`: a tenant's subscriptions. The CRUD handlers are here; `changes` reads and
//! checks what a create or an update sets; `actions` holds what a webhook can be asked to do
//! (test, recover, replay, stats).

mod actions;
mod changes;

pub(crate) use actions::*;
pub use changes::view;
use changes::{apply, read_or_refuse};

use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use diesel_async::AsyncConnection as _;
use hookwire_core::patterns;
use hookwire_core::signing::SigningKey;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::audit::{self, By, Change};
use crate::auth::Caller;
use crate::db::models::{Refused, Webhook, WebhookFilter, WebhookOrder};
use crate::pagination::{Collection, Paging};
use crate::AppState;
use hookwire_api::page::Paged as _;
use hookwire_api::webhooks as api;
use hookwire_http::error::{ApiError, FieldError};
use hookwire_http::input;
use hookwire_http::typed;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/webhooks")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(
        web::resource("/webhooks/{id}")
            .route(web::get().to(retrieve))
            .route(web::patch().to(update))
            .route(web::delete().to(delete)),
    )
    .service(web::resource("/webhooks/{id}/rotate-secret").route(web::post().to(rotate_secret)))
    .service(web::resource("/webhooks/{id}/test").route(web::post().to(send_test)))
    .service(web::resource("/webhooks/{id}/recover").route(web::post().to(recover)))
    .service(web::resource("/webhooks/{id}/replay").route(web::post().to(replay)))
    .service(web::resource("/webhooks/{id}/stats").route(web::get().to(stats)));
}

#[utoipa::path(
    post,
    path = "/v1/webhooks",
    tag = "webhooks",
    summary = "Create a webhook",
    request_body = hookwire_api::webhooks::WebhookIn,
    responses(
        (status = 201, description = "Created, with its signing secret", body = hookwire_api::webhooks::Webhook),
        (status = 400, description = "Invalid fields", body = hookwire_api::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Missing scope, webhooks disabled, or limit reached", body = hookwire_api::Problem, content_type = "application/problem+json"),
        crate::routes::KeyErrors,
    )
)]
pub(crate) async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require("webhooks:write")?;
    caller.require_webhooks_enabled()?;
    let body = input::json_object(payload, state.config.http.max_body_bytes).await?;
    let body: api::WebhookIn = read_or_refuse(&state, async || Ok(Vec::new()), Value::Object(body)).await?;
    let w = create_webhook(&state, &caller, &By::caller(&caller, &req), body, None).await?;
    Ok(HttpResponse::Created().json(view(&state, &w, true)?))
}

/// Creates a webhook with one of the tenant's keys (within its limit) and tells the services.
/// `url` replaces the body's (a relayed webhook's, which no caller may send).
pub(crate) async fn create_webhook(
    state: &AppState,
    caller: &Caller,
    by: &By,
    body: api::WebhookIn,
    url: Option<String>,
) -> Result<Webhook, ApiError> {
    caller.require("webhooks:write")?;
    caller.require_webhooks_enabled()?;
    let Some(key) = &caller.key else {
        return Err(ApiError::forbidden(
            "admin_cannot_create",
            "a webhook is created with one of the tenant's API keys (it counts against that key's limit), not by the admin",
        ));
    };
    let now = crate::db::now();
    let mut w = Webhook {
        id: hookwire_core::id::v7(),
        tenant_id: caller.tenant_id(),
        api_key_id: Some(key.id),
        name: String::new(),
        description: String::new(),
        url: String::new(),
        events: Vec::new(),
        channels: Vec::new(),
        is_active: true,
        is_test: false,
        header_name: None,
        prefix: None,
        auth_secret_sealed: None,
        auth_secret_last4: None,
        secret_sealed: String::new(),
        previous_secret_sealed: None,
        previous_secret_expires_at: None,
        headers: json!({}),
        timeout_seconds: 30,
        retry_policy: serde_json::to_value(state.config.webhooks.default_retry_policy).expect("serializes"),
        rate_limit_per_second: None,
        failure_count: 0,
        last_triggered_at: None,
        last_success_at: None,
        last_failure_at: None,
        disabled_reason: None,
        created_at: now,
        modified_at: now,
        failing_since: None,
        ordering: "none".to_owned(),
    };
    let secret = match body.secret.as_deref().map(SigningKey::parse) {
        Some(Err(e)) => return Err(ApiError::Validation(vec![FieldError::new("secret", e.to_string())])),
        Some(Ok(_)) | None => body.secret.clone().unwrap_or_else(SigningKey::generate),
    };
    w.secret_sealed = state.secrets.keyring.seal(&secret);
    apply(state, body.into(), &mut w).await?;
    if let Some(url) = url {
        w.url = url;
    }
    let after = view(state, &w, false).map(|v| audit::json(&v))?;
    let change = Change {
        tenant_id: Some(w.tenant_id),
        action: "webhook.created",
        resource_type: "webhook",
        resource_id: w.id.to_string(),
        changes: audit::created(&after),
    };
    let mut conn = state.pool.get().await?;
    // The limit is checked after validation, so a caller at the limit still learns what was wrong.
    // The webhook and its audit entry are written together.
    let inserted = conn
        .transaction::<_, diesel::result::Error, _>(async |conn| {
            let inserted = Webhook::insert_within_limit(conn, &w, key.id).await?;
            if inserted.is_ok() {
                audit::write(conn, by, &change).await?;
            }
            Ok(inserted)
        })
        .await?;
    match inserted {
        Ok(()) => {}
        Err(Refused::LimitReached(max)) => {
            return Err(ApiError::forbidden(
                "webhook_limit_reached",
                format!("this API key has reached its limit of {max} webhooks"),
            ))
        }
        Err(Refused::KeyRevoked) => return Err(ApiError::Unauthorized("the API key is not valid")),
    }
    state.notices.upserted(&w).await;
    Ok(w)
}

pub(super) async fn find(state: &AppState, caller: &Caller, id: &str) -> Result<Webhook, ApiError> {
    // A malformed id cannot name anything: the same 404 as a missing one.
    let id: Uuid = id.parse().map_err(|_| ApiError::NotFound("webhook"))?;
    let mut conn = state.pool.get().await?;
    Webhook::find(&mut conn, caller.tenant_id(), id)
        .await?
        .ok_or(ApiError::NotFound("webhook"))
}

/// Most times a change is applied: each time it finds the webhook changed since it read it,
/// another request's change was committed, so ten requests at once on one webhook all land.
const CHANGE_ATTEMPTS: usize = 10;

/// Reads the tenant's webhook, lets `edit` change it and writes it back only if nothing else
/// wrote it in between; otherwise reads it again and edits that, so two changes to one webhook
/// at once (two PATCHes of different fields, a PATCH beside a rotation or an automatic
/// deactivation) never undo each other. Sends the change notice.
async fn change(
    state: &AppState,
    caller: &Caller,
    (by, action): (&By, &str),
    id: &str,
    mut edit: impl AsyncFnMut(&mut Webhook) -> Result<(), ApiError>,
) -> Result<Webhook, ApiError> {
    for attempt in 0..CHANGE_ATTEMPTS {
        if attempt > 0 {
            // Apart, at random: requests that lost together do not meet again at once (eight
            // clients patching one webhook flat out saw one request in ten lose all ten times).
            let [r] = hookwire_core::crypto::random::<1>();
            let window = 1u64 << attempt.min(4);
            tokio::time::sleep(Duration::from_micros(u64::from(r) * window * 1000 / 256)).await;
        }
        let mut w = find(state, caller, id).await?;
        let (read_at, was_active) = (w.modified_at, w.is_active);
        let before = view(state, &w, false).map(|v| audit::json(&v))?;
        let sealed_before = w.secret_sealed.clone();
        edit(&mut w).await?;
        w.modified_at = crate::db::now();
        let after = view(state, &w, false).map(|v| audit::json(&v))?;
        let mut changes = audit::diff(&before, &after);
        // A new signing secret shows as changed, masked; it is not opened to say so.
        if w.secret_sealed != sealed_before {
            changes["secret"] = json!({ "before": audit::MASKED, "after": audit::MASKED });
        }
        let change = Change {
            tenant_id: Some(w.tenant_id),
            action,
            resource_type: "webhook",
            resource_id: w.id.to_string(),
            changes,
        };
        let reactivated = w.is_active && !was_active;
        let mut conn = state.pool.get().await?;
        // The change and its audit entry are written together, or neither is.
        let updated = conn
            .transaction::<_, diesel::result::Error, _>(async |conn| {
                let updated = Webhook::update(conn, &w, read_at, reactivated).await?;
                if updated {
                    audit::write(conn, by, &change).await?;
                }
                Ok(updated)
            })
            .await?;
        if updated {
            state.notices.upserted(&w).await;
            return Ok(w);
        }
    }
    Err(ApiError::Conflict {
        code: "concurrent_change",
        detail: "the webhook kept changing while this request was applied; send it again".into(),
    })
}

#[utoipa::path(
    get,
    path = "/v1/webhooks/{id}",
    tag = "webhooks",
    summary = "Retrieve a webhook",
    params(("id" = String, Path, description = "Webhook id")),
    responses(
        (status = 200, description = "The webhook, with its signing secret", body = hookwire_api::webhooks::Webhook),
        (status = 404, description = "No such webhook", body = hookwire_api::Problem, content_type = "application/problem+json"),
        crate::routes::KeyErrors,
    )
)]
pub(crate) async fn retrieve(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require("webhooks:read")?;
    let w = find(&state, &caller, &id).await?;
    Ok(HttpResponse::Ok().json(view(&state, &w, true)?))
}

#[utoipa::path(
    patch,
    path = "/v1/webhooks/{id}",
    tag = "webhooks",
    summary = "Change some fields of a webhook",
    request_body = hookwire_api::webhooks::WebhookIn,
    params(("id" = String, Path, description = "Webhook id")),
    responses(
        (status = 200, description = "The webhook", body = hookwire_api::webhooks::Webhook),
        (status = 400, description = "Empty or invalid", body = hookwire_api::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such webhook", body = hookwire_api::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The webhook kept changing while the request was applied; send it again", body = hookwire_api::Problem, content_type = "application/problem+json"),
        crate::routes::KeyErrors,
    )
)]
pub(crate) async fn update(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require("webhooks:write")?;
    let body = input::json_object(payload, state.config.http.max_body_bytes).await?;
    if body.contains_key("secret") {
        return Err(ApiError::Validation(vec![FieldError::new(
            "secret",
            "can only be set on create; use rotate-secret",
        )]));
    }
    let current = async || Ok(find(&state, &caller, &id).await?.events);
    let patch: api::WebhookPatch = read_or_refuse(&state, current, Value::Object(body)).await?;
    let by = By::caller(&caller, &req);
    let w = change(&state, &caller, (&by, "webhook.updated"), &id, async |w| {
        apply(&state, patch.clone(), w).await
    })
    .await?;
    Ok(HttpResponse::Ok().json(view(&state, &w, false)?))
}

#[utoipa::path(
    delete,
    path = "/v1/webhooks/{id}",
    tag = "webhooks",
    summary = "Delete a webhook",
    params(("id" = String, Path, description = "Webhook id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such webhook", body = hookwire_api::Problem, content_type = "application/problem+json"),
        crate::routes::KeyErrors,
    )
)]
pub(crate) async fn delete(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require("webhooks:write")?;
    let w = find(&state, &caller, &id).await?;
    deleted(&state, &By::caller(&caller, &req), &w).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Deletes the tenant's webhook `w`, tells the services and records it.
pub(crate) async fn deleted(state: &AppState, by: &By, w: &Webhook) -> Result<(), ApiError> {
    let before = view(state, w, false).map(|v| audit::json(&v))?;
    let change = Change {
        tenant_id: Some(w.tenant_id),
        action: "webhook.deleted",
        resource_type: "webhook",
        resource_id: w.id.to_string(),
        changes: audit::deleted(&before),
    };
    let mut conn = state.pool.get().await?;
    let gone = conn
        .transaction::<_, diesel::result::Error, _>(async |conn| {
            let gone = Webhook::delete(conn, w.tenant_id, w.id).await?;
            if gone {
                audit::write(conn, by, &change).await?;
            }
            Ok(gone)
        })
        .await?;
    if !gone {
        return Err(ApiError::NotFound("webhook"));
    }
    state.notices.deleted(&[w.id]).await;
    Ok(())
}

/// Every pattern that matches `event_type` (`a.b` → `a.b`, `a.*`, `*.b`, `*.*`, `*`;
/// `hookwire.b` → `hookwire.b`, `hookwire.*`), so the
/// `event_type` filter is one array-overlap test in SQL.
fn patterns_matching(event_type: &str) -> Vec<String> {
    let segments: Vec<&str> = event_type.split('.').collect();
    let n = segments.len().min(8);
    let mut out = vec!["*".to_owned()];
    for mask in 0u32..(1 << n) {
        let p: Vec<&str> = segments
            .iter()
            .enumerate()
            .map(|(i, s)| if mask & (1 << i) != 0 { "*" } else { *s })
            .collect();
        out.push(p.join("."));
    }
    // Hookwire's own types only to patterns that name them.
    out.retain(|p| patterns::matches(p, event_type));
    out.sort();
    out.dedup();
    out
}

#[utoipa::path(
    get,
    path = "/v1/webhooks",
    tag = "webhooks",
    summary = "List webhooks",
    params(hookwire_api::webhooks::WebhookQuery),
    responses(
        (status = 200, description = "A page of webhooks", body = hookwire_api::Page<hookwire_api::webhooks::Webhook>),
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
    let query: api::WebhookQuery = typed::query(req.query_string())?;
    let paging = Paging::new(query.paging(), 100);
    let filter = WebhookFilter {
        patterns: query.event_type.as_deref().map(patterns_matching),
        is_test: query.is_test,
        is_active: query.is_active,
        channel: query.channel,
    };
    let order = match query.ordering.unwrap_or_default() {
        api::WebhookOrdering::Created => WebhookOrder::Created,
        api::WebhookOrdering::CreatedDesc => WebhookOrder::CreatedDesc,
        api::WebhookOrdering::Modified => WebhookOrder::Modified,
        api::WebhookOrdering::ModifiedDesc => WebhookOrder::ModifiedDesc,
        api::WebhookOrdering::Name => WebhookOrder::Name,
        api::WebhookOrdering::NameDesc => WebhookOrder::NameDesc,
    };
    let mut conn = state.pool.get().await?;
    let (count, rows) = Webhook::list(&mut conn, caller.tenant_id(), &filter, order, paging.page).await?;
    let results = rows
        .iter()
        .map(|w| view(&state, w, false))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HttpResponse::Ok().json(Collection::page(
        &req,
        &state.config.http.public_url,
        paging,
        count,
        results,
    )))
}

/// A new signing secret; the old one keeps signing alongside for `secret_rotation_overlap`.
#[utoipa::path(
    post,
    path = "/v1/webhooks/{id}/rotate-secret",
    tag = "webhooks",
    summary = "Rotate the signing secret",
    params(("id" = String, Path, description = "Webhook id")),
    responses(
        (status = 200, description = "The webhook with its new secret; the old one signs alongside for 24 h", body = hookwire_api::webhooks::Webhook),
        (status = 404, description = "No such webhook", body = hookwire_api::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The webhook kept changing while the request was applied; send it again", body = hookwire_api::Problem, content_type = "application/problem+json"),
        crate::routes::KeyErrors,
    )
)]
pub(crate) async fn rotate_secret(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require("webhooks:write")?;
    let overlap =
        chrono::Duration::from_std(state.config.webhooks.secret_rotation_overlap).map_err(ApiError::internal)?;
    let by = By::caller(&caller, &req);
    let w = change(&state, &caller, (&by, "webhook.secret_rotated"), &id, async |w| {
        w.previous_secret_sealed = Some(std::mem::replace(
            &mut w.secret_sealed,
            state.secrets.keyring.seal(&SigningKey::generate()),
        ));
        w.previous_secret_expires_at = Some(crate::db::now() + overlap);
        Ok(())
    })
    .await?;
    Ok(HttpResponse::Ok().json(view(&state, &w, true)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_every_pattern_that_matches_a_type() {
        assert_eq!(
            patterns_matching("person.created"),
            vec!["*", "*.*", "*.created", "person.*", "person.created"]
        );
        assert_eq!(patterns_matching("series_updated"), vec!["*", "series_updated"]);
        assert_eq!(
            patterns_matching("hookwire.webhook_disabled"),
            vec!["hookwire.*", "hookwire.webhook_disabled"]
        );
        for p in patterns_matching("a.b.c") {
            assert!(patterns::matches(&p, "a.b.c"), "{p}");
        }
    }
}
