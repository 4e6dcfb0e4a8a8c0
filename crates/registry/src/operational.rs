//! Operational events (`hookwire_core::operational`): once a ledger batch is committed, each
//! delivery it moved to `exhausted` and each webhook it deactivated becomes an event for the
//! webhook's tenant (test or not, as the delivery or webhook), published to the ingest exchange
//! with confirms before the batch is acknowledged. A registry that stops in between has the
//! batch again and publishes again; the events' idempotency keys make the publisher send each
//! once (idempotency keys last 24 h).

use hookwire_broker::{Link, Outgoing, PublishError};
use hookwire_core::operational::{DELIVERY_EXHAUSTED, KIND, WEBHOOK_DISABLED};
use hookwire_core::topology::{Topology, INGEST_ROUTING_KEY};
use serde_json::{json, Value};

use crate::db::ledger::Exhausted;
use crate::db::models::Webhook;

/// Publishes operational events over the registry's broker link.
#[derive(Clone)]
pub struct Operational {
    link: Link,
    exchange: String,
}

impl Operational {
    pub fn new(link: Link, topology: &Topology) -> Self {
        Self {
            link,
            exchange: topology.ingest_exchange(),
        }
    }

    /// Publishes `events` with confirms: `Ok` once the broker has them all.
    pub async fn publish(&self, events: &[Value]) -> Result<(), PublishError> {
        let bodies: Vec<(String, Vec<u8>)> = events
            .iter()
            .map(|e| {
                let key = e["idempotency_key"].as_str().unwrap_or_default().to_owned();
                (key, serde_json::to_vec(e).expect("JSON values serialize"))
            })
            .collect();
        let messages: Vec<Outgoing<'_>> = bodies
            .iter()
            .map(|(key, body)| Outgoing {
                exchange: &self.exchange,
                routing_key: INGEST_ROUTING_KEY,
                body,
                message_id: key,
                delay: None,
            })
            .collect();
        self.link.publish(&messages).await
    }
}

/// The event telling a delivery's tenant that it ran out of retries.
pub fn exhausted(d: &Exhausted) -> Value {
    json!({
        "kind": KIND,
        "type": DELIVERY_EXHAUSTED,
        "tenant_id": d.tenant_id,
        "subject": d.webhook_id.to_string(),
        "is_test": d.is_test,
        "idempotency_key": format!("{DELIVERY_EXHAUSTED}:{}:{}", d.delivery_id, d.attempts),
        "data": {
            "delivery_id": d.delivery_id,
            "webhook_id": d.webhook_id,
            "event_id": d.event_id,
            "event_type": d.event_type,
            "attempts": d.attempts,
            "response_status": d.response_status,
            "error": d.error,
            "last_attempt_at": d.last_attempt_at,
        },
    })
}

/// The event telling a webhook's tenant that it was deactivated for failing too long.
pub fn disabled(w: &Webhook) -> Value {
    json!({
        "kind": KIND,
        "type": WEBHOOK_DISABLED,
        "tenant_id": w.tenant_id,
        "subject": w.id.to_string(),
        "is_test": w.is_test,
        // One per run of failures: turning a webhook back on starts a new run.
        "idempotency_key": format!(
            "{WEBHOOK_DISABLED}:{}:{}",
            w.id,
            w.failing_since.unwrap_or(w.modified_at).timestamp_micros()
        ),
        "data": {
            "webhook_id": w.id,
            "url": w.url,
            "disabled_reason": w.disabled_reason,
            "failing_since": w.failing_since,
            "disabled_at": w.modified_at,
        },
    })
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use uuid::Uuid;

    use super::*;

    #[test]
    fn the_events_match_their_message_schema() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../proto/operational_event.v1.schema.json"
        );
        let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        let d = Exhausted {
            delivery_id: Uuid::from_u128(1),
            webhook_id: Uuid::from_u128(2),
            tenant_id: Uuid::from_u128(3),
            event_id: Uuid::from_u128(4),
            event_type: "task.created".into(),
            attempts: 3,
            response_status: Some(500),
            error: None,
            last_attempt_at: Some(Utc::now()),
            is_test: false,
        };
        let event = exhausted(&d);
        let errors: Vec<String> = validator.iter_errors(&event).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            event["idempotency_key"],
            format!("{DELIVERY_EXHAUSTED}:{}:3", d.delivery_id)
        );
        let mut not_ours = event.clone();
        not_ours["type"] = json!("task.created");
        assert!(!validator.is_valid(&not_ours));
    }
}
