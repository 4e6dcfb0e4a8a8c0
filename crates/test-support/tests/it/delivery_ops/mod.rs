//! What a customer and an operator do to deliveries and what the log keeps of them: secrets
//! rotated, tests sent, retries, recovery, replay, erasure, tenants deleted, the log itself.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hookwire_core::messages::{AttemptRecord, DeliveryStatus, LedgerMessage};
use hookwire_core::signing::{verify, SigningKey};
use hookwire_test_support::{eventually, free_port, terminate, Receiver, TestEnv};
use serde_json::{json, Value};
use uuid::Uuid;

mod erasure;
mod log;
mod operational;
mod recovery;
mod reloads;
mod retry_by_hand;
mod secrets;
mod tenants;
mod test_events;

fn verifies(secret: &str, got: &hookwire_test_support::Received) -> bool {
    verify(
        &SigningKey::parse(secret).unwrap(),
        got.header("webhook-id").unwrap(),
        got.header("webhook-timestamp").unwrap(),
        got.header("webhook-signature").unwrap(),
        &got.body,
        chrono::Utc::now().timestamp(),
    )
    .is_ok()
}

/// The ids an attempt record names besides its own delivery's.
#[derive(Clone, Copy)]
struct Ids {
    webhook_id: Uuid,
    tenant_id: Uuid,
    event_id: Uuid,
}

impl Ids {
    /// A new webhook and event of `tenant`, known only to the records that name them.
    fn new(tenant: &str) -> Self {
        Self {
            webhook_id: hookwire_core::id::v7(),
            tenant_id: tenant.parse().unwrap(),
            event_id: hookwire_core::id::v7(),
        }
    }
}

/// The record of attempt `attempt` of `delivery_id`, made at `at`: a 200 succeeds, anything else
/// is to be retried. Its signature names the attempt.
fn attempt_record(ids: Ids, delivery_id: Uuid, attempt: u32, response_status: u16, at: DateTime<Utc>) -> LedgerMessage {
    LedgerMessage::AttemptRecorded(AttemptRecord {
        delivery_id,
        webhook_id: ids.webhook_id,
        tenant_id: ids.tenant_id,
        event_id: ids.event_id,
        event_type: "task.created".into(),
        subject: None,
        is_test: false,
        event_created_at: at,
        attempt,
        attempted_at: at + chrono::Duration::seconds(attempt.into()),
        response_status: Some(response_status),
        response_body: None,
        error: None,
        duration_ms: attempt * 10,
        signature: format!("v1,attempt-{attempt}"),
        status: if response_status == 200 {
            DeliveryStatus::Success
        } else {
            DeliveryStatus::Retrying
        },
        next_retry_at: None,
        in_line: false,
    })
}

/// Puts records on the ledger queue as a dispatcher does.
async fn send_to_ledger(env: &TestEnv, entries: Vec<LedgerMessage>) {
    let body = serde_json::to_vec(&LedgerMessage::Batch { entries }).unwrap();
    env.publish_amqp("", &env.topology().ledger_queue(), &body).await;
}
