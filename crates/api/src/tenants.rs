//! Tenants: `/v1/admin/tenants` (operator).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// A customer account: it owns API keys, webhooks and a delivery log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Tenant {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// The body of `POST /v1/admin/tenants` and `PATCH /v1/admin/tenants/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantIn {
    /// Not blank.
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: String,
}
