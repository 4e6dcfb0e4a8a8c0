//! API keys: `/v1/admin/api-keys` (operator). A key belongs to a tenant and is how its
//! customers call the API.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

crate::page::paged_query! {
    /// The filters of `GET /v1/admin/api-keys`.
    pub struct ApiKeyQuery {
        /// One tenant's keys.
        pub tenant_id: Option<Uuid>,
        /// Revoked keys too.
        pub include_revoked: Option<bool>,
    }
}

/// An API key as the admin API shows it: never the key itself (but once, on creation) nor its hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ApiKey {
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// The key itself: in the answer of its creation only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The key's first characters, to recognise it.
    pub key_prefix: String,
    /// `webhooks:read`, `webhooks:write`.
    pub scopes: Vec<String>,
    pub webhooks_enabled: bool,
    pub max_webhooks: u32,
    /// Webhooks created with this key: what `max_webhooks` limits.
    pub webhook_count: u32,
    pub created_at: DateTime<Utc>,
    /// When it was revoked, or null while it is live.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it last authenticated a request (noted at most once a minute), or null if never.
    pub last_used_at: Option<DateTime<Utc>>,
}

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum Scope {
    /// Read webhooks, the catalog and the delivery log.
    #[serde(rename = "webhooks:read")]
    WebhooksRead,
    /// Create, change and delete webhooks; retry, recover, replay, test.
    #[serde(rename = "webhooks:write")]
    WebhooksWrite,
}

impl Scope {
    pub const ALL: [Self; 2] = [Self::WebhooksRead, Self::WebhooksWrite];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::WebhooksRead => "webhooks:read",
            Self::WebhooksWrite => "webhooks:write",
        }
    }
}

/// The body of `POST /v1/admin/api-keys`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyIn {
    pub tenant_id: Uuid,
    /// Default both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_items = 10)]
    pub scopes: Option<Vec<Scope>>,
    /// Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhooks_enabled: Option<bool>,
    /// Default from the registry's configuration (`webhooks.default_max_webhooks`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(maximum = 100000)]
    pub max_webhooks: Option<u32>,
}

/// The body of `PATCH /v1/admin/api-keys/{id}` (at least one field). A lower `max_webhooks`
/// keeps the webhooks the key has and refuses new ones.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
pub struct ApiKeyPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, max_items = 10)]
    pub scopes: Option<Vec<Scope>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub webhooks_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, maximum = 100000)]
    pub max_webhooks: Option<u32>,
}
