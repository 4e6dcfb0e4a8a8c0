//! The audit log: `GET /v1/admin/audit-log` (operator) and `GET /v1/audit-log` (a tenant's own).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

crate::page::paged_query! {
    /// The filters of the audit log.
    pub struct AuditQuery {
        /// One tenant's entries (the admin's listing only).
        pub tenant_id: Option<Uuid>,
        /// Entries about one resource (a webhook's, a key's id; an event type's value).
        #[param(max_length = 200)]
        pub resource_id: Option<String>,
        /// One action, e.g. `webhook.updated`.
        #[param(max_length = 100)]
        pub action: Option<String>,
        /// Entries of one actor (an API key's or a portal session's id).
        #[param(max_length = 200)]
        pub actor_id: Option<String>,
        /// From this time on (RFC 3339).
        pub since: Option<DateTime<Utc>>,
        /// Before this time.
        pub until: Option<DateTime<Utc>>,
    }
}

/// Who made a change. Never a secret: a key is named by its id and prefix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Actor {
    /// `admin` (the admin token), `api_key`, `portal_session`, `admin_command` (the registry's
    /// `admin` subcommand) or `system` (Hookwire itself, e.g. an automatic deactivation).
    pub kind: String,
    /// The key's or the session's id.
    pub id: Option<String>,
    /// The key's prefix, or what the actor is.
    pub name: Option<String>,
}

/// One change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    /// The tenant whose object changed; null for the catalog and other installation-wide objects.
    pub tenant_id: Option<Uuid>,
    pub actor: Actor,
    /// `<resource>.<verb>`, e.g. `webhook.updated`, `api_key.revoked`.
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    /// Per changed field, `{"before", "after"}` (only `after` on creation, only `before` on
    /// deletion); secrets appear as `"[masked]"`.
    pub changes: serde_json::Value,
    /// The request's `X-Request-Id`, when the change came through the API.
    pub request_id: Option<String>,
}
