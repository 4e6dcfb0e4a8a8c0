//! Webhooks: `/v1/webhooks`, a tenant's subscriptions.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::retry::{RetryPolicy, Strategy};

/// A subscription: where to send which events, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Webhook {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub url: String,
    /// Patterns: `person.created`, `person.*`, `*.created`, `*`.
    pub events: Vec<String>,
    /// When not empty, only events that carry one of these channels.
    pub channels: Vec<String>,
    pub is_active: bool,
    /// Takes test events only (and production events never).
    pub is_test: bool,
    /// A header sent with each delivery as `header_name: prefix auth_secret`.
    pub header_name: Option<String>,
    pub prefix: Option<String>,
    /// `****` and the last four characters of the auth secret.
    pub masked_auth_secret: Option<String>,
    /// Custom headers sent with each delivery.
    pub headers: BTreeMap<String, String>,
    pub timeout_seconds: u32,
    pub retry_policy: RetryPolicy,
    /// Most deliveries per second to this webhook; null is unlimited.
    pub rate_limit_per_second: Option<u32>,
    pub ordering: DeliveryOrder,
    /// Failed deliveries in a row.
    pub failure_count: u32,
    pub last_triggered_at: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_failure_at: Option<DateTime<Utc>>,
    /// Why Hookwire deactivated it, or null.
    pub disabled_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub modified_at: DateTime<Utc>,
    /// The signing secret (`whsec_…`): in the answers of create, retrieve and rotate only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// A header name: an HTTP token.
const HEADER_NAME: &str = r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,128}$";
/// Printable characters, tab allowed: what a header value may hold.
const HEADER_VALUE: &str = r"^[^\x00-\x08\x0a-\x1f\x7f]*$";

/// The body of `POST /v1/webhooks`: `url` and `events` required; an optional field sent as
/// null takes its default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookIn {
    #[schema(
        example = "https://example.com/hooks",
        min_length = 1,
        max_length = 2048,
        pattern = r"^https?://"
    )]
    pub url: String,
    /// Patterns: `person.created`, `person.*`, `*.created`, `*`. Each must match a catalog type.
    #[schema(schema_with = patterns)]
    pub events: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 200)]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 2000)]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = channels)]
    pub channels: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_active: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_test: Option<bool>,
    /// With `auth_secret`: each delivery carries `header_name: prefix auth_secret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,128}$")]
    pub header_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 64, pattern = r"^[^\x00-\x20\x7f]*$")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 4096, pattern = r"^[^\x00-\x08\x0a-\x1f\x7f]*$")]
    pub auth_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = custom_headers)]
    pub headers: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 60)]
    pub timeout_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_policy: Option<RetryPolicyIn>,
    /// Shorthand for `retry_policy.max_retries`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(maximum = 100)]
    pub retry_count: Option<u32>,
    /// Most deliveries per second; absent or null is unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 100000)]
    pub rate_limit_per_second: Option<u32>,
    /// `none` (the default) or `subject`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordering: Option<DeliveryOrder>,
    /// A `whsec_…` signing secret: `whsec_` and the base64 of 24 to 64 random bytes; generated
    /// when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        max_length = 200,
        pattern = r"^whsec_(?:(?:[A-Za-z0-9+/]{4}){8,20}(?:[A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)?|(?:[A-Za-z0-9+/]{4}){21}(?:[A-Za-z0-9+/][AQgw]==)?)$"
    )]
    pub secret: Option<String>,
}

impl WebhookIn {
    /// A webhook to `url` for the event types `events` matches, every other field its default.
    pub fn new(url: impl Into<String>, events: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            url: url.into(),
            events: events.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }
}

/// The body of `PATCH /v1/webhooks/{id}`: only the fields sent change, at least one. A field
/// sent as null is cleared where it can be (`channels`, `header_name` with `auth_secret`,
/// `prefix`, `headers`, `rate_limit_per_second`; `name` and `description` become empty). The
/// signing secret changes through `rotate-secret` only.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
pub struct WebhookPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, min_length = 1, max_length = 2048, pattern = r"^https?://")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = patterns)]
    pub events: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::nullable")]
    #[schema(value_type = Option<String>, max_length = 200)]
    pub name: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::nullable")]
    #[schema(value_type = Option<String>, max_length = 2000)]
    pub description: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::nullable")]
    #[schema(schema_with = nullable_channels)]
    pub channels: Option<Option<Vec<String>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub is_active: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub is_test: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::nullable")]
    #[schema(value_type = Option<String>, pattern = r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,128}$")]
    pub header_name: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::nullable")]
    #[schema(value_type = Option<String>, max_length = 64, pattern = r"^[^\x00-\x20\x7f]*$")]
    pub prefix: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::nullable")]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 4096, pattern = r"^[^\x00-\x08\x0a-\x1f\x7f]*$")]
    pub auth_secret: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::nullable")]
    #[schema(schema_with = nullable_custom_headers)]
    pub headers: Option<Option<BTreeMap<String, String>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, minimum = 1, maximum = 60)]
    pub timeout_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub retry_policy: Option<RetryPolicyIn>,
    /// Shorthand for `retry_policy.max_retries`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, maximum = 100)]
    pub retry_count: Option<u32>,
    /// Most deliveries per second; null is unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::nullable")]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 100000)]
    pub rate_limit_per_second: Option<Option<u32>>,
    /// Applies to events accepted from then on; deliveries already waiting in a line keep it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub ordering: Option<DeliveryOrder>,
}

/// A retry policy to set: any subset of its fields, the others kept (or the defaults, on create).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicyIn {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub strategy: Option<Strategy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, maximum = 100)]
    pub max_retries: Option<u32>,
    /// Shorthand for `max_retries`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, maximum = 100)]
    pub retry_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, minimum = 1, maximum = 86400)]
    pub interval_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, maximum = 2592000)]
    pub max_age_seconds: Option<u32>,
}

impl RetryPolicyIn {
    /// `current` with the fields this sets.
    pub fn apply(&self, current: RetryPolicy) -> RetryPolicy {
        RetryPolicy {
            strategy: self.strategy.unwrap_or(current.strategy),
            max_retries: self.retry_count.or(self.max_retries).unwrap_or(current.max_retries),
            interval_seconds: self.interval_seconds.unwrap_or(current.interval_seconds),
            max_age_seconds: self.max_age_seconds.unwrap_or(current.max_age_seconds),
        }
    }
}

/// A webhook's event patterns: 1 to 100, each at most 128 characters.
pub(crate) fn patterns() -> utoipa::openapi::Array {
    string_list(
        1,
        100,
        Some(r"^(\*|[a-z0-9_]+)(\.(\*|[a-z0-9_]+))*$"),
        "Patterns: `person.created`, `person.*`, `*.created`, `*`. Each must match a catalog type.",
    )
}

/// A webhook's channels: at most 50, each at most 128 characters.
fn channels() -> utoipa::openapi::Array {
    string_list(
        0,
        50,
        None,
        "When not empty, only events that carry one of these channels.",
    )
}

pub(crate) fn nullable_channels() -> utoipa::openapi::Schema {
    nullable(channels())
}

fn string_list(min: usize, max: usize, pattern: Option<&str>, description: &str) -> utoipa::openapi::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(128))
                .pattern(pattern),
        )
        .min_items((min > 0).then_some(min))
        .max_items(Some(max))
        .description(Some(description))
        .build()
}

/// Custom headers: at most 20, names and values as strings.
fn custom_headers() -> utoipa::openapi::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(4096))
                .pattern(Some(HEADER_VALUE)),
        ))
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(HEADER_NAME)),
        ))
        .max_properties(Some(20))
        .description(Some("Custom headers sent with each delivery: at most 20"))
        .build()
}

fn nullable_custom_headers() -> utoipa::openapi::Schema {
    nullable(custom_headers())
}

/// `schema` or null.
fn nullable(schema: impl Into<utoipa::openapi::Schema>) -> utoipa::openapi::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
    OneOfBuilder::new()
        .item(schema.into())
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .build()
        .into()
}

/// The body of `POST /v1/webhooks/{id}/test`: every field optional; an empty body sends the
/// default test.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestIn {
    /// A type the webhook takes; by default one of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, max_length = 128)]
    pub event_type: Option<String>,
    /// The event's `data`, checked against the type's schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    /// Send the type's example as `data` (not with `data`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub example: Option<bool>,
}

/// The answer to a test: the event sent and its delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TestSent {
    pub event_id: Uuid,
    pub delivery_id: Uuid,
    pub event_type: String,
}

/// The body of `POST /v1/webhooks/{id}/recover`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoverIn {
    /// Retry failed and exhausted deliveries created since then (RFC 3339).
    pub since: DateTime<Utc>,
}

/// What a recover sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Recovered {
    pub retried: u32,
    /// True when more deliveries remain than one call retries (10,000).
    pub more: bool,
}

/// The body of `POST /v1/webhooks/{id}/replay`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayIn {
    /// Send the events published since then (RFC 3339).
    pub since: DateTime<Utc>,
    /// And before then (RFC 3339); default now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
}

/// What a replay sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Replayed {
    pub replayed: u32,
    /// True when more events remain than one call sends (10,000).
    pub more: bool,
}

/// The order a webhook's deliveries reach it in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryOrder {
    /// Concurrently, as fast as the receiver takes them: no order is kept.
    #[default]
    None,
    /// Events with the same `subject` in the order they were accepted: the next is sent once
    /// the previous has succeeded or ended (`failed`, `exhausted`). Events without a subject
    /// form one line; different subjects go on in parallel.
    Subject,
}

impl DeliveryOrder {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Subject => "subject",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        [Self::None, Self::Subject].into_iter().find(|o| o.as_str() == value)
    }
}

/// How `GET /v1/webhooks` orders its results.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum WebhookOrdering {
    #[default]
    #[serde(rename = "created")]
    Created,
    #[serde(rename = "-created")]
    CreatedDesc,
    #[serde(rename = "modified")]
    Modified,
    #[serde(rename = "-modified")]
    ModifiedDesc,
    #[serde(rename = "name")]
    Name,
    #[serde(rename = "-name")]
    NameDesc,
}

crate::page::paged_query! {
    /// The filters of `GET /v1/webhooks`.
    pub struct WebhookQuery {
        /// Webhooks whose patterns take this event type.
        #[param(max_length = 128)]
        pub event_type: Option<String>,
        pub is_test: Option<bool>,
        pub is_active: Option<bool>,
        /// Webhooks that take this channel.
        #[param(max_length = 128)]
        pub channel: Option<String>,
        /// `created` (the default), `modified` or `name`; `-` first for the reverse.
        #[param(inline)]
        pub ordering: Option<WebhookOrdering>,
    }
}

/// The window of `GET /v1/webhooks/{id}/stats`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// RFC 3339; default 24 hours before `until`.
    pub since: Option<DateTime<Utc>>,
    /// RFC 3339; default now.
    pub until: Option<DateTime<Utc>>,
}

/// Deliveries of one webhook by status, over a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WebhookStats {
    pub webhook_id: Uuid,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// Deliveries created in the window.
    pub total: u64,
    pub counts: StatusCounts,
    /// success / (success + failed + exhausted); null when none ended.
    pub success_rate: Option<f64>,
}

/// Deliveries by status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StatusCounts {
    /// Deliveries of an ordered webhook waiting in their subject's line (not counted as
    /// `pending` or `retrying`).
    pub waiting: u64,
    pub pending: u64,
    pub retrying: u64,
    pub success: u64,
    pub failed: u64,
    pub exhausted: u64,
}

/// A create as the changes it makes to a new webhook (its `secret` aside): null is absent.
impl From<WebhookIn> for WebhookPatch {
    fn from(w: WebhookIn) -> Self {
        Self {
            url: Some(w.url),
            events: Some(w.events),
            name: w.name.map(Some),
            description: w.description.map(Some),
            channels: w.channels.map(Some),
            is_active: w.is_active,
            is_test: w.is_test,
            header_name: w.header_name.map(Some),
            prefix: w.prefix.map(Some),
            auth_secret: w.auth_secret.map(Some),
            headers: w.headers.map(Some),
            timeout_seconds: w.timeout_seconds,
            retry_policy: w.retry_policy,
            retry_count: w.retry_count,
            rate_limit_per_second: w.rate_limit_per_second.map(Some),
            ordering: w.ordering,
        }
    }
}
