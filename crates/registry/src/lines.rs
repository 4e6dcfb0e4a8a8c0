//! Ordered delivery (`ordering: "subject"`): the consumers of the lines queues, and the release
//! of a line's tasks to the dispatchers.
//!
//! Publishers (and recover and replay) send an ordered webhook's deliveries to `{p}.lines`,
//! which one registry at a time consumes (single active consumer), in the order the broker took
//! them. Each delivery joins its line (webhook and subject, `db::lines`): an idle line sends it
//! to the deliveries exchange at once as a task marked `in_line`; a busy one keeps it. The
//! dispatchers send the final record (`success`, `failed`, `exhausted`) of a delivery `in_line`
//! to `{p}.lines.ended` as well as to the ledger; its consumer moves the line on to the next
//! delivery, without waiting behind deliveries still to join. A batch is acknowledged once its
//! lines are committed and the tasks released are confirmed by the broker.

use std::sync::Arc;
use std::time::Duration;

use hookwire_broker::lapin::options::BasicAckOptions;
use hookwire_broker::{Link, Outgoing, PublishError};
use hookwire_core::lanes::Lanes;
use hookwire_core::messages::{LedgerMessage, TaskMessage};
use hookwire_core::topology::Topology;
use tokio_util::sync::CancellationToken;

use crate::batches;
use crate::config::Config;
use crate::db::lines::{self, Entry, Finished, Released};
use crate::db::DbPool;
use crate::metrics::Metrics;

/// Most tasks in one broker message of released tasks, as the publishers' default
/// `ingest.task_group_size`: a batch's tasks travel as a few `delivery_batch.v1` messages, not
/// one message each (dispatchers start each member at once and record each on its own).
const TASKS_PER_MESSAGE: usize = 100;

/// Publishes the tasks lines release to the deliveries exchange, with confirms: each tenant's
/// first `lines.bulk_lane_after` a second through the standard lane, the rest through the bulk
/// lane, as publishers route.
#[derive(Clone)]
pub struct Release {
    link: Link,
    topology: Topology,
    lanes: Arc<Lanes>,
}

/// One broker message of released tasks.
struct Packed {
    routing_key: String,
    /// Its first delivery's id, which names it and picks its shard.
    id: String,
    body: Vec<u8>,
}

impl Release {
    pub fn new(link: Link, topology: &Topology, bulk_lane_after: u32) -> Self {
        Self {
            link,
            topology: topology.clone(),
            lanes: Arc::new(Lanes::new(bulk_lane_after)),
        }
    }

    /// Publishes `tasks` until the broker confirms them all; says how many took the bulk lane.
    /// `None` if `stop` fired first: the caller leaves its messages unacknowledged, to be read
    /// again.
    pub async fn publish(&self, tasks: &[Released], stop: &CancellationToken) -> Option<usize> {
        if tasks.is_empty() {
            return Some(0);
        }
        let (standard, bulk): (Vec<&Released>, Vec<&Released>) =
            tasks.iter().partition(|t| !self.lanes.bulk(t.tenant_id, 1));
        let mut packed = self.pack(&standard, false);
        packed.extend(self.pack(&bulk, true));
        let publish = || async { Ok(self.try_publish(&packed).await?) };
        batches::until_done(stop, "publishing the tasks lines released", || {}, publish).await?;
        Some(bulk.len())
    }

    /// `tasks` of one lane in messages of up to `TASKS_PER_MESSAGE`: a task queue's message
    /// when alone, a group queue's otherwise, in the shard of its first delivery (as the
    /// publishers route).
    fn pack(&self, tasks: &[&Released], bulk: bool) -> Vec<Packed> {
        tasks
            .chunks(TASKS_PER_MESSAGE)
            .map(|chunk| {
                let first = chunk[0].delivery_id;
                let encoded: Vec<&[u8]> = chunk.iter().map(|t| t.task.as_slice()).collect();
                Packed {
                    routing_key: self.topology.delivery_queue(first, chunk.len() > 1, bulk).routing_key(),
                    id: first.to_string(),
                    body: TaskMessage::encoded_batch(&encoded),
                }
            })
            .collect()
    }

    async fn try_publish(&self, packed: &[Packed]) -> Result<(), PublishError> {
        let exchange = self.topology.deliveries_exchange();
        let outgoing: Vec<Outgoing<'_>> = packed
            .iter()
            .map(|p| Outgoing {
                exchange: &exchange,
                routing_key: &p.routing_key,
                body: &p.body,
                message_id: &p.id,
                delay: None,
            })
            .collect();
        self.link.publish(&outgoing).await
    }
}

/// What the lines queue carries.
enum Incoming {
    /// Deliveries to take into their lines.
    Deliveries(TaskMessage),
    /// Attempt records: the final ones of deliveries `in_line` move their lines on.
    Outcomes(LedgerMessage),
}

fn parse(bytes: &[u8]) -> serde_json::Result<Incoming> {
    serde_json::from_slice(bytes)
        .map(Incoming::Deliveries)
        .or_else(|_| serde_json::from_slice(bytes).map(Incoming::Outcomes))
}

/// The lines a record of a final outcome moves on (none for any other record).
fn finished(message: LedgerMessage, out: &mut Vec<Finished>) {
    match message {
        LedgerMessage::Batch { entries } => entries.into_iter().for_each(|m| finished(m, out)),
        LedgerMessage::AttemptRecorded(a) if a.in_line && a.status.is_final() => out.push(Finished {
            webhook_id: a.webhook_id,
            line: a.line().to_owned(),
            delivery_id: a.delivery_id,
        }),
        _ => {}
    }
}

/// The lines entries of one lines-queue message: each task marked `in_line`, as its line
/// will release it.
fn entries(message: TaskMessage) -> Vec<Entry> {
    message
        .into_tasks()
        .into_iter()
        .map(|mut task| {
            task.in_line = true;
            Entry {
                webhook_id: task.target.webhook_id,
                line: task.line().to_owned(),
                tenant_id: task.target.tenant_id,
                delivery_id: task.delivery_id,
                task: serde_json::to_vec(&TaskMessage::V1(task)).expect("tasks serialize"),
            }
        })
        .collect()
}

/// The two queues that change the lines. Each message of either is read as what it carries
/// (dispatchers of earlier versions send the ends to the lines queue).
#[derive(Debug, Clone, Copy)]
pub enum Queue {
    /// The deliveries joining their lines.
    Lines,
    /// The final records that move lines on.
    Ends,
}

impl Queue {
    fn name(self, topology: &Topology) -> String {
        match self {
            Self::Lines => topology.lines_queue(),
            Self::Ends => topology.line_ends_queue(),
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Self::Lines => "hookwire-registry lines",
            Self::Ends => "hookwire-registry line ends",
        }
    }
}

/// Consumes `queue` until `cancel` fires, reconnecting as needed. Only one
/// registry's consumer of each queue is active at a time; the others wait as the broker's
/// standbys. The two consumers take turns on a line by its row lock (`db::lines`).
pub async fn run(
    queue: Queue,
    config: Config,
    pool: DbPool,
    metrics: Arc<Metrics>,
    release: Release,
    cancel: CancellationToken,
) {
    let topology = config.broker.topology();
    let tag = queue.tag();
    hookwire_broker::supervise(config.broker.clone(), tag.to_owned(), cancel, move |conn, stop| {
        let (config, pool, topology, release, metrics) = (
            config.clone(),
            pool.clone(),
            topology.clone(),
            release.clone(),
            metrics.clone(),
        );
        async move {
            let name = queue.name(&topology);
            let mut consumer = batches::consumer(&conn, &topology, name, tag, config.ledger.prefetch).await?;
            loop {
                let limits = hookwire_broker::BatchLimits {
                    messages: config.ledger.batch_size,
                    bytes: config.lines.batch_max_bytes,
                    wait: Duration::ZERO,
                };
                let Some(deliveries) = hookwire_broker::next_batch(&mut consumer, limits, &stop).await? else {
                    return Ok(());
                };
                let dead = || {
                    metrics.lines_dead_lettered.inc();
                };
                let (messages, last_good) = batches::decode(&deliveries, "lines", parse, dead).await?;
                let Some(last_good) = last_good else { continue };
                let (mut joining, mut ended) = (Vec::new(), Vec::new());
                for m in messages {
                    match m {
                        Incoming::Deliveries(tasks) => joining.extend(entries(tasks)),
                        Incoming::Outcomes(records) => finished(records, &mut ended),
                    }
                }
                // A batch read again may have moved its lines on before the broker had the
                // tasks it released: those go out again.
                let again = deliveries.iter().any(|d| d.redelivered);
                let (pool, joining, ended) = (&pool, &joining, &ended);
                let apply = move || async move {
                    let mut conn = pool.get().await?;
                    Ok(lines::apply(&mut conn, joining, ended, again).await?)
                };
                let failed = || {
                    metrics.lines_write_failures.inc();
                };
                let Some(released) = batches::until_done(&stop, "writing the lines", failed, apply).await else {
                    return Ok(());
                };
                let Some(bulk) = release.publish(&released, &stop).await else {
                    return Ok(());
                };
                last_good.ack(BasicAckOptions { multiple: true }).await?;
                metrics.lines_joined.inc_by(joining.len() as u64);
                metrics.lines_released.inc_by(released.len() as u64);
                metrics.lines_released_bulk.inc_by(bulk as u64);
            }
        }
    })
    .await;
}
