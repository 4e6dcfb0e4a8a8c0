//! What the publishers route with: the registry's snapshot of subscriptions, producer grants and
//! the catalog, and the change notices that keep it current.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Target;

/// A webhook as the publisher routes with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    pub events: Vec<String>,
    #[serde(default)]
    pub channels: Vec<String>,
    pub is_active: bool,
    pub is_test: bool,
    /// When the registry last changed it, so a notice never replaces newer data with older.
    pub modified_at: DateTime<Utc>,
    pub target: Target,
    /// `ordering: "subject"`: its deliveries go to the lines queue, not to the dispatchers.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ordered: bool,
}

/// Registry → publishers and dispatchers, on the changes fanout exchange.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum ChangeNotice {
    /// A webhook was created or changed.
    #[serde(rename = "subscription_upserted.v1")]
    Upserted { subscription: Box<Subscription> },
    /// A webhook was deleted.
    #[serde(rename = "subscription_deleted.v1")]
    Deleted {
        webhook_id: Uuid,
        deleted_at: DateTime<Utc>,
    },
    /// An event type was added to the catalog.
    #[serde(rename = "event_type_upserted.v1")]
    EventTypeUpserted { event_type: CatalogType },
    /// Events' payloads were erased (`POST /v1/admin/events/expunge`): dispatchers end their
    /// deliveries still to be attempted without sending them.
    #[serde(rename = "events_expunged.v1")]
    Expunged { event_ids: Vec<Uuid> },
    /// A delivery was sent again by request at `at` (its task's `resent_at`) while a chain of
    /// retries may have been under way: dispatchers drop that chain's tasks (and any other
    /// sent before `at`) instead of attempting them.
    #[serde(rename = "delivery_resent.v1")]
    Resent { delivery_id: Uuid, at: DateTime<Utc> },
    /// A producer token was created: publishers accept it from now on.
    #[serde(rename = "producer_token_upserted.v1")]
    ProducerTokenUpserted { token: ProducerGrant },
    /// A producer token was revoked: publishers refuse it from now on.
    #[serde(rename = "producer_token_revoked.v1")]
    ProducerTokenRevoked { id: Uuid },
    /// A tenant's ceiling on deliveries per second was set or removed: dispatchers pace its
    /// deliveries at their share of it.
    #[serde(rename = "tenant_limit_set.v1")]
    TenantLimitSet(TenantLimit),
}

/// A tenant's ceiling on deliveries per second across its webhooks (`None`: none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantLimit {
    pub tenant_id: Uuid,
    pub max_deliveries_per_second: Option<u32>,
}

/// What a producer token may publish, as publishers check it: the token itself never leaves the
/// registry, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerGrant {
    pub id: Uuid,
    /// Names the producer in logs and metrics.
    pub name: String,
    /// Lowercase hex SHA-256 of the token.
    pub token_hash: String,
    /// Patterns of the types it may publish; `None`: any.
    #[serde(default)]
    pub event_types: Option<Vec<String>>,
    /// The tenants it may publish for; `None`: any, feed events (no tenant) included.
    #[serde(default)]
    pub tenant_ids: Option<Vec<Uuid>>,
}

/// A catalog entry as the publisher validates events with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogType {
    pub value: String,
    /// JSON Schema that events of this type must satisfy.
    pub schema: Option<serde_json::Value>,
}

/// What `GET /v1/internal/routing` answers: everything a publisher routes with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoutingSnapshot {
    pub subscriptions: Vec<Subscription>,
    pub event_types: Vec<CatalogType>,
    /// Events whose payloads were erased and that may still have deliveries to attempt (those
    /// routed within the longest retry span): dispatchers end these deliveries unsent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expunged: Vec<Uuid>,
    /// Deliveries sent again by request within `retry::RESENDS_KEPT` (what
    /// `ChangeNotice::Resent` said): a dispatcher that started after the notice drops the
    /// replaced chain's tasks all the same.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resent: Vec<Resent>,
    /// The live producer tokens (publishers accept these besides the bootstrap token).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub producer_tokens: Vec<ProducerGrant>,
    /// The tenants with a ceiling on deliveries per second.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tenant_limits: Vec<TenantLimit>,
}

/// A delivery sent again by request at `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resent {
    pub delivery_id: Uuid,
    pub at: DateTime<Utc>,
}

/// What one read of `GET /v1/internal/routing` brought: a read that names the version it holds
/// (`If-None-Match` with the `ETag` it was sent) gets `Unchanged` while the registry's webhooks
/// and catalog are as they were.
#[derive(Debug, Clone, PartialEq)]
pub enum RoutingRead {
    Unchanged,
    Snapshot {
        snapshot: RoutingSnapshot,
        /// The version sent with it, to name next time.
        tag: Option<String>,
    },
}
