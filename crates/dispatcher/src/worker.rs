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
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt as _;
use hookwire_broker::lapin::options::{
    BasicConsumeOptions, BasicNackOptions, BasicQosOptions, BasicRejectOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use hookwire_broker::lapin::types::FieldTable;
use hookwire_broker::lapin::{Acker, Channel, Connection};
use hookwire_broker::Outgoing;
use hookwire_core::crypto::Keyring;
use hookwire_core::messages::{AttemptRecord, DeliveryStatus, DeliveryTask, LedgerMessage, TaskMessage};
use hookwire_core::topology::{retry_tier, Topology, TASK_ROUTING_KEY};
use hookwire_core::trace::TraceParent;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::{AbortOnDropHandle, TaskTracker};
use tracing::Instrument as _;
use uuid::Uuid;

use crate::client::{self, Attempt, HttpClient};
use crate::config::Config;
use crate::metrics::{Metrics, OutcomeLabels};
use crate::webhooks::{Known, Webhooks};

/// A retry due within this much is attempted now rather than hopping through the queues again.
const DUE_SLACK: Duration = Duration::from_millis(500);

struct Gate {
    slots: Semaphore,
    waiting: AtomicUsize,
    /// When an attempt to this webhook last finished, or started with none in flight (ms since
    /// the worker started): the last sign that the webhook's requests are moving.
    last_progress_ms: AtomicU64,
    /// With `rate_limit_per_second`: when the next attempt may start (µs since the worker
    /// started). Each attempt reserves the next slot, `1/rate` after the previous one.
    next_slot_us: AtomicU64,
    /// Whether the last attempt that finished took longer than `STALL`.
    slow: AtomicBool,
    /// Whether the last attempt that finished failed, and took longer than `STALL` to (a
    /// timeout, say): its requests take room from `max_in_flight_failing`.
    failing: AtomicBool,
}

/// A full gate whose webhook has finished no attempt for this long is slow: its new tasks are
/// parked. A fast webhook with a burst of work keeps its tasks in memory instead (parking them
/// would only add broker traffic and a delay).
const STALL: Duration = Duration::from_millis(250);

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
            topology: Topology::new(&config.broker.prefix),
            failing_room: Arc::new(Semaphore::new(config.delivery.max_in_flight_failing.max(1))),
            config,
            secrets: client::Opener::new(keyring),
            client,
            relay: crate::relay::Relay::default(),
            metrics,
            webhooks,
            gates: Mutex::new(HashMap::new()),
            tenant_rooms: Mutex::new(HashMap::new()),
            started: std::time::Instant::now(),
            replicas: AtomicU32::new(1),
        }
    }

    fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Waits for this webhook's next slot under `rate` attempts per second across all
    /// dispatchers: tasks are spread evenly over the replicas consuming them (RabbitMQ hands them
    /// out in turn), so each paces at `rate / replicas`. A replica that gets more than its share
    /// of one webhook's tasks sends them more slowly; together they do not exceed `rate`.
    async fn pace(&self, gate: &Gate, rate: u32) {
        let replicas = u64::from(self.replicas.load(Ordering::Relaxed).max(1));
        let interval = 1_000_000 * replicas / u64::from(rate.max(1));
        let now = self.started.elapsed().as_micros() as u64;
        let mut slot = gate.next_slot_us.load(Ordering::Acquire);
        loop {
            let start = slot.max(now);
            match gate
                .next_slot_us
                .compare_exchange(slot, start + interval, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    if start > now {
                        tokio::time::sleep(Duration::from_micros(start - now)).await;
                    }
                    return;
                }
                Err(current) => slot = current,
            }
        }
    }

    /// Requests in flight to the webhook behind `gate`.
    fn in_flight(&self, gate: &Gate) -> usize {
        self.config
            .delivery
            .max_in_flight_per_webhook
            .max(1)
            .saturating_sub(gate.slots.available_permits())
    }

    /// Whether the webhook behind `gate` has shown no progress for `STALL`: no attempt
    /// finished, and none started with nothing in flight.
    fn stalled(&self, gate: &Gate) -> bool {
        self.elapsed_ms()
            .saturating_sub(gate.last_progress_ms.load(Ordering::Acquire))
            > STALL.as_millis() as u64
    }

    /// Whether a group's member for the webhook behind `gate` should leave the group as a task
    /// of its own instead of being attempted with it: its last attempt was slow, or attempts are
    /// in flight and none has finished for `STALL`. A group is acknowledged only when all its
    /// members are done, so one slow receiver would otherwise hold every group it is in (and
    /// the groups' small prefetch window with them).
    fn spills(&self, gate: &Gate) -> bool {
        gate.slow.load(Ordering::Acquire) || (self.in_flight(gate) > 0 && self.stalled(gate))
    }

    /// Hands `task` to the deliveries queue as a `delivery_task.v1` of its own.
    async fn spill(&self, publish: &Channel, task: DeliveryTask) -> anyhow::Result<Outcome> {
        self.metrics.spilled.inc();
        let id = task.delivery_id.to_string();
        let body = serde_json::to_vec(&TaskMessage::V1(task))?;
        let exchange = self.topology.deliveries_exchange();
        let outgoing = Outgoing {
            exchange: &exchange,
            routing_key: TASK_ROUTING_KEY,
            body: &body,
            message_id: &id,
        };
        hookwire_broker::publish_confirmed(publish, &[outgoing]).await?;
        Ok(Outcome::Spilled)
    }

    /// Puts a task of a stalled webhook back in the retry queues. Each park of the same task
    /// waits twice as long (up to 32×): a dead receiver's backlog settles instead of circling
    /// through the broker every second.
    async fn park(&self, publish: &Channel, task: &mut DeliveryTask) -> anyhow::Result<Outcome> {
        self.metrics.parked.inc();
        let delay = self.config.delivery.park_delay * 2u32.pow(task.parked.min(5));
        task.parked += 1;
        self.schedule(publish, task, Utc::now() + delay).await?;
        Ok(Outcome::Parked)
    }

    fn gate(&self, webhook_id: Uuid) -> Arc<Gate> {
        let mut gates = self.gates.lock().expect("gates lock is never poisoned");
        gates
            .entry(webhook_id)
            .or_insert_with(|| {
                Arc::new(Gate {
                    slots: Semaphore::new(self.config.delivery.max_in_flight_per_webhook.max(1)),
                    waiting: AtomicUsize::new(0),
                    last_progress_ms: AtomicU64::new(self.elapsed_ms()),
                    next_slot_us: AtomicU64::new(0),
                    slow: AtomicBool::new(false),
                    failing: AtomicBool::new(false),
                })
            })
            .clone()
    }

    /// Counts the dispatchers consuming tasks (the deliveries queue's consumers, one per
    /// replica) every `replica_census_interval`, on `channel`, for as long as the session lasts.
    /// A count that fails keeps the last one.
    async fn census(self: Arc<Self>, channel: Channel) {
        let queue = self.topology.deliveries_queue();
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        loop {
            match channel
                .queue_declare(queue.as_str().into(), passive, FieldTable::default())
                .await
            {
                Ok(q) => {
                    let replicas = q.consumer_count().max(1);
                    self.replicas.store(replicas, Ordering::Relaxed);
                    self.metrics.replicas.set(i64::from(replicas));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot count the dispatchers; rate limits keep the last count");
                    return;
                }
            }
            tokio::time::sleep(self.config.delivery.replica_census_interval).await;
        }
    }

    /// Consumes tasks on `conn` until `cancel` fires, then drains in-flight work.
    pub async fn session(self: Arc<Self>, conn: Connection, cancel: CancellationToken) -> anyhow::Result<()> {
        let consume = conn.create_channel().await?;
        let publish = conn.create_channel().await?;
        publish.confirm_select(ConfirmSelectOptions::default()).await?;
        hookwire_broker::declare(&consume, &self.topology).await?;
        // One channel (one space of delivery tags for the acker), a prefetch per consumer: set
        // before each `basic.consume`, it applies to that consumer.
        let consume_from = |queue: String, prefetch: u16, tag: &'static str| {
            let consume = consume.clone();
            async move {
                consume.basic_qos(prefetch, BasicQosOptions::default()).await?;
                let options = BasicConsumeOptions::default();
                consume
                    .basic_consume(queue.as_str().into(), tag.into(), options, FieldTable::default())
                    .await
            }
        };
        let settings = &self.config.delivery;
        let mut tasks_in = consume_from(
            self.topology.deliveries_queue(),
            settings.prefetch,
            "hookwire-dispatcher",
        )
        .await?;
        let mut groups_in = consume_from(
            self.topology.groups_queue(),
            settings.group_prefetch,
            "hookwire-dispatcher-groups",
        )
        .await?;
        let tracker = TaskTracker::new();
        let max_in_flight = self.config.delivery.max_in_flight.max(1);
        let room = Arc::new(Semaphore::new(max_in_flight));
        // Both end with the session, also when it is dropped because its connection failed.
        let (acks, acker) = crate::acks::start(consume.clone());
        let acker = AbortOnDropHandle::new(acker);
        let (records, pending) = mpsc::channel(4 * SINK_MAX);
        let sink = AbortOnDropHandle::new(tokio::spawn(sink(
            publish.clone(),
            self.topology.ledger_queue(),
            pending,
        )));
        let _census = AbortOnDropHandle::new(tokio::spawn(self.clone().census(conn.create_channel().await?)));
        let _relay = self.relay.open(&conn).await?;
        let result = loop {
            let next = tokio::select! {
                () = cancel.cancelled() => break Ok(()),
                next = tasks_in.next() => next,
                next = groups_in.next() => next,
            };
            let delivery = match next {
                Some(Ok(d)) => d,
                Some(Err(e)) => break Err(e.into()),
                None => break Err(anyhow::anyhow!("the broker cancelled the task consumer")),
            };
            let tag = delivery.delivery_tag;
            acks.opened(tag);
            let tasks = match serde_json::from_slice::<TaskMessage>(&delivery.data) {
                Ok(message) => message.into_tasks(),
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
        drop((tasks_in, groups_in));
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
        result
    }

    /// Works one task to its outcome and publishes what must be published.
    /// Starts the deliveries of one admitted message, each holding one of its permits.
    #[allow(clippy::too_many_arguments)]
    fn admit(
        self: &Arc<Self>,
        tag: u64,
        acker: Acker,
        tasks: Vec<DeliveryTask>,
        share: &mut tokio::sync::OwnedSemaphorePermit,
        permits: &mut tokio::sync::OwnedSemaphorePermit,
        tracker: &TaskTracker,
        publish: &Channel,
        records: &mpsc::Sender<Pending>,
        acks: &crate::acks::Acks,
    ) {
        let grouped = tasks.len() > 1;
        let message = Arc::new(Message::new(tag, tasks.len(), acker));
        for task in tasks {
            // `None` only past the permits taken for one group: they run without room.
            let permit = (permits.split(1), share.split(1));
            let gate = self.gate(task.target.webhook_id);
            let spill = grouped && self.spills(&gate);
            let park = !spill
                && self.stalled(&gate)
                && gate.waiting.load(Ordering::Acquire) >= self.config.delivery.max_waiting_per_webhook;
            if !spill {
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

    async fn handle(
        &self,
        publish: &Channel,
        sink: &mpsc::Sender<Pending>,
        mut task: DeliveryTask,
        gate: Arc<Gate>,
        park: bool,
    ) -> anyhow::Result<Outcome> {
        if self.webhooks.superseded(task.delivery_id, task.resent_at) {
            // Its delivery was sent again by request since: that task's chain carries it on.
            if !park {
                gate.waiting.fetch_sub(1, Ordering::AcqRel);
            }
            self.metrics.superseded.inc();
            tracing::debug!(delivery_id = %task.delivery_id, attempt = task.attempts + 1, "task dropped: its delivery was sent again since");
            return Ok(Outcome::Superseded);
        }
        if park {
            return self.no_room(publish, sink, task, &gate).await;
        }
        // Wait for a slot; a task still waiting when its webhook has stalled parks itself, so
        // a webhook that turns slow after a burst gives its share of the prefetch window back.
        let permit = loop {
            match tokio::time::timeout(STALL, gate.slots.acquire()).await {
                Ok(permit) => break permit.expect("gate semaphores are never closed"),
                Err(_) if self.stalled(&gate) => {
                    gate.waiting.fetch_sub(1, Ordering::AcqRel);
                    return self.no_room(publish, sink, task, &gate).await;
                }
                Err(_) => {}
            }
        };
        gate.waiting.fetch_sub(1, Ordering::AcqRel);
        if let Some(due) = not_yet_due(&task) {
            drop(permit);
            self.schedule(publish, &task, due).await?;
            return Ok(Outcome::Waiting);
        }
        if let Some(outcome) = self.refresh(sink, &mut task).await? {
            return Ok(outcome);
        }
        let others = self.in_flight(&gate).saturating_sub(1);
        if others == 0 {
            // A busy spell starts: nothing in it is overdue yet.
            gate.last_progress_ms.fetch_max(self.elapsed_ms(), Ordering::AcqRel);
        }
        // A receiver that times out holds a whole gate of deliveries for its timeout, and a few
        // such receivers would hold every delivery this dispatcher has room for: while a
        // webhook's attempts fail slowly, or its requests in flight have not moved for `STALL`
        // (a receiver that stopped answering, before its first timeout), its requests share
        // `max_in_flight_failing` with the other failing webhooks', and a task that finds none
        // of it left has no room.
        let suspect = gate.failing.load(Ordering::Acquire) || (others > 0 && self.stalled(&gate));
        let _failing = if suspect {
            match self.failing_room.clone().try_acquire_owned() {
                Ok(share) => Some(share),
                Err(_) => {
                    drop(permit);
                    return self.no_room(publish, sink, task, &gate).await;
                }
            }
        } else {
            None
        };
        if let Some(rate) = task.target.rate_limit_per_second {
            self.pace(&gate, rate).await;
        }
        let span = tracing::info_span!("deliver", webhook_id = %task.target.webhook_id, delivery_id = %task.delivery_id, attempt = task.attempts + 1);
        let parent = task.traceparent.as_deref().and_then(TraceParent::parse);
        hookwire_core::trace::continue_from(&span, task.traceparent.as_deref());
        // The receiver sees this attempt's span as the parent.
        let traceparent = hookwire_core::trace::next_hop(&span, parent.as_ref()).header();
        let senders = client::Senders {
            http: &self.client,
            relay: &self.relay,
            topology: &self.topology,
        };
        let attempt = client::attempt(senders, &self.secrets, self.config.profile, &task, &traceparent)
            .instrument(span)
            .await;
        gate.last_progress_ms.fetch_max(self.elapsed_ms(), Ordering::AcqRel);
        gate.slow.store(attempt.duration > STALL, Ordering::Release);
        gate.failing
            .store(!attempt.succeeded() && attempt.duration > STALL, Ordering::Release);
        drop(permit);
        self.metrics.attempt_seconds.observe(attempt.duration.as_secs_f64());
        self.record(sink, task, attempt).await
    }

    /// Decides the delivery's state after `attempt` and publishes the record (and retry).
    async fn record(
        &self,
        sink: &mpsc::Sender<Pending>,
        mut task: DeliveryTask,
        attempt: Attempt,
    ) -> anyhow::Result<Outcome> {
        let now = Utc::now();
        let first = *task.first_attempt_at.get_or_insert(now);
        task.attempts += 1;
        let (status, next) = if attempt.succeeded() {
            (DeliveryStatus::Success, None)
        } else if attempt.response_status == Some(410) {
            (DeliveryStatus::Failed, None)
        } else {
            let age = (now - first).to_std().unwrap_or_default();
            let jitter = hookwire_core::id::random();
            match task.target.retry_policy.next_delay(task.attempts, age, jitter) {
                Some(delay) => {
                    let delay = match attempt.retry_after {
                        Some(s) => delay.max(Duration::from_secs(s)).min(hookwire_core::retry::MAX_DELAY),
                        None => delay,
                    };
                    (DeliveryStatus::Retrying, Some(now + delay))
                }
                None => (DeliveryStatus::Exhausted, None),
            }
        };
        let record = record_of(&task, &attempt, now, status, next);
        self.submit(sink, record, next.map(|at| (&task, at))).await?;
        if next.is_some() {
            self.metrics.retries_scheduled.inc();
        }
        if status == DeliveryStatus::Success {
            let e2e = (now - task.event_created_at).to_std().unwrap_or_default();
            self.metrics.end_to_end_seconds.observe(e2e.as_secs_f64());
        }
        self.metrics
            .attempts
            .get_or_create(&OutcomeLabels {
                outcome: status.as_str().to_owned(),
            })
            .inc();
        Ok(match status {
            DeliveryStatus::Success => Outcome::Delivered,
            DeliveryStatus::Retrying | DeliveryStatus::Pending => Outcome::Retrying,
            DeliveryStatus::Failed => Outcome::Failed,
            DeliveryStatus::Exhausted => Outcome::Exhausted,
        })
    }

    /// Gives `task` its webhook's latest settings, or ends it without a request when the webhook
    /// was deleted or deactivated, or the event's payload erased (`Some(outcome)`).
    async fn refresh(&self, sink: &mpsc::Sender<Pending>, task: &mut DeliveryTask) -> anyhow::Result<Option<Outcome>> {
        if self.webhooks.expunged(task.event_id) {
            let why = "payload_expunged: the event's payload was erased; not sent";
            return self.give_up(sink, task, why).await.map(Some);
        }
        let why = match self
            .webhooks
            .get(task.target.webhook_id, task.event_created_at, task.target.modified_at)
        {
            Some(Known::Deleted) => "webhook_deleted: the webhook was deleted",
            Some(Known::Inactive) => "webhook_disabled: the webhook is not active",
            Some(Known::Active(target)) => {
                task.target = *target;
                return Ok(None);
            }
            None => return Ok(None),
        };
        self.give_up(sink, task, why).await.map(Some)
    }

    /// A task that found no request to spare for its webhook. While the webhook's receiver is
    /// failing (its last attempt failed slowly: a timeout, say), the task counts as a failed
    /// attempt without a request and follows the webhook's retry policy, like the attempts that
    /// were sent: so a long outage under steady traffic costs each delivery its retry schedule,
    /// not a trip through the broker every `park_delay`, and `max_age_seconds` still ends it.
    /// Otherwise (the receiver is slow, or its first attempts have not finished) it is parked.
    async fn no_room(
        &self,
        publish: &Channel,
        sink: &mpsc::Sender<Pending>,
        mut task: DeliveryTask,
        gate: &Gate,
    ) -> anyhow::Result<Outcome> {
        if !gate.failing.load(Ordering::Acquire) {
            return self.park(publish, &mut task).await;
        }
        if let Some(due) = not_yet_due(&task) {
            self.schedule(publish, &task, due).await?;
            return Ok(Outcome::Waiting);
        }
        if let Some(outcome) = self.refresh(sink, &mut task).await? {
            return Ok(outcome);
        }
        self.metrics.not_sent.inc();
        let attempt = Attempt::not_sent(format!(
            "receiver_failing: not sent; the receiver's last attempt failed after more than {} ms \
             (a timeout?) and its other requests are all in use; counted as a failed attempt",
            STALL.as_millis()
        ));
        self.record(sink, task, attempt).await
    }

    /// Ends a delivery without an HTTP request (its webhook is gone or disabled, or its payload
    /// erased).
    async fn give_up(&self, sink: &mpsc::Sender<Pending>, task: &DeliveryTask, why: &str) -> anyhow::Result<Outcome> {
        let mut task = task.clone();
        task.attempts += 1;
        let attempt = Attempt::not_sent(why.to_owned());
        let record = record_of(&task, &attempt, Utc::now(), DeliveryStatus::Failed, None);
        self.submit(sink, record, None).await?;
        self.metrics
            .attempts
            .get_or_create(&OutcomeLabels {
                outcome: "failed".into(),
            })
            .inc();
        Ok(Outcome::Failed)
    }

    /// `task`, due at `at`, addressed to the retry tier that brings it back closest to `at`
    /// without overshooting.
    fn retry_message(&self, task: &DeliveryTask, at: DateTime<Utc>) -> anyhow::Result<Retry> {
        let mut task = task.clone();
        task.not_before = Some(at);
        let remaining = (at - Utc::now()).num_seconds().max(0) as u64;
        Ok(Retry {
            queue: self.topology.retry_queue(retry_tier(remaining)),
            body: serde_json::to_vec(&TaskMessage::V1(task.clone()))?,
            id: task.delivery_id.to_string(),
        })
    }

    /// Puts `task` in the retry queues until `at` (parking, or waiting out a retry delay).
    async fn schedule(&self, publish: &Channel, task: &DeliveryTask, at: DateTime<Utc>) -> anyhow::Result<()> {
        let retry = self.retry_message(task, at)?;
        hookwire_broker::publish_confirmed(publish, &[retry.outgoing()]).await?;
        Ok(())
    }

    /// Hands an attempt record (and the retry task, if any) to the session's record sink and
    /// waits until the broker has confirmed them.
    async fn submit(
        &self,
        sink: &mpsc::Sender<Pending>,
        record: LedgerMessage,
        retry: Option<(&DeliveryTask, DateTime<Utc>)>,
    ) -> anyhow::Result<()> {
        let retry = retry.map(|(task, at)| self.retry_message(task, at)).transpose()?;
        let (reply, confirmed) = oneshot::channel();
        sink.send(Pending { record, retry, reply })
            .await
            .map_err(|_| anyhow::anyhow!("the record sink has stopped"))?;
        confirmed
            .await
            .map_err(|_| anyhow::anyhow!("the record sink has stopped"))?
            .map_err(|e| anyhow::anyhow!(e))
    }
}

/// When a retry that came back early is due, if that is more than `DUE_SLACK` away.
fn not_yet_due(task: &DeliveryTask) -> Option<DateTime<Utc>> {
    task.not_before
        .filter(|due| (*due - Utc::now()).to_std().is_ok_and(|left| left > DUE_SLACK))
}

/// One message from the deliveries queue (a task, or a group of them) while its deliveries run.
/// It is acknowledged once every one has finished with its outcome confirmed; if any could not
/// be confirmed, the whole message goes back to the queue (at-least-once: the members already
/// delivered are delivered again, receivers dedupe on `webhook-id`).
struct Message {
    tag: u64,
    left: AtomicUsize,
    failed: AtomicBool,
    acker: Acker,
}

impl Message {
    fn new(tag: u64, deliveries: usize, acker: Acker) -> Self {
        Self {
            tag,
            left: AtomicUsize::new(deliveries),
            failed: AtomicBool::new(false),
            acker,
        }
    }

    /// One delivery of the message is finished. A call past the last delivery is a bug; it is
    /// logged and ignored, never a second acknowledgement (which would close the channel).
    async fn finished(&self, acks: &crate::acks::Acks) {
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
async fn requeue(acker: &Acker) {
    let requeue = BasicNackOptions {
        requeue: true,
        multiple: false,
    };
    if let Err(e) = acker.nack(requeue).await {
        tracing::warn!(error = %e, "negative acknowledgement lost; the broker will redeliver the task");
    }
}

struct Retry {
    queue: String,
    body: Vec<u8>,
    id: String,
}

impl Retry {
    fn outgoing(&self) -> Outgoing<'_> {
        Outgoing {
            exchange: "",
            routing_key: &self.queue,
            body: &self.body,
            message_id: &self.id,
        }
    }
}

/// One attempt's record waiting to be published, and who to tell when it is safe.
pub struct Pending {
    record: LedgerMessage,
    retry: Option<Retry>,
    reply: oneshot::Sender<Result<(), String>>,
}

/// Most records gathered into one ledger message, and how long the first may wait for others.
const SINK_MAX: usize = 256;
const SINK_WAIT: Duration = Duration::from_millis(2);
/// How long a session that stops waits, after draining, for its last records to be confirmed and
/// its last tasks acknowledged.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Gathers attempt records for up to `SINK_WAIT` and publishes them as one ledger message, with
/// their retries, in one confirm round. Each waiter learns whether its own record is safe; only
/// then is its task acknowledged. This turns one broker message per attempt into a fraction.
async fn sink(publish: Channel, ledger: String, mut rx: mpsc::Receiver<Pending>) {
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
        let body = serde_json::to_vec(&LedgerMessage::batch(records)).expect("records serialize");
        let id = hookwire_core::id::v7().to_string();
        let mut outgoing = vec![Outgoing {
            exchange: "",
            routing_key: &ledger,
            body: &body,
            message_id: &id,
        }];
        outgoing.extend(retries.iter().map(Retry::outgoing));
        let result = hookwire_broker::publish_confirmed(&publish, &outgoing)
            .await
            .map_err(|e| e.to_string());
        for w in waiters {
            let _ = w.send(result.clone());
        }
    }
}

fn record_of(
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
    })
}
