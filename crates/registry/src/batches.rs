//! What the registry's queue consumers (the ledger, the lines) share: reading a queue in
//! batches, dead-lettering what does not decode, and retrying a batch's database work until it
//! lands. A batch is acknowledged only after its work is done, so a registry that stops leaves
//! it to the next consumer, which does it again (every such write is idempotent).

use std::future::Future;
use std::time::Duration;

use hookwire_broker::lapin::message::Delivery;
use hookwire_broker::lapin::options::{BasicConsumeOptions, BasicQosOptions, BasicRejectOptions};
use hookwire_broker::lapin::types::FieldTable;
use hookwire_broker::lapin::{Connection, Consumer};
use hookwire_core::topology::Topology;
use tokio_util::sync::CancellationToken;

/// A consumer of `queue` on a channel of its own, with `prefetch` unacknowledged messages.
pub async fn consumer(
    conn: &Connection,
    topology: &Topology,
    queue: String,
    tag: &str,
    prefetch: u16,
) -> anyhow::Result<Consumer> {
    let channel = conn.create_channel().await?;
    hookwire_broker::declare(&channel, topology).await?;
    channel.basic_qos(prefetch, BasicQosOptions::default()).await?;
    Ok(channel
        .basic_consume(
            queue.into(),
            tag.into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?)
}

/// The messages of `deliveries` that `parse` decodes, and the last of them (to acknowledge the
/// batch up to). One that does not decode is rejected to the dead-letter queue, and counted by
/// `dead`.
pub async fn decode<'a, T>(
    deliveries: &'a [Delivery],
    what: &str,
    parse: impl Fn(&[u8]) -> serde_json::Result<T>,
    dead: impl Fn(),
) -> anyhow::Result<(Vec<T>, Option<&'a Delivery>)> {
    let mut good = Vec::with_capacity(deliveries.len());
    let mut last_good = None;
    for d in deliveries {
        match parse(&d.data) {
            Ok(m) => {
                good.push(m);
                last_good = Some(d);
            }
            Err(e) => {
                tracing::error!(error = %e, bytes = d.data.len(), "undecodable {what} message dead-lettered");
                dead();
                d.reject(BasicRejectOptions { requeue: false }).await?;
            }
        }
    }
    Ok((good, last_good))
}

/// Runs `work` until it succeeds, backing off between failures (each logged as `what` and
/// counted by `failed`). `None` when the service stops meanwhile.
pub async fn until_done<T, F: Future<Output = anyhow::Result<T>>>(
    stop: &CancellationToken,
    what: &str,
    failed: impl Fn(),
    mut work: impl FnMut() -> F,
) -> Option<T> {
    let mut failures = 0u32;
    loop {
        match work().await {
            Ok(done) => return Some(done),
            Err(e) => {
                failed();
                tracing::warn!(error = format!("{e:#}"), "{what} failed; retrying");
                if !back_off(&mut failures, stop).await {
                    return None;
                }
            }
        }
    }
}

/// Waits before the `failures`-th retry of a batch (0.2 s more each time, at most 5 s); `false`
/// when the service stops meanwhile: the batch is left unacknowledged, and the broker gives it
/// to the next consumer when the channel closes.
async fn back_off(failures: &mut u32, stop: &CancellationToken) -> bool {
    *failures += 1;
    let wait = Duration::from_millis(200 * u64::from((*failures).min(25)));
    tokio::select! {
        () = stop.cancelled() => false,
        () = tokio::time::sleep(wait) => true,
    }
}
