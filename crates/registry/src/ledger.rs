//! The ledger consumer: reads routed events and attempt results from the ledger queue and writes
//! them to the delivery log in batches. Messages are acknowledged only after their batch is
//! committed; while PostgreSQL is down the batch is retried and the queue simply grows, so the
//! log catches up afterwards and nothing is lost.

use std::sync::Arc;

use hookwire_broker::lapin::options::BasicAckOptions;
use hookwire_core::messages::LedgerMessage;
use tokio_util::sync::CancellationToken;

use crate::batches;
use crate::config::Config;
use crate::db::ledger::Batch;
use crate::db::DbPool;
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
    cancel: CancellationToken,
) {
    let topology = config.broker.topology();
    let name = "hookwire-registry ledger".to_owned();
    hookwire_broker::supervise(config.broker.clone(), name, cancel, move |conn, stop| {
        let (config, pool, metrics, topology, notices, operational) = (
            config.clone(),
            pool.clone(),
            metrics.clone(),
            topology.clone(),
            notices.clone(),
            operational.clone(),
        );
        async move {
            let queue = topology.ledger_queue();
            let mut consumer =
                batches::consumer(&conn, &topology, queue, "hookwire-registry", config.ledger.prefetch).await?;
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
                let parse = |bytes: &[u8]| serde_json::from_slice::<LedgerMessage>(bytes);
                let (messages, last_good) =
                    batches::decode(&deliveries, "ledger", parse, || {
                        metrics.ledger_dead_lettered.inc();
                    })
                    .await?;
                let Some(last_good) = last_good else { continue };
                let mut batch = Batch::default();
                for m in messages {
                    batch.add(m);
                }
                let failed = || {
                    metrics.ledger_write_failures.inc();
                };
                let (pool, batch_ref, after) = (&pool, &batch, config.webhooks.auto_disable_after);
                let write = move || async move {
                    let mut conn = pool.get().await?;
                    let written = batch_ref.write(&mut conn, after).await?;
                    audit_deactivations(&mut conn, &written.deactivated).await;
                    Ok(written)
                };
                let Some(written) = batches::until_done(&stop, "writing the delivery log", failed, write).await
                else {
                    return Ok(());
                };
                if !written.expunged.is_empty() {
                    tracing::info!(events = written.expunged.len(), "events erased before they reached the log written without their payloads");
                    notices.expunged(&written.expunged).await;
                }
                for w in &written.deactivated {
                    tracing::warn!(webhook_id = %w.id, tenant_id = %w.tenant_id, "webhook deactivated after failing for too long");
                    notices.upserted(w).await;
                }
                let events: Vec<_> = written
                    .exhausted
                    .iter()
                    .map(operational::exhausted)
                    .chain(written.deactivated.iter().map(operational::disabled))
                    .chain(written.deactivated_before.iter().map(operational::disabled))
                    .collect();
                if !events.is_empty() {
                    let publish = || async { Ok(operational.publish(&events).await?) };
                    let what = "publishing operational events before the batch is acknowledged";
                    if batches::until_done(&stop, what, || {}, publish).await.is_none() {
                        return Ok(());
                    }
                    metrics.operational_events.inc_by(events.len() as u64);
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
