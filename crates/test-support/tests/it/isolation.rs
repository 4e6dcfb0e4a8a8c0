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

/// `Crowd`'s webhooks that time out give up on a request after this long.
const DEAD_TIMEOUT_SECONDS: u64 = 8;

/// The event types of `Crowd`'s eight webhooks that time out, one each.
const DEAD_TYPES: [&str; 8] = [
    "company.created",
    "company.updated",
    "company.deleted",
    "person.created",
    "person.updated",
    "person.deleted",
    "opportunity.created",
    "opportunity.updated",
];

/// Eight webhooks (one per type of `DEAD_TYPES`) on a receiver that never answers within their
/// 8 s timeout, and a healthy webhook for every type on another tenant, in a dispatcher with room
/// for 24 deliveries, 4 requests per webhook and 8 for the webhooks that fail slowly: eight
/// receivers that time out would hold 32 at 4 each.
struct Crowd {
    env: TestEnv,
    dead_tenant: String,
    dead_key: String,
    fast_tenant: String,
    fast: Receiver,
    _dead: Receiver,
}

impl Crowd {
    async fn start() -> Self {
        let env = TestEnv::start_with(|o| {
            o.dispatcher.delivery.max_in_flight = 24;
            o.dispatcher.delivery.max_in_flight_per_webhook = 4;
            o.dispatcher.delivery.max_waiting_per_webhook = 4;
            o.dispatcher.delivery.max_in_flight_failing = 8;
            o.registry.rate_limits.create_webhook.count = 100;
        })
        .await;
        let dead = Receiver::scripted(vec![(200, Duration::from_secs(30))]).await;
        let fast = Receiver::start(200).await;
        let (dead_tenant, dead_key) = env.tenant_with_key("dead", json!({"max_webhooks": 8})).await;
        let (fast_tenant, fast_key) = env.tenant("fast").await;
        for t in DEAD_TYPES {
            env.webhook(
                &dead_key,
                json!({"url": dead.url(), "events": [t], "timeout_seconds": DEAD_TIMEOUT_SECONDS, "retry_count": 0}),
            )
            .await;
        }
        env.webhook(&fast_key, json!({"url": fast.url(), "events": ["*"]}))
            .await;
        env.wait_routed(9).await;
        Self {
            env,
            dead_tenant,
            dead_key,
            fast_tenant,
            fast,
            _dead: dead,
        }
    }

    /// Publishes `each` events for every webhook that times out.
    async fn burst(&self, each: usize) {
        for t in DEAD_TYPES {
            for _ in 0..each {
                let event = json!({"type": t, "tenant_id": self.dead_tenant, "data": {}});
                assert_eq!(self.env.publish(event).await.status, 202);
            }
        }
    }

    /// Publishes 20 events for the healthy webhook and checks they all arrive within 5 s, well
    /// before the others' requests time out (8 s) and free room; then stops. (Held up, they
    /// would take the timeout at least; the margin is for a loaded machine.)
    async fn healthy_deliveries_are_not_held_up(mut self, behind: &str) {
        let started = Instant::now();
        for _ in 0..20 {
            let event = json!({"type": "task.created", "tenant_id": self.fast_tenant, "data": {}});
            assert_eq!(self.env.publish(event).await.status, 202);
        }
        for i in 0..20 {
            assert!(
                self.fast.next(Duration::from_secs(10)).await.is_some(),
                "healthy delivery {i} did not arrive"
            );
        }
        let took = started.elapsed();
        println!("20 healthy deliveries behind {behind}: {took:?}");
        assert!(
            took < Duration::from_secs(5),
            "20 healthy deliveries took {took:?} behind {behind}"
        );
        self.env.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn receivers_that_time_out_cannot_fill_the_dispatcher_between_them() {
    let crowd = Crowd::start().await;
    // One attempt each, which times out: the dispatcher now knows these receivers fail slowly.
    crowd.burst(1).await;
    crowd
        .env
        .wait_for("/v1/deliveries?status=exhausted", &crowd.dead_key, |b| {
            b["count"].as_i64() == Some(8)
        })
        .await;
    // A burst for them, then events for a healthy receiver: these must not wait for the
    // timeouts (8 s) to free room.
    crowd.burst(6).await;
    crowd
        .healthy_deliveries_are_not_held_up("receivers that time out")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn receivers_that_stop_answering_cannot_fill_the_dispatcher_before_their_first_timeout() {
    let crowd = Crowd::start().await;
    // One request each, unanswered; nothing has timed out yet when more arrive.
    crowd.burst(1).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    crowd.burst(3).await;
    crowd
        .healthy_deliveries_are_not_held_up("receivers that stopped answering, before their first timeout")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_receiver_that_times_out_has_its_backlog_retried_by_its_policy_not_parked_forever() {
    // Two requests and two waiting tasks per webhook: of a burst of 30 for a receiver that
    // times out, 26 find no room.
    let env = TestEnv::start_with(|o| {
        o.dispatcher.delivery.max_in_flight_per_webhook = 2;
        o.dispatcher.delivery.max_waiting_per_webhook = 2;
        // The test polls the delivery log for a while.
        o.registry.rate_limits.default.count = 10_000;
    })
    .await;
    let mut dead = Receiver::scripted(vec![(200, Duration::from_secs(30))]).await;
    let (tenant, key) = env.tenant("dead").await;
    let policy = json!({"strategy": "fixed", "interval_seconds": 1, "max_retries": 50, "max_age_seconds": 4});
    let hook = env
        .webhook(
            &key,
            json!({"url": dead.url(), "events": ["*"], "timeout_seconds": 1, "retry_policy": policy}),
        )
        .await;
    let id = hook["id"].as_str().unwrap().to_owned();
    env.wait_routed(1).await;
    let event = json!({"type": "task.created", "tenant_id": tenant, "data": {}});

    // One attempt times out: the dispatcher now knows this receiver fails slowly.
    assert_eq!(env.publish(event.clone()).await.status, 202);
    env.wait_for(&format!("/v1/deliveries?webhook_id={id}"), &key, |b| {
        b["results"][0]["attempts"].as_i64() >= Some(1)
    })
    .await;

    let started = Instant::now();
    for _ in 0..30 {
        assert_eq!(env.publish(event.clone()).await.status, 202);
    }
    // Each delivery gives up by its policy: four seconds after its first attempt, sent or not.
    // (Parked for good, they would not end within `wait_for`'s 20 s; each waiting its turn for a
    // request, all 31 would reach the receiver: counted below.)
    let path = format!("/v1/deliveries?webhook_id={id}&status=exhausted");
    env.wait_for(&path, &key, |b| b["count"].as_i64() == Some(31)).await;
    let took = started.elapsed();

    let mut requests = 0;
    while dead.next(Duration::from_millis(200)).await.is_some() {
        requests += 1;
    }
    let list = env.api("GET", &path, &key, None).await;
    let attempts: i64 = list.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["attempts"].as_i64().unwrap())
        .sum();
    println!("31 deliveries exhausted {took:?} after the burst: {attempts} attempts, {requests} requests sent");
    assert!(
        requests < 31,
        "{requests} requests reached a receiver that times out: every delivery waited for one"
    );
    // The attempts not sent say so in the delivery log.
    let not_sent = list.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["attempts"].as_i64() > Some(1))
        .expect("a delivery attempted more than once");
    let detail = env
        .api(
            "GET",
            &format!("/v1/deliveries/{}", not_sent["id"].as_str().unwrap()),
            &key,
            None,
        )
        .await;
    let unsent: Vec<&serde_json::Value> = detail.body["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["error"].as_str().is_some_and(|e| e.starts_with("receiver_failing")))
        .collect();
    assert!(!unsent.is_empty(), "{}", detail.body);
    assert!(unsent.iter().all(|a| a["response_status"].is_null()), "{}", detail.body);
    env.stop().await;
}
