//! Ordered delivery (`ordering: "subject"`): the consumer of the lines queue, and the release of
//! a line's tasks to the dispatchers.
//!
//! Publishers (and recover and replay) send an ordered webhook's deliveries to `{p}.lines`,
//! which one registry at a time consumes (single active consumer), in the order the broker took
//! them. Each delivery joins its line (webhook and subject, `db::lines`): an idle line sends it
//! to the deliveries exchange at once as a task marked `in_line`; a busy one keeps it. The
//! dispatchers send the final record (`success`, `failed`, `exhausted`) of a delivery `in_line`
//! to the same queue as well as to the ledger; here it moves its line on to the next delivery.
//! A batch is acknowledged once its lines are committed and the tasks released are confirmed by
//! the broker.

use std::sync::Arc;
use std::time::Duration;

use hookwire_broker::lapin::options::BasicAckOptions;
use hookwire_broker::{Link, Outgoing, PublishError};
use hookwire_core::messages::{LedgerMessage, TaskMessage};
use hookwire_core::topology::Topology;
use tokio_util::sync::CancellationToken;

use crate::batches;
use crate::config::Config;
use crate::db::lines::{self, Entry, Finished};
use crate::db::DbPool;
use crate::metrics::Metrics;

/// Publishes the tasks lines release to the deliveries exchange, with confirms.
#[derive(Clone)]
pub struct Release {
    link: Link,
    topology: Topology,
}

impl Release {
    pub fn new(link: Link, topology: &Topology) -> Self {
        Self {
            link,
            topology: topology.clone(),
        }
    }

    /// Publishes `tasks` (`delivery_task.v1` bodies) until the broker confirms them all, or
    /// `stop` fires (`false`: the caller leaves its messages unacknowledged, to be read again).
    pub async fn publish(&self, tasks: &[Vec<u8>], stop: &CancellationToken) -> bool {
        if tasks.is_empty() {
            return true;
        }
        let publish = || async { Ok(self.try_publish(tasks).await?) };
        batches::until_done(stop, "publishing the tasks lines released", || {}, publish)
            .await
            .is_some()
    }

    async fn try_publish(&self, tasks: &[Vec<u8>]) -> Result<(), PublishError> {
        // Spread over the shards by the message id, whose low bits are random.
        let ids: Vec<(String, String)> = tasks
            .iter()
            .map(|_| {
                let id = hookwire_core::id::v7();
                (
                    id.to_string(),
                    self.topology.delivery_queue(id, false, false).routing_key(),
                )
            })
            .collect();
        let exchange = self.topology.deliveries_exchange();
        let outgoing: Vec<Outgoing<'_>> = tasks
            .iter()
            .zip(&ids)
            .map(|(body, (id, routing_key))| Outgoing {
                exchange: &exchange,
                routing_key,
                body,
                message_id: id,
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

/// Consumes the lines queue until `cancel` fires, reconnecting as needed. Only one registry's
/// consumer is active at a time; the others wait as the broker's standbys.
pub async fn run(config: Config, pool: DbPool, metrics: Arc<Metrics>, release: Release, cancel: CancellationToken) {
    let topology = config.broker.topology();
    let name = "hookwire-registry lines".to_owned();
    hookwire_broker::supervise(config.broker.clone(), name, cancel, move |conn, stop| {
        let (config, pool, topology, release, metrics) = (
            config.clone(),
            pool.clone(),
            topology.clone(),
            release.clone(),
            metrics.clone(),
        );
        async move {
            let queue = topology.lines_queue();
            let tag = "hookwire-registry lines";
            let mut consumer = batches::consumer(&conn, &topology, queue, tag, config.ledger.prefetch).await?;
            loop {
                let limits = hookwire_broker::BatchLimits {
                    messages: config.ledger.batch_size,
                    bytes: config.ledger.batch_max_bytes,
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
                if !release.publish(&released, &stop).await {
                    return Ok(());
                }
                last_good.ack(BasicAckOptions { multiple: true }).await?;
                metrics.lines_joined.inc_by(joining.len() as u64);
                metrics.lines_released.inc_by(released.len() as u64);
            }
        }
    })
    .await;
}
