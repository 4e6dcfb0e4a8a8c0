//! The OpenAPI 3.1 document of the management API, generated from the handlers' annotations and
//! the schema types below, served at `/v1/openapi.json`. `docs/openapi.json` is a copy checked
//! for drift by a test (`UPDATE_OPENAPI=1 cargo test -p hookwire-registry` rewrites it).
//!
//! Handlers read their bodies field by field (to report every bad field at once), so the body
//! types here exist to describe the API, and are kept next to each other to stay in step.

#![allow(dead_code)] // the schema types are read by the derive, never constructed

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use uuid::Uuid;

/// RFC 9457 problem details.
#[derive(ToSchema)]
pub struct Problem {
    #[schema(example = "https://hookwire.dev/problems/validation_failed")]
    r#type: String,
    title: String,
    status: u16,
    detail: String,
    /// Present on validation errors: one entry per bad field.
    errors: Option<Vec<FieldError>>,
}

/// The failures every API-key call can meet.
#[derive(utoipa::IntoResponses)]
pub enum KeyErrors {
    /// No or unknown API key
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// Rate limit exceeded (see `Retry-After`)
    #[response(status = 429, content_type = "application/problem+json")]
    RateLimited(Problem),
}

#[derive(ToSchema)]
pub struct FieldError {
    field: String,
    message: String,
}

#[derive(ToSchema)]
pub struct RetryPolicy {
    /// `exponential` (interval × 2^(n-1), ±20 % jitter) or `fixed`.
    #[schema(example = "exponential")]
    strategy: String,
    #[schema(minimum = 0, maximum = 100)]
    max_retries: u32,
    #[schema(minimum = 1, maximum = 86400)]
    interval_seconds: u32,
    #[schema(minimum = 0, maximum = 2592000)]
    max_age_seconds: u32,
}

/// Fields of `POST /v1/webhooks` (`url` and `events` required) and `PATCH` (any, at least one).
#[derive(ToSchema)]
pub struct WebhookInput {
    #[schema(example = "https://example.com/hooks")]
    url: Option<String>,
    /// Patterns: `person.created`, `person.*`, `*.created`, `*`. Each must match a catalog type.
    events: Option<Vec<String>>,
    name: Option<String>,
    description: Option<String>,
    channels: Option<Vec<String>>,
    is_active: Option<bool>,
    is_test: Option<bool>,
    header_name: Option<String>,
    prefix: Option<String>,
    auth_secret: Option<String>,
    headers: Option<BTreeMap<String, String>>,
    #[schema(minimum = 1, maximum = 60)]
    timeout_seconds: Option<u32>,
    retry_policy: Option<RetryPolicy>,
    /// Shorthand for `retry_policy.max_retries`.
    retry_count: Option<u32>,
    rate_limit_per_second: Option<u32>,
    /// A `whsec_…` signing secret (create only); generated when absent.
    secret: Option<String>,
}

#[derive(ToSchema)]
pub struct Webhook {
    id: Uuid,
    name: String,
    description: String,
    url: String,
    events: Vec<String>,
    channels: Vec<String>,
    is_active: bool,
    is_test: bool,
    header_name: Option<String>,
    prefix: Option<String>,
    /// `****` and the last four characters of the auth secret.
    masked_auth_secret: Option<String>,
    headers: BTreeMap<String, String>,
    timeout_seconds: u32,
    retry_policy: RetryPolicy,
    rate_limit_per_second: Option<u32>,
    failure_count: u32,
    last_triggered_at: Option<DateTime<Utc>>,
    last_success_at: Option<DateTime<Utc>>,
    last_failure_at: Option<DateTime<Utc>>,
    disabled_reason: Option<String>,
    created_at: DateTime<Utc>,
    modified_at: DateTime<Utc>,
    /// The signing secret: in the answers of create, retrieve and rotate only.
    secret: Option<String>,
}

#[derive(ToSchema)]
pub struct WebhookList {
    count: i64,
    next: Option<String>,
    previous: Option<String>,
    results: Vec<Webhook>,
}

#[derive(ToSchema)]
pub struct Delivery {
    id: Uuid,
    webhook_id: Uuid,
    event_id: Uuid,
    event_type: String,
    subject: Option<String>,
    /// `pending`, `retrying`, `success`, `failed`, `exhausted`.
    status: String,
    attempts: u32,
    response_status: Option<u16>,
    response_body: Option<String>,
    error: Option<String>,
    duration_ms: Option<u32>,
    is_test: bool,
    created_at: DateTime<Utc>,
    last_attempt_at: Option<DateTime<Utc>>,
    next_retry_at: Option<DateTime<Utc>>,
}

#[derive(ToSchema)]
pub struct DeliveryList {
    /// Deliveries the filters match: exact up to the registry's `http.count_limit` (default
    /// 10,000), past it a lower bound that still exceeds the page's end while more follow.
    count: i64,
    /// `false` when `count` is a lower bound.
    count_exact: bool,
    next: Option<String>,
    previous: Option<String>,
    results: Vec<Delivery>,
}

#[derive(ToSchema)]
pub struct Attempt {
    attempt: u32,
    attempted_at: DateTime<Utc>,
    response_status: Option<u16>,
    duration_ms: u32,
    error: Option<String>,
    /// The `webhook-signature` header sent.
    signature: String,
}

/// A delivery with its attempts and the payload sent (`attempts` is the list here; the count
/// is `attempt_count`).
#[derive(ToSchema)]
pub struct DeliveryDetail {
    id: Uuid,
    webhook_id: Uuid,
    event_id: Uuid,
    event_type: String,
    status: String,
    attempt_count: u32,
    attempts: Vec<Attempt>,
    /// The event's `data` as sent; `null` once erased.
    payload: serde_json::Value,
    /// When the payload was erased (`POST /v1/admin/events/expunge`); `null` while it is kept.
    payload_expunged_at: Option<DateTime<Utc>>,
}

#[derive(ToSchema)]
pub struct EventType {
    value: String,
    label: String,
    description: String,
    /// The JSON Schema this type's events follow (the publisher refuses others), or null.
    schema: Option<serde_json::Value>,
    /// Out of the catalog customers subscribe from; still delivered to the webhooks subscribed.
    archived: bool,
    /// An example of the events' `data`, valid against `schema`; a webhook's test sends it.
    example: Option<serde_json::Value>,
}

/// Fields of `PATCH /v1/admin/event-types/{value}` (at least one). `description: null` empties
/// it; `schema: null` lifts the schema; `example: null` removes the example; `archived` archives
/// the type or brings it back. The example and the schema the type ends with must agree.
#[derive(ToSchema)]
pub struct EventTypeChangesInput {
    label: Option<String>,
    description: Option<String>,
    schema: Option<serde_json::Value>,
    example: Option<serde_json::Value>,
    archived: Option<bool>,
}

#[derive(ToSchema)]
pub struct EventTypeList {
    count: i64,
    next: Option<String>,
    previous: Option<String>,
    results: Vec<EventType>,
}

#[derive(ToSchema)]
pub struct EventTypeInput {
    #[schema(example = "invoice.paid")]
    value: String,
    label: String,
    description: Option<String>,
    /// A JSON Schema enforced on events of this type.
    schema: Option<serde_json::Value>,
    /// An example of the events' `data`, valid against `schema`.
    example: Option<serde_json::Value>,
}

/// Which events to erase: one of `event_id` and `subject`.
#[derive(ToSchema)]
pub struct ExpungeInput {
    event_id: Option<Uuid>,
    /// Every event with this subject.
    subject: Option<String>,
    /// Only this tenant's events.
    tenant_id: Option<Uuid>,
}

/// What an erasure did.
#[derive(ToSchema)]
pub struct ExpungeResult {
    /// Events whose payloads it erased (not counting those erased before).
    events_expunged: u64,
    /// Their deliveries, whose recorded response bodies it erased.
    deliveries_cleared: u64,
    /// Of those, deliveries still to be attempted, which dispatchers end unsent.
    deliveries_stopped: u64,
}

#[derive(ToSchema)]
pub struct TenantInput {
    name: String,
}

#[derive(ToSchema)]
pub struct Tenant {
    id: Uuid,
    name: String,
    created_at: DateTime<Utc>,
}

#[derive(ToSchema)]
pub struct ApiKeyInput {
    tenant_id: Uuid,
    /// `webhooks:read`, `webhooks:write` (default both).
    scopes: Option<Vec<String>>,
    webhooks_enabled: Option<bool>,
    max_webhooks: Option<u32>,
}

#[derive(ToSchema)]
pub struct ApiKeyCreated {
    id: Uuid,
    tenant_id: Uuid,
    /// The key itself, shown once.
    key: String,
    key_prefix: String,
    scopes: Vec<String>,
    webhooks_enabled: bool,
    max_webhooks: u32,
    /// 0 on creation.
    webhook_count: u32,
    created_at: DateTime<Utc>,
    /// Null on creation.
    revoked_at: Option<DateTime<Utc>>,
    /// Null on creation.
    last_used_at: Option<DateTime<Utc>>,
}

/// An API key as the admin API lists it: never the key itself, nor its hash.
#[derive(ToSchema)]
pub struct ApiKeyInfo {
    id: Uuid,
    tenant_id: Uuid,
    /// The key's first characters, to recognise it.
    key_prefix: String,
    scopes: Vec<String>,
    webhooks_enabled: bool,
    max_webhooks: u32,
    /// Webhooks created with this key: what `max_webhooks` limits.
    webhook_count: u32,
    created_at: DateTime<Utc>,
    /// When it was revoked, or null while it is live.
    revoked_at: Option<DateTime<Utc>>,
    /// When it last authenticated a request (noted at most once a minute), or null if never.
    last_used_at: Option<DateTime<Utc>>,
}

#[derive(ToSchema)]
pub struct ApiKeyList {
    count: i64,
    next: Option<String>,
    previous: Option<String>,
    results: Vec<ApiKeyInfo>,
}

/// Fields of `PATCH /v1/admin/api-keys/{id}` (at least one). A lower `max_webhooks` keeps the
/// webhooks the key has and refuses new ones.
#[derive(ToSchema)]
pub struct ApiKeyChangesInput {
    scopes: Option<Vec<String>>,
    webhooks_enabled: Option<bool>,
    #[schema(minimum = 0, maximum = 100000)]
    max_webhooks: Option<u32>,
}

#[derive(ToSchema)]
pub struct TenantList {
    count: i64,
    next: Option<String>,
    previous: Option<String>,
    results: Vec<Tenant>,
}

#[derive(ToSchema)]
pub struct RecoverInput {
    /// Retry failed and exhausted deliveries created since then (RFC 3339).
    since: DateTime<Utc>,
}

#[derive(ToSchema)]
pub struct RecoverResult {
    retried: u32,
    /// True when more deliveries remain than one call retries (10,000).
    more: bool,
}

/// Deliveries of one webhook by status, over a window.
#[derive(ToSchema)]
pub struct WebhookStats {
    webhook_id: Uuid,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    /// Deliveries created in the window.
    total: u64,
    counts: StatusCounts,
    /// success / (success + failed + exhausted); null when none ended.
    success_rate: Option<f64>,
}

#[derive(ToSchema)]
pub struct StatusCounts {
    pending: u64,
    retrying: u64,
    success: u64,
    failed: u64,
    exhausted: u64,
}

#[derive(ToSchema)]
pub struct ReplayInput {
    /// Send the events published since then (RFC 3339).
    since: DateTime<Utc>,
    /// And before then (RFC 3339); default now.
    until: Option<DateTime<Utc>>,
}

#[derive(ToSchema)]
pub struct ReplayResult {
    replayed: u32,
    /// True when more events remain than one call sends (10,000).
    more: bool,
}

/// Which test to send (every field optional; an empty body sends the default test).
#[derive(ToSchema)]
pub struct TestInput {
    /// A type the webhook takes; by default one of them.
    event_type: Option<String>,
    /// The event's `data`, checked against the type's schema.
    data: Option<serde_json::Value>,
    /// Send the type's example as `data`.
    example: Option<bool>,
}

#[derive(ToSchema)]
pub struct TestSent {
    event_id: Uuid,
    delivery_id: Uuid,
    event_type: String,
}

#[derive(ToSchema)]
pub struct RetryAccepted {
    delivery_id: Uuid,
    status: String,
}

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The request headers every operation of a kind takes: `Idempotency-Key` on every POST
/// (`crate::api_idempotency`), with the two answers it adds, and `Hookwire-Tenant-Id` on the
/// customer API (`crate::auth::Credential::AdminFor`).
struct Headers;

impl Modify for Headers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        use utoipa::openapi::{ObjectBuilder, Required, ResponseBuilder, Type};
        let parameter = ParameterBuilder::new()
            .name("Idempotency-Key")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some(
                "Makes a retry safe: the first 2xx answer to a key (per credential, for 24 h) is given \
                 again, with `Idempotent-Replayed: true`, to the same request sent with it.",
            ))
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1))
                    .max_length(Some(255)),
            ))
            .build();
        let problem = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/problem+json",
                    utoipa::openapi::ContentBuilder::new()
                        .schema(Some(utoipa::openapi::Ref::from_schema_name("Problem")))
                        .build(),
                )
                .build()
        };
        let act_for = ParameterBuilder::new()
            .name("Hookwire-Tenant-Id")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some(
                "With the admin token as the bearer: the admin acts for this tenant \
                 (every scope, no rate limit; creating a webhook is left to the tenant's keys).",
            ))
            .schema(Some(ObjectBuilder::new().schema_type(Type::String).format(Some(
                utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Uuid),
            ))))
            .build();
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !path.starts_with("/v1/admin/") {
                for op in [&mut item.get, &mut item.post, &mut item.patch, &mut item.delete]
                    .into_iter()
                    .flatten()
                {
                    op.parameters.get_or_insert_with(Vec::new).push(act_for.clone().into());
                }
            }
            if let Some(post) = item.post.as_mut() {
                post.parameters
                    .get_or_insert_with(Vec::new)
                    .push(parameter.clone().into());
                let responses = &mut post.responses.responses;
                responses
                    .entry("409".into())
                    .or_insert_with(|| problem("A request with the same Idempotency-Key is being answered").into());
                responses
                    .entry("422".into())
                    .or_insert_with(|| problem("The Idempotency-Key was used for a different request").into());
            }
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Hookwire management API", description = "Webhooks, event types and the delivery log (contract §3)."),
    paths(
        crate::routes::webhooks::list,
        crate::routes::webhooks::create,
        crate::routes::webhooks::retrieve,
        crate::routes::webhooks::update,
        crate::routes::webhooks::delete,
        crate::routes::webhooks::rotate_secret,
        crate::routes::webhooks::send_test,
        crate::routes::webhooks::recover,
        crate::routes::webhooks::replay,
        crate::routes::webhooks::stats,
        crate::routes::deliveries::list,
        crate::routes::deliveries::retrieve,
        crate::routes::deliveries::retry,
        crate::routes::event_types::list,
        crate::routes::event_types::retrieve,
        crate::routes::admin::list_tenants,
        crate::routes::admin::retrieve_tenant,
        crate::routes::admin::update_tenant,
        crate::routes::admin::remove_tenant,
        crate::routes::admin::expunge_events,
        crate::routes::admin::create_tenant,
        crate::routes::admin::list_api_keys,
        crate::routes::admin::create_api_key,
        crate::routes::admin::retrieve_api_key,
        crate::routes::admin::update_api_key,
        crate::routes::admin::revoke_api_key,
        crate::routes::admin::create_event_type,
        crate::routes::admin::change_event_type,
        crate::routes::admin::archive_event_type,
    ),
    modifiers(&Security, &Headers),
    security(("api_key" = []), ("bearer" = [])),
)]
pub struct ApiDoc;

/// The document as served.
pub fn document() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .expect("the OpenAPI document serializes")
}

#[cfg(test)]
mod tests {
    /// The committed copy must match the code; `UPDATE_OPENAPI=1` rewrites it.
    #[test]
    fn docs_openapi_json_matches_the_code() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
        let generated = super::document() + "\n";
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == generated,
            "docs/openapi.json is out of date: run `UPDATE_OPENAPI=1 cargo test -p hookwire-registry openapi`"
        );
        let doc: serde_json::Value = serde_json::from_str(&generated).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    }
}
