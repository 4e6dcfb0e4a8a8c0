//! [`Link`]: a publishing channel a service keeps open (the publisher's tasks, the registry's
//! notices, operational events and relay answers), re-established after a failure.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use hookwire_core::config::BrokerConfig;
use hookwire_core::topology::Topology;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel};
use tokio_util::sync::CancellationToken;

use crate::{declare, publish_confirmed, supervise, Outgoing, PublishError};

/// How long [`Link::publish`] waits for the broker's confirms. A broker that stops confirming
/// (overloaded, or its disk stalled) must not hold a producer's request, or a service's work,
/// for longer than a client would wait: past this the publish fails, although the broker may
/// still store what it received.
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

/// A publishing channel kept open in the background: a confirm-mode channel on its own
/// connection, re-established after a failure. Cheap to clone.
#[derive(Clone)]
pub struct Link {
    open: Arc<RwLock<Option<Open>>>,
}

/// The link's channel and the state of the connection it runs on.
#[derive(Clone)]
struct Open {
    channel: Channel,
    connection: lapin::ConnectionStatus,
    /// The connection, for a fresh channel after a nack.
    conn: Arc<lapin::Connection>,
}

impl Link {
    /// Starts keeping a link open; `topology` is declared on every (re)connect.
    pub fn start(config: BrokerConfig, name: String, topology: Topology, cancel: CancellationToken) -> Self {
        let link = Self {
            open: Arc::new(RwLock::new(None)),
        };
        let slot = link.open.clone();
        tokio::spawn(supervise(config, name, cancel, move |conn, cancel| {
            let slot = slot.clone();
            let topology = topology.clone();
            async move {
                let conn = Arc::new(conn);
                let result = async {
                    let channel = confirming(&conn).await?;
                    declare(&channel, &topology).await?;
                    let connection = conn.status().clone();
                    *slot.write().expect("link lock is never poisoned") = Some(Open {
                        channel,
                        connection,
                        conn: conn.clone(),
                    });
                    // Hold the connection until it fails (the supervisor notices) or the service stops.
                    cancel.cancelled().await;
                    lapin::Result::Ok(())
                }
                .await;
                *slot.write().expect("link lock is never poisoned") = None;
                drop(conn);
                Ok(result?)
            }
        }));
        link
    }

    /// The channel and its connection, when connected.
    fn open(&self) -> Option<Open> {
        self.open
            .read()
            .expect("link lock is never poisoned")
            .clone()
            .filter(|o| o.channel.status().connected())
    }

    /// Whether the link is up (for `/readyz`).
    pub fn is_connected(&self) -> bool {
        self.open().is_some()
    }

    /// Publishes a batch with confirms on the link's channel, waiting at most [`CONFIRM_TIMEOUT`].
    /// While the broker blocks the connection (a memory or disk alarm) nothing is sent: the
    /// publish fails at once rather than waiting in a buffer for the alarm to clear.
    pub async fn publish(&self, messages: &[Outgoing<'_>]) -> Result<(), PublishError> {
        let open = self.open().ok_or(PublishError::Unavailable)?;
        if open.connection.blocked() {
            return Err(PublishError::Blocked);
        }
        let result = tokio::time::timeout(CONFIRM_TIMEOUT, publish_confirmed(&open.channel, messages))
            .await
            .map_err(|_| PublishError::TimedOut(CONFIRM_TIMEOUT))?;
        if matches!(result, Err(PublishError::Nacked)) {
            self.renew(&open).await;
        }
        result
    }

    /// Replaces a channel that had a publish nacked with a fresh one on the same connection.
    /// A channel whose quorum queue's leader died can go on nacking until that node returns
    /// (seen with RabbitMQ 3.10 in the cluster test); a new channel finds the new leaders.
    async fn renew(&self, nacked: &Open) {
        let Ok(channel) = confirming(&nacked.conn).await else {
            return;
        };
        let replaced = {
            let mut slot = self.open.write().expect("link lock is never poisoned");
            match slot.as_mut() {
                Some(open) if open.channel.id() == nacked.channel.id() => {
                    Some(std::mem::replace(&mut open.channel, channel))
                }
                _ => None,
            }
        };
        // None: another publish renewed it first, or the connection was replaced.
        if let Some(old) = replaced {
            tracing::warn!("a publish was nacked: publishing on a fresh channel");
            let _ = old.close(200, "replaced after a nack".into()).await;
        }
    }

    /// Sends `body` to the private queue `reply_to` with `correlation_id` (the relay's answers,
    /// `hookwire_core::relay`), confirmed. A queue gone with its dispatcher drops it.
    pub async fn reply(&self, reply_to: &str, correlation_id: &str, body: &[u8]) -> Result<(), PublishError> {
        let open = self.open().ok_or(PublishError::Unavailable)?;
        let properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_correlation_id(correlation_id.into());
        let confirm = tokio::time::timeout(CONFIRM_TIMEOUT, async {
            open.channel
                .basic_publish(
                    "".into(),
                    reply_to.into(),
                    BasicPublishOptions::default(),
                    body,
                    properties,
                )
                .await?
                .await
        })
        .await
        .map_err(|_| PublishError::TimedOut(CONFIRM_TIMEOUT))??;
        if confirm.is_ack() {
            Ok(())
        } else {
            Err(PublishError::Nacked)
        }
    }

    /// How many messages wait in each of `queues` (ready, not those delivered and unacknowledged),
    /// by a passive declare; `None` while the link is down. Only for queues `declare` creates: a
    /// passive declare of a missing queue closes the channel.
    pub async fn queue_depths(&self, queues: &[String]) -> Option<Vec<(String, u32)>> {
        let open = self.open()?;
        let mut depths = Vec::with_capacity(queues.len());
        for queue in queues {
            let options = QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            };
            let q = open
                .channel
                .queue_declare(queue.as_str().into(), options, FieldTable::default())
                .await
                .ok()?;
            depths.push((queue.clone(), q.message_count()));
        }
        Some(depths)
    }

    /// Waits until the link is up, or `timeout` passes.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while tokio::time::Instant::now() < deadline {
            if self.is_connected() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.is_connected()
    }
}

/// A confirm-mode channel on `conn`.
async fn confirming(conn: &lapin::Connection) -> lapin::Result<Channel> {
    let channel = conn.create_channel().await?;
    channel.confirm_select(ConfirmSelectOptions::default()).await?;
    Ok(channel)
}
