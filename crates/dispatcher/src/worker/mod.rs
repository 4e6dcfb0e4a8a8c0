//! The delivery loop: consume tasks, attempt them, record the result, schedule the retry.
//!
//! A task is acknowledged only after its result (and its retry, if any) is confirmed by the
//! broker, so a dispatcher that dies mid-attempt loses nothing: the task is redelivered and
//! attempted again (at-least-once; receivers dedupe on `webhook-id`).
//!
//! Isolation: each webhook has a gate of `max_in_flight_per_webhook` concurrent requests and
//! `max_waiting_per_webhook` tasks waiting for one. A task that arrives when its webhook's gate is
//! full *and* the webhook has finished no attempt for `STALL` finds no room. Webhooks whose last
//! attempt failed slowly (a timeout), or whose requests have not moved for `STALL`, share
//! `max_in_flight_failing` requests, so receivers that time out cannot fill `max_in_flight`
//! between them. A task of a failing webhook that finds no room counts as a failed attempt
//! without a request and follows the retry policy (a circuit breaker); any other task that finds
//! no room is parked: put back in a retry queue for `park_delay`, without counting as an attempt.
//! The consumer itself never waits on a receiver, so the prefetch window keeps moving for
//! everybody else.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::StreamExt as _;
use hookwire_broker::lapin::options::{BasicConsumeOptions, BasicQosOptions, BasicRejectOptions, ConfirmSelectOptions};
use hookwire_broker::lapin::types::FieldTable;
use hookwire_broker::lapin::{Acker, Channel, Connection};
use hookwire_core::crypto::Keyring;
use hookwire_core::messages::{DeliveryTask, TaskMessage};
use hookwire_core::topology::Topology;
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::{AbortOnDropHandle, TaskTracker};
use uuid::Uuid;

use crate::client::{self, HttpClient};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::webhooks::Webhooks;

mod attempt;
mod gates;
mod sink;

use gates::Gate;
use sink::{requeue, sink, Message, Pending, FLUSH_TIMEOUT, SINK_MAX};

/// Everything the delivery tasks share.
pub struct Worker {
    pub config: Config,
    pub secrets: client::Opener,
    pub client: HttpClient,
    /// Attempts to `hookwire listen` sessions.
    pub relay: crate::relay::Relay,
    pub topology: Topology,
    pub metrics: Arc<Metrics>,
    pub webhooks: Arc<Webhooks>,
    gates: Mutex<HashMap<Uuid, Arc<Gate>>>,
    /// Each tenant's share of `max_in_flight` (`max_in_flight_per_tenant`).
    tenant_rooms: Mutex<HashMap<Uuid, Arc<Semaphore>>>,
    /// When each tenant with a ceiling may start its next delivery (`gates::pace`).
    tenant_paces: Mutex<HashMap<Uuid, Arc<AtomicU64>>>,
    /// Requests to failing webhooks, across webhooks: `max_in_flight_failing`.
    failing_room: Arc<Semaphore>,
    started: std::time::Instant,
    /// Dispatchers consuming tasks, this one included, as last counted: each paces a webhook's
    /// attempts at `rate_limit_per_second / replicas`.
    replicas: AtomicU32,
}

/// What became of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    Retrying,
    Failed,
    Exhausted,
    Parked,
    Waiting,
    /// A group's member handed to the deliveries queue as a task of its own.
    Spilled,
    /// Dropped unsent: its delivery was sent again by request since (`Webhooks::superseded`).
    Superseded,
}
impl Worker {
    pub fn new(config: Config, keyring: Keyring, metrics: Arc<Metrics>, webhooks: Arc<Webhooks>) -> Self {
        let client = client::build(config.profile, &config.delivery);
        Self {
            topology: config.broker.topology(),
            failing_room: Arc::new(Semaphore::new(config.delivery.max_in_flight_failing.max(1))),
            config,
            secrets: client::Opener::new(keyring),
            client,
            relay: crate::relay::Relay::default(),
            metrics,
            webhooks,
            gates: Mutex::new(HashMap::new()),
            tenant_rooms: Mutex::new(HashMap::new()),
            tenant_paces: Mutex::new(HashMap::new()),
            started: std::time::Instant::now(),
            replicas: AtomicU32::new(1),
        }
    }

    /// Counts the dispatchers consuming tasks (the deliveries queue's consumers, one per
    /// replica) every `replica_census_interval`, on `channel`, for as long as the session lasts.
    /// A count that fails keeps the last one.
    async fn census(self: Arc<Self>, channel: Channel) {
        let every = self.config.delivery.replica_census_interval;
        hookwire_broker::census(channel, self.topology.deliveries_queue(), every, |replicas| {
            self.replicas.store(replicas, Ordering::Relaxed);
            self.metrics.replicas.set(i64::from(replicas));
        })
        .await;
    }

    /// Consumes tasks on `conn` until `cancel` fires, then drains in-flight work.
    pub async fn session(self: Arc<Self>, conn: Connection, cancel: CancellationToken) -> anyhow::Result<()> {
        let consume = conn.create_channel().await?;
        let publish = conn.create_channel().await?;
        publish.confirm_select(ConfirmSelectOptions::default()).await?;
        hookwire_broker::declare(&consume, &self.topology).await?;
        // One channel (one space of delivery tags for the acker), a prefetch per consumer: set
        // before each `basic.consume`, it applies to that consumer.
        let consume_from = |queue: String, prefetch: u16, tag: String| {
            let consume = consume.clone();
            async move {
                consume.basic_qos(prefetch, BasicQosOptions::default()).await?;
                let options = BasicConsumeOptions::default();
                consume
                    .basic_consume(
                        queue.as_str().into(),
                        tag.as_str().into(),
                        options,
                        FieldTable::default(),
                    )
                    .await
            }
        };
        let settings = &self.config.delivery;
        // Every shard's tasks and groups of both lanes, read as one stream, each queue with its
        // own prefetch window: a tenant's flood in the bulk lane leaves the standard lane's
        // window free. A consumer the broker cancels ends the session (`None` in the stream).
        // The queues of shards past the count that still exist are drained too.
        let leftovers = hookwire_broker::leftover_delivery_queues(&self.config.broker, &self.topology).await?;
        if !leftovers.is_empty() {
            tracing::info!(
                queues = leftovers.len(),
                "draining the delivery queues of shards past broker.delivery_shards"
            );
        }
        let mut consumers = Vec::new();
        for queue in self.topology.delivery_queues().into_iter().chain(leftovers) {
            let (prefetch, kind) = match queue.grouped {
                false => (settings.prefetch, "tasks"),
                true => (settings.group_prefetch, "groups"),
            };
            let lane = if queue.bulk { "bulk-" } else { "" };
            let tag = format!("hookwire-dispatcher-{lane}{kind}-{}", queue.shard);
            let consumer = consume_from(self.topology.delivery_queue_name(queue), prefetch, tag).await?;
            consumers.push(
                consumer
                    .map(Some)
                    .chain(futures_util::stream::once(async { None }))
                    .boxed(),
            );
        }
        let mut incoming = futures_util::stream::select_all(consumers);
        let tracker = TaskTracker::new();
        let max_in_flight = self.config.delivery.max_in_flight.max(1);
        let room = Arc::new(Semaphore::new(max_in_flight));
        // Both end with the session, also when it is dropped because its connection failed.
        let (acks, acker) = crate::acks::start(consume.clone());
        let acker = AbortOnDropHandle::new(acker);
        let (records, pending) = mpsc::channel(4 * SINK_MAX);
        let sink = AbortOnDropHandle::new(tokio::spawn(sink(
            publish.clone(),
            (self.topology.ledger_queue(), self.topology.line_ends_queue()),
            pending,
        )));
        let _census = AbortOnDropHandle::new(tokio::spawn(self.clone().census(conn.create_channel().await?)));
        let _relay = self.relay.open(&conn).await?;
        let result = loop {
            let next = tokio::select! {
                () = cancel.cancelled() => break Ok(()),
                next = incoming.next() => next.flatten(),
            };
            let delivery = match next {
                Some(Ok(d)) => d,
                Some(Err(e)) => break Err(e.into()),
                None => break Err(anyhow::anyhow!("the broker cancelled a task consumer")),
            };
            let tag = delivery.delivery_tag;
            acks.opened(tag);
            // The lane it came from, which its retries return to.
            let bulk_lane = hookwire_core::topology::is_bulk_key(delivery.routing_key.as_str());
            let redeliveries = hookwire_broker::redeliveries(&delivery);
            let tasks = match serde_json::from_slice::<TaskMessage>(&delivery.data) {
                Ok(message) => {
                    let mut tasks = message.into_tasks();
                    tasks.iter_mut().for_each(|t| t.bulk_lane = bulk_lane);
                    tasks
                }
                Err(e) => {
                    // Poison: the queue's dead-letter settings move it to the dead-letter queue.
                    tracing::error!(error = %e, bytes = delivery.data.len(), "undecodable task dead-lettered");
                    self.metrics.dead_lettered.inc();
                    delivery.reject(BasicRejectOptions { requeue: false }).await?;
                    acks.settled(tag);
                    continue;
                }
            };
            if tasks.is_empty() {
                // An empty group asks for nothing.
                acks.done(tag);
                continue;
            }
            // Room in memory for the message's deliveries (a group may hold many), its tenant's
            // first: a message waits for room in a task of its own, so the consumer goes on
            // reading and a tenant whose deliveries fill its share holds up nobody else's.
            let tenant_room = self.tenant_room(tasks[0].target.tenant_id);
            let worker = self.clone();
            let (room, tracker_inner, cancel) = (room.clone(), tracker.clone(), cancel.clone());
            let (publish, records, acks) = (publish.clone(), records.clone(), acks.clone());
            tracker.spawn(async move {
                let wanted = tasks.len().min(max_in_flight) as u32;
                let admitted = tokio::select! {
                    () = cancel.cancelled() => None,
                    permits = async {
                        let share = tenant_room.acquire_many_owned(wanted.min(worker.tenant_share())).await;
                        let all = room.acquire_many_owned(wanted).await;
                        (share, all)
                    } => Some(permits),
                };
                let Some((Ok(mut share), Ok(mut permits))) = admitted else {
                    // Stopping before it started: the message goes back to the queue untouched.
                    requeue(&delivery.acker).await;
                    acks.settled(tag);
                    return;
                };
                worker.admit(
                    tag,
                    delivery.acker,
                    redeliveries,
                    tasks,
                    &mut share,
                    &mut permits,
                    &tracker_inner,
                    &publish,
                    &records,
                    &acks,
                );
            });
        };
        // Stop taking tasks; finish what is in flight (its results are published and acked).
        drop(incoming);
        tracker.close();
        if tokio::time::timeout(self.config.delivery.drain_timeout, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("drain timeout: unfinished tasks return to the queue");
        }
        // The sink flushes what the drained tasks handed it, then ends; the acker acknowledges
        // every finished task, then ends. Tasks still running past the drain timeout hold on to
        // both, so they get a moment more, then the session ends without them.
        drop(records);
        drop(acks);
        let flushed = tokio::time::timeout(FLUSH_TIMEOUT, async {
            let _ = sink.await;
            let _ = acker.await;
        })
        .await;
        if flushed.is_err() {
            tracing::warn!("records or acknowledgements not flushed in time: their tasks return to the queue");
        }
        // Closing the channel waits for the broker's reply, so the last acknowledgements are on
        // the wire before the connection goes (lapin's `basic_ack` resolves once the frame is
        // queued, not sent: a dispatcher that exited at once had its last tasks redelivered).
        let _ = consume.close(200, "the dispatcher is stopping".into()).await;
        result
    }

    /// Works one task to its outcome and publishes what must be published.
    /// Starts the deliveries of one admitted message, each holding one of its permits.
    #[allow(clippy::too_many_arguments)]
    fn admit(
        self: &Arc<Self>,
        tag: u64,
        acker: Acker,
        redeliveries: u32,
        tasks: Vec<DeliveryTask>,
        share: &mut tokio::sync::OwnedSemaphorePermit,
        permits: &mut tokio::sync::OwnedSemaphorePermit,
        tracker: &TaskTracker,
        publish: &Channel,
        records: &mpsc::Sender<Pending>,
        acks: &crate::acks::Acks,
    ) {
        let grouped = tasks.len() > 1;
        // A group the broker delivers again (its dispatcher stopped before settling it) leaves
        // as single tasks, so a member that stops dispatchers takes only itself to the delivery
        // limit; a single task on its last delivery before that limit ends `failed` unsent,
        // where its log and its line can see it (the broker would set it aside silently).
        let set_aside = !grouped && redeliveries + 1 >= hookwire_broker::DELIVERY_LIMIT;
        let message = Arc::new(Message::new(tag, tasks.len(), acker));
        for task in tasks {
            // `None` only past the permits taken for one group: they run without room.
            let permit = (permits.split(1), share.split(1));
            let gate = self.gate(task.target.webhook_id);
            let spill = grouped && (redeliveries > 0 || self.spills(&gate));
            let park = !spill
                && self.stalled(&gate)
                && gate.waiting.load(Ordering::Acquire) >= self.config.delivery.max_waiting_per_webhook;
            if !spill && !set_aside {
                if !park {
                    gate.waiting.fetch_add(1, Ordering::AcqRel);
                }
                self.metrics.in_flight.inc();
            }
            let worker = self.clone();
            let publish = publish.clone();
            let records = records.clone();
            let acks = acks.clone();
            let message = message.clone();
            tracker.spawn(async move {
                let outcome = if spill {
                    worker.spill(&publish, task).await
                } else if set_aside {
                    worker.set_aside(&records, &task, redeliveries).await
                } else {
                    let outcome = worker.handle(&publish, &records, task, gate, park).await;
                    worker.metrics.in_flight.dec();
                    outcome
                };
                drop(permit);
                if let Err(e) = outcome {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        spilled = spill,
                        "outcome not confirmed by the broker; the task (or its whole group) goes back to the queue"
                    );
                    message.failed.store(true, Ordering::Release);
                }
                message.finished(&acks).await;
            });
        }
    }

    /// Deliveries of one tenant in memory at once: `max_in_flight_per_tenant`, at most
    /// `max_in_flight`.
    fn tenant_share(&self) -> u32 {
        let d = &self.config.delivery;
        d.max_in_flight_per_tenant.clamp(1, d.max_in_flight.max(1)) as u32
    }

    /// The room of a tenant's deliveries.
    fn tenant_room(&self, tenant: Uuid) -> Arc<Semaphore> {
        let mut rooms = self.tenant_rooms.lock().expect("the tenant rooms are never poisoned");
        rooms
            .entry(tenant)
            .or_insert_with(|| Arc::new(Semaphore::new(self.tenant_share() as usize)))
            .clone()
    }
}
