//! A message's acknowledgement once its deliveries are done, and the attempt records and retries
//! published in batches.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use hookwire_broker::lapin::options::BasicNackOptions;
use hookwire_broker::lapin::{Acker, Channel};
use hookwire_broker::Outgoing;
use hookwire_core::messages::{AttemptRecord, DeliveryStatus, DeliveryTask, LedgerMessage};
use tokio::sync::{mpsc, oneshot};

use crate::client::Attempt;

/// One message from the deliveries queue (a task, or a group of them) while its deliveries run.
/// It is acknowledged once every one has finished with its outcome confirmed; if any could not
/// be confirmed, the whole message goes back to the queue (at-least-once: the members already
/// delivered are delivered again, receivers dedupe on `webhook-id`).
pub(super) struct Message {
    pub(super) tag: u64,
    pub(super) left: AtomicUsize,
    pub(super) failed: AtomicBool,
    pub(super) acker: Acker,
}

impl Message {
    pub(super) fn new(tag: u64, deliveries: usize, acker: Acker) -> Self {
        Self {
            tag,
            left: AtomicUsize::new(deliveries),
            failed: AtomicBool::new(false),
            acker,
        }
    }

    /// One delivery of the message is finished. A call past the last delivery is a bug; it is
    /// logged and ignored, never a second acknowledgement (which would close the channel).
    pub(super) async fn finished(&self, acks: &crate::acks::Acks) {
        match self
            .left
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
        {
            Ok(1) => {}
            Ok(_) => return,
            Err(_) => {
                tracing::error!(
                    tag = self.tag,
                    "a delivery finished after its message was settled; ignored"
                );
                return;
            }
        }
        if self.failed.load(Ordering::Acquire) {
            requeue(&self.acker).await;
            acks.settled(self.tag);
        } else {
            acks.done(self.tag);
        }
    }
}

/// Hands a message back to the queue.
pub(super) async fn requeue(acker: &Acker) {
    let requeue = BasicNackOptions {
        requeue: true,
        multiple: false,
    };
    if let Err(e) = acker.nack(requeue).await {
        tracing::warn!(error = %e, "negative acknowledgement lost; the broker will redeliver the task");
    }
}

pub(super) struct Retry {
    /// The delay exchange.
    pub(super) exchange: String,
    /// The routing key of the delivery's shard, which it returns to.
    pub(super) routing_key: String,
    /// The delay tier, in seconds.
    pub(super) tier: u32,
    pub(super) body: Vec<u8>,
    pub(super) id: String,
}

impl Retry {
    pub(super) fn outgoing(&self) -> Outgoing<'_> {
        Outgoing {
            exchange: &self.exchange,
            routing_key: &self.routing_key,
            body: &self.body,
            message_id: &self.id,
            delay: Some(self.tier),
        }
    }
}

/// One attempt's record waiting to be published, and who to tell when it is safe.
pub struct Pending {
    pub(super) record: LedgerMessage,
    pub(super) retry: Option<Retry>,
    pub(super) reply: oneshot::Sender<Result<(), String>>,
}

/// Most records gathered into one ledger message, and how long the first may wait for others.
pub(super) const SINK_MAX: usize = 256;
pub(super) const SINK_WAIT: Duration = Duration::from_millis(2);
/// How long a session that stops waits, after draining, for its last records to be confirmed and
/// its last tasks acknowledged.
pub(super) const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Gathers attempt records for up to `SINK_WAIT` and publishes them as one ledger message, with
/// their retries, in one confirm round. Each waiter learns whether its own record is safe; only
/// then is its task acknowledged. This turns one broker message per attempt into a fraction.
/// The final records of deliveries released from a line (`in_line`) also go to the line ends
/// queue, in the same round: there the registry moves their lines on.
pub(super) async fn sink(publish: Channel, (ledger, line_ends): (String, String), mut rx: mpsc::Receiver<Pending>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + SINK_WAIT;
        while batch.len() < SINK_MAX {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(p)) => batch.push(p),
                _ => break,
            }
        }
        let mut records = Vec::with_capacity(batch.len());
        let mut waiters = Vec::with_capacity(batch.len());
        let mut retries = Vec::new();
        for p in batch {
            records.push(p.record);
            retries.extend(p.retry);
            waiters.push(p.reply);
        }
        let moved: Vec<LedgerMessage> = records.iter().filter(|r| ends_a_line(r)).cloned().collect();
        let moved =
            (!moved.is_empty()).then(|| serde_json::to_vec(&LedgerMessage::batch(moved)).expect("records serialize"));
        let body = serde_json::to_vec(&LedgerMessage::batch(records)).expect("records serialize");
        let id = hookwire_core::id::v7().to_string();
        let mut outgoing = vec![Outgoing {
            exchange: "",
            routing_key: &ledger,
            body: &body,
            message_id: &id,
            delay: None,
        }];
        if let Some(moved) = &moved {
            outgoing.push(Outgoing {
                exchange: "",
                routing_key: &line_ends,
                body: moved,
                message_id: &id,
                delay: None,
            });
        }
        outgoing.extend(retries.iter().map(Retry::outgoing));
        let result = hookwire_broker::publish_confirmed(&publish, &outgoing)
            .await
            .map_err(|e| e.to_string());
        for w in waiters {
            let _ = w.send(result.clone());
        }
    }
}

/// Whether `record` is the final outcome of a delivery released from its line.
fn ends_a_line(record: &LedgerMessage) -> bool {
    matches!(record, LedgerMessage::AttemptRecorded(a) if a.in_line && a.status.is_final())
}

pub(super) fn record_of(
    task: &DeliveryTask,
    attempt: &Attempt,
    at: DateTime<Utc>,
    status: DeliveryStatus,
    next_retry_at: Option<DateTime<Utc>>,
) -> LedgerMessage {
    LedgerMessage::AttemptRecorded(AttemptRecord {
        delivery_id: task.delivery_id,
        webhook_id: task.target.webhook_id,
        tenant_id: task.target.tenant_id,
        event_id: task.event_id,
        event_type: task.event_type.clone(),
        subject: task.subject.clone(),
        is_test: task.is_test,
        event_created_at: task.event_created_at,
        attempt: task.attempts,
        attempted_at: at,
        response_status: attempt.response_status,
        response_body: attempt.response_body.clone(),
        error: attempt.error.clone(),
        duration_ms: u32::try_from(attempt.duration.as_millis()).unwrap_or(u32::MAX),
        signature: attempt.signature.clone(),
        status,
        next_retry_at,
        in_line: task.in_line,
    })
}
