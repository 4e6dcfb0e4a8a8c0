//! Event ingest (the publisher): `POST /v1/events` and `POST /v1/events:batch`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// The body of `POST /v1/events`, and each entry of a batch: one domain event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEvent {
    /// A type in the catalog (`person.created`).
    #[serde(rename = "type")]
    #[schema(min_length = 1, max_length = 128)]
    pub event_type: String,
    /// What happened, any JSON value, checked against the type's schema when it has one.
    /// Required; `null` for an event without data.
    pub data: serde_json::Value,
    /// The tenant whose webhooks receive it; absent or null for every tenant's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<Uuid>,
    /// The entity it is about (`person/42`): erasure and ordering go by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 256)]
    pub subject: Option<String>,
    /// Only webhooks with one of these channels, or none, receive it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = crate::webhooks::nullable_channels)]
    pub channels: Option<Vec<String>>,
    /// Sent to the tenant's test-mode webhooks only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_test: Option<bool>,
    /// A repeat within 24 h is answered with the first event's id and not sent again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 256)]
    pub idempotency_key: Option<String>,
    /// W3C trace context of the producer's span. Over HTTP the `traceparent` header serves
    /// when this is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 64)]
    pub traceparent: Option<String>,
}

impl NewEvent {
    /// An event of `event_type` with `data`, for every tenant's webhooks until
    /// [`NewEvent::for_tenant`] says whose.
    pub fn new(event_type: impl Into<String>, data: serde_json::Value) -> Self {
        Self {
            event_type: event_type.into(),
            data,
            tenant_id: None,
            subject: None,
            channels: None,
            is_test: None,
            idempotency_key: None,
            traceparent: None,
        }
    }

    pub fn for_tenant(mut self, tenant_id: Uuid) -> Self {
        self.tenant_id = Some(tenant_id);
        self
    }
}

/// The body of `POST /v1/events:batch`: accepted or refused together. At most
/// `ingest.max_batch` events (1,000 by default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEventBatch {
    #[schema(min_items = 1)]
    pub events: Vec<NewEvent>,
}

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
