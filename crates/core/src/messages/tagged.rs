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
