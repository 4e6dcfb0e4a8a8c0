//! Ordered delivery (`ordering: "subject"`): the consumer of the lines queue, and the release of
//! a line's tasks to the dispatchers.
//!
//! Publishers (and recover and replay) send an ordered webhook's deliveries to `{p}.lines`,
//! which one registry at a time consumes (single active consumer), in the order the broker took
//! them. Each delivery joins its line (webhook and subject, `db::lines`): an idle line sends it
//! to the deliveries exchange at once as a task marked `in_line`; a busy one keeps it until the
//! ledger records the busy delivery's final outcome, which releases the next (`ledger`).
//! Messages are acknowledged once their lines are committed and the tasks released are
//! confirmed by the broker.

use std::time::Duration;

use hookwire_broker::lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, BasicRejectOptions};
use hookwire_broker::lapin::types::FieldTable;
use hookwire_broker::{Link, Outgoing, PublishError};
use hookwire_core::messages::TaskMessage;
use hookwire_core::topology::{Topology, TASK_ROUTING_KEY};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::db::lines::{self, Entry};
use crate::db::DbPool;
use crate::ledger::back_off;

/// Publishes the tasks lines release to the deliveries exchange, with confirms.
#[derive(Clone)]
pub struct Release {
    link: Link,
    exchange: String,
}

impl Release {
    pub fn new(link: Link, topology: &Topology) -> Self {
        Self {
            link,
            exchange: topology.deliveries_exchange(),
        }
    }

    /// Publishes `tasks` (`delivery_task.v1` bodies) until the broker confirms them all, or
    /// `stop` fires (`false`: the caller leaves its messages unacknowledged, to be read again).
    pub async fn publish(&self, tasks: &[Vec<u8>], stop: &CancellationToken) -> bool {
        let mut failures = 0u32;
        while !tasks.is_empty() {
            let Err(e) = self.try_publish(tasks).await else {
                break;
            };
            tracing::warn!(error = %e, tasks = tasks.len(), "released line tasks not confirmed; retrying");
            if !back_off(&mut failures, stop).await {
                return false;
            }
        }
        true
    }

    async fn try_publish(&self, tasks: &[Vec<u8>]) -> Result<(), PublishError> {
        let ids: Vec<String> = tasks.iter().map(|_| hookwire_core::id::v7().to_string()).collect();
        let outgoing: Vec<Outgoing<'_>> = tasks
            .iter()
            .zip(&ids)
            .map(|(body, id)| Outgoing {
                exchange: &self.exchange,
                routing_key: TASK_ROUTING_KEY,
                body,
                message_id: id,
            })
            .collect();
        self.link.publish(&outgoing).await
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
pub async fn run(config: Config, pool: DbPool, release: Release, cancel: CancellationToken) {
    let topology = Topology::new(&config.broker.prefix);
    let name = "hookwire-registry lines".to_owned();
    hookwire_broker::supervise(config.broker.clone(), name, cancel, move |conn, stop| {
        let (config, pool, topology, release) = (config.clone(), pool.clone(), topology.clone(), release.clone());
        async move {
            let channel = conn.create_channel().await?;
            hookwire_broker::declare(&channel, &topology).await?;
            channel.basic_qos(config.ledger.prefetch, BasicQosOptions::default()).await?;
            let mut consumer = channel
                .basic_consume(
                    topology.lines_queue().into(),
                    "hookwire-registry lines".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            loop {
                let limits = hookwire_broker::BatchLimits {
                    messages: config.ledger.batch_size,
                    bytes: config.ledger.batch_max_bytes,
                    wait: Duration::ZERO,
                };
                let Some(deliveries) = hookwire_broker::next_batch(&mut consumer, limits, &stop).await? else {
                    return Ok(());
                };
                let mut all = Vec::new();
                let mut last_good = None;
                for d in &deliveries {
                    match serde_json::from_slice::<TaskMessage>(&d.data) {
                        Ok(m) => {
                            all.extend(entries(m));
                            last_good = Some(d);
                        }
                        Err(e) => {
                            tracing::error!(error = %e, bytes = d.data.len(), "undecodable lines message dead-lettered");
                            d.reject(BasicRejectOptions { requeue: false }).await?;
                        }
                    }
                }
                let Some(last_good) = last_good else { continue };
                let mut failures = 0u32;
                let released = loop {
                    let appended = match pool.get().await {
                        Ok(mut conn) => lines::append(&mut conn, &all).await.map_err(anyhow::Error::from),
                        Err(e) => Err(anyhow::Error::from(e)),
                    };
                    match appended {
                        Ok(released) => break released,
                        Err(e) => {
                            tracing::warn!(error = format!("{e:#}"), deliveries = all.len(), "writing the lines failed; retrying");
                            if !back_off(&mut failures, &stop).await {
                                return Ok(());
                            }
                        }
                    }
                };
                if !release.publish(&released, &stop).await {
                    return Ok(());
                }
                last_good.ack(BasicAckOptions { multiple: true }).await?;
            }
        }
    })
    .await;
}
