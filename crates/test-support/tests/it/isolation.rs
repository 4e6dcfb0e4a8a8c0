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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn receivers_that_time_out_cannot_fill_the_dispatcher_between_them() {
    // Room for 24 deliveries, 4 requests per webhook, 8 for the webhooks that time out: eight
    // of them would hold 32 at 4 each.
    let env = TestEnv::start_with(|o| {
        o.dispatcher.delivery.max_in_flight = 24;
        o.dispatcher.delivery.max_in_flight_per_webhook = 4;
        o.dispatcher.delivery.max_waiting_per_webhook = 4;
        o.dispatcher.delivery.max_in_flight_failing = 8;
        o.registry.rate_limits.create_webhook.count = 100;
    })
    .await;
    let dead = Receiver::scripted(vec![(200, Duration::from_secs(30))]).await;
    let mut fast = Receiver::start(200).await;
    let (dead_tenant, dead_key) = env.tenant_with_key("dead", json!({"max_webhooks": 8})).await;
    let (fast_tenant, fast_key) = env.tenant("fast").await;
    let types = [
        "company.created",
        "company.updated",
        "company.deleted",
        "person.created",
        "person.updated",
        "person.deleted",
        "opportunity.created",
        "opportunity.updated",
    ];
    for t in types {
        env.webhook(
            &dead_key,
            json!({"url": dead.url(), "events": [t], "timeout_seconds": 3, "retry_count": 0}),
        )
        .await;
    }
    env.webhook(&fast_key, json!({"url": fast.url(), "events": ["*"]}))
        .await;
    env.wait_routed(9).await;
    let publish = |tenant: &str, event_type: &str| json!({"type": event_type, "tenant_id": tenant, "data": {}});

    // One attempt each, which times out: the dispatcher now knows these receivers fail slowly.
    for t in types {
        assert_eq!(env.publish(publish(&dead_tenant, t)).await.status, 202);
    }
    env.wait_for("/v1/deliveries?status=exhausted", &dead_key, |b| {
        b["count"].as_i64() == Some(8)
    })
    .await;

    // A burst for them, then events for a healthy receiver: these must not wait for the
    // timeouts (3 s) to free room.
    for t in types {
        for _ in 0..6 {
            assert_eq!(env.publish(publish(&dead_tenant, t)).await.status, 202);
        }
    }
    let started = Instant::now();
    for _ in 0..20 {
        assert_eq!(env.publish(publish(&fast_tenant, "task.created")).await.status, 202);
    }
    for i in 0..20 {
        assert!(
            fast.next(Duration::from_secs(10)).await.is_some(),
            "healthy delivery {i} did not arrive"
        );
    }
    let took = started.elapsed();
    println!("20 healthy deliveries behind receivers that time out: {took:?}");
    assert!(
        took < Duration::from_secs(2),
        "20 healthy deliveries took {took:?} behind receivers that time out"
    );
    env.stop().await;
}
