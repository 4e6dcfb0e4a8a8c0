//! Deliveries the registry starts itself: manual retries, recovery, and test events. They go
//! through the same deliveries exchange as the publisher's, with the same confirms.

use hookwire_broker::{Link, Outgoing, PublishError};
use hookwire_core::messages::{DeliveryTask, Event, LedgerMessage, RoutedDelivery, TaskMessage};
use hookwire_core::topology::{Topology, TASK_ROUTING_KEY};

/// Publishes tasks (and ledger records for new deliveries) and awaits every confirm.
pub async fn send(
    link: &Link,
    topology: &Topology,
    tasks: &[DeliveryTask],
    records: &[LedgerMessage],
) -> Result<(), PublishError> {
    let exchange = topology.deliveries_exchange();
    let ledger = topology.ledger_queue();
    let bodies: Vec<(Vec<u8>, String)> = tasks
        .iter()
        .map(|t| {
            let body = serde_json::to_vec(&TaskMessage::V1(t.clone())).expect("tasks serialize");
            (body, t.delivery_id.to_string())
        })
        .collect();
    let record_bodies: Vec<(Vec<u8>, String)> = records
        .iter()
        .map(|r| {
            (
                serde_json::to_vec(r).expect("records serialize"),
                uuid::Uuid::now_v7().to_string(),
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
        })
        .collect();
    outgoing.extend(bodies.iter().map(|(body, id)| Outgoing {
        exchange: &exchange,
        routing_key: TASK_ROUTING_KEY,
        body,
        message_id: id,
    }));
    link.publish(&outgoing).await
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
