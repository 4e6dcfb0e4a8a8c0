//! The ledger consumer: reads routed events and attempt results from the ledger queue and writes
//! them to the delivery log in batches. Messages are acknowledged only after their batch is
//! committed; while PostgreSQL is down the batch is retried and the queue simply grows, so the
//! log catches up afterwards and nothing is lost. A batch's final outcomes of deliveries
//! released from a line (`in_line`) then move their lines on (`crate::lines`), before the
//! batch is acknowledged.

use std::sync::Arc;
use std::time::Duration;

use hookwire_broker::lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, BasicRejectOptions};
use hookwire_broker::lapin::types::FieldTable;
use hookwire_core::messages::LedgerMessage;
use hookwire_core::topology::Topology;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::db::ledger::Batch;
use crate::db::DbPool;
use crate::lines::Release;
use crate::metrics::Metrics;
use crate::notices::Notices;
use crate::operational::{self, Operational};

/// Consumes the ledger queue until `cancel` fires, reconnecting to the broker as needed.
pub async fn run(
    config: Config,
    pool: DbPool,
    metrics: Arc<Metrics>,
    notices: Notices,
    operational: Operational,
    release: Release,
    cancel: CancellationToken,
) {
    let topology = Topology::new(&config.broker.prefix);
    let name = "hookwire-registry ledger".to_owned();
    hookwire_broker::supervise(config.broker.clone(), name, cancel, move |conn, stop| {
        let (config, pool, metrics, topology, notices, operational, release) = (
            config.clone(),
            pool.clone(),
            metrics.clone(),
            topology.clone(),
            notices.clone(),
            operational.clone(),
            release.clone(),
        );
        async move {
            let channel = conn.create_channel().await?;
            hookwire_broker::declare(&channel, &topology).await?;
            channel.basic_qos(config.ledger.prefetch, BasicQosOptions::default()).await?;
            let mut consumer = channel
                .basic_consume(
                    topology.ledger_queue().into(),
                    "hookwire-registry".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            loop {
                let limits = hookwire_broker::BatchLimits {
                    messages: config.ledger.batch_size,
                    bytes: config.ledger.batch_max_bytes,
                    wait: config.ledger.batch_wait,
                };
                let Some(deliveries) = hookwire_broker::next_batch(&mut consumer, limits, &stop).await?
                else {
                    return Ok(());
                };
                let mut batch = Batch::default();
                let mut last_good = None;
                for d in &deliveries {
                    match serde_json::from_slice::<LedgerMessage>(&d.data) {
                        Ok(m) => {
                            batch.add(m);
                            last_good = Some(d);
                        }
                        Err(e) => {
                            tracing::error!(error = %e, bytes = d.data.len(), "undecodable ledger message dead-lettered");
                            metrics.ledger_dead_lettered.inc();
                            d.reject(BasicRejectOptions { requeue: false }).await?;
                        }
                    }
                }
                let Some(last_good) = last_good else { continue };
                let mut failures = 0u32;
                let written = loop {
                    let written = match pool.get().await {
                        Ok(mut conn) => {
                            let written = batch.write(&mut conn, config.webhooks.auto_disable_after).await;
                            if let Ok(w) = &written {
                                audit_deactivations(&mut conn, &w.deactivated).await;
                            }
                            written.map_err(anyhow::Error::from)
                        }
                        Err(e) => Err(anyhow::Error::from(e)),
                    };
                    match written {
                        Ok(written) => {
                            if !written.expunged.is_empty() {
                                tracing::info!(events = written.expunged.len(), "events erased before they reached the log written without their payloads");
                                notices.expunged(&written.expunged).await;
                            }
                            for w in &written.deactivated {
                                tracing::warn!(webhook_id = %w.id, tenant_id = %w.tenant_id, "webhook deactivated after failing for too long");
                                notices.upserted(w).await;
                            }
                            break written;
                        }
                        Err(e) => {
                            metrics.ledger_write_failures.inc();
                            tracing::warn!(error = format!("{e:#}"), messages = batch.len(), "writing the delivery log failed; retrying");
                            if !back_off(&mut failures, &stop).await {
                                return Ok(());
                            }
                        }
                    }
                };
                let events: Vec<_> = written
                    .exhausted
                    .iter()
                    .map(operational::exhausted)
                    .chain(written.deactivated.iter().map(operational::disabled))
                    .chain(written.deactivated_before.iter().map(operational::disabled))
                    .collect();
                let mut failures = 0u32;
                while !events.is_empty() {
                    let Err(e) = operational.publish(&events).await else {
                        metrics.operational_events.inc_by(events.len() as u64);
                        break;
                    };
                    tracing::warn!(error = %e, events = events.len(), "operational events not published; retrying before the batch is acknowledged");
                    if !back_off(&mut failures, &stop).await {
                        return Ok(());
                    }
                }
                let again = deliveries.iter().any(|d| d.redelivered);
                let mut failures = 0u32;
                let released = loop {
                    let advanced = match pool.get().await {
                        Ok(mut conn) => crate::db::lines::advance(&mut conn, batch.finished_in_lines(), again)
                            .await
                            .map_err(anyhow::Error::from),
                        Err(e) => Err(anyhow::Error::from(e)),
                    };
                    match advanced {
                        Ok(released) => break released,
                        Err(e) => {
                            tracing::warn!(error = format!("{e:#}"), "moving the lines on failed; retrying");
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
                metrics.ledger_messages_written.inc_by(batch.len() as u64);
                metrics.ledger_statements.inc_by(written.statements);
                metrics.ledger_batches_written.inc();
            }
        }
    })
    .await;
}

/// Waits before the `failures`-th retry of a batch (0.2 s more each time, at most 5 s); `false`
/// when the service stops meanwhile: the batch is left unacknowledged, and the broker gives it
/// to the next consumer when the channel closes (it is written again, idempotently).
pub(crate) async fn back_off(failures: &mut u32, stop: &CancellationToken) -> bool {
    *failures += 1;
    let wait = Duration::from_millis(200 * u64::from((*failures).min(25)));
    tokio::select! {
        () = stop.cancelled() => false,
        () = tokio::time::sleep(wait) => true,
    }
}

/// Records in the audit log the webhooks a batch deactivated for failing too long.
async fn audit_deactivations(conn: &mut diesel_async::AsyncPgConnection, deactivated: &[crate::db::models::Webhook]) {
    let by = crate::audit::By::system("automatic deactivation");
    for w in deactivated {
        let change = crate::audit::Change {
            tenant_id: Some(w.tenant_id),
            action: "webhook.deactivated",
            resource_type: "webhook",
            resource_id: w.id.to_string(),
            changes: serde_json::json!({
                "is_active": { "before": true, "after": false },
                "disabled_reason": { "before": null, "after": w.disabled_reason },
            }),
        };
        crate::audit::record(conn, &by, change).await;
    }
}
