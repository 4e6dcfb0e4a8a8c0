//! Every message that crosses the broker. `proto/*.schema.json` describes each one for other
//! languages; `tests` below checks that the two agree. Each message names its own version in its
//! `kind` field (`delivery_task.v1`): a consumer that meets an unknown kind dead-letters the
//! message instead of guessing.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::retry::RetryPolicy;

mod routing;
mod tagged;
#[cfg(test)]
mod tests;

pub use routing::*;

/// The event as accepted from a producer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub event_type: String,
    /// `None` for a data-feed event, which goes to every tenant.
    pub tenant_id: Option<Uuid>,
    pub subject: Option<String>,
    #[serde(default)]
    pub channels: Vec<String>,
    pub data: serde_json::Value,
    pub is_test: bool,
    pub created_at: DateTime<Utc>,
}

impl Event {
    /// The request body a receiver gets (contract §5): `{"id", "type", "timestamp", "data"}`,
    /// the timestamp being when the event was accepted (RFC 3339, milliseconds).
    pub fn request_body(&self) -> String {
        self.request_json().to_string()
    }

    /// [`Event::request_body`] before it is written out (the delivery log shows it).
    pub fn request_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "type": self.event_type,
            "timestamp": self.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "data": self.data,
        })
    }
}

impl DeliveryTask {
    /// The task for a new delivery of `event` to `target`, or a manual retry of an existing one
    /// (`attempts` already made; the next attempt is numbered `attempts + 1`).
    pub fn new(delivery_id: Uuid, event: &Event, target: Target, body: String, attempts: u32) -> Self {
        Self {
            delivery_id,
            event_id: event.id,
            event_type: event.event_type.clone(),
            subject: event.subject.clone(),
            is_test: event.is_test,
            event_created_at: event.created_at,
            attempts,
            first_attempt_at: None,
            not_before: None,
            target,
            body,
            traceparent: None,
            parked: 0,
            resent_at: None,
            in_line: false,
            bulk_lane: false,
        }
    }
}

/// The optional `header_name: prefix auth_secret` header of a webhook, secret sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthHeader {
    pub name: String,
    /// Sent before the secret with one space between (`Bearer`), when set.
    pub prefix: Option<String>,
    /// The secret, sealed (`hookwire_core::crypto`).
    pub secret_sealed: String,
}

impl AuthHeader {
    /// The header value: `prefix secret`, or the secret alone.
    pub fn value(&self, secret: &str) -> String {
        match self.prefix.as_deref() {
            Some(prefix) if !prefix.is_empty() => format!("{prefix} {secret}"),
            _ => secret.to_owned(),
        }
    }
}

/// Everything a dispatcher needs to deliver to one webhook. Secrets stay sealed on the broker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub webhook_id: Uuid,
    pub tenant_id: Uuid,
    pub url: String,
    /// Sealed `whsec_…` secrets, current first; a second one during a rotation's overlap.
    pub secrets_sealed: Vec<String>,
    /// When the rotation's overlap ends: from then on only the first secret signs, whatever else
    /// this target still lists (a task queued for a retry outlives the overlap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap_ends_at: Option<DateTime<Utc>>,
    pub auth_header: Option<AuthHeader>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub timeout_seconds: u32,
    pub retry_policy: RetryPolicy,
    /// Most attempts per second to this webhook; `None` is unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_second: Option<u32>,
    /// When the registry last changed the webhook (its `modified_at`): which version of it these
    /// settings are. A dispatcher that has heard only of an older one delivers with these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified_at: Option<DateTime<Utc>>,
}

impl Target {
    /// The sealed secrets that sign an attempt made at `now`: the rotated-out one only until its
    /// overlap ends.
    pub fn signing_secrets(&self, now: DateTime<Utc>) -> &[String] {
        match self.overlap_ends_at {
            Some(end) if now >= end => &self.secrets_sealed[..self.secrets_sealed.len().min(1)],
            _ => &self.secrets_sealed,
        }
    }
}

/// Publisher (or registry, for manual retries) → dispatchers, on the deliveries queue.
/// Decoded by the `tagged` module (see there), encoded by serde with `kind` first.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind")]
// Decoded once per broker message and turned into tasks at once: never stored, so not boxed.
#[allow(clippy::large_enum_variant)]
pub enum TaskMessage {
    /// Deliver one event to one webhook (and how far that delivery has got).
    #[serde(rename = "delivery_task.v1")]
    V1(DeliveryTask),
    /// Deliver one event to several webhooks: the publisher's first attempt of an event routed
    /// to more than one webhook, one broker message instead of one per webhook. Retries and
    /// parked attempts leave the group as `delivery_task.v1` messages of their own.
    #[serde(rename = "delivery_group.v1")]
    Group(DeliveryGroup),
    /// The first attempts of several events in one message: the tasks and groups of one ingest
    /// request, so a producer that publishes in batches costs the broker one message per batch
    /// rather than one per event. Retries and parks leave it as `delivery_task.v1`.
    #[serde(rename = "delivery_batch.v1")]
    Batch { entries: Vec<TaskMessage> },
}

impl TaskMessage {
    /// The deliveries this message asks for, as tasks.
    pub fn into_tasks(self) -> Vec<DeliveryTask> {
        match self {
            Self::V1(task) => vec![task],
            Self::Group(group) => group.into_tasks(),
            Self::Batch { entries } => entries.into_iter().flat_map(Self::into_tasks).collect(),
        }
    }

    /// How many deliveries the message asks for.
    pub fn deliveries(&self) -> usize {
        match self {
            Self::V1(_) => 1,
            Self::Group(group) => group.deliveries.len(),
            Self::Batch { entries } => entries.iter().map(Self::deliveries).sum(),
        }
    }

    /// One message for `entries`: the entry itself when there is one, a batch otherwise.
    pub fn batch(entries: Vec<TaskMessage>) -> Self {
        one_or_batch(entries, |entries| Self::Batch { entries })
    }

    /// `batch` of messages already encoded, without decoding them: each of `encoded` must be a
    /// `TaskMessage` as serde encodes it (the lines keep their tasks encoded).
    pub fn encoded_batch(encoded: &[&[u8]]) -> Vec<u8> {
        if let [one] = encoded {
            return one.to_vec();
        }
        let size = encoded.iter().map(|e| e.len() + 1).sum::<usize>();
        let mut out = Vec::with_capacity(size + 48);
        out.extend_from_slice(br#"{"kind":"delivery_batch.v1","entries":["#);
        for (i, e) in encoded.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(e);
        }
        out.extend_from_slice(b"]}");
        out
    }

    /// The id of the message's first delivery (a broker message is named after it).
    pub fn first_delivery_id(&self) -> Option<Uuid> {
        match self {
            Self::V1(task) => Some(task.delivery_id),
            Self::Group(group) => group.deliveries.first().map(|m| m.delivery_id),
            Self::Batch { entries } => entries.first()?.first_delivery_id(),
        }
    }
}

/// The only entry of `entries` when there is one, `batch(entries)` otherwise.
fn one_or_batch<T>(mut entries: Vec<T>, batch: impl FnOnce(Vec<T>) -> T) -> T {
    if entries.len() == 1 {
        entries.pop().expect("one entry")
    } else {
        batch(entries)
    }
}

/// One event for several webhooks, not attempted yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryGroup {
    pub event_id: Uuid,
    pub event_type: String,
    pub subject: Option<String>,
    pub is_test: bool,
    pub event_created_at: DateTime<Utc>,
    /// The exact request body, shared by every delivery of the group.
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    pub deliveries: Vec<GroupMember>,
}

/// One delivery of a group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupMember {
    pub delivery_id: Uuid,
    pub target: Target,
}

impl DeliveryGroup {
    /// Most members in one group (`proto/delivery_group.v1.schema.json`).
    pub const MAX_MEMBERS: usize = 1000;

    /// An empty group for `event`; members are pushed onto `deliveries`.
    pub fn new(event: &Event, body: String, traceparent: Option<String>) -> Self {
        Self {
            event_id: event.id,
            event_type: event.event_type.clone(),
            subject: event.subject.clone(),
            is_test: event.is_test,
            event_created_at: event.created_at,
            body,
            traceparent,
            deliveries: Vec::new(),
        }
    }

    /// One first-attempt task per member, exactly as if each had come as `delivery_task.v1`.
    pub fn into_tasks(self) -> Vec<DeliveryTask> {
        let Self {
            event_id,
            event_type,
            subject,
            is_test,
            event_created_at,
            body,
            traceparent,
            deliveries,
        } = self;
        deliveries
            .into_iter()
            .map(|m| DeliveryTask {
                delivery_id: m.delivery_id,
                event_id,
                event_type: event_type.clone(),
                subject: subject.clone(),
                is_test,
                event_created_at,
                attempts: 0,
                first_attempt_at: None,
                not_before: None,
                target: m.target,
                body: body.clone(),
                traceparent: traceparent.clone(),
                parked: 0,
                resent_at: None,
                in_line: false,
                bulk_lane: false,
            })
            .collect()
    }
}

/// One event for one webhook, and how far its delivery has got.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryTask {
    pub delivery_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub subject: Option<String>,
    pub is_test: bool,
    pub event_created_at: DateTime<Utc>,
    /// Attempts already made.
    pub attempts: u32,
    /// When the first attempt was made, once it has been.
    pub first_attempt_at: Option<DateTime<Utc>>,
    /// A retry is not attempted before this time (it waits in the retry queues meanwhile).
    pub not_before: Option<DateTime<Utc>>,
    pub target: Target,
    /// The exact request body, `{"id","type","timestamp","data"}`, serialized once per event.
    pub body: String,
    /// The W3C `traceparent` of the hop that created the task (the producer's trace continued).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// Times this task was parked because its webhook was stalled (each park waits twice as long).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub parked: u32,
    /// When the registry sent the delivery again by request (`POST /v1/deliveries/{id}/retry`,
    /// a recover), carried on through the retries that follow: a task of the delivery from
    /// before a later resend (`ChangeNotice::Resent`) is dropped, so one delivery never has two
    /// chains of retries. `None` for the chain the publisher started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resent_at: Option<DateTime<Utc>>,
    /// Released from its subject's line (a webhook with `ordering: "subject"`): its final
    /// outcome (`success`, `failed`, `exhausted`) releases the next delivery of the line, so its
    /// attempt records say so too.
    #[serde(default, skip_serializing_if = "is_false")]
    pub in_line: bool,
    /// Read from the bulk lane (`crate::topology::DeliveryQueue::bulk`), so its retries go back
    /// there. Not on the wire: the dispatcher sets it from the queue the task came from.
    #[serde(skip)]
    pub bulk_lane: bool,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Publisher and dispatchers → registry, on the ledger queue.
/// Decoded by the `tagged` module (see there), encoded by serde with `kind` first.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind")]
pub enum LedgerMessage {
    /// An accepted event and the deliveries it was routed to.
    #[serde(rename = "event_routed.v1")]
    EventRouted {
        event: Event,
        deliveries: Vec<RoutedDelivery>,
    },
    /// The outcome of one attempt.
    #[serde(rename = "attempt_recorded.v1")]
    AttemptRecorded(AttemptRecord),
    /// Several of the above in one broker message: publishers send one per request and
    /// dispatchers gather the records of a few milliseconds, so the ledger costs a fraction of a
    /// broker message per delivery.
    #[serde(rename = "ledger_batch.v1")]
    Batch { entries: Vec<LedgerMessage> },
}

impl LedgerMessage {
    /// One message for `entries`: the entry itself when there is one, a batch otherwise.
    pub fn batch(entries: Vec<LedgerMessage>) -> Self {
        one_or_batch(entries, |entries| Self::Batch { entries })
    }
}

/// One delivery created by routing an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoutedDelivery {
    pub delivery_id: Uuid,
    pub webhook_id: Uuid,
    pub tenant_id: Uuid,
}

pub use hookwire_api::deliveries::DeliveryStatus;

/// What one attempt did, and what the delivery's state is after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub delivery_id: Uuid,
    pub webhook_id: Uuid,
    pub tenant_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub subject: Option<String>,
    pub is_test: bool,
    pub event_created_at: DateTime<Utc>,
    /// 1 for the first attempt.
    pub attempt: u32,
    pub attempted_at: DateTime<Utc>,
    /// `None` when no HTTP response came (timeout, refused, DNS).
    pub response_status: Option<u16>,
    /// At most 1 KiB of the response body.
    pub response_body: Option<String>,
    /// Stable code and message when the attempt failed (`timeout: no response within 30 s`).
    pub error: Option<String>,
    pub duration_ms: u32,
    /// The `webhook-signature` header sent.
    pub signature: String,
    pub status: DeliveryStatus,
    pub next_retry_at: Option<DateTime<Utc>>,
    /// The task was released from its subject's line (`DeliveryTask::in_line`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub in_line: bool,
}

impl AttemptRecord {
    /// The line of an ordered delivery: its subject, `""` for events without one.
    pub fn line(&self) -> &str {
        self.subject.as_deref().unwrap_or("")
    }
}

impl DeliveryTask {
    /// The line of an ordered delivery within its webhook: its subject, `""` for events
    /// without one.
    pub fn line(&self) -> &str {
        self.subject.as_deref().unwrap_or("")
    }
}
