//! The event-type catalog: `/v1/event-types` (customers read it) and `/v1/admin/event-types`
//! (the operator changes it).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

crate::page::paged_query! {
    /// The query of `GET /v1/event-types`.
    pub struct EventTypeQuery {
        /// List archived types too.
        pub include_archived: Option<bool>,
    }
}

/// A type of event producers publish and webhooks subscribe to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EventType {
    /// `entity.action` (`person.created`) or one word (`series_updated`).
    #[schema(example = "invoice.paid")]
    pub value: String,
    pub label: String,
    pub description: String,
    /// The JSON Schema this type's events follow (the publisher refuses others), or null.
    pub schema: Option<serde_json::Value>,
    /// Out of the catalog customers subscribe from; still delivered to the webhooks subscribed.
    pub archived: bool,
    /// An example of the events' `data`, valid against `schema`; a webhook's test sends it.
    pub example: Option<serde_json::Value>,
}

/// The body of `POST /v1/admin/event-types`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventTypeIn {
    /// Dot-separated segments of `[a-z0-9_]`; the `hookwire` namespace is Hookwire's own.
    #[schema(
        example = "invoice.paid",
        max_length = 128,
        pattern = r"^(?!hookwire(\.|$))[a-z0-9_]+(\.[a-z0-9_]+)*$"
    )]
    pub value: String,
    /// Not blank.
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub label: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 2000)]
    pub description: Option<String>,
    /// A JSON Schema enforced on events of this type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub schema: Option<serde_json::Value>,
    /// An example of the events' `data`, valid against `schema`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<serde_json::Value>,
}

/// The body of `PATCH /v1/admin/event-types/{value}` (at least one field). `description: null`
/// empties it; `schema: null` lifts the schema; `example: null` removes the example; `archived`
/// archives the type or brings it back. The example and the schema the type ends with must agree.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
pub struct EventTypePatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, min_length = 1, max_length = 200, pattern = r"\S")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::nullable")]
    #[schema(value_type = Option<String>, max_length = 2000)]
    pub description: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::nullable")]
    #[schema(value_type = Option<Object>)]
    pub schema: Option<Option<serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::nullable")]
    #[schema(value_type = Option<Value>)]
    pub example: Option<Option<serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub archived: Option<bool>,
}
