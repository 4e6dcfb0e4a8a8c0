//! Attempts to relayed webhooks (`hookwire listen`, `hookwire_core::relay`): the signed request
//! goes to the relay exchange and the attempt waits for the listening CLI's answer on this
//! dispatcher's private reply queue, for no longer than the webhook's timeout. A relay that no
//! CLI holds is unroutable and fails the attempt at once, as a refused connection would.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures_util::StreamExt as _;
use hookwire_broker::lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use hookwire_broker::lapin::Confirmation;
use hookwire_broker::lapin::{BasicProperties, Channel, Connection};
use hookwire_core::relay::{RelayReply, RelayRequest};
use hookwire_core::topology::Topology;
use tokio::sync::oneshot;
use tokio_util::task::AbortOnDropHandle;

/// This dispatcher's side of the relay; one per dispatcher, set up again with each broker session.
#[derive(Default)]
pub struct Relay {
    /// The channel requests are published on and the queue replies come to, while connected.
    open: RwLock<Option<(Channel, String)>>,
    /// Attempts waiting for their answer, by correlation id.
    waiting: Arc<Mutex<HashMap<String, oneshot::Sender<RelayReply>>>>,
}

impl Relay {
    /// Opens the relay on `conn`: a confirm channel and a private reply queue, read by the task
    /// returned (it ends with the connection, or when dropped).
    pub async fn open(&self, conn: &Connection) -> anyhow::Result<AbortOnDropHandle<()>> {
        let channel = conn.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        let (queue, mut replies) = hookwire_broker::private_queue(&channel, None, "hookwire-dispatcher-relay").await?;
        *self.open.write().expect("never poisoned") = Some((channel, queue));
        let waiting = self.waiting.clone();
        Ok(AbortOnDropHandle::new(tokio::spawn(async move {
            while let Some(Ok(delivery)) = replies.next().await {
                let Some(id) = delivery.properties.correlation_id() else {
                    continue;
                };
                let Some(reply) = serde_json::from_slice::<RelayReply>(&delivery.data)
                    .ok()
                    .filter(|r| r.kind == hookwire_core::relay::REPLY_KIND)
                else {
                    tracing::warn!("a relay reply that does not decode was dropped");
                    continue;
                };
                if let Some(waiter) = waiting.lock().expect("never poisoned").remove(id.as_str()) {
                    let _ = waiter.send(reply);
                }
            }
        })))
    }

    /// Relays `request` to listen session `listen_id` and waits at most `timeout` for the answer;
    /// `Err((code, message))` when there is none.
    pub async fn send(
        &self,
        topology: &Topology,
        listen_id: &str,
        request: &RelayRequest,
        timeout: Duration,
    ) -> Result<RelayReply, (&'static str, String)> {
        let Some((channel, queue)) = self.open.read().expect("never poisoned").clone() else {
            return Err(("connect", "the broker is unreachable".into()));
        };
        let id = hookwire_core::id::v7().simple().to_string();
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().expect("never poisoned").insert(id.clone(), tx);
        let _forget = Forget(&self.waiting, &id);
        let body = serde_json::to_vec(request).expect("serializes");
        let properties = BasicProperties::default()
            .with_reply_to(queue.as_str().into())
            .with_correlation_id(id.as_str().into())
            // A request nobody took by then is not wanted any more.
            .with_expiration(timeout.as_millis().to_string().into());
        let mandatory = BasicPublishOptions {
            mandatory: true,
            ..BasicPublishOptions::default()
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let no_answer = || ("timeout", format!("no response within {} s", timeout.as_secs()));
        let published = async {
            channel
                .basic_publish(
                    topology.relay_exchange().as_str().into(),
                    listen_id.into(),
                    mandatory,
                    &body,
                    properties,
                )
                .await?
                .await
        };
        match tokio::time::timeout_at(deadline, published).await {
            Ok(Ok(Confirmation::Ack(None) | Confirmation::NotRequested)) => {}
            Ok(Ok(Confirmation::Ack(Some(_)))) => {
                return Err(("connect", "no `hookwire listen` is connected to this webhook".into()))
            }
            Ok(Ok(Confirmation::Nack(_))) => return Err(("connect", "the broker refused the relayed request".into())),
            Ok(Err(e)) => return Err(("connect", e.to_string())),
            Err(_) => return Err(no_answer()),
        }
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => Err(("connect", "the relay closed".into())),
            Err(_) => Err(no_answer()),
        }
    }
}

/// Removes a waiting attempt however it ends.
struct Forget<'a>(&'a Mutex<HashMap<String, oneshot::Sender<RelayReply>>>, &'a str);

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.0.lock().expect("never poisoned").remove(self.1);
    }
}
