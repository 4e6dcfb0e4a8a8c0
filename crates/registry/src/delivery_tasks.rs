//! Deliveries the registry starts itself: manual retries, recovery, replays and test events.
//! They go through the same deliveries exchange as the publisher's, or for an ordered webhook
//! through the lines queue (recover and replay), with the same confirms.

use hookwire_broker::Outgoing;
use hookwire_core::messages::{DeliveryTask, Event, LedgerMessage, RoutedDelivery, TaskMessage};
use hookwire_http::ApiError;
use uuid::Uuid;

use crate::db::models::Webhook;
use crate::AppState;

/// Where tasks go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// Straight to the dispatchers, in the standard lane (a retry by hand, a test event).
    Dispatchers,
    /// To the dispatchers in the bulk lane (`hookwire_core::topology::DeliveryQueue::bulk`):
    /// a recover or a replay may be a whole backlog, which must not queue ahead of every other
    /// tenant's deliveries.
    Bulk,
    /// Into their subjects' lines (`crate::lines`), in the order given.
    Lines,
}

impl Via {
    /// Where a backlog of `w`'s deliveries goes: through the lines for a webhook with
    /// `ordering: "subject"`, else the bulk lane.
    pub fn backlog_of(w: &Webhook) -> Self {
        if w.ordered() {
            Self::Lines
        } else {
            Self::Bulk
        }
    }
}

/// Publishes tasks (and ledger records for new deliveries) and awaits every confirm; 503 when
/// the broker does not confirm, saying whether some of it may still have been sent.
pub async fn send(
    state: &AppState,
    via: Via,
    tasks: &[DeliveryTask],
    records: &[LedgerMessage],
) -> Result<(), ApiError> {
    let topology = &state.topology;
    let exchange = match via {
        Via::Dispatchers | Via::Bulk => topology.deliveries_exchange(),
        Via::Lines => String::new(),
    };
    let ledger = topology.ledger_queue();
    let bodies: Vec<(Vec<u8>, String, String)> = tasks
        .iter()
        .map(|t| {
            let body = serde_json::to_vec(&TaskMessage::V1(t.clone())).expect("tasks serialize");
            let routing_key = match via {
                Via::Dispatchers | Via::Bulk => topology
                    .delivery_queue(t.delivery_id, false, via == Via::Bulk)
                    .routing_key(),
                Via::Lines => topology.lines_queue(),
            };
            (body, t.delivery_id.to_string(), routing_key)
        })
        .collect();
    let record_bodies: Vec<(Vec<u8>, String)> = records
        .iter()
        .map(|r| {
            (
                serde_json::to_vec(r).expect("records serialize"),
                hookwire_core::id::v7().to_string(),
            )
        })
        .collect();
    let mut outgoing: Vec<Outgoing<'_>> = record_bodies
        .iter()
        .map(|(body, id)| Outgoing {
            exchange: "",
            routing_key: &ledger,
            body,
            message_id: id,
            delay: None,
        })
        .collect();
    outgoing.extend(bodies.iter().map(|(body, id, routing_key)| Outgoing {
        exchange: &exchange,
        routing_key,
        body,
        message_id: id,
        delay: None,
    }));
    state.link.publish(&outgoing).await.map_err(|e| {
        tracing::warn!(error = %e, tasks = tasks.len(), "tasks not confirmed by the broker");
        ApiError::Unavailable(if e.nothing_sent() {
            "the message broker is unavailable; nothing was sent"
        } else {
            "the message broker did not confirm; some deliveries may still be attempted, check the delivery log before sending again"
        })
    })
}

/// The task that sends delivery `d` (of `event` to webhook `w`, as it is configured now) again
/// by request at `at`, after the attempts it has made: a retry by hand or a recover. It carries
/// the time, so dispatchers told of it (`Notices::resent`) drop the tasks of the delivery's
/// chain from before.
pub fn resend(
    state: &AppState,
    w: &Webhook,
    d: &crate::db::models::Delivery,
    event: &Event,
    at: chrono::DateTime<chrono::Utc>,
) -> DeliveryTask {
    let attempts = u32::try_from(d.attempts).unwrap_or(0);
    let mut task = task(state, w, d.id, event, attempts);
    task.resent_at = Some(at);
    task
}

/// The task for a delivery of `event` to webhook `w` as it is configured now.
pub fn task(state: &AppState, w: &Webhook, delivery_id: Uuid, event: &Event, attempts: u32) -> DeliveryTask {
    let target = crate::notices::target(w, state.config.webhooks.default_retry_policy);
    DeliveryTask::new(delivery_id, event, target, event.request_body(), attempts)
}

/// The ledger record of a new delivery created outside the publisher.
pub fn routed(event: &Event, task: &DeliveryTask) -> LedgerMessage {
    LedgerMessage::EventRouted {
        event: event.clone(),
        deliveries: vec![RoutedDelivery {
            delivery_id: task.delivery_id,
            webhook_id: task.target.webhook_id,
            tenant_id: task.target.tenant_id,
        }],
    }
}
