//! `/v1/webhooks`: a tenant's subscriptions (contract §3 Webhooks).

use std::net::IpAddr;
use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use diesel_async::AsyncPgConnection;
use hookwire_core::config::Profile;
use hookwire_core::messages::{DeliveryStatus, LedgerMessage};
use hookwire_core::patterns;
use hookwire_core::retry::RetryPolicy;
use hookwire_core::signing::SigningKey;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::auth::Caller;
use crate::db::models::{EventType, Refused, Webhook, WebhookFilter, WebhookOrder};
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

/// Headers the platform sets itself; a webhook's custom headers may not replace them.
const RESERVED_HEADERS: [&str; 9] = [
    "content-type",
    "content-length",
    "host",
    "user-agent",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "traceparent",
    "transfer-encoding",
];

/// Checks a webhook URL: syntax, scheme, and in production https and a public destination
/// (resolved now; the dispatcher checks the resolved address again on every delivery).
async fn check_url(raw: &str, profile: Profile) -> Result<String, String> {
    let url = url::Url::parse(raw).map_err(|e| format!("is not a valid URL ({e})"))?;
    match (url.scheme(), profile) {
        ("https", _) | ("http", Profile::Development) => {}
        ("http", Profile::Production) => return Err("must use https".into()),
        _ => return Err("must be an http or https URL".into()),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials; use header_name and auth_secret".into());
    }
    let Some(host) = url.host_str() else {
        return Err("must have a host".into());
    };
    if profile == Profile::Production {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = url.port_or_known_default().unwrap_or(443);
        let addrs: Vec<IpAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => tokio::net::lookup_host((host, port))
                .await
                .map_err(|_| "has a host name that does not resolve".to_owned())?
                .map(|a| a.ip())
                .collect(),
        };
        if addrs.iter().any(|ip| hookwire_core::net::is_forbidden(*ip)) {
            return Err("must not point to a private, loopback or link-local address".into());
        }
    }
    Ok(url.to_string())
}

/// What is wrong with `list` as a webhook's patterns, against the catalog: each must match a
/// live type (a pattern the webhook has already, `current`, stays whatever was archived since).
async fn check_events(state: &AppState, current: &[String], list: &[String]) -> Result<Option<FieldError>, ApiError> {
    let mut conn = state.pool.get().await?;
    let catalog = EventType::all_values(&mut conn).await?;
    let matching = |p: &str, archived_too: bool| {
        catalog
            .iter()
            .any(|(t, archived)| (archived_too || !archived) && patterns::matches(p, t))
    };
    let mut bad = Vec::new();
    for p in list {
        if let Err(e) = patterns::validate_pattern(p) {
            bad.push(format!("`{p}` {e}"));
        } else if current.contains(p) || matching(p, false) {
        } else if matching(p, true) {
            bad.push(format!("`{p}` matches only archived event types"));
        } else {
            bad.push(format!("`{p}` matches no event type in the catalog"));
        }
    }
    Ok((!bad.is_empty()).then(|| FieldError::new("events", bad.join("; "))))
}

/// A body its schema refused, read as `T` or refused with every bad field: what the schema
/// names, and what the URL and the patterns have wrong where the schema took them.
async fn read_or_refuse<T>(
    state: &AppState,
    current: impl AsyncFnOnce() -> Result<Vec<String>, ApiError>,
    body: Value,
) -> Result<T, ApiError>
where
    T: serde::de::DeserializeOwned + utoipa::ToSchema + 'static,
{
    let mut errors = match typed::from_value::<T>(body.clone()) {
        Err(ApiError::Validation(errors)) => errors,
        other => return other,
    };
    if let (Some(url), false) = (body["url"].as_str(), typed::names(&errors, "url")) {
        if let Err(msg) = check_url(url, state.config.profile).await {
            errors.push(FieldError::new("url", msg));
        }
    }
    let list: Option<Vec<String>> = serde_json::from_value(body["events"].clone()).ok();
    if let (Some(list), false) = (list, typed::names(&errors, "events")) {
        errors.extend(check_events(state, &current().await?, &list).await?);
    }
    Err(ApiError::Validation(errors))
}

/// Applies a create's or an update's fields onto `w`: what the schema cannot say (the URL's
/// destination, patterns against the catalog, headers Hookwire sets itself) is checked here,
/// and every bad field is reported.
async fn apply(state: &AppState, p: api::WebhookPatch, w: &mut Webhook) -> Result<(), ApiError> {
    let mut errors = Vec::new();
    if let Some(url) = p.url {
        match check_url(&url, state.config.profile).await {
            Ok(u) => w.url = u,
            Err(msg) => errors.push(FieldError::new("url", msg)),
        }
    }
    if let Some(mut list) = p.events {
        match check_events(state, &w.events, &list).await? {
            Some(e) => errors.push(e),
            None => {
                list.dedup();
                w.events = list;
            }
        }
    }
    if let Some(v) = p.name {
        w.name = v.unwrap_or_default();
    }
    if let Some(v) = p.description {
        w.description = v.unwrap_or_default();
    }
    if let Some(v) = p.channels {
        w.channels = v.unwrap_or_default();
    }
    if let Some(v) = p.is_active {
        if v && !w.is_active {
            w.disabled_reason = None;
            w.failing_since = None;
        }
        w.is_active = v;
    }
    if let Some(v) = p.is_test {
        w.is_test = v;
    }
    match p.header_name {
        Some(Some(h)) if RESERVED_HEADERS.contains(&h.to_ascii_lowercase().as_str()) => errors.push(FieldError::new(
            "header_name",
            "is set by Hookwire itself and cannot be used",
        )),
        Some(h) => w.header_name = h,
        None => {}
    }
    if let Some(v) = p.prefix {
        w.prefix = v.filter(|p| !p.is_empty());
    }
    match p.auth_secret {
        Some(Some(s)) => {
            let chars: Vec<char> = s.chars().collect();
            w.auth_secret_last4 = Some(chars[chars.len().saturating_sub(4)..].iter().collect());
            w.auth_secret_sealed = Some(state.secrets.keyring.seal(&s));
        }
        Some(None) => {
            w.auth_secret_sealed = None;
            w.auth_secret_last4 = None;
        }
        None => {}
    }
    if w.auth_secret_sealed.is_some() != w.header_name.is_some() {
        errors.push(FieldError::new(
            "auth_secret",
            "header_name and auth_secret go together: set both or neither",
        ));
    }
    if let Some(h) = p.headers {
        let h = h.unwrap_or_default();
        for k in h.keys() {
            if RESERVED_HEADERS.contains(&k.to_ascii_lowercase().as_str()) {
                errors.push(FieldError::new(
                    format!("headers.{k}"),
                    "is set by Hookwire itself and cannot be overridden",
                ));
            }
        }
        w.headers = json!(h);
    }
    if let Some(t) = p.timeout_seconds {
        w.timeout_seconds = t as i32;
    }
    if let Some(r) = p.rate_limit_per_second {
        w.rate_limit_per_second = r.map(|r| r as i32);
    }
    if p.retry_policy.is_some() || p.retry_count.is_some() {
        let current: RetryPolicy =
            serde_json::from_value(w.retry_policy.clone()).unwrap_or(state.config.webhooks.default_retry_policy);
        let mut policy = p.retry_policy.unwrap_or_default().apply(current);
        if let Some(n) = p.retry_count {
            policy.max_retries = n;
        }
        w.retry_policy = serde_json::to_value(policy).expect("a retry policy serializes");
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// A webhook as the API shows it; `secret` only where the contract allows it.
pub fn view(state: &AppState, w: &Webhook, with_secret: bool) -> Result<api::Webhook, ApiError> {
    let secret = with_secret
        .then(|| state.secrets.keyring.open(&w.secret_sealed))
        .transpose()
        .map_err(ApiError::internal)?;
    Ok(api::Webhook {
        id: w.id,
        name: w.name.clone(),
        description: w.description.clone(),
        url: w.url.clone(),
        events: w.events.clone(),
        channels: w.channels.clone(),
        is_active: w.is_active,
        is_test: w.is_test,
        header_name: w.header_name.clone(),
        prefix: w.prefix.clone(),
        masked_auth_secret: w.auth_secret_last4.as_ref().map(|l| format!("****{l}")),
        // Written by `apply` as a map of strings, and the policy as a whole policy.
        headers: serde_json::from_value(w.headers.clone()).map_err(ApiError::internal)?,
        timeout_seconds: w.timeout_seconds.max(0) as u32,
        retry_policy: serde_json::from_value(w.retry_policy.clone())
            .unwrap_or(state.config.webhooks.default_retry_policy),
        rate_limit_per_second: w.rate_limit_per_second.map(|r| r.max(0) as u32),
        failure_count: w.failure_count.max(0) as u32,
        last_triggered_at: w.last_triggered_at,
        last_success_at: w.last_success_at,
        last_failure_at: w.last_failure_at,
        disabled_reason: w.disabled_reason.clone(),
        created_at: w.created_at,
        modified_at: w.modified_at,
        secret,
    })
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
        crate::openapi::KeyErrors,
    )
)]
pub(crate) async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.require("webhooks:write")?;
    caller.require_webhooks_enabled()?;
    let Some(key) = &caller.key else {
        return Err(ApiError::forbidden(
            "admin_cannot_create",
            "a webhook is created with one of the tenant's API keys (it counts against that key's limit), not by the admin",
        ));
    };
    let body = input::json_object(payload, state.config.http.max_body_bytes).await?;
    let body: api::WebhookIn = read_or_refuse(&state, async || Ok(Vec::new()), Value::Object(body)).await?;
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
    };
    let secret = match body.secret.as_deref().map(SigningKey::parse) {
        Some(Err(e)) => return Err(ApiError::Validation(vec![FieldError::new("secret", e.to_string())])),
        Some(Ok(_)) | None => body.secret.clone().unwrap_or_else(SigningKey::generate),
    };
    w.secret_sealed = state.secrets.keyring.seal(&secret);
    apply(&state, body.into(), &mut w).await?;
    let mut conn = state.pool.get().await?;
    // The limit is checked after validation, so a caller at the limit still learns what was wrong.
    match Webhook::insert_within_limit(&mut conn, &w, key.id).await? {
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
    Ok(HttpResponse::Created().json(view(&state, &w, true)?))
}

async fn find(state: &AppState, caller: &Caller, id: &str) -> Result<Webhook, ApiError> {
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
        edit(&mut w).await?;
        w.modified_at = crate::db::now();
        let mut conn = state.pool.get().await?;
        if Webhook::update(&mut conn, &w, read_at, w.is_active && !was_active).await? {
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
        crate::openapi::KeyErrors,
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
        crate::openapi::KeyErrors,
    )
)]
pub(crate) async fn update(
    state: web::Data<AppState>,
    caller: Caller,
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
    let w = change(&state, &caller, &id, async |w| apply(&state, patch.clone(), w).await).await?;
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
        crate::openapi::KeyErrors,
    )
)]
pub(crate) async fn delete(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require("webhooks:write")?;
    let w = find(&state, &caller, &id).await?;
    let mut conn = state.pool.get().await?;
    if !Webhook::delete(&mut conn, caller.tenant_id(), w.id).await? {
        return Err(ApiError::NotFound("webhook"));
    }
    state.notices.deleted(&[w.id]).await;
    Ok(HttpResponse::NoContent().finish())
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
        crate::openapi::KeyErrors,
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
        crate::openapi::KeyErrors,
    )
)]
pub(crate) async fn rotate_secret(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require("webhooks:write")?;
    let overlap =
        chrono::Duration::from_std(state.config.webhooks.secret_rotation_overlap).map_err(ApiError::internal)?;
    let w = change(&state, &caller, &id, async |w| {
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
        crate::openapi::KeyErrors,
    )
)]
pub(crate) async fn send_test(
    state: web::Data<AppState>,
    caller: Caller,
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
    let task = crate::tasks::task(&state, &w, hookwire_core::id::v7(), &event, 0);
    let record = crate::tasks::routed(&event, &task);
    crate::tasks::send(&state, std::slice::from_ref(&task), &[record]).await?;
    Ok(HttpResponse::Accepted().json(api::TestSent {
        event_id: event.id,
        delivery_id: task.delivery_id,
        event_type: event.event_type,
    }))
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
        crate::openapi::KeyErrors,
    )
)]
pub(crate) async fn recover(
    state: web::Data<AppState>,
    caller: Caller,
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
            tasks.push(crate::tasks::resend(&state, &w, d, event, resent_at));
            sent.push(d);
        }
    }
    crate::tasks::send(&state, &tasks, &[]).await?;
    // Confirmed by the broker: until their attempts are recorded they are `retrying`, so
    // recovering again does not send them twice.
    let (ids, attempts): (Vec<Uuid>, Vec<i32>) = sent.iter().map(|d| (d.id, d.attempts)).unzip();
    super::deliveries::marked_retrying(&mut conn, &ids, &attempts).await;
    Ok(HttpResponse::Accepted().json(api::Recovered {
        retried: tasks.len() as u32,
        more: failed.len() as i64 == PER_CALL,
    }))
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
        crate::openapi::KeyErrors,
    )
)]
pub(crate) async fn replay(
    state: web::Data<AppState>,
    caller: Caller,
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
    let missed = crate::db::models::EventRow::missed_by(&mut conn, &w, &types, (since, until), PER_CALL).await?;
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
        .map(|e| crate::tasks::task(&state, &w, hookwire_core::id::delivery(e.id, w.id), e, 0))
        .collect();
    let records = missed
        .iter()
        .zip(&tasks)
        .map(|(e, t)| crate::tasks::routed(e, t))
        .collect();
    crate::tasks::send(&state, &tasks, &[LedgerMessage::batch(records)]).await?;
    Ok(HttpResponse::Accepted().json(api::Replayed {
        replayed: tasks.len() as u32,
        more: missed.len() as i64 == PER_CALL,
    }))
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
        crate::openapi::KeyErrors,
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
    let rows =
        crate::db::models::Delivery::count_by_status(&mut conn, caller.tenant_id(), w.id, (since, until)).await?;
    let count = |status: DeliveryStatus| {
        rows.iter()
            .find(|(s, _)| s == status.as_str())
            .map_or(0, |(_, n)| (*n).max(0) as u64)
    };
    let counts = api::StatusCounts {
        pending: count(DeliveryStatus::Pending),
        retrying: count(DeliveryStatus::Retrying),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn production_refuses_plain_http_and_internal_destinations() {
        for url in [
            "http://example.com/hook",
            "https://127.0.0.1/hook",
            "https://10.1.2.3/hook",
            "https://169.254.169.254/latest",
            "https://[::1]/hook",
            "https://localhost/hook",
            "https://user:pw@example.com/",
        ] {
            assert!(check_url(url, Profile::Production).await.is_err(), "{url} was accepted");
        }
        assert!(check_url("https://93.184.216.34/hook", Profile::Production)
            .await
            .is_ok());
        // Development allows plain http to loopback, for local receivers.
        assert!(check_url("http://127.0.0.1:9999/hook", Profile::Development)
            .await
            .is_ok());
        assert!(check_url("ftp://example.com/", Profile::Development).await.is_err());
    }

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
