//! Event ingest (the publisher): `POST /v1/events` and `POST /v1/events:batch`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// What an accepted event matched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Accepted {
    /// The event's id: the `webhook-id` its receivers get.
    pub event_id: Uuid,
    /// Webhooks it was sent to.
    pub matched: u32,
    /// True when its `idempotency_key` was seen in the last 24 h: `event_id` is the first
    /// event's, and nothing was sent again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

/// The answer to `POST /v1/events:batch`: one per event, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BatchAccepted {
    pub results: Vec<Accepted>,
}
