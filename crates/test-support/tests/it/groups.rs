//! An event routed to several webhooks travels to the dispatchers as one broker message (a
//! `delivery_group.v1`), and so do the events of one batch request (a `delivery_batch.v1`); each
//! webhook is still served on its own terms, and nothing in a group is lost when its dispatcher
//! dies.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hookwire_core::signing::{verify, SigningKey};
use hookwire_test_support::{eventually, free_port, Receiver, Response, TestEnv};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_for_several_webhooks_is_one_message_and_each_webhook_is_served_on_its_own() {
    let env = TestEnv::start_with(|o| o.in_process_dispatcher = false).await;
    let mut fast = Receiver::start(200).await;
    let mut slow = Receiver::scripted(vec![(200, Duration::from_secs(3))]).await;
    let mut flaky = Receiver::scripted(vec![(500, Duration::ZERO), (200, Duration::ZERO)]).await;
    let (tenant, key) = env.tenant("acme").await;
    let fast_hook = env.webhook(&key, json!({"url": fast.url(), "events": ["*"]})).await;
    let slow_hook = env
        .webhook(&key, json!({"url": slow.url(), "events": ["*"], "timeout_seconds": 30}))
        .await;
    let flaky_hook = env
        .webhook(
            &key,
            json!({"url": flaky.url(), "events": ["*"],
                   "retry_policy": {"strategy": "fixed", "interval_seconds": 1, "max_retries": 3}}),
        )
        .await;
    env.wait_routed(3).await;
    let r = env
        .publish(json!({"type": "task.created", "tenant_id": tenant, "data": {"n": 1}}))
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(r.body["matched"], 3);
    let event_id = r.body["event_id"].as_str().unwrap().to_owned();

    // No dispatcher runs yet: the broker holds one message for the three deliveries.
    assert_eq!(env.delivery_depth(true).await, 1, "one message for the whole event");
    assert_eq!(env.delivery_depth(false).await, 0, "no single task");

    let dispatcher = env.spawn_dispatcher_process(free_port()).await;
    let started = Instant::now();
    let first = fast
        .next(Duration::from_secs(10))
        .await
        .expect("the fast webhook got the event");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the fast webhook waited for the slow one: {:?}",
        started.elapsed()
    );
    let failed = flaky
        .next(Duration::from_secs(10))
        .await
        .expect("the flaky webhook's first attempt");
    let retried = flaky
        .next(Duration::from_secs(15))
        .await
        .expect("the flaky webhook's retry");
    assert_eq!(failed.header("webhook-id"), retried.header("webhook-id"));
    assert!(
        slow.next(Duration::from_secs(10)).await.is_some(),
        "the slow webhook got it"
    );
    // Every member has its own delivery in the log, for the same event.
    for (hook, attempts) in [(&fast_hook, 1), (&slow_hook, 1), (&flaky_hook, 2)] {
        let d = env.delivery_in(&key, hook["id"].as_str().unwrap(), "success").await;
        assert_eq!(d["event_id"], event_id.as_str());
        assert_eq!(d["attempts"], attempts, "{d}");
    }
    for r in [&first, &failed] {
        assert_eq!(
            r.header("webhook-id"),
            Some(event_id.as_str()),
            "webhook-id is the event id"
        );
    }
    // A receiver's `webhook-id` finds the event's deliveries, and only them.
    let other = env
        .publish(json!({"type": "task.created", "tenant_id": tenant, "data": {"n": 2}}))
        .await;
    let other_id = other.body["event_id"].as_str().unwrap().to_owned();
    let log = env
        .wait_for(&format!("/v1/deliveries?event_id={other_id}"), &key, |b| {
            b["count"] == 3
        })
        .await;
    assert!(log["results"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["event_id"] == other_id.as_str()));
    let log = env
        .api("GET", &format!("/v1/deliveries?event_id={event_id}"), &key, None)
        .await;
    let mut webhooks: Vec<&str> = log.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["webhook_id"].as_str().unwrap())
        .collect();
    webhooks.sort();
    let mut expected: Vec<&str> = [&fast_hook, &slow_hook, &flaky_hook]
        .iter()
        .map(|h| h["id"].as_str().unwrap())
        .collect();
    expected.sort();
    assert_eq!(webhooks, expected, "{:?}", log.body);
    assert_eq!(log.body["count"], 3);
    let path = format!(
        "/v1/deliveries?event_id={event_id}&webhook_id={}",
        fast_hook["id"].as_str().unwrap()
    );
    assert_eq!(env.api("GET", &path, &key, None).await.body["count"], 1);
    let (_, stranger) = env.tenant("stranger").await;
    let theirs = env
        .api("GET", &format!("/v1/deliveries?event_id={event_id}"), &stranger, None)
        .await;
    assert_eq!(theirs.body["count"], 0, "another tenant sees none");
    assert_eq!(
        env.api("GET", "/v1/deliveries?event_id=nope", &key, None).await.status,
        400
    );
    // The group is acknowledged once its last member (the retry left it) is done.
    assert_eq!(
        env.kill_dispatcher(dispatcher, true).await,
        0,
        "the group message was acknowledged: nothing came back when its dispatcher died"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_group_whose_dispatcher_dies_comes_back_as_single_tasks() {
    let env = TestEnv::start_with(|o| o.in_process_dispatcher = false).await;
    let mut fast = Receiver::start(200).await;
    let mut slow = Receiver::scripted(vec![(200, Duration::from_secs(5))]).await;
    let (tenant, key) = env.tenant("acme").await;
    env.webhook(&key, json!({"url": fast.url(), "events": ["*"]})).await;
    env.webhook(&key, json!({"url": slow.url(), "events": ["*"], "timeout_seconds": 30}))
        .await;
    env.wait_routed(2).await;
    let mut dispatcher = env.spawn_dispatcher_process(free_port()).await;
    let r = env
        .publish(json!({"type": "task.created", "tenant_id": tenant, "data": {"n": 1}}))
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    let first = fast
        .next(Duration::from_secs(10))
        .await
        .expect("delivered to the fast webhook");
    assert!(
        slow.next(Duration::from_secs(10)).await.is_some(),
        "the slow attempt started"
    );
    // The slow member is still open: killed now, the dispatcher has not acknowledged the group.
    dispatcher.kill().expect("SIGKILL the dispatcher");
    let _ = dispatcher.wait();
    let back = eventually(Duration::from_secs(10), || async {
        (env.delivery_depth(true).await == 1).then_some(())
    })
    .await;
    assert!(back.is_some(), "the unfinished group returned to the queue");

    // A new dispatcher delivers the whole group again: at least once, with the same webhook-id,
    // so the fast receiver can tell it already has it.
    slow.answer(vec![(200, Duration::ZERO)]);
    let port = free_port();
    let dispatcher = env.spawn_dispatcher_process(port).await;
    let again = fast
        .next(Duration::from_secs(10))
        .await
        .expect("redelivered to the fast webhook");
    assert_eq!(again.header("webhook-id"), first.header("webhook-id"));
    assert!(
        slow.next(Duration::from_secs(10)).await.is_some(),
        "redelivered to the slow webhook"
    );
    // Delivered again, the group left as two tasks of their own: a member that stopped its
    // dispatcher takes only itself to the broker's delivery limit.
    let spilled = env
        .metric(&format!("http://127.0.0.1:{port}"), "hookwire_dispatcher_spilled_total")
        .await;
    assert_eq!(spilled, Some(2.0));
    assert_eq!(
        env.kill_dispatcher(dispatcher, true).await,
        0,
        "the group was acknowledged: nothing came back when its dispatcher died"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_webhook_leaves_the_groups_so_it_cannot_hold_them() {
    // A window of 3 groups: without spilling, three groups waiting on the slow receiver would
    // stop every delivery of the groups queue for its 3 s.
    let env = TestEnv::start_with(|o| o.dispatcher.delivery.group_prefetch = 3).await;
    let mut fast = Receiver::start(200).await;
    let mut slow = Receiver::scripted(vec![(200, Duration::from_secs(3))]).await;
    let (tenant, key) = env.tenant("acme").await;
    env.webhook(&key, json!({"url": fast.url(), "events": ["*"]})).await;
    env.webhook(&key, json!({"url": slow.url(), "events": ["*"], "timeout_seconds": 30}))
        .await;
    env.wait_routed(2).await;
    let publish = |n: usize| env.publish(json!({"type": "task.created", "tenant_id": tenant, "data": {"n": n}}));
    the_fast_receiver_does_not_wait_for_the_slow_one(&mut fast, &mut slow, publish).await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tenant_with_a_slow_receiver_does_not_hold_another_tenants_deliveries_in_the_same_batches() {
    // A producer's batch requests carry both tenants' events, so each broker message holds a
    // delivery to each receiver. With a window of 3 such messages, waiting on the slow receiver's
    // 3 s would stop the other tenant's deliveries too.
    let env = TestEnv::start_with(|o| o.dispatcher.delivery.group_prefetch = 3).await;
    let mut fast = Receiver::start(200).await;
    let mut slow = Receiver::scripted(vec![(200, Duration::from_secs(3))]).await;
    let (acme, acme_key) = env.tenant("acme").await;
    let (globex, globex_key) = env.tenant("globex").await;
    env.webhook(
        &acme_key,
        json!({"url": slow.url(), "events": ["*"], "timeout_seconds": 30}),
    )
    .await;
    env.webhook(&globex_key, json!({"url": fast.url(), "events": ["*"]}))
        .await;
    env.wait_routed(2).await;
    let batch = |n: usize| {
        env.publish_batch(json!({"events": [
            {"type": "task.created", "tenant_id": acme, "data": {"n": n}},
            {"type": "task.created", "tenant_id": globex, "data": {"n": n}},
        ]}))
    };
    the_fast_receiver_does_not_wait_for_the_slow_one(&mut fast, &mut slow, batch).await;
    env.stop().await;
}

/// `send(n)` publishes event `n` to both receivers, in one broker message with a window of 3
/// such messages. Once the slow receiver (3 s a request) has had an attempt open past the stall
/// time, its deliveries leave the next messages as tasks of their own: the fast receiver gets
/// events 1–10, each once, within 2.5 s, and the slow one gets them all later.
async fn the_fast_receiver_does_not_wait_for_the_slow_one<F, Fut>(fast: &mut Receiver, slow: &mut Receiver, send: F)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    assert_eq!(send(0).await.status, 202);
    assert!(fast.next(Duration::from_secs(10)).await.is_some());
    assert!(
        slow.next(Duration::from_secs(10)).await.is_some(),
        "the slow attempt started"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    for n in 1..=10 {
        assert_eq!(send(n).await.status, 202);
    }
    let mut seen = Vec::new();
    for n in 1..=10 {
        let got = fast.next(Duration::from_secs(10)).await;
        let got = got.unwrap_or_else(|| panic!("fast delivery {n} did not arrive"));
        let body: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
        seen.push(body["data"]["n"].as_u64().unwrap());
    }
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "the fast receiver waited for the slow one: {:?}",
        started.elapsed()
    );
    seen.sort_unstable();
    assert_eq!(
        seen,
        (1..=10).collect::<Vec<u64>>(),
        "each event once at the fast receiver"
    );
    for n in 1..=10 {
        assert!(
            slow.next(Duration::from_secs(15)).await.is_some(),
            "slow delivery {n} did not arrive"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_of_events_is_one_message_and_each_delivery_arrives_as_if_sent_alone() {
    let env = TestEnv::start_with(|o| o.in_process_dispatcher = false).await;
    let mut rx = Receiver::start(200).await;
    let (acme, acme_key) = env.tenant("acme").await;
    let (globex, globex_key) = env.tenant("globex").await;
    let mut secrets = HashMap::new();
    for key in [&acme_key, &globex_key] {
        let hook = env.webhook(key, json!({"url": rx.url(), "events": ["*"]})).await;
        secrets.insert(
            hook["id"].as_str().unwrap().to_owned(),
            hook["secret"].as_str().unwrap().to_owned(),
        );
    }
    env.wait_routed(2).await;
    // Three events for each tenant, and one for every tenant (a group of two inside the batch).
    let mut events: Vec<_> = (0..6)
        .map(|n| {
            let tenant = if n % 2 == 0 { &acme } else { &globex };
            json!({"type": "task.created", "tenant_id": tenant, "data": {"n": n}})
        })
        .collect();
    events.push(json!({"type": "task.created", "data": {"n": 6}}));
    let r = env.publish_batch(json!({"events": events})).await;
    assert_eq!(r.status, 202, "{r:?}");
    let event_ids: Vec<String> = r.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_owned())
        .collect();

    // No dispatcher runs yet: the broker holds one message for the eight deliveries.
    assert_eq!(env.delivery_depth(true).await, 1, "one message for the whole request");
    assert_eq!(env.delivery_depth(false).await, 0, "no single task");

    let dispatcher = env.spawn_dispatcher_process(free_port()).await;
    // Per event: how many requests carried it. Each request is its event's own, signed with its
    // webhook's secret.
    let mut received: HashMap<String, usize> = HashMap::new();
    for _ in 0..8 {
        let got = rx
            .next(Duration::from_secs(15))
            .await
            .expect("every delivery of the batch arrives");
        let body: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
        let id = got.header("webhook-id").unwrap().to_owned();
        assert_eq!(body["id"], id.as_str(), "the body is the event's own");
        let n = body["data"]["n"].as_u64().unwrap() as usize;
        assert_eq!(event_ids[n], id, "event {n} carries its own id");
        let now = chrono::Utc::now().timestamp();
        let verified = secrets
            .values()
            .filter(|secret| {
                let key = SigningKey::parse(secret).unwrap();
                let header = |name| got.header(name).unwrap();
                let signature = header("webhook-signature");
                verify(&key, &id, header("webhook-timestamp"), signature, &got.body, now).is_ok()
            })
            .count();
        assert_eq!(verified, 1, "signed with exactly one webhook's secret");
        *received.entry(id).or_default() += 1;
    }
    rx.expect_nothing(Duration::from_millis(500)).await;
    assert_eq!(received.len(), 7, "seven events: {received:?}");
    assert_eq!(received[&event_ids[6]], 2, "the event for every tenant reached both");
    // Each tenant's log holds its own deliveries, all successful.
    for (key, own) in [(&acme_key, 4), (&globex_key, 4)] {
        let log = env
            .wait_for("/v1/deliveries?status=success", key, |b| b["count"] == own)
            .await;
        assert_eq!(log["results"].as_array().unwrap().len(), own);
    }
    assert_eq!(
        env.kill_dispatcher(dispatcher, true).await,
        0,
        "the batch message was acknowledged: nothing came back when its dispatcher died"
    );
    env.stop().await;
}
