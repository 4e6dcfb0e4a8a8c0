//! `hookwire listen`: `/v1/listen`. A listen session is a temporary webhook whose deliveries are
//! relayed to the CLI that holds it, over its own connection to the registry.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// The body of `POST /v1/listen`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListenIn {
    /// Patterns of the events to receive, as a webhook's `events` (`person.*`, `*`).
    #[schema(schema_with = crate::webhooks::patterns)]
    pub events: Vec<String>,
}

/// A listen session: its temporary webhook and the secret the relayed requests are signed with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Listening {
    pub id: Uuid,
    pub webhook_id: Uuid,
    /// The `whsec_…` signing secret, for the local receiver to verify with.
    pub secret: String,
    pub events: Vec<String>,
    /// When the session ends unless its stream (`GET /v1/listen/{id}/requests`) keeps it alive.
    pub expires_at: DateTime<Utc>,
}

/// One relayed request, an event of the stream `GET /v1/listen/{id}/requests`: forward it to the
/// local receiver and post what it answered to `POST /v1/listen/{id}/responses`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RelayedRequest {
    /// Send both back with the answer.
    pub correlation_id: String,
    pub reply_to: String,
    /// The headers, in order, as a receiver gets them (`webhook-id`, `webhook-signature`, …).
    pub headers: Vec<Header>,
    /// The request body, byte for byte as signed.
    pub body: String,
}

/// One header of a relayed request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Header {
    pub name: String,
    pub value: String,
}

/// The body of `POST /v1/listen/{id}/responses`: what the local receiver answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RelayedResponse {
    #[schema(min_length = 1, max_length = 200)]
    pub correlation_id: String,
    #[schema(min_length = 1, max_length = 255)]
    pub reply_to: String,
    /// The local receiver's status, or null when it could not be reached.
    #[serde(default)]
    #[schema(minimum = 100, maximum = 599)]
    pub status: Option<u16>,
    /// The start of what it answered (the delivery log keeps 1 KiB).
    #[serde(default)]
    #[schema(max_length = 4096)]
    pub body: Option<String>,
    /// Why there is no status, e.g. `connect: connection refused`.
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub error: Option<String>,
    #[schema(maximum = 600000)]
    pub duration_ms: u64,
}
