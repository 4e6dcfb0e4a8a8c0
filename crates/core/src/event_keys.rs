//! The registry's internal idempotency-key API (`/v1/internal/idempotency/*`): the registry keeps
//! the keys, publishers claim and settle them. Both sides use these types, so the wire format has
//! one definition.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A publisher's claim of an event's key: its scope (the tenant id, or `feed`), the key, and the
/// event id it would publish under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub scope: String,
    pub key: String,
    pub event_id: Uuid,
    /// This claim's own id, new for every claim: releasing or leaving unconfirmed a claim that
    /// is no longer this publisher's (another took it over while this one stalled, under the
    /// same event id) then changes nothing. Publishers from before it send none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<Uuid>,
}

/// `POST /v1/internal/idempotency/claim`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub claims: Vec<Claim>,
}

/// Its answer: one per claim, in order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Answers {
    pub results: Vec<Claimed>,
}

/// The answer to one claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Claimed {
    /// The key is this publisher's: publish, then settle.
    New,
    /// The key's earlier publish may have stored the event (it was not confirmed, or its
    /// publisher died mid-publish): it is this publisher's now, to publish again under this
    /// event id, then settle.
    Resume { event_id: Uuid },
    /// Accepted before: answer with the first event id and send nothing.
    Duplicate { event_id: Uuid },
    /// Another publisher is accepting it right now.
    InProgress,
}

/// How a claim's publish ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// Confirmed: the key is done for its 24 hours.
    Done,
    /// Refused before anything was sent: the key is free again.
    Released,
    /// Not confirmed, though the broker may have stored some of it: the next claim resumes it.
    Unconfirmed,
}

/// `POST /v1/internal/idempotency/settle`. Two flags rather than one field: publishers from
/// before the `unconfirmed` state send only `done`, and their `false` still means released.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settle {
    pub claims: Vec<Claim>,
    done: bool,
    #[serde(default)]
    maybe_sent: bool,
}

impl Settle {
    pub fn new(claims: Vec<Claim>, how: Settlement) -> Self {
        Self {
            claims,
            done: how == Settlement::Done,
            maybe_sent: how == Settlement::Unconfirmed,
        }
    }

    pub fn settlement(&self) -> Settlement {
        match (self.done, self.maybe_sent) {
            (true, _) => Settlement::Done,
            (false, false) => Settlement::Released,
            (false, true) => Settlement::Unconfirmed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_settlement_survives_the_wire_and_an_older_publishers_body_still_releases() {
        for how in [Settlement::Done, Settlement::Released, Settlement::Unconfirmed] {
            let body = serde_json::to_string(&Settle::new(vec![], how)).unwrap();
            let back: Settle = serde_json::from_str(&body).unwrap();
            assert_eq!(back.settlement(), how, "{body}");
        }
        let older: Settle = serde_json::from_str(r#"{"claims": [], "done": false}"#).unwrap();
        assert_eq!(older.settlement(), Settlement::Released);
    }
}
