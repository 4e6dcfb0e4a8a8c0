//! Events from the producer to the receiver, and what the delivery log says about them.

use std::time::Duration;

use hookwire_core::signing::{verify, SigningKey};
use hookwire_test_support::{verify_with_reference_library, Receiver, TestEnv};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_reaches_its_receiver_signed_and_is_logged_as_success() {
    let env = TestEnv::start().await;
    let mut receiver = Receiver::start(200).await;
    let (tenant, key) = env.tenant("acme").await;
    let created = env
        .api(
            "POST",
            "/v1/webhooks",
            &key,
            Some(json!({
                "url": receiver.url(),
                "events": ["person.created"],
                "header_name": "Authorization",
                "prefix": "Bearer",
                "auth_secret": "my-secret-token",
                "headers": {"X-Team": "crm"},
            })),
        )
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    let webhook_id = created.body["id"].as_str().unwrap().to_owned();
    let secret = created.body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    env.wait_routed(1).await;

    let producer_trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let accepted = env
        .http
        .post(
            &format!("{}/v1/events", env.publisher),
            &[
                ("authorization", &format!("Bearer {}", hookwire_test_support::PRODUCER_TOKEN)),
                ("traceparent", producer_trace),
            ],
            Some(&json!({"type": "person.created", "tenant_id": tenant, "subject": "person-42", "data": {"name": "Ada"}})),
        )
        .await
        .unwrap();
    assert_eq!(accepted.status, 202, "{accepted:?}");
    assert_eq!(accepted.body["matched"], 1);
    let event_id = accepted.body["event_id"].as_str().unwrap().to_owned();

    let got = receiver
        .next(Duration::from_secs(15))
        .await
        .expect("the receiver got the event");
    // What a receiver sees (contract §5).
    assert_eq!(got.header("content-type"), Some("application/json"));
    assert!(got.header("user-agent").unwrap().starts_with("hookwire/"));
    assert_eq!(got.header("webhook-id"), Some(event_id.as_str()));
    assert_eq!(got.header("authorization"), Some("Bearer my-secret-token"));
    assert_eq!(got.header("x-team"), Some("crm"));
    // The producer's trace continues onto the webhook request, under a new span.
    let tp = got.header("traceparent").expect("a traceparent");
    assert!(tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"), "{tp}");
    assert_ne!(tp, producer_trace);
    let body: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(body["id"], event_id);
    assert_eq!(body["type"], "person.created");
    assert_eq!(body["data"], json!({"name": "Ada"}));
    assert!(chrono::DateTime::parse_from_rfc3339(body["timestamp"].as_str().unwrap()).is_ok());
    // The signature verifies with our implementation and with the reference library.
    let now = chrono::Utc::now().timestamp();
    verify(
        &SigningKey::parse(&secret).unwrap(),
        got.header("webhook-id").unwrap(),
        got.header("webhook-timestamp").unwrap(),
        got.header("webhook-signature").unwrap(),
        &got.body,
        now,
    )
    .expect("the signature verifies");
    verify_with_reference_library(&secret, &got).expect("standardwebhooks accepts the delivery");

    // The delivery log records the success.
    let path = format!("/v1/deliveries?webhook_id={webhook_id}");
    let log = env
        .wait_for(&path, &key, |b| b["results"][0]["status"] == "success")
        .await;
    assert_eq!(log["count"], 1);
    let d = &log["results"][0];
    assert_eq!(d["event_id"], event_id);
    assert_eq!(d["event_type"], "person.created");
    assert_eq!(d["subject"], "person-42");
    assert_eq!(d["attempts"], 1);
    assert_eq!(d["response_status"], 200);
    assert_eq!(d["response_body"], "received");
    assert!(d["duration_ms"].as_i64().is_some());

    let detail = env
        .api(
            "GET",
            &format!("/v1/deliveries/{}", d["id"].as_str().unwrap()),
            &key,
            None,
        )
        .await;
    assert_eq!(detail.status, 200);
    assert_eq!(detail.body["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(
        detail.body["attempts"][0]["signature"],
        got.header("webhook-signature").unwrap()
    );
    // The payload is the body the receiver got, byte for byte once parsed.
    let sent: Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(detail.body["payload"], sent);
    assert_eq!(detail.body["payload"]["data"], json!({"name": "Ada"}));
    receiver.expect_nothing(Duration::from_millis(300)).await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_attempt_is_retried_through_the_broker_until_it_succeeds() {
    let env = TestEnv::start().await;
    let mut receiver = Receiver::scripted(vec![(500, Duration::ZERO), (200, Duration::ZERO)]).await;
    let (tenant, key) = env.tenant("acme").await;
    let created = env
        .api(
            "POST",
            "/v1/webhooks",
            &key,
            Some(json!({
                "url": receiver.url(),
                "events": ["person.*"],
                "retry_policy": {"strategy": "fixed", "interval_seconds": 1, "max_retries": 3},
            })),
        )
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    let webhook_id = created.body["id"].as_str().unwrap().to_owned();
    env.wait_routed(1).await;
    let accepted = env
        .publish(json!({"type": "person.updated", "tenant_id": tenant, "data": {}}))
        .await;
    assert_eq!(accepted.status, 202);

    let first = receiver.next(Duration::from_secs(15)).await.expect("first attempt");
    let second = receiver.next(Duration::from_secs(15)).await.expect("the retry");
    assert_eq!(
        first.header("webhook-id"),
        second.header("webhook-id"),
        "webhook-id is constant across retries"
    );
    let gap = second.at - first.at;
    assert!(
        gap >= Duration::from_millis(900),
        "the retry waited its interval, not {gap:?}"
    );

    let path = format!("/v1/deliveries?webhook_id={webhook_id}");
    let log = env
        .wait_for(&path, &key, |b| b["results"][0]["status"] == "success")
        .await;
    let d = &log["results"][0];
    assert_eq!(d["attempts"], 2);
    let detail = env
        .api(
            "GET",
            &format!("/v1/deliveries/{}", d["id"].as_str().unwrap()),
            &key,
            None,
        )
        .await;
    let attempts = detail.body["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["response_status"], 500);
    assert!(attempts[0]["error"].as_str().unwrap().starts_with("http_status"));
    assert_eq!(attempts[1]["response_status"], 200);
    let hook = env.api("GET", &format!("/v1/webhooks/{webhook_id}"), &key, None).await;
    assert_eq!(hook.body["failure_count"], 0, "a success resets the failure count");
    assert!(hook.body["last_failure_at"].is_string() && hook.body["last_success_at"].is_string());
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gone_ends_the_delivery_as_failed_and_exhaustion_is_recorded() {
    let env = TestEnv::start().await;
    let mut gone = Receiver::start(410).await;
    let mut broken = Receiver::start(500).await;
    let (tenant, key) = env.tenant("acme").await;
    let mut ids = Vec::new();
    for url in [gone.url(), broken.url()] {
        let w = env
            .api(
                "POST",
                "/v1/webhooks",
                &key,
                Some(json!({"url": url, "events": ["task.created"], "retry_count": 1,
                            "retry_policy": {"strategy": "fixed", "interval_seconds": 1}})),
            )
            .await;
        assert_eq!(w.status, 201, "{w:?}");
        ids.push(w.body["id"].as_str().unwrap().to_owned());
    }
    env.wait_routed(2).await;
    let accepted = env
        .publish(json!({"type": "task.created", "tenant_id": tenant, "data": null}))
        .await;
    assert_eq!(accepted.body["matched"], 2);

    assert!(gone.next(Duration::from_secs(15)).await.is_some());
    let failed = env
        .wait_for(&format!("/v1/deliveries?webhook_id={}", ids[0]), &key, |b| {
            b["results"][0]["status"] == "failed"
        })
        .await;
    assert_eq!(failed["results"][0]["attempts"], 1, "410 is not retried");
    gone.expect_nothing(Duration::from_millis(1500)).await;

    assert!(broken.next(Duration::from_secs(15)).await.is_some());
    assert!(broken.next(Duration::from_secs(15)).await.is_some(), "one retry");
    let exhausted = env
        .wait_for(&format!("/v1/deliveries?webhook_id={}", ids[1]), &key, |b| {
            b["results"][0]["status"] == "exhausted"
        })
        .await;
    assert_eq!(exhausted["results"][0]["attempts"], 2);
    assert_eq!(exhausted["results"][0]["next_retry_at"], serde_json::Value::Null);
    let hook = env.api("GET", &format!("/v1/webhooks/{}", ids[1]), &key, None).await;
    assert_eq!(hook.body["failure_count"], 2);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_timeout_is_an_attempt_without_a_response_status() {
    let env = TestEnv::start().await;
    let mut slow = Receiver::scripted(vec![(200, Duration::from_secs(3))]).await;
    let (tenant, key) = env.tenant("acme").await;
    let w = env
        .api(
            "POST",
            "/v1/webhooks",
            &key,
            Some(json!({"url": slow.url(), "events": ["*"], "timeout_seconds": 1, "retry_count": 0})),
        )
        .await;
    assert_eq!(w.status, 201, "{w:?}");
    env.wait_routed(1).await;
    env.publish(json!({"type": "series_updated", "tenant_id": tenant, "data": {"n": 1}}))
        .await;
    assert!(slow.next(Duration::from_secs(15)).await.is_some());
    let log = env
        .wait_for(
            &format!("/v1/deliveries?webhook_id={}", w.body["id"].as_str().unwrap()),
            &key,
            |b| b["results"][0]["status"] == "exhausted",
        )
        .await;
    let d = &log["results"][0];
    assert_eq!(d["response_status"], serde_json::Value::Null);
    assert!(d["error"].as_str().unwrap().starts_with("timeout"), "{d}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn poison_tasks_are_dead_lettered_and_delivery_goes_on() {
    let env = TestEnv::start().await;
    let mut rx = Receiver::start(200).await;
    let (tenant, key) = env.tenant("acme").await;
    env.webhook(&key, json!({"url": rx.url(), "events": ["*"]})).await;
    env.wait_routed(1).await;
    let t = env.topology();
    env.publish_amqp(&t.deliveries_exchange(), "task", b"\x00garbage").await;
    env.publish_amqp(&t.deliveries_exchange(), "task", br#"{"kind":"delivery_task.v9"}"#)
        .await;
    let dead = hookwire_test_support::eventually(Duration::from_secs(10), || async {
        (env.queue_depth(&t.dead_letter_queue()).await >= 2).then_some(())
    })
    .await;
    assert!(dead.is_some(), "both poison tasks reached the dead-letter queue");
    // The dispatcher is still delivering.
    env.publish(json!({"type": "task.created", "tenant_id": tenant, "data": {}}))
        .await;
    assert!(rx.next(Duration::from_secs(10)).await.is_some());
    assert_eq!(
        env.metric(&env.dispatcher, "hookwire_dispatcher_dead_lettered_total")
            .await,
        Some(2.0)
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_after_from_the_receiver_is_honoured() {
    let env = TestEnv::start().await;
    let mut receiver = Receiver::scripted(vec![(503, Duration::ZERO), (200, Duration::ZERO)]).await;
    let (tenant, key) = env.tenant("acme").await;
    env.webhook(
        &key,
        json!({"url": receiver.url(), "events": ["*"], "retry_policy": {"strategy": "fixed", "interval_seconds": 1}}),
    )
    .await;
    env.wait_routed(1).await;
    env.publish(json!({"type": "task.created", "tenant_id": tenant, "data": {}}))
        .await;
    let first = receiver.next(Duration::from_secs(15)).await.unwrap();
    let second = receiver.next(Duration::from_secs(15)).await.unwrap();
    let gap = second.at - first.at;
    let wanted = Duration::from_secs(hookwire_test_support::RETRY_AFTER_SECONDS);
    assert!(
        gap >= wanted - Duration::from_millis(100),
        "retried after {gap:?}, not the receiver's {wanted:?}"
    );
    env.stop().await;
}

/// Publishes `count` events, one request each, to a new webhook limited to `rate` per second and
/// says how long from the first delivery to the last.
async fn rate_limited_spread(env: &TestEnv, rate: u32, count: usize) -> Duration {
    let mut rx = Receiver::start(200).await;
    let (tenant, key) = env.tenant("acme").await;
    env.webhook(
        &key,
        json!({"url": rx.url(), "events": ["*"], "rate_limit_per_second": rate}),
    )
    .await;
    env.wait_routed(1).await;
    for n in 0..count {
        env.publish(json!({"type": "task.created", "tenant_id": tenant, "data": {"n": n}}))
            .await;
    }
    let first = rx.next(Duration::from_secs(10)).await.expect("first delivery");
    let mut last = first.at;
    for _ in 1..count {
        last = rx
            .next(Duration::from_secs(15))
            .await
            .expect("every delivery arrives")
            .at;
    }
    last - first.at
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_webhooks_rate_limit_spaces_its_deliveries() {
    let env = TestEnv::start().await;
    // 10 deliveries at 5/s: nine intervals of 200 ms.
    let spread = rate_limited_spread(&env, 5, 10).await;
    assert!(
        spread >= Duration::from_millis(1700),
        "10 deliveries within {spread:?} at 5/s"
    );
    assert!(
        spread < Duration::from_secs(6),
        "but not held back much longer: {spread:?}"
    );
    env.stop().await;
}

/// A webhook's rate limit holds across dispatcher replicas: each counts the dispatchers
/// consuming tasks and paces at its share of the rate. Before, each paced at the whole rate, and
/// two replicas sent up to twice it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_webhooks_rate_limit_holds_across_dispatcher_replicas() {
    let env = TestEnv::start_with(|o| o.dispatcher.delivery.replica_census_interval = Duration::from_millis(200)).await;
    let port = hookwire_test_support::free_port();
    let _second = env.spawn_dispatcher_process(port).await;
    let second_url = format!("http://127.0.0.1:{port}");
    let dispatchers = [env.dispatcher.clone(), second_url];
    let both_count_two = hookwire_test_support::eventually(Duration::from_secs(15), || async {
        for url in &dispatchers {
            (env.metric(url, "hookwire_dispatcher_replicas").await? == 2.0).then_some(())?;
        }
        Some(())
    })
    .await;
    assert!(both_count_two.is_some(), "both dispatchers count two replicas");

    // 16 deliveries at 4/s in all: fifteen intervals of 250 ms (1.75 s when each replica paced
    // at 4/s by itself).
    let spread = rate_limited_spread(&env, 4, 16).await;
    assert!(
        spread >= Duration::from_millis(3000),
        "16 deliveries within {spread:?} at 4/s across two dispatchers"
    );
    for url in dispatchers {
        let sent = env
            .metric(&url, r#"hookwire_dispatcher_attempts_total{outcome="success"}"#)
            .await;
        assert!(sent.unwrap_or_default() > 0.0, "{url} delivered some of them");
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idle_connection_to_a_receiver_is_closed_after_the_pool_idle_timeout() {
    let env = TestEnv::start_with(|o| o.dispatcher.delivery.pool_idle_timeout = Duration::from_secs(1)).await;
    let mut receiver = Receiver::start(200).await;
    let (tenant, key) = env.tenant("acme").await;
    env.webhook(&key, json!({"url": receiver.url(), "events": ["*"]})).await;
    env.wait_routed(1).await;
    env.publish(json!({"type": "task.created", "tenant_id": tenant, "data": {}}))
        .await;
    receiver.next(Duration::from_secs(15)).await.expect("delivered");
    // The dispatcher keeps the connection for the next delivery...
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.open_connections(), 1, "kept alive after the delivery");
    // ...and closes it once it has been idle for pool_idle_timeout, without another request.
    let closed = hookwire_test_support::eventually(Duration::from_secs(5), || async {
        (receiver.open_connections() == 0).then_some(())
    })
    .await;
    assert!(
        closed.is_some(),
        "{} connection(s) still open 5 s after the delivery, idle timeout 1 s",
        receiver.open_connections()
    );
    env.stop().await;
}

/// A tenant's ceiling (`max_deliveries_per_second`, set by the operator) holds across all its
/// webhooks, and another tenant is not held back by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tenants_ceiling_paces_all_its_webhooks_together_and_no_one_else() {
    let env = TestEnv::start().await;
    let mut capped = Receiver::start(200).await;
    let mut free = Receiver::start(200).await;
    let (tenant, key) = env.tenant("tiered").await;
    let (other, other_key) = env.tenant("other").await;
    for _ in 0..2 {
        env.webhook(&key, json!({"url": capped.url(), "events": ["*"]})).await;
    }
    env.webhook(&other_key, json!({"url": free.url(), "events": ["*"]}))
        .await;
    let path = format!("/v1/admin/tenants/{tenant}");
    let r = env
        .admin("PATCH", &path, Some(json!({"max_deliveries_per_second": 0})))
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    let r = env
        .admin("PATCH", &path, Some(json!({"max_deliveries_per_second": 5})))
        .await;
    assert_eq!(
        (r.status, &r.body["max_deliveries_per_second"]),
        (200, &json!(5)),
        "{r:?}"
    );
    assert_eq!(r.body["name"], "tiered", "the name is kept: {r:?}");
    env.wait_routed(3).await;
    // The dispatcher hears of the ceiling through a notice; a single event shows it has.
    env.publish(json!({"type": "task.created", "tenant_id": tenant, "data": {}}))
        .await;
    for _ in 0..2 {
        capped.next(Duration::from_secs(10)).await.expect("delivered");
    }
    // 10 events to both webhooks: 20 deliveries at 5/s, 19 intervals of 200 ms.
    for n in 0..10 {
        env.publish(json!({"type": "task.created", "tenant_id": tenant, "data": {"n": n}}))
            .await;
        env.publish(json!({"type": "task.created", "tenant_id": other, "data": {"n": n}}))
            .await;
    }
    let first = capped.next(Duration::from_secs(10)).await.expect("first delivery").at;
    let mut last = first;
    for _ in 1..20 {
        last = capped.next(Duration::from_secs(15)).await.expect("every delivery").at;
    }
    assert!(
        last - first >= Duration::from_millis(3400),
        "20 deliveries within {:?} under a ceiling of 5/s",
        last - first
    );
    // The other tenant's ten all arrived while the capped one was being paced.
    for _ in 0..10 {
        let r = free
            .next(Duration::from_millis(100))
            .await
            .expect("the other tenant's delivery arrived");
        assert!(r.at < last, "the other tenant waited for the capped one");
    }
    let r = env
        .admin("PATCH", &path, Some(json!({"max_deliveries_per_second": null})))
        .await;
    assert_eq!(
        (r.status, &r.body["max_deliveries_per_second"]),
        (200, &Value::Null),
        "{r:?}"
    );
    env.stop().await;
}
