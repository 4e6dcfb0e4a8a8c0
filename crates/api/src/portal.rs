//! Portal sessions: `/v1/admin/portal-sessions` (operator) and `/v1/portal-sessions` (a tenant,
//! for itself). A session is a link that opens one tenant's console in a browser.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// The body of `POST /v1/admin/portal-sessions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminPortalSessionIn {
    pub tenant_id: Uuid,
    /// How long the session lasts, from now. Default 3600 (one hour).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 60, maximum = 86400)]
    pub expires_in_seconds: Option<u32>,
    /// A read-only session can look but not change anything. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    /// The tenant's API key the session acts with (its scopes and webhook limit). Default the
    /// tenant's newest live key with `webhooks:write`, else none (the portal cannot create
    /// webhooks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_id: Option<Uuid>,
}

/// The body of `POST /v1/portal-sessions`: a session for the calling key's tenant, acting with
/// that key. The body may be left out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PortalSessionIn {
    /// How long the session lasts, from now. Default 3600 (one hour).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 60, maximum = 86400)]
    pub expires_in_seconds: Option<u32>,
    /// A read-only session can look but not change anything. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
}

/// A portal session as created: `url` opens it once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PortalSession {
    pub id: Uuid,
    /// Open it in a browser (or an iframe) to show the tenant's portal. It holds a one-time token
    /// after `#`, which never reaches a server log; the first opening spends it.
    pub url: String,
    pub expires_at: DateTime<Utc>,
    pub tenant_id: Uuid,
    pub read_only: bool,
    /// The key the session acts with, or null.
    pub api_key_id: Option<Uuid>,
}

/// The body of `POST /v1/portal-sessions/open`: the one-time token of a session's link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenIn {
    #[schema(min_length = 1, max_length = 200)]
    pub token: String,
}

/// The session a browser holds: what the console needs to draw itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CurrentSession {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub tenant_name: String,
    pub read_only: bool,
    pub expires_at: DateTime<Utc>,
    /// What the session may do: its key's scopes; none but `webhooks:read` when read-only.
    pub scopes: Vec<String>,
    /// Send it back as `X-CSRF-Token` on every change made with the session's cookie.
    pub csrf_token: String,
    pub brand: Brand,
}

/// How the console presents itself (`console.*` in the registry's configuration).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Brand {
    pub name: String,
    /// `#rrggbb`.
    pub color: String,
    /// Path of the logo on this server, or null for none.
    pub logo_url: Option<String>,
}
