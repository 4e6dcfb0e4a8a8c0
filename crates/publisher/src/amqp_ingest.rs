//! Event ingest over AMQP: producers publish `event.v1` messages (`proto/event.v1.schema.json`)
//! to the ingest exchange. The publisher consumes them in batches, validates each, routes and
//! publishes their tasks with confirms, and acknowledges a message only after that. An invalid
//! message is rejected into the dead-letter queue (with a log line and a metric); when the
//! broker does not confirm, the batch returns to the queue and is tried again.

use std::time::Duration;

use actix_web::web;
use hookwire_broker::lapin::message::Delivery;
use hookwire_broker::lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, BasicRejectOptions,
};
use hookwire_broker::lapin::types::FieldTable;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use crate::{ingest, AppState};

/// The `kind` of an ingest message.
pub const KIND: &str = "event.v1";
const BATCH: usize = 500;
/// Events are small (a request body is at most `http.max_body_bytes`); the count bounds a batch.
const LIMITS: hookwire_broker::BatchLimits = hookwire_broker::BatchLimits {
    messages: BATCH,
    bytes: usize::MAX,
    wait: Duration::from_millis(10),
};

/// The message's fields and who sent it: `event.v1` from a producer, `operational_event.v1` from
/// the registry (`hookwire_core::operational`).
fn decode(d: &Delivery) -> Result<(serde_json::Map<String, Value>, ingest::Source), String> {
    let parsed = serde_json::from_slice::<Value>(&d.data);
    if let Some(field) = parsed
        .as_ref()
        .ok()
        .and_then(|v| hookwire_http::input::nul_field(v, ""))
    {
        return Err(format!("{field} must not contain the character U+0000"));
    }
    let mut map = match parsed {
        Ok(Value::Object(m)) => m,
        Ok(_) => return Err("not a JSON object".into()),
        Err(e) => return Err(format!("not JSON: {e}")),
    };
    match map.remove("kind") {
        Some(Value::String(k)) if k == KIND => Ok((map, ingest::Source::Producer)),
        Some(Value::String(k)) if k == hookwire_core::operational::KIND => Ok((map, ingest::Source::Registry)),
        other => Err(format!("kind must be `{KIND}`, not {other:?}")),
    }
}

pub async fn run(state: web::Data<AppState>, cancel: CancellationToken) {
    let broker = state.config.broker.clone();
    hookwire_broker::supervise(broker, "hookwire-publisher ingest".into(), cancel, move |conn, stop| {
        let state = state.clone();
        async move {
            let channel = conn.create_channel().await?;
            hookwire_broker::declare(&channel, &state.topology).await?;
            channel.basic_qos(2 * BATCH as u16, BasicQosOptions::default()).await?;
            let mut consumer = channel
                .basic_consume(
                    state.topology.ingest_queue().into(),
                    "hookwire-publisher".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            // Every publisher consumes the ingest queue: its consumers are the publishers, whose
            // number sets each one's share of the bulk lane threshold.
            let census = {
                let (state, every) = (state.clone(), state.config.ingest.replica_census_interval);
                let queue = state.topology.ingest_queue();
                hookwire_broker::census(conn.create_channel().await?, queue, every, move |replicas| {
                    state.lanes.set_replicas(replicas);
                    state.metrics.replicas.set(i64::from(replicas));
                })
            };
            let _census = AbortOnDropHandle::new(tokio::spawn(census));
            loop {
                let Some(batch) = hookwire_broker::next_batch(&mut consumer, LIMITS, &stop).await? else {
                    return Ok(());
                };
                // Routing needs the snapshot; until it is loaded, wait rather than refuse.
                while !state.cache.is_loaded() {
                    tokio::select! {
                        () = stop.cancelled() => return Ok(()),
                        () = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                }
                let routes = state.cache.routes();
                let mut valid = Vec::with_capacity(batch.len());
                let mut keep = Vec::with_capacity(batch.len());
                for d in batch {
                    match decode(&d).map_err(|e| vec![e]).and_then(|(map, source)| {
                        ingest::parse(map, &routes, source)
                            .map(|accepted| (accepted, source))
                            .map_err(|errs| errs.into_iter().map(|e| format!("{}: {}", e.field, e.message)).collect())
                    }) {
                        // An operational event no webhook takes has no one to tell: it costs no
                        // idempotency claim and no row in the log (a tenant with a dead endpoint
                        // and no webhook on `hookwire.*` would otherwise pay both per delivery).
                        Ok((accepted, ingest::Source::Registry)) if routes.route(&accepted.event).is_empty() => {
                            d.ack(BasicAckOptions::default()).await?;
                        }
                        Ok((accepted, _)) => {
                            valid.push(accepted);
                            keep.push(d);
                        }
                        Err(problems) => {
                            tracing::error!(problems = problems.join("; "), "invalid ingest message dead-lettered");
                            state.metrics.events_rejected.inc();
                            d.reject(BasicRejectOptions { requeue: false }).await?;
                        }
                    }
                }
                if keep.is_empty() {
                    continue;
                }
                match crate::routes::deliver(&state, &routes, valid).await {
                    Ok(_) => {
                        for d in &keep {
                            d.ack(BasicAckOptions::default()).await?;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, messages = keep.len(), "ingest batch not published; it goes back to the queue");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        for d in &keep {
                            d.nack(BasicNackOptions { requeue: true, multiple: false }).await?;
                        }
                    }
                }
            }
        }
    })
    .await;
}
