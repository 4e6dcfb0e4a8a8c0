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
    /// Most deliveries per second across the tenant's webhooks (all dispatchers together); null
    /// is no ceiling.
    pub max_deliveries_per_second: Option<u32>,
    pub created_at: DateTime<Utc>,
}

/// The body of `POST /v1/admin/tenants`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantIn {
    /// Not blank.
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: String,
    /// Most deliveries per second across its webhooks; absent or null is no ceiling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 1000000)]
    pub max_deliveries_per_second: Option<u32>,
}

/// The body of `PATCH /v1/admin/tenants/{id}`: only the fields sent change, at least one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
pub struct TenantPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: Option<String>,
    /// Null removes the ceiling.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::nullable")]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 1000000)]
    pub max_deliveries_per_second: Option<Option<u32>>,
}
