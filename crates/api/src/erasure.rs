//! Erasing event payloads for a data-protection request: `POST /v1/admin/events/expunge`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Which events to erase: one event, or every event with a subject; optionally only one
/// tenant's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ExpungeIn {
    Event(ExpungeEvent),
    Subject(ExpungeSubject),
}

/// One event to erase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpungeEvent {
    pub event_id: Uuid,
    /// Only if it is this tenant's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<Uuid>,
}

/// Every event with a subject to erase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpungeSubject {
    #[schema(min_length = 1, max_length = 256)]
    pub subject: String,
    /// Only this tenant's events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<Uuid>,
}

/// What an erasure did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Expunged {
    /// Events whose payloads it erased (not counting those erased before).
    pub events_expunged: u64,
    /// Their deliveries, whose recorded response bodies it erased.
    pub deliveries_cleared: u64,
    /// Of those, deliveries still to be attempted, which dispatchers end unsent.
    pub deliveries_stopped: u64,
}
