//! Delivery shards (`broker.delivery_shards`): lowering the count strands nothing, because
//! dispatchers also drain the queues of the shards past it that still exist.

use std::collections::HashSet;
use std::time::Duration;

use hookwire_core::topology::DeliveryQueue;
use hookwire_test_support::{free_port, Receiver, TestEnv};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dispatcher_with_fewer_shards_drains_the_queues_of_the_shards_dropped() {
    // Two shards, and no dispatcher yet: the tasks wait in both shards' queues.
    let env = TestEnv::start_with(|o| o.in_process_dispatcher = false).await;
    assert_eq!(env.topology().shards(), 2);
    let mut rx = Receiver::start(200).await;
    let (tenant, key) = env.tenant("sharded").await;
    env.webhook(&key, json!({"url": rx.url(), "events": ["*"]})).await;
    env.wait_routed(1).await;
    const EVENTS: usize = 20;
    for n in 0..EVENTS {
        let r = env
            .publish(json!({"type": "task.created", "tenant_id": tenant, "data": {"n": n}}))
            .await;
        assert_eq!(r.status, 202, "{r:?}");
    }
    let t = env.topology();
    let second = t.delivery_queue_name(DeliveryQueue {
        bulk: false,
        grouped: false,
        shard: 1,
    });
    let stranded = env.queue_depth(&second).await;
    assert!(stranded > 0, "some of the {EVENTS} tasks wait in the second shard");

    // The count lowered to one: the dispatcher drains the second shard's queue too.
    let _dispatcher = env
        .spawn_dispatcher_process_with(free_port(), &[("HOOKWIRE__BROKER__DELIVERY_SHARDS", "1".to_owned())])
        .await;
    let mut delivered = HashSet::new();
    while delivered.len() < EVENTS {
        let got = rx.next(Duration::from_secs(15)).await.unwrap_or_else(|| {
            panic!(
                "only {} of {EVENTS} delivered ({stranded} were in the second shard)",
                delivered.len()
            )
        });
        delivered.insert(got.header("webhook-id").unwrap_or_default().to_owned());
    }
    assert_eq!(env.queue_depth(&second).await, 0);
    env.stop().await;
}
