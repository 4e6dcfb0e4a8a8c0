//! Named admin tokens: `/v1/admin/admin-tokens`. One per operator or automation, revocable on
//! its own; each change it makes names it in the audit log.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// The body of `POST /v1/admin/admin-tokens`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminTokenIn {
    /// Who or what holds it, e.g. `alice` or `terraform`.
    #[schema(min_length = 1, max_length = 100, pattern = r"^[A-Za-z0-9_.@-]+$")]
    pub name: String,
}

/// An admin token: never the token itself but once, on creation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AdminToken {
    pub id: Uuid,
    pub name: String,
    /// The token: in the answer of its creation only. Send it as `Authorization: Bearer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    pub token_prefix: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}
