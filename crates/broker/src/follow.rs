//! Following the registry's webhooks: a whole snapshot read over HTTP now and then, and the
//! change notices in between. Publishers route with what they follow; dispatchers use it to stop
//! delivering to deleted or deactivated webhooks and to deliver with a webhook's latest settings.
//!
//! Each broker session binds its private notice queue *before* it asks for a snapshot, so no
//! change made meanwhile is missed; a notice is applied as it arrives, also while a snapshot is
//! being read, and again on top of that snapshot (which may predate it) once it is in. A snapshot
//! is read at the start of every session (notices sent while the follower was disconnected are
//! gone) and every `resync` afterwards: the registry sends a notice after its commit and does not
//! retry it (docs/guarantees.md), so only a reload repairs a lost one. Until the first snapshot is
//! in, a failed read is retried after 0.2 s, 0.4 s, … up to 5 s; once one is, a failed read keeps
//! what is held until the next `resync`.
//!
//! A reload names the version it holds (the snapshot's `ETag`), and the registry answers
//! "unchanged" while its webhooks and catalog are as they were: a quiet installation's reloads
//! cost one small query, not every webhook (0.6 KB each) to every replica. The first read of a
//! session and every [`FULL_READ_EVERY`]th read after it take the whole snapshot whatever the
//! version says, so a change the version would not show (a registry upgraded to send more)
//! reaches followers within that many intervals.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use futures_util::StreamExt as _;
use hookwire_core::config::BrokerConfig;
use hookwire_core::messages::{ChangeNotice, RoutingRead, RoutingSnapshot};
use hookwire_core::topology::Topology;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What keeps a copy of the registry's webhooks.
pub trait Follower: Send + Sync + 'static {
    /// Takes a whole snapshot in place of what it held; the registry was asked at `asked_at`.
    fn replace(&self, snapshot: RoutingSnapshot, asked_at: DateTime<Utc>);
    /// The registry, asked at `asked_at`, still had the snapshot held (notices aside).
    fn unchanged(&self, asked_at: DateTime<Utc>);
    /// Takes in changes, in the order they were sent; a notice older than what is held
    /// (`modified_at`) changes nothing. A burst comes as one batch (what had arrived by then).
    fn apply(&self, notices: Vec<ChangeNotice>);
    /// Whether a snapshot has been taken in since start.
    fn is_loaded(&self) -> bool;
}

/// Most notices taken in at once.
const NOTICE_BATCH: usize = 1024;

/// Every this many reads, one takes the whole snapshot whatever its version says.
pub const FULL_READ_EVERY: u32 = 10;

/// Reads the registry's snapshot; given the version held, it may answer that nothing changed.
pub type Read = Arc<dyn Fn(Option<String>) -> BoxFuture<'static, anyhow::Result<RoutingRead>> + Send + Sync>;

/// Keeps `follower` in step with the registry until `cancel` fires. `service` names the broker
/// connection (`"{service} changes"`) and the notice consumer.
pub async fn follow(
    config: BrokerConfig,
    service: &'static str,
    resync: Duration,
    follower: Arc<dyn Follower>,
    read: Read,
    cancel: CancellationToken,
) {
    let topology = config.topology();
    crate::supervise(config, format!("{service} changes"), cancel, move |conn, stop| {
        session(
            conn,
            stop,
            service,
            topology.clone(),
            resync,
            follower.clone(),
            read.clone(),
        )
    })
    .await;
}

async fn session(
    conn: lapin::Connection,
    stop: CancellationToken,
    service: &'static str,
    topology: Topology,
    resync: Duration,
    follower: Arc<dyn Follower>,
    read: Read,
) -> anyhow::Result<()> {
    let channel = conn.create_channel().await?;
    crate::declare(&channel, &topology).await?;
    // Whatever has arrived is taken in one go: a burst of changes (webhooks created by the
    // thousand) costs a follower one update per batch, not one per notice.
    let mut notices = crate::consume_changes(&channel, &topology, service)
        .await?
        .ready_chunks(NOTICE_BATCH);
    let next_read = tokio::time::sleep_until(Instant::now());
    tokio::pin!(next_read);
    let mut reading: Option<(DateTime<Utc>, BoxFuture<'static, anyhow::Result<RoutingRead>>)> = None;
    let mut since_read: Vec<ChangeNotice> = Vec::new();
    let mut failures = 0u32;
    // The version of the snapshot held, and the reads since the last whole one.
    let mut held: Option<String> = None;
    let mut reads = 0u32;
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            () = &mut next_read, if reading.is_none() => {
                let named = held.clone().filter(|_| reads % FULL_READ_EVERY != 0);
                reads += 1;
                reading = Some((Utc::now(), read(named)));
            }
            snapshot = async { reading.as_mut().expect("polled only while reading").1.as_mut().await }, if reading.is_some() => {
                let (asked_at, _) = reading.take().expect("a read was under way");
                let replayed = std::mem::take(&mut since_read);
                let wait = match snapshot {
                    Ok(RoutingRead::Unchanged) => {
                        follower.unchanged(asked_at);
                        tracing::debug!(service, "webhooks unchanged at the registry");
                        failures = 0;
                        resync
                    }
                    Ok(RoutingRead::Snapshot { snapshot, tag }) => {
                        let (subscriptions, first) = (snapshot.subscriptions.len(), !follower.is_loaded());
                        held = tag;
                        reads = 1;
                        // Taking in 100,000 webhooks takes tens of milliseconds: off the
                        // runtime's threads, so deliveries and routing go on meanwhile.
                        let taker = follower.clone();
                        tokio::task::spawn_blocking(move || {
                            taker.replace(snapshot, asked_at);
                            if !replayed.is_empty() {
                                taker.apply(replayed);
                            }
                        })
                        .await?;
                        if first {
                            tracing::info!(service, subscriptions, "webhooks loaded from the registry");
                        } else {
                            tracing::debug!(service, subscriptions, "webhooks reloaded from the registry");
                        }
                        failures = 0;
                        resync
                    }
                    Err(e) if follower.is_loaded() => {
                        tracing::warn!(service, error = format!("{e:#}"), "cannot reload webhooks from the registry; keeping those held until the next resync");
                        resync
                    }
                    Err(e) => {
                        failures += 1;
                        if failures == 1 || failures % 10 == 0 {
                            tracing::warn!(service, failures, error = format!("{e:#}"), "cannot load webhooks from the registry yet; retrying");
                        }
                        Duration::from_millis(200 * u64::from(failures.min(25)))
                    }
                };
                next_read.as_mut().reset(Instant::now() + wait);
            }
            next = notices.next() => {
                let Some(batch) = next else {
                    anyhow::bail!("the broker cancelled the change-notice consumer")
                };
                let mut changes = Vec::with_capacity(batch.len());
                for delivery in batch {
                    match serde_json::from_slice::<ChangeNotice>(&delivery?.data) {
                        Ok(notice) => changes.push(notice),
                        Err(e) => tracing::error!(service, error = %e, "undecodable change notice ignored"),
                    }
                }
                if reading.is_some() {
                    since_read.extend(changes.iter().cloned());
                }
                follower.apply(changes);
            }
        }
    }
}
