//! Producer tokens: `/v1/admin/producer-tokens` (operator). Each producing service gets its own,
//! limited to the types and tenants it publishes for, revocable on its own.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

crate::page::paged_query! {
    /// The filters of `GET /v1/admin/producer-tokens`.
    pub struct ProducerTokenQuery {
        /// Revoked tokens too.
        pub include_revoked: Option<bool>,
    }
}

/// The body of `POST /v1/admin/producer-tokens`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProducerTokenIn {
    /// Names the producer in logs and metrics, e.g. `billing-service`.
    #[schema(min_length = 1, max_length = 100, pattern = r"^[A-Za-z0-9_.-]+$")]
    pub name: String,
    /// Patterns of the types it may publish (`invoice.*`); default any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::webhooks::patterns)]
    pub event_types: Option<Vec<String>>,
    /// The tenants it may publish for; default any, feed events (no tenant) included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_items = 1, max_items = 1000)]
    pub tenant_ids: Option<Vec<Uuid>>,
}

/// A producer token: never the token itself but once, on creation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProducerToken {
    pub id: Uuid,
    pub name: String,
    /// The token: in the answer of its creation only. Send it as `Authorization: Bearer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// The token's first characters, to recognise it.
    pub token_prefix: String,
    pub event_types: Option<Vec<String>>,
    pub tenant_ids: Option<Vec<Uuid>>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}
