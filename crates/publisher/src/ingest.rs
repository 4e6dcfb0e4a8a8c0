//! From a producer's event to delivery tasks on the broker: validate, route, publish confirmed.

use chrono::Utc;
use hookwire_api::events::NewEvent;
use hookwire_broker::{Link, Outgoing, PublishError};
use hookwire_core::messages::{
    DeliveryGroup, DeliveryTask, Event, GroupMember, LedgerMessage, RoutedDelivery, TaskMessage,
};
use hookwire_core::topology::Topology;
use hookwire_core::trace::TraceParent;
use hookwire_http::{typed, FieldError};
use serde_json::{Map, Value};

use crate::cache::Routes;
use hookwire_core::lanes::Lanes;

/// An event that passed validation, with its routing and idempotency details.
#[derive(Debug)]
pub struct Accepted {
    pub event: Event,
    pub idempotency_key: Option<String>,
    /// The parent the event's delivery tasks name: the ingest span (HTTP), the producer's span
    /// (AMQP), or a new trace.
    pub trace: TraceParent,
}

/// Who sent an event: producers publish the catalog's types, the registry Hookwire's own
/// (`hookwire_core::operational`), and neither the other's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Producer,
    Registry,
}

/// Reads one event sent over AMQP: checked against `NewEvent`'s schema (the one the
/// publisher's OpenAPI document publishes), then as [`check`] does.
pub fn parse(map: Map<String, Value>, routes: &Routes, source: Source) -> Result<Accepted, Vec<FieldError>> {
    let new = match typed::from_value::<NewEvent>(Value::Object(map)) {
        Ok(new) => new,
        Err(hookwire_http::ApiError::Validation(errors)) => return Err(errors),
        Err(e) => return Err(vec![FieldError::new("body", e.to_string())]),
    };
    check(new, routes, "", source)
}

/// Checks what no schema can say of an event that passed its schema: its type is in the catalog
/// (and is a producer's, not one of Hookwire's own) and its data matches the type's schema.
/// Errors name their field, prefixed with `prefix` (`events[3].`) in batches.
pub fn check(new: NewEvent, routes: &Routes, prefix: &str, source: Source) -> Result<Accepted, Vec<FieldError>> {
    let mut errors = Vec::new();
    let t = &new.event_type;
    if hookwire_core::patterns::is_reserved(t) != (source == Source::Registry) {
        let why = match source {
            Source::Producer => "is one of Hookwire's own event types, which only Hookwire publishes",
            Source::Registry => "is not one of Hookwire's own event types",
        };
        errors.push(FieldError::new("type", format!("`{t}` {why}")));
    } else if !routes.knows_type(t) {
        errors.push(FieldError::new(
            "type",
            format!("`{t}` is not an event type in the catalog"),
        ));
    } else {
        for problem in routes.schema_errors(t, &new.data, 10) {
            errors.push(FieldError::new(
                "data",
                format!("does not match the schema of `{t}`: {problem}"),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(errors
            .into_iter()
            .map(|e| FieldError::new(format!("{prefix}{}", e.field), e.message))
            .collect());
    }
    // Over AMQP the trace travels in the message; over HTTP the handler passes the header.
    let trace = new
        .traceparent
        .as_deref()
        .and_then(TraceParent::parse)
        .unwrap_or_else(TraceParent::new_root);
    Ok(Accepted {
        event: Event {
            id: hookwire_core::id::v7(),
            event_type: new.event_type,
            tenant_id: new.tenant_id,
            subject: new.subject,
            channels: new.channels.unwrap_or_default(),
            data: new.data,
            is_test: new.is_test.unwrap_or(false),
            created_at: Utc::now(),
        },
        idempotency_key: new.idempotency_key,
        trace,
    })
}

struct Message {
    exchange: String,
    routing_key: String,
    body: Vec<u8>,
    id: String,
}

/// Serialized messages for a set of events, ready to publish in one confirm round.
pub struct Prepared {
    messages: Vec<Message>,
    /// Tasks per event, in input order.
    pub matched: Vec<usize>,
    /// Whether some deliveries take the bulk lane.
    pub in_bulk: bool,
}

/// Routes every event and serializes its tasks and its ledger record. An event's deliveries
/// form `delivery_group.v1` entries of up to `group_size` members (at most
/// `DeliveryGroup::MAX_MEMBERS`); a group of one is the `delivery_task.v1` it stands for. The
/// request's entries then travel together, in order, up to `group_size` deliveries per broker
/// message: several entries as one `delivery_batch.v1`, one entry as itself. The deliveries
/// of ordered webhooks (`ordering: "subject"`) are tasks of their own, packed the same way
/// but sent to the lines queue (the registry's `lines`), which releases them
/// in order.
pub fn prepare(
    events: &[(Event, TraceParent)],
    routes: &Routes,
    topology: &Topology,
    lanes: &Lanes,
    group_size: usize,
) -> Prepared {
    let ledger_queue = topology.ledger_queue();
    let group_size = group_size.clamp(1, DeliveryGroup::MAX_MEMBERS);
    let mut tasks = Packer::new(topology, topology.deliveries_exchange(), None, false, group_size);
    let mut bulk = Packer::new(topology, topology.deliveries_exchange(), None, true, group_size);
    // An ordered webhook's deliveries go to the lines queue, one task each, in request order.
    let mut lines = Packer::new(topology, String::new(), Some(topology.lines_queue()), false, group_size);
    let mut matched = Vec::with_capacity(events.len());
    let mut records = Vec::with_capacity(events.len());
    for (event, trace) in events {
        let targets = routes.route(event);
        let body = event.request_body();
        let traceparent = Some(trace.header());
        let mut routed = Vec::with_capacity(targets.len());
        // Each delivery's id once (a SHA-256 of the event's and the webhook's ids).
        let with_ids: Vec<_> = targets
            .iter()
            .map(|sub| (sub, hookwire_core::id::delivery(event.id, sub.target.webhook_id)))
            .collect();
        routed.extend(with_ids.iter().map(|(sub, delivery_id)| RoutedDelivery {
            delivery_id: *delivery_id,
            webhook_id: sub.target.webhook_id,
            tenant_id: sub.target.tenant_id,
        }));
        let (ordered, unordered): (Vec<_>, Vec<_>) = with_ids.into_iter().partition(|(sub, _)| sub.ordered);
        for (sub, delivery_id) in ordered {
            let mut task = DeliveryTask::new(delivery_id, event, sub.target.clone(), body.clone(), 0);
            task.traceparent = traceparent.clone();
            lines.push(TaskMessage::V1(task));
        }
        // The event's tenant (or, for an event to every tenant, nobody's) pays for its deliveries.
        let lane = if lanes.bulk(event.tenant_id.unwrap_or_default(), unordered.len()) {
            &mut bulk
        } else {
            &mut tasks
        };
        for chunk in unordered.chunks(group_size) {
            let mut group = DeliveryGroup::new(event, body.clone(), traceparent.clone());
            for (sub, delivery_id) in chunk {
                group.deliveries.push(GroupMember {
                    delivery_id: *delivery_id,
                    target: sub.target.clone(),
                });
            }
            lane.push(if group.deliveries.len() == 1 {
                TaskMessage::V1(group.into_tasks().remove(0))
            } else {
                TaskMessage::Group(group)
            });
        }
        matched.push(targets.len());
        records.push(LedgerMessage::EventRouted {
            event: event.clone(),
            deliveries: routed,
        });
    }
    tasks.flush();
    bulk.flush();
    lines.flush();
    let in_bulk = !bulk.messages.is_empty();
    let mut messages = tasks.messages;
    messages.extend(bulk.messages);
    messages.extend(lines.messages);
    // One ledger message for the whole request; the default exchange routes by queue name.
    if !records.is_empty() {
        messages.push(Message {
            exchange: String::new(),
            routing_key: ledger_queue,
            body: serde_json::to_vec(&LedgerMessage::batch(records)).expect("ledger records serialize"),
            id: hookwire_core::id::v7().to_string(),
        });
    }
    Prepared {
        messages,
        matched,
        in_bulk,
    }
}

/// Packs task entries into broker messages of at most `limit` deliveries, in order.
struct Packer {
    exchange: String,
    /// The routing key of every message (the lines queue); when `None`, the shard of its first
    /// delivery's task or group queue, by size, in the lane `bulk` says.
    routing_key: Option<String>,
    bulk: bool,
    topology: Topology,
    limit: usize,
    messages: Vec<Message>,
    entries: Vec<TaskMessage>,
    /// Deliveries in `entries`.
    deliveries: usize,
}

impl Packer {
    fn new(topology: &Topology, exchange: String, routing_key: Option<String>, bulk: bool, limit: usize) -> Self {
        Self {
            exchange,
            routing_key,
            bulk,
            topology: topology.clone(),
            limit,
            messages: Vec::new(),
            entries: Vec::new(),
            deliveries: 0,
        }
    }

    fn push(&mut self, entry: TaskMessage) {
        let n = entry.deliveries();
        if self.deliveries + n > self.limit {
            self.flush();
        }
        self.deliveries += n;
        self.entries.push(entry);
    }

    /// Sends what is gathered as one message: routed by its fixed key, else to the task queue
    /// when it is one delivery and the group queue otherwise, of its first delivery's shard;
    /// named after its first delivery.
    fn flush(&mut self) {
        if self.entries.is_empty() {
            return;
        }
        let message = TaskMessage::batch(std::mem::take(&mut self.entries));
        let id = message
            .first_delivery_id()
            .expect("a message names at least one delivery");
        let routing_key = match &self.routing_key {
            Some(key) => key.clone(),
            None => self
                .topology
                .delivery_queue(id, self.deliveries > 1, self.bulk)
                .routing_key(),
        };
        self.deliveries = 0;
        self.messages.push(Message {
            exchange: self.exchange.clone(),
            routing_key,
            body: serde_json::to_vec(&message).expect("tasks serialize"),
            id: id.to_string(),
        });
    }
}

impl Prepared {
    /// Publishes everything and awaits every confirm. `Ok` only when the broker holds it all.
    pub async fn publish(&self, link: &Link) -> Result<(), PublishError> {
        let outgoing: Vec<Outgoing<'_>> = self
            .messages
            .iter()
            .map(|m| Outgoing {
                exchange: &m.exchange,
                routing_key: &m.routing_key,
                body: &m.body,
                message_id: &m.id,
                delay: None,
            })
            .collect();
        link.publish(&outgoing).await
    }
}

#[cfg(test)]
mod tests;
