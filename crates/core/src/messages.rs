//! Every message that crosses the broker. `proto/*.schema.json` describes each one for other
//! languages; `tests` below checks that the two agree. Each message names its own version in its
//! `kind` field (`delivery_task.v1`): a consumer that meets an unknown kind dead-letters the
//! message instead of guessing.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::retry::RetryPolicy;

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
}

fn is_zero(n: &u32) -> bool {
    *n == 0
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

mod tagged {
    //! Decoding of the `kind`-tagged messages that cross the broker in bulk (`TaskMessage`,
    //! `LedgerMessage`). serde's derive for an internally tagged enum first copies the whole
    //! message into a tree of owned values, because the tag may come last; for a group of 100
    //! deliveries that copy showed in the dispatcher's profile of the fan-out benchmark. Our
    //! encoders (serde's, for these enums) write `kind` first, so the variant is known after the
    //! first key and the rest of the object decodes straight into it. An object from another
    //! encoder with `kind` elsewhere is still accepted, through a `serde_json::Value`.

    use std::fmt;
    use std::marker::PhantomData;

    use serde::de::value::MapAccessDeserializer;
    use serde::de::{Deserialize, Deserializer, Error as _, MapAccess, Visitor};

    use super::{DeliveryGroup, DeliveryTask, Event, LedgerMessage, RoutedDelivery, TaskMessage};

    /// A message whose variant is named by its `kind` field.
    trait Tagged: Sized {
        const KINDS: &'static [&'static str];
        /// Decodes the fields after `kind` (or all the others) as the variant `kind` names.
        fn from_kind<'de, A: MapAccess<'de>>(kind: &str, fields: A) -> Result<Self, A::Error>;
    }

    fn rest<'de, T: Deserialize<'de>, A: MapAccess<'de>>(fields: A) -> Result<T, A::Error> {
        T::deserialize(MapAccessDeserializer::new(fields))
    }

    fn decode<'de, T: Tagged, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
        d.deserialize_map(KindFirst(PhantomData))
    }

    struct KindFirst<T>(PhantomData<T>);

    impl<'de, T: Tagged> Visitor<'de> for KindFirst<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "an object whose `kind` is one of {:?}", T::KINDS)
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
            let Some(first) = map.next_key::<String>()? else {
                return Err(A::Error::missing_field("kind"));
            };
            if first == "kind" {
                let kind: String = map.next_value()?;
                return T::from_kind(&kind, map);
            }
            let mut object = serde_json::Map::new();
            object.insert(first, map.next_value()?);
            while let Some((key, value)) = map.next_entry::<String, serde_json::Value>()? {
                object.insert(key, value);
            }
            let Some(serde_json::Value::String(kind)) = object.remove("kind") else {
                return Err(A::Error::missing_field("kind"));
            };
            serde_json::Value::Object(object)
                .deserialize_map(Named::<T>(kind, PhantomData))
                .map_err(A::Error::custom)
        }
    }

    /// The fields of an object whose `kind` was found elsewhere.
    struct Named<T>(String, PhantomData<T>);

    impl<'de, T: Tagged> Visitor<'de> for Named<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "the fields of a `{}`", self.0)
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
            T::from_kind(&self.0, map)
        }
    }

    /// The fields of `delivery_batch.v1`.
    #[derive(serde::Deserialize)]
    struct TaskBatch {
        entries: Vec<TaskMessage>,
    }

    impl Tagged for TaskMessage {
        const KINDS: &'static [&'static str] = &["delivery_task.v1", "delivery_group.v1", "delivery_batch.v1"];

        fn from_kind<'de, A: MapAccess<'de>>(kind: &str, fields: A) -> Result<Self, A::Error> {
            match kind {
                "delivery_task.v1" => rest::<DeliveryTask, A>(fields).map(Self::V1),
                "delivery_group.v1" => rest::<DeliveryGroup, A>(fields).map(Self::Group),
                "delivery_batch.v1" => rest::<TaskBatch, A>(fields).map(|b| Self::Batch { entries: b.entries }),
                other => Err(A::Error::unknown_variant(other, Self::KINDS)),
            }
        }
    }

    /// The fields of `event_routed.v1`.
    #[derive(serde::Deserialize)]
    struct Routed {
        event: Event,
        deliveries: Vec<RoutedDelivery>,
    }

    /// The fields of `ledger_batch.v1`.
    #[derive(serde::Deserialize)]
    struct Batch {
        entries: Vec<LedgerMessage>,
    }

    impl Tagged for LedgerMessage {
        const KINDS: &'static [&'static str] = &["event_routed.v1", "attempt_recorded.v1", "ledger_batch.v1"];

        fn from_kind<'de, A: MapAccess<'de>>(kind: &str, fields: A) -> Result<Self, A::Error> {
            match kind {
                "event_routed.v1" => rest::<Routed, A>(fields).map(|r| Self::EventRouted {
                    event: r.event,
                    deliveries: r.deliveries,
                }),
                "attempt_recorded.v1" => rest(fields).map(Self::AttemptRecorded),
                "ledger_batch.v1" => rest::<Batch, A>(fields).map(|b| Self::Batch { entries: b.entries }),
                other => Err(A::Error::unknown_variant(other, Self::KINDS)),
            }
        }
    }

    impl<'de> Deserialize<'de> for TaskMessage {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            decode(d)
        }
    }

    impl<'de> Deserialize<'de> for LedgerMessage {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            decode(d)
        }
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::Strategy;

    fn event(data: serde_json::Value) -> Event {
        Event {
            id: crate::id::v7(),
            event_type: "person.created".into(),
            tenant_id: None,
            subject: None,
            channels: vec![],
            data,
            is_test: false,
            created_at: Utc::now(),
        }
    }

    fn target() -> Target {
        Target {
            webhook_id: Uuid::nil(),
            tenant_id: Uuid::nil(),
            url: "http://127.0.0.1:9/hook".into(),
            secrets_sealed: vec!["hw1:00000000:AAAA".into()],
            overlap_ends_at: None,
            auth_header: None,
            headers: BTreeMap::new(),
            timeout_seconds: 30,
            retry_policy: RetryPolicy {
                strategy: Strategy::Exponential,
                max_retries: 5,
                interval_seconds: 5,
                max_age_seconds: 86400,
            },
            rate_limit_per_second: None,
            modified_at: None,
        }
    }

    /// The fields `proto/<name>.schema.json` requires at its top level.
    fn required(name: &str) -> Vec<String> {
        let path = format!("{}/../../proto/{name}.schema.json", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
        schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    }

    fn assert_agrees(name: &str, message: &impl Serialize) {
        let value = serde_json::to_value(message).unwrap();
        let object = value.as_object().unwrap();
        for field in required(name) {
            assert!(
                object.contains_key(&field),
                "{name}: `{field}` required by the schema is missing"
            );
        }
        assert_eq!(object["kind"], name);
    }

    #[test]
    fn messages_agree_with_their_schemas_in_proto() {
        let now = Utc::now();
        let task = TaskMessage::V1(DeliveryTask {
            delivery_id: Uuid::nil(),
            event_id: Uuid::nil(),
            event_type: "person.created".into(),
            subject: None,
            is_test: false,
            event_created_at: now,
            attempts: 0,
            first_attempt_at: None,
            not_before: None,
            target: target(),
            body: "{}".into(),
            traceparent: None,
            parked: 0,
            resent_at: Some(now),
        });
        assert_agrees("delivery_task.v1", &task);
        let mut group = DeliveryGroup::new(&event(serde_json::json!({})), "{}".into(), None);
        group.deliveries.push(GroupMember {
            delivery_id: Uuid::nil(),
            target: target(),
        });
        assert_agrees("delivery_group.v1", &TaskMessage::Group(group.clone()));
        assert_agrees(
            "delivery_batch.v1",
            &TaskMessage::batch(vec![task, TaskMessage::Group(group)]),
        );
        let event = event(serde_json::json!({}));
        assert_agrees(
            "event_routed.v1",
            &LedgerMessage::EventRouted {
                event,
                deliveries: vec![],
            },
        );
        let subscription = Subscription {
            events: vec!["*".into()],
            channels: vec![],
            is_active: true,
            is_test: false,
            modified_at: now,
            target: target(),
        };
        assert_agrees(
            "subscription_upserted.v1",
            &ChangeNotice::Upserted {
                subscription: Box::new(subscription),
            },
        );
        assert_agrees(
            "subscription_deleted.v1",
            &ChangeNotice::Deleted {
                webhook_id: Uuid::nil(),
                deleted_at: now,
            },
        );
        let event_type = CatalogType {
            value: "person.created".into(),
            schema: None,
        };
        assert_agrees(
            "event_type_upserted.v1",
            &ChangeNotice::EventTypeUpserted { event_type },
        );
        assert_agrees(
            "events_expunged.v1",
            &ChangeNotice::Expunged {
                event_ids: vec![Uuid::nil()],
            },
        );
        assert_agrees(
            "delivery_resent.v1",
            &ChangeNotice::Resent {
                delivery_id: Uuid::nil(),
                at: now,
            },
        );
        let token = ProducerGrant {
            id: Uuid::nil(),
            name: "billing".into(),
            token_hash: "00".repeat(32),
            event_types: Some(vec!["invoice.*".into()]),
            tenant_ids: None,
        };
        assert_agrees(
            "producer_token_upserted.v1",
            &ChangeNotice::ProducerTokenUpserted { token },
        );
        assert_agrees(
            "producer_token_revoked.v1",
            &ChangeNotice::ProducerTokenRevoked { id: Uuid::nil() },
        );
    }

    #[test]
    fn the_rotated_out_secret_signs_until_the_overlap_ends_and_never_after() {
        let end = Utc::now();
        let mut t = target();
        t.secrets_sealed = vec!["new".into(), "old".into()];
        t.overlap_ends_at = Some(end);
        let before = end - chrono::Duration::milliseconds(1);
        assert_eq!(t.signing_secrets(before), ["new", "old"]);
        assert_eq!(t.signing_secrets(end), ["new"]);
        assert_eq!(t.signing_secrets(end + chrono::Duration::hours(1)), ["new"]);
        t.overlap_ends_at = None;
        assert_eq!(t.signing_secrets(end + chrono::Duration::hours(1)), ["new", "old"]);
    }

    #[test]
    fn the_request_body_is_the_contract_shape() {
        let e = event(serde_json::json!({"a": 1}));
        let v: serde_json::Value = serde_json::from_str(&e.request_body()).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 4);
        assert_eq!(v["id"], e.id.to_string());
        assert_eq!(v["type"], "person.created");
        assert_eq!(v["data"], serde_json::json!({"a": 1}));
        assert!(chrono::DateTime::parse_from_rfc3339(v["timestamp"].as_str().unwrap()).is_ok());
    }

    #[test]
    fn a_ledger_batch_round_trips() {
        let event = event(serde_json::json!({}));
        let one = LedgerMessage::EventRouted {
            event,
            deliveries: vec![],
        };
        assert_eq!(LedgerMessage::batch(vec![one.clone()]), one);
        let two = LedgerMessage::batch(vec![one.clone(), one.clone()]);
        assert_agrees("ledger_batch.v1", &two);
        let back: LedgerMessage = serde_json::from_str(&serde_json::to_string(&two).unwrap()).unwrap();
        assert_eq!(back, two);
    }

    #[test]
    fn a_group_becomes_the_tasks_its_members_would_have_been_sent_as() {
        let e = event(serde_json::json!({"n": 1}));
        let (a, b) = (crate::id::v7(), crate::id::v7());
        let mut group = DeliveryGroup::new(&e, e.request_body(), Some("00-trace".into()));
        for id in [a, b] {
            let mut t = target();
            t.webhook_id = id;
            group.deliveries.push(GroupMember {
                delivery_id: id,
                target: t,
            });
        }
        let wire = serde_json::to_vec(&TaskMessage::Group(group)).unwrap();
        let tasks = serde_json::from_slice::<TaskMessage>(&wire).unwrap().into_tasks();
        assert_eq!(tasks.len(), 2);
        for (task, id) in tasks.iter().zip([a, b]) {
            let mut t = target();
            t.webhook_id = id;
            let mut alone = DeliveryTask::new(id, &e, t, e.request_body(), 0);
            alone.traceparent = Some("00-trace".into());
            assert_eq!(*task, alone);
        }
    }

    #[test]
    fn a_batch_becomes_the_tasks_of_its_entries_in_order() {
        let (first, second) = (event(serde_json::json!({"n": 1})), event(serde_json::json!({"n": 2})));
        let alone = DeliveryTask::new(crate::id::v7(), &first, target(), first.request_body(), 0);
        let mut group = DeliveryGroup::new(&second, second.request_body(), None);
        let members = [crate::id::v7(), crate::id::v7()];
        for id in members {
            group.deliveries.push(GroupMember {
                delivery_id: id,
                target: target(),
            });
        }
        let one = TaskMessage::V1(alone.clone());
        assert_eq!(
            TaskMessage::batch(vec![one.clone()]),
            one,
            "a batch of one is its entry"
        );
        let batch = TaskMessage::batch(vec![one, TaskMessage::Group(group)]);
        assert_eq!(batch.deliveries(), 3);
        let wire = serde_json::to_vec(&batch).unwrap();
        let tasks = serde_json::from_slice::<TaskMessage>(&wire).unwrap().into_tasks();
        let ids: Vec<Uuid> = tasks.iter().map(|t| t.delivery_id).collect();
        assert_eq!(ids, [alone.delivery_id, members[0], members[1]]);
        assert_eq!(tasks[0], alone);
        assert_eq!(
            tasks[1].body,
            second.request_body(),
            "a group's members carry their own event"
        );
        assert_eq!(tasks[2].event_id, second.id);
    }

    #[test]
    fn a_message_decodes_whether_kind_comes_first_or_not() {
        let e = event(serde_json::json!({"n": [1, 2]}));
        let mut group = DeliveryGroup::new(&e, e.request_body(), None);
        group.deliveries.push(GroupMember {
            delivery_id: crate::id::v7(),
            target: target(),
        });
        let task = TaskMessage::batch(vec![TaskMessage::Group(group.clone()), TaskMessage::Group(group)]);
        let routed = LedgerMessage::EventRouted {
            event: e,
            deliveries: vec![RoutedDelivery {
                delivery_id: crate::id::v7(),
                webhook_id: crate::id::v7(),
                tenant_id: crate::id::v7(),
            }],
        };
        let ledger = LedgerMessage::batch(vec![routed.clone(), routed]);
        // As our encoders write it: `kind` first.
        let wire = serde_json::to_string(&task).unwrap();
        assert!(wire.starts_with(r#"{"kind":"delivery_batch.v1","#), "{wire}");
        assert_eq!(serde_json::from_str::<TaskMessage>(&wire).unwrap(), task);
        // From another encoder: keys in alphabetical order (serde_json's `Map`), so `kind` is
        // not first, here and in the batch's entries.
        fn kind_elsewhere(value: serde_json::Value) -> serde_json::Value {
            match value {
                serde_json::Value::Object(o) => {
                    serde_json::Value::Object(o.into_iter().map(|(k, v)| (k, kind_elsewhere(v))).collect())
                }
                serde_json::Value::Array(a) => a.into_iter().map(kind_elsewhere).collect(),
                other => other,
            }
        }
        for original in [
            serde_json::to_value(&task).unwrap(),
            serde_json::to_value(&ledger).unwrap(),
        ] {
            let moved = serde_json::to_string(&kind_elsewhere(original.clone())).unwrap();
            assert!(!moved.starts_with(r#"{"kind""#), "{moved}");
            let back = match original["kind"].as_str().unwrap() {
                "delivery_batch.v1" => serde_json::to_value(serde_json::from_str::<TaskMessage>(&moved).unwrap()),
                _ => serde_json::to_value(serde_json::from_str::<LedgerMessage>(&moved).unwrap()),
            };
            assert_eq!(back.unwrap(), original);
        }
        let missing = serde_json::from_str::<LedgerMessage>(r#"{"entries":[]}"#).unwrap_err();
        assert!(missing.to_string().contains("missing field `kind`"), "{missing}");
        let wrong = serde_json::from_str::<TaskMessage>(r#"{"kind":"delivery_task.v1","delivery_id":1}"#).unwrap_err();
        assert!(wrong.to_string().contains("expected a formatted UUID"), "{wrong}");
    }

    #[test]
    fn an_unknown_version_does_not_decode() {
        let err = serde_json::from_str::<TaskMessage>(r#"{"kind":"delivery_task.v9"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown variant"), "{err}");
    }
}
