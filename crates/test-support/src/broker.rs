//! This installation's broker as a test sees it: raw publishes, queue depths, a broker that
//! refuses tasks, and deleting its queues afterwards.

use std::collections::HashMap;
use std::time::Duration;

use crate::{broker_url, eventually, ServiceProcess, TestEnv};

impl TestEnv {
    /// A channel on a fresh connection to this installation's broker (keep the connection).
    async fn channel(&self) -> (hookwire_broker::lapin::Connection, hookwire_broker::lapin::Channel) {
        let config = hookwire_core::config::BrokerConfig::new(broker_url(), self.prefix.clone());
        let conn = hookwire_broker::connect(&config, "hookwire tests")
            .await
            .expect("broker reachable");
        let channel = conn.create_channel().await.expect("a channel");
        (conn, channel)
    }

    /// Publishes raw bytes to one of this installation's exchanges, with a confirm.
    pub async fn publish_amqp(&self, exchange: &str, routing_key: &str, body: &[u8]) {
        let (_conn, channel) = self.channel().await;
        channel.confirm_select(Default::default()).await.expect("confirm mode");
        hookwire_broker::publish_confirmed(
            &channel,
            &[hookwire_broker::Outgoing {
                exchange,
                routing_key,
                body,
                message_id: "test",
                delay: None,
            }],
        )
        .await
        .expect("the broker confirms");
    }

    /// Stops `dispatcher` for good and says how many messages of the task queues (`grouped`:
    /// the group queues) it had not acknowledged. `queue_depth` counts only messages ready to
    /// deliver, so a message a dispatcher holds unacknowledged does not show until that
    /// dispatcher is gone: killed, it gives the message back. Acknowledgements leave in runs
    /// within 10 ms of a task's end, so the kill waits 300 ms for them first (nothing shows
    /// that none is left to leave).
    pub async fn kill_dispatcher(&self, mut dispatcher: ServiceProcess, grouped: bool) -> u32 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Every dispatcher consumes the first task queue: one consumer fewer there is the broker
        // having dropped the killed one's, which returns its unacknowledged messages with it.
        let first = self.topology().deliveries_queue();
        let before = self.queue_stats(&first).await.1;
        dispatcher.kill().expect("SIGKILL the dispatcher");
        let _ = dispatcher.wait();
        let gone = eventually(Duration::from_secs(10), || async {
            (self.queue_stats(&first).await.1 < before).then_some(())
        })
        .await;
        assert!(
            gone.is_some(),
            "the broker still counts the killed dispatcher's consumer"
        );
        self.delivery_depth(grouped).await
    }

    /// Messages waiting in the task queues (`grouped`: the group queues) of every shard and lane.
    pub async fn delivery_depth(&self, grouped: bool) -> u32 {
        self.lane_depth(false, grouped).await + self.lane_depth(true, grouped).await
    }

    /// Messages waiting in the task queues (`grouped`: the group queues) of every shard of one
    /// lane (`bulk`).
    pub async fn lane_depth(&self, bulk: bool, grouped: bool) -> u32 {
        let t = self.topology();
        let mut depth = 0;
        for q in t
            .delivery_queues()
            .into_iter()
            .filter(|q| q.grouped == grouped && q.bulk == bulk)
        {
            depth += self.queue_depth(&t.delivery_queue_name(q)).await;
        }
        depth
    }

    /// Takes the one task waiting in the standard lane's task queues and puts it back as if the
    /// broker had delivered it `redeliveries` times before (its `x-delivery-count` header), to
    /// dispatchers that stopped with it. Panics when no task waits.
    pub async fn mark_redelivered(&self, redeliveries: i64) {
        use hookwire_broker::lapin::options::{BasicAckOptions, BasicGetOptions, BasicPublishOptions};
        use hookwire_broker::lapin::types::{AMQPValue, FieldTable};
        let (_conn, channel) = self.channel().await;
        channel.confirm_select(Default::default()).await.expect("confirm mode");
        let t = self.topology();
        for q in t.delivery_queues().into_iter().filter(|q| !q.grouped && !q.bulk) {
            let name = t.delivery_queue_name(q);
            let got = channel
                .basic_get(name.as_str().into(), BasicGetOptions::default())
                .await
                .expect("basic.get");
            let Some(message) = got else { continue };
            let mut headers = FieldTable::default();
            headers.insert("x-delivery-count".into(), AMQPValue::LongLongInt(redeliveries));
            let properties = message.delivery.properties.clone().with_headers(headers);
            channel
                .basic_publish(
                    t.deliveries_exchange().as_str().into(),
                    q.routing_key().as_str().into(),
                    BasicPublishOptions::default(),
                    &message.delivery.data,
                    properties,
                )
                .await
                .expect("publish")
                .await
                .expect("confirmed");
            message.delivery.ack(BasicAckOptions::default()).await.expect("ack");
            return;
        }
        panic!("no task waits in the standard lane's task queues");
    }

    /// Messages waiting in a queue of this installation.
    pub async fn queue_depth(&self, queue: &str) -> u32 {
        self.queue_stats(queue).await.0
    }

    /// Messages ready in a queue of this installation, and its consumers.
    async fn queue_stats(&self, queue: &str) -> (u32, u32) {
        let (_conn, channel) = self.channel().await;
        let q = channel
            .queue_declare(
                queue.into(),
                hookwire_broker::lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                Default::default(),
            )
            .await
            .expect("the queue exists");
        (q.message_count(), q.consumer_count())
    }
}

/// Deletes the queues and exchanges of the installation `config.prefix` names, best effort.
pub async fn delete_topology(config: &hookwire_core::config::BrokerConfig) {
    if let Ok(conn) = hookwire_broker::connect(config, "hookwire tests cleanup").await {
        if let Ok(ch) = conn.create_channel().await {
            let t = config.topology();
            for q in t.queues() {
                let _ = ch.queue_delete(q.into(), Default::default()).await;
            }
            for x in [
                t.deliveries_exchange(),
                t.changes_exchange(),
                t.ingest_exchange(),
                t.delay_exchange(),
            ] {
                let _ = ch.exchange_delete(x.into(), Default::default()).await;
            }
        }
    }
}

/// While alive, RabbitMQ refuses new messages for this installation's standard task queues
/// once they hold any (a policy: `max-length` 0, `reject-publish`); dropped, it takes them again.
pub struct RefusedTasks(String);

impl TestEnv {
    /// The task queues of the standard lane, one per shard (where a single task goes).
    pub fn standard_task_queues(&self) -> Vec<String> {
        let t = self.topology();
        t.delivery_queues()
            .into_iter()
            .filter(|q| !q.grouped && !q.bulk)
            .map(|q| t.delivery_queue_name(q))
            .collect()
    }

    /// Tasks the broker has handed to dispatchers and not had acknowledged, across the standard
    /// lane's task queues (as `rabbitmqctl list_queues` reports them).
    pub fn unacknowledged_tasks(&self) -> u32 {
        let counts = queue_column("messages_unacknowledged");
        self.standard_task_queues()
            .iter()
            .filter_map(|q| counts.get(q)?.parse::<u32>().ok())
            .sum()
    }

    /// Makes the broker refuse messages for the standard task queues holding any, once the
    /// policy shows on each of them.
    pub async fn refuse_tasks(&self) -> RefusedTasks {
        let name = format!("refuse-{}", self.prefix);
        let pattern = format!("^{}\\.deliveries(\\.[0-9]+)?$", self.prefix.replace('.', "\\."));
        rabbitmqctl(&[
            "set_policy",
            "--apply-to",
            "queues",
            "--priority",
            "100",
            &name,
            &pattern,
            r#"{"max-length":0,"overflow":"reject-publish"}"#,
        ]);
        let refusing = RefusedTasks(name);
        let queues = self.standard_task_queues();
        let applied = eventually(Duration::from_secs(10), || async {
            let policies = queue_column("policy");
            let with_policy = |q: &String| policies.get(q) == Some(&refusing.0);
            queues.iter().all(with_policy).then_some(())
        })
        .await;
        assert!(applied.is_some(), "the policy never showed on {queues:?}");
        refusing
    }
}

impl Drop for RefusedTasks {
    fn drop(&mut self) {
        rabbitmqctl(&["clear_policy", &self.0]);
    }
}

/// Each queue's value of `column` on the local node (`rabbitmqctl list_queues name column`);
/// a queue with no value (no policy, say) is left out.
fn queue_column(column: &str) -> HashMap<String, String> {
    rabbitmqctl(&["list_queues", "name", column])
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            Some((fields.next()?.to_owned(), fields.next()?.to_owned()))
        })
        .collect()
}

/// `rabbitmqctl -q args…` on the local node, which must succeed; its standard output.
pub fn rabbitmqctl(args: &[&str]) -> String {
    let out = std::process::Command::new("rabbitmqctl")
        .arg("-q")
        .args(args)
        .output()
        .expect("rabbitmqctl runs");
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
