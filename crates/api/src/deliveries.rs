//! The delivery log: `/v1/deliveries`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// The state of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Held in its subject's line behind another delivery (webhooks with `ordering:
    /// "subject"`): sent once the one it waits for has succeeded or ended.
    Waiting,
    /// Not attempted yet.
    Pending,
    /// Failed at least once; another attempt is scheduled.
    Retrying,
    /// A 2xx answer.
    Success,
    /// Given up for a reason other than running out of retries: the webhook was deleted or
    /// deactivated, the receiver answered 410 Gone, or the payload was erased.
    Failed,
    /// Every retry of the webhook's policy failed.
    Exhausted,
}

impl DeliveryStatus {
    /// Every status, in the order a delivery can pass through them.
    pub const ALL: [Self; 6] = [
        Self::Waiting,
        Self::Pending,
        Self::Retrying,
        Self::Success,
        Self::Failed,
        Self::Exhausted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Pending => "pending",
            Self::Retrying => "retrying",
            Self::Success => "success",
            Self::Failed => "failed",
            Self::Exhausted => "exhausted",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == value)
    }

    /// Succeeded or ended: no attempt follows unless asked for.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Success | Self::Failed | Self::Exhausted)
    }
}

crate::page::paged_query! {
    /// The filters of `GET /v1/deliveries`.
    pub struct DeliveryQuery {
        pub webhook_id: Option<Uuid>,
        /// The deliveries of one event: the `webhook-id` its receivers got.
        pub event_id: Option<Uuid>,
        #[param(max_length = 128)]
        pub event_type: Option<String>,
        #[param(inline)]
        pub status: Option<DeliveryStatus>,
        pub is_test: Option<bool>,
        /// Created at or after this time (RFC 3339).
        pub since: Option<DateTime<Utc>>,
        /// Created before this time (RFC 3339).
        pub until: Option<DateTime<Utc>>,
        /// Where to read on from: taken from a page's `next` or `previous` link (it wins over
        /// `offset` and `page`).
        #[param(pattern = r"^[on][0-9]{1,16}\.[0-9a-f]{32}$")]
        pub cursor: Option<String>,
    }
}

/// One delivery of one event to one webhook, as the log lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Delivery {
    pub id: Uuid,
    pub webhook_id: Uuid,
    /// The event's id: the `webhook-id` header the receiver got.
    pub event_id: Uuid,
    pub event_type: String,
    /// The event's subject (an entity's id), or null.
    pub subject: Option<String>,
    pub status: DeliveryStatus,
    /// While `waiting`: the delivery of the same subject it waits for; null otherwise.
    pub waiting_for: Option<Uuid>,
    /// Attempts made so far.
    pub attempts: u32,
    /// The latest attempt's HTTP status; null when there was no answer (timeout, refused, DNS).
    pub response_status: Option<u16>,
    /// The latest answer's body, at most 1 KiB; shown as text, never as markup.
    pub response_body: Option<String>,
    /// Why the latest attempt failed, or null.
    pub error: Option<String>,
    pub duration_ms: Option<u32>,
    pub is_test: bool,
    pub created_at: DateTime<Utc>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub next_retry_at: Option<DateTime<Utc>>,
}

/// One attempt of a delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Attempt {
    /// 1 for the first attempt.
    pub attempt: u32,
    pub attempted_at: DateTime<Utc>,
    /// The HTTP status, or null when there was no answer.
    pub response_status: Option<u16>,
    pub duration_ms: u32,
    pub error: Option<String>,
    /// The `webhook-signature` header sent.
    pub signature: String,
}

/// A delivery with every attempt and the body sent. Here `attempts` is the list of attempts;
/// their number is `attempt_count`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeliveryDetail {
    pub id: Uuid,
    pub webhook_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub subject: Option<String>,
    pub status: DeliveryStatus,
    /// While `waiting`: the delivery of the same subject it waits for; null otherwise.
    pub waiting_for: Option<Uuid>,
    /// Attempts made so far.
    pub attempt_count: u32,
    pub attempts: Vec<Attempt>,
    pub response_status: Option<u16>,
    pub response_body: Option<String>,
    pub error: Option<String>,
    pub duration_ms: Option<u32>,
    pub is_test: bool,
    pub created_at: DateTime<Utc>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub next_retry_at: Option<DateTime<Utc>>,
    /// The request body the receiver got and gets on a retry: `{"id", "type", "timestamp",
    /// "data"}`; null once the event's payload is erased.
    pub payload: Option<serde_json::Value>,
    /// When the payload was erased (`POST /v1/admin/events/expunge`); null while it is kept.
    pub payload_expunged_at: Option<DateTime<Utc>>,
}

/// The answer to `POST /v1/deliveries/{id}/retry`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RetryAccepted {
    pub delivery_id: Uuid,
    /// The delivery's status once the attempt is queued.
    pub status: DeliveryStatus,
}
