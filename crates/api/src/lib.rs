#![doc = include_str!("../README.md")]

pub mod admin_tokens;
pub mod api_keys;
pub mod audit;
pub mod deliveries;
pub mod erasure;
pub mod event_types;
pub mod events;
pub mod listen;
pub mod overview;
pub mod page;
pub mod portal;
pub mod problem;
pub mod producer_tokens;
pub mod retry;
pub mod tenants;
pub mod webhooks;

pub use page::Page;
pub use problem::{FieldError, Problem};

/// Serde for a field a PATCH may set, clear (`null`) or leave out: `None` when absent,
/// `Some(None)` when null (`#[serde(default, with = "hookwire_api::nullable")]`).
pub mod nullable {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }

    pub fn serialize<S: Serializer, T: Serialize>(value: &Option<Option<T>>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(inner) => inner.serialize(s),
            None => s.serialize_none(),
        }
    }
}
