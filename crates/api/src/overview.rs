//! The system at a glance: `GET /v1/admin/overview` (operator).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Throughput, backlog and the webhooks that need an operator's eye, over every tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Overview {
    /// When the figures were read.
    pub at: DateTime<Utc>,
    /// Deliveries routed in the last minute, per second, and how many of them have succeeded
    /// or failed so far.
    pub deliveries_per_second: f64,
    pub succeeded_per_second: f64,
    pub failed_per_second: f64,
    /// Messages waiting in each broker queue; null while the broker is unreachable.
    pub queues: Option<Vec<QueueDepth>>,
    /// Active webhooks whose deliveries all fail, longest failing first.
    pub failing: WebhookList,
    /// Deactivated webhooks, most recently changed first.
    pub disabled: WebhookList,
    /// The receivers slowest to answer over the last ten minutes' attempts, slowest first.
    pub slowest: Vec<SlowReceiver>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct QueueDepth {
    pub queue: String,
    /// Ready messages (not those delivered and not yet acknowledged).
    pub messages: u32,
}

/// How many webhooks are in a state, and the first ten.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WebhookList {
    pub count: i64,
    pub webhooks: Vec<WebhookBrief>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WebhookBrief {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub url: String,
    /// Consecutive failed deliveries.
    pub failure_count: i32,
    pub failing_since: Option<DateTime<Utc>>,
    pub disabled_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SlowReceiver {
    pub webhook_id: Uuid,
    pub tenant_id: Uuid,
    pub url: String,
    pub attempts: i64,
    pub mean_ms: f64,
    pub p95_ms: f64,
}
