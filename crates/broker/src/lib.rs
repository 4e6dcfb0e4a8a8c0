#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

use std::future::Future;
use std::time::Duration;

use futures_util::StreamExt as _;
use hookwire_core::config::BrokerConfig;
use hookwire_core::topology::{Topology, DELAY_HEADER, INGEST_ROUTING_KEY, RETRY_TIERS_SECONDS};
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ExchangeKind};
use tokio_util::sync::CancellationToken;

pub use lapin;

mod connect;
pub mod follow;
mod leftovers;
mod link;

pub use connect::{connect, FRAME_MAX};
pub use leftovers::leftover_delivery_queues;
pub use link::{Link, CONFIRM_TIMEOUT};

/// Why a publish did not reach the broker's safekeeping.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("the broker is not connected")]
    Unavailable,
    #[error("the broker refused the message (nack)")]
    Nacked,
    #[error("the broker has blocked publishing (a memory or disk alarm)")]
    Blocked,
    #[error("the broker did not confirm within {0:?}")]
    TimedOut(Duration),
    #[error("the broker connection failed while publishing: {0}")]
    Broker(#[from] lapin::Error),
}

impl PublishError {
    /// Whether the publish was refused before any message was written. Otherwise the broker may
    /// have stored some or all of them: a nack can be for one message of a batch, and a message
    /// whose confirm timed out or whose connection failed may still be in a queue.
    pub fn nothing_sent(&self) -> bool {
        matches!(self, Self::Unavailable | Self::Blocked)
    }
}

fn table(entries: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in entries {
        t.insert(ShortString::from(*k), v.clone());
    }
    t
}

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()))
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

/// Declares the durable queue `queue` with `arguments` and binds it to `exchange` under `key`,
/// with `binding` arguments (a headers exchange matches on them).
async fn declare_bound(
    channel: &Channel,
    queue: &str,
    arguments: &[(&str, AMQPValue)],
    exchange: &str,
    key: &str,
    binding: &[(&str, AMQPValue)],
) -> lapin::Result<()> {
    channel.queue_declare(queue.into(), durable(), table(arguments)).await?;
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            key.into(),
            QueueBindOptions::default(),
            table(binding),
        )
        .await?;
    Ok(())
}

/// Declares the exchange `name` of `kind`, durable or not.
async fn declare_exchange(channel: &Channel, name: &str, kind: ExchangeKind, durable: bool) -> lapin::Result<()> {
    let options = ExchangeDeclareOptions {
        durable,
        ..ExchangeDeclareOptions::default()
    };
    channel
        .exchange_declare(name.into(), kind, options, FieldTable::default())
        .await
}

/// Declares every durable exchange and queue. Idempotent: each service calls it on connect, so
/// no service depends on another having started first.
pub async fn declare(channel: &Channel, topology: &Topology) -> lapin::Result<()> {
    let deliveries = topology.deliveries_exchange();
    declare_exchange(channel, &deliveries, ExchangeKind::Direct, true).await?;
    declare_exchange(channel, &topology.changes_exchange(), ExchangeKind::Fanout, true).await?;
    // Quorum queues: replicated and durable, the only kind that survives a broker node loss.
    let quorum = ("x-queue-type", text("quorum"));
    let dead = topology.dead_letter_queue();
    channel
        .queue_declare(dead.as_str().into(), durable(), table(std::slice::from_ref(&quorum)))
        .await?;
    // A message its consumer cannot decode is rejected and lands in the dead-letter queue.
    let to_dead = [
        ("x-dead-letter-exchange", text("")),
        ("x-dead-letter-routing-key", text(&dead)),
    ];
    let dead_lettered = [quorum.clone(), to_dead[0].clone(), to_dead[1].clone()];
    channel
        .queue_declare(topology.ledger_queue().into(), durable(), table(&dead_lettered))
        .await?;
    // The lines of ordered webhooks, and the ends of their deliveries: one consumer at a time
    // reads each, so a line takes its deliveries in the order the broker took them.
    let single = [
        quorum.clone(),
        ("x-single-active-consumer", AMQPValue::Boolean(true)),
        to_dead[0].clone(),
        to_dead[1].clone(),
    ];
    for queue in [topology.lines_queue(), topology.line_ends_queue()] {
        channel.queue_declare(queue.into(), durable(), table(&single)).await?;
    }
    // A task redelivered this many times (a dispatcher crashing on it each time) is a poison
    // message: the broker moves it to the dead-letter queue instead of looping for ever.
    let poison_limited = [
        quorum.clone(),
        ("x-delivery-limit", AMQPValue::LongInt(DELIVERY_LIMIT as i32)),
        to_dead[0].clone(),
        to_dead[1].clone(),
    ];
    for queue in topology.delivery_queues() {
        let name = topology.delivery_queue_name(queue);
        declare_bound(channel, &name, &poison_limited, &deliveries, &queue.routing_key(), &[]).await?;
    }
    // Relayed requests of `hookwire listen` live only while someone waits for them: not durable.
    declare_exchange(channel, &topology.relay_exchange(), ExchangeKind::Direct, false).await?;
    let ingest = topology.ingest_exchange();
    declare_exchange(channel, &ingest, ExchangeKind::Direct, true).await?;
    declare_bound(
        channel,
        &topology.ingest_queue(),
        &dead_lettered,
        &ingest,
        INGEST_ROUTING_KEY,
        &[],
    )
    .await?;
    let delay = topology.delay_exchange();
    declare_exchange(channel, &delay, ExchangeKind::Headers, true).await?;
    for seconds in RETRY_TIERS_SECONDS {
        // Nobody consumes a delay queue: a message waits out the TTL and is dead-lettered back
        // to the deliveries exchange under the routing key it came with (its shard).
        // at-least-once dead-lettering (which needs reject-publish) means a retry is never
        // dropped on the way back.
        let arguments = [
            quorum.clone(),
            (
                "x-message-ttl",
                AMQPValue::LongInt(i32::try_from(seconds * 1000).expect("tiers are < 24 days")),
            ),
            ("x-dead-letter-exchange", text(&deliveries)),
            ("x-dead-letter-strategy", text("at-least-once")),
            ("x-overflow", text("reject-publish")),
        ];
        let tier = [("x-match", text("all")), (DELAY_HEADER, text(&seconds.to_string()))];
        declare_bound(channel, &topology.retry_queue(seconds), &arguments, &delay, "", &tier).await?;
    }
    Ok(())
}

/// A private queue (exclusive, server-named, gone with the connection), consumed without acks:
/// what a relay waits on. Bound to `exchange` with `key` when given. Says its name.
pub async fn private_queue(
    channel: &Channel,
    bind: Option<(&str, &str)>,
    tag: &str,
) -> lapin::Result<(String, lapin::Consumer)> {
    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    let name = queue.name().to_string();
    if let Some((exchange, key)) = bind {
        channel
            .queue_bind(
                name.as_str().into(),
                exchange.into(),
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    let options = BasicConsumeOptions {
        no_ack: true,
        ..BasicConsumeOptions::default()
    };
    let consumer = channel
        .basic_consume(name.as_str().into(), tag.into(), options, FieldTable::default())
        .await?;
    Ok((name, consumer))
}

/// Binds a private queue (exclusive, gone with the connection) to the changes exchange and
/// consumes it without acks: notices only matter to a running service, and a restarted one
/// reloads what it needs anyway.
pub async fn consume_changes(channel: &Channel, topology: &Topology, tag: &str) -> lapin::Result<lapin::Consumer> {
    let changes = topology.changes_exchange();
    Ok(private_queue(channel, Some((&changes, "")), tag).await?.1)
}

/// Counts the consumers of `queue` on `channel` every `every`, and hands each count (at least
/// 1: the caller's own) to `counted`, until a count fails (logged; the caller keeps its last).
/// A service whose replicas each consume one queue learns how many of them run.
pub async fn census(channel: Channel, queue: String, every: Duration, mut counted: impl FnMut(u32)) {
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    loop {
        match channel
            .queue_declare(queue.as_str().into(), passive, FieldTable::default())
            .await
        {
            Ok(q) => counted(q.consumer_count().max(1)),
            Err(e) => {
                tracing::warn!(error = %e, queue, "cannot count the replicas consuming a queue; the last count stays");
                return;
            }
        }
        tokio::time::sleep(every).await;
    }
}

/// Redeliveries of a task queue's message (dispatchers that stopped with it unacknowledged)
/// after which the broker moves it to the dead-letter queue (`x-delivery-limit`).
pub const DELIVERY_LIMIT: u32 = 20;

/// How many times the broker delivered `delivery` before, to consumers that did not settle it:
/// its `x-delivery-count` header (quorum queues), 0 on a first delivery.
pub fn redeliveries(delivery: &lapin::message::Delivery) -> u32 {
    let count = delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("x-delivery-count").cloned());
    match count {
        Some(AMQPValue::LongLongInt(n)) => u32::try_from(n).unwrap_or(0),
        Some(AMQPValue::LongInt(n)) => u32::try_from(n).unwrap_or(0),
        Some(AMQPValue::LongUInt(n)) => n,
        Some(AMQPValue::ShortInt(n)) => u32::try_from(n).unwrap_or(0),
        Some(AMQPValue::ShortUInt(n)) => u32::from(n),
        Some(AMQPValue::ShortShortInt(n)) => u32::try_from(n).unwrap_or(0),
        Some(AMQPValue::ShortShortUInt(n)) => u32::from(n),
        _ => 0,
    }
}

/// How much [`next_batch`] gathers at most.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Messages.
    pub messages: usize,
    /// Bytes of message bodies: the batch closes once it holds this much (a single larger
    /// message still makes a batch of one).
    pub bytes: usize,
    /// How long to wait for more after the first message.
    pub wait: Duration,
}

/// Waits for the next delivery, then gathers more within `limits`, so a consumer can handle
/// messages in batches. `Ok(None)` when `cancel` fires first.
pub async fn next_batch(
    consumer: &mut lapin::Consumer,
    limits: BatchLimits,
    cancel: &CancellationToken,
) -> anyhow::Result<Option<Vec<lapin::message::Delivery>>> {
    let first = tokio::select! {
        () = cancel.cancelled() => return Ok(None),
        next = consumer.next() => next,
    };
    let Some(first) = first else {
        anyhow::bail!("the broker cancelled the consumer");
    };
    let first = first?;
    let mut bytes = first.data.len();
    let mut batch = vec![first];
    let deadline = tokio::time::Instant::now() + limits.wait;
    while batch.len() < limits.messages && bytes < limits.bytes {
        match tokio::time::timeout_at(deadline, consumer.next()).await {
            Ok(Some(d)) => {
                let d = d?;
                bytes += d.data.len();
                batch.push(d);
            }
            Ok(None) => anyhow::bail!("the broker cancelled the consumer"),
            Err(_) => break,
        }
    }
    Ok(Some(batch))
}

/// One message to publish.
pub struct Outgoing<'a> {
    pub exchange: &'a str,
    pub routing_key: &'a str,
    pub body: &'a [u8],
    /// The AMQP message id: the delivery or event id, for tracing and dedupe.
    pub message_id: &'a str,
    /// On the delay exchange: the delay tier, in seconds (`DELAY_HEADER`).
    pub delay: Option<u32>,
}

fn properties(m: &Outgoing<'_>) -> BasicProperties {
    let properties = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2) // persistent
        .with_message_id(m.message_id.into());
    match m.delay {
        Some(seconds) => properties.with_headers(table(&[(DELAY_HEADER, text(&seconds.to_string()))])),
        None => properties,
    }
}

/// Most publishes handed to lapin at once (about 6 MB of tasks): every batch of the benchmarks fits
/// in one window, while a huge one (1,000 events fanned out to hundreds of webhooks) is not copied
/// into lapin's frame queue all at once. Much smaller windows cost fan-out throughput: each window
/// waits to be written before the next is issued.
const PUBLISH_WINDOW: usize = 4096;

/// Publishes every message, then awaits every confirm: one round trip for the whole batch.
/// `Ok` only when the broker acknowledged them all.
///
/// The publishes are issued together, up to `PUBLISH_WINDOW` at a time, not one after another:
/// lapin hands each message to its I/O thread and resolves the publish once the frames are
/// written, so awaiting them in turn would cost one thread hand-off per message. Issued
/// together, their frames leave in one write.
pub async fn publish_confirmed(channel: &Channel, messages: &[Outgoing<'_>]) -> Result<(), PublishError> {
    let mut confirms = Vec::with_capacity(messages.len());
    for window in messages.chunks(PUBLISH_WINDOW) {
        let issued = futures_util::future::try_join_all(window.iter().map(|m| {
            channel.basic_publish(
                m.exchange.into(),
                m.routing_key.into(),
                BasicPublishOptions::default(),
                m.body,
                properties(m),
            )
        }))
        .await?;
        confirms.extend(issued);
    }
    for confirm in futures_util::future::try_join_all(confirms).await? {
        if !confirm.is_ack() {
            return Err(PublishError::Nacked);
        }
    }
    Ok(())
}

/// Back-off between reconnection attempts: doubles from 100 ms up to 5 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << attempt.min(6))).min(Duration::from_secs(5))
}

/// How often a session's connection is checked besides lapin's error events: a connection the
/// broker closes in an orderly way (`connection.close`, as when RabbitMQ stops) may end without one.
const LIVENESS_CHECK: Duration = Duration::from_millis(500);

/// Resolves when `conn` fails or is closed, with why.
fn lost(conn: &Connection) -> impl Future<Output = String> + use<> {
    // Boxed as 'static: lapin's opaque stream type names the connection's borrow, though it
    // holds none.
    let mut events: std::pin::Pin<Box<dyn futures_util::Stream<Item = lapin::Event> + Send>> =
        Box::pin(conn.events_listener());
    let status = conn.status().clone();
    async move {
        let mut check = tokio::time::interval(LIVENESS_CHECK);
        loop {
            tokio::select! {
                event = events.next() => match event {
                    Some(lapin::Event::Error(e)) => return e.to_string(),
                    Some(_) => {}
                    None => return "the connection's events ended".to_owned(),
                },
                _ = check.tick() => {
                    if !status.connected() {
                        return "the connection was closed".to_owned();
                    }
                }
            }
        }
    }
}

/// Runs `session` on a fresh connection, and again on a new one whenever it returns an error or
/// the connection fails, until `cancel` fires. A session returning `Ok` ends the loop.
///
/// A session receives `cancel` and must return once it fires: supervise does not cut a running
/// session short on shutdown, so a session can finish its work in hand (the dispatcher lets its
/// attempts answer, the registry commits its batch). After `cancel` no new connection is made.
pub async fn supervise<F, Fut>(config: BrokerConfig, name: String, cancel: CancellationToken, mut session: F)
where
    F: FnMut(Connection, CancellationToken) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut failures = 0u32;
    loop {
        let connected = tokio::select! {
            () = cancel.cancelled() => return,
            conn = connect(&config, &name) => conn,
        };
        let outcome = match connected {
            Ok(conn) => {
                failures = 0;
                tracing::info!(connection = %name, "connected to the broker");
                let lost = lost(&conn);
                tokio::select! {
                    result = session(conn, cancel.clone()) => match result {
                        Ok(()) => return,
                        Err(e) => format!("{e:#}"),
                    },
                    e = lost => e,
                }
            }
            Err(e) => e.to_string(),
        };
        if cancel.is_cancelled() {
            tracing::info!(connection = %name, error = %outcome, "broker session ended while stopping");
            return;
        }
        let wait = backoff(failures);
        failures = failures.saturating_add(1);
        tracing::warn!(connection = %name, error = %outcome, retry_in_ms = wait.as_millis() as u64, "broker session ended");
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}
