//! A slow receiver never holds up deliveries to the others.

use std::time::{Duration, Instant};

use hookwire_test_support::{Receiver, TestEnv};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_receiver_does_not_delay_a_fast_one() {
    // Small gates so the test needs few events: 2 in flight and 4 waiting per webhook, and a
    // prefetch window the slow webhook alone could fill.
    let env = TestEnv::start_with(|o| {
        o.dispatcher.delivery.prefetch = 20;
        o.dispatcher.delivery.max_in_flight_per_webhook = 2;
        o.dispatcher.delivery.max_waiting_per_webhook = 4;
    })
    .await;
    let mut slow = Receiver::scripted(vec![(200, Duration::from_secs(5))]).await;
    let mut fast = Receiver::start(200).await;
    let (slow_tenant, key_a) = env.tenant("slow").await;
    let (fast_tenant, key_b) = env.tenant("fast").await;
    env.webhook(
        &key_a,
        json!({"url": slow.url(), "events": ["*"], "timeout_seconds": 30}),
    )
    .await;
    env.webhook(&key_b, json!({"url": fast.url(), "events": ["*"]})).await;
    env.wait_routed(2).await;

    for n in 0..40 {
        let r = env
            .publish(json!({"type": "task.created", "tenant_id": slow_tenant, "data": {"n": n}}))
            .await;
        assert_eq!(r.status, 202);
    }
    let started = Instant::now();
    for n in 0..20 {
        env.publish(json!({"type": "task.created", "tenant_id": fast_tenant, "data": {"n": n}}))
            .await;
    }
    for i in 0..20 {
        assert!(
            fast.next(Duration::from_secs(10)).await.is_some(),
            "fast delivery {i} did not arrive while the slow receiver was busy"
        );
    }
    let took = started.elapsed();
    // Loose bound: the slow receiver answers after 5 s; the fast one must not wait for it.
    assert!(took < Duration::from_secs(4), "20 fast deliveries took {took:?}");
    assert!(
        slow.next(Duration::from_secs(1)).await.is_some(),
        "the slow one is being served too"
    );
    env.stop().await;
}
