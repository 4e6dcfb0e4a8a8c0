//! What a customer does to deliveries: rotate secrets, send tests, retry, recover, deactivate.

use std::time::Duration;

use hookwire_core::signing::{verify, SigningKey};
use hookwire_test_support::{Receiver, TestEnv};
use serde_json::json;

fn verifies(secret: &str, got: &hookwire_test_support::Received) -> bool {
    verify(
        &SigningKey::parse(secret).unwrap(),
        got.header("webhook-id").unwrap(),
        got.header("webhook-timestamp").unwrap(),
        got.header("webhook-signature").unwrap(),
        &got.body,
        chrono::Utc::now().timestamp(),
    )
    .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn during_a_rotation_deliveries_carry_both_signatures() {
    let env = TestEnv::start().await;
    let mut receiver = Receiver::start(200).await;
    let (tenant, key) = env.tenant("acme").await;
    let w = env
        .webhook(&key, json!({"url": receiver.url(), "events": ["person.*"]}))
        .await;
    let id = w["id"].as_str().unwrap();
    let old = w["secret"].as_str().unwrap().to_owned();
    let rotated = env
        .api("POST", &format!("/v1/webhooks/{id}/rotate-secret"), &key, None)
        .await;
    assert_eq!(rotated.status, 200, "{rotated:?}");
    let new = rotated.body["secret"].as_str().unwrap().to_owned();
    assert_ne!(old, new);
    // The publisher learns of the rotation through a change notice.
    env.wait_routed(1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    env.publish(json!({"type": "person.created", "tenant_id": tenant, "data": {}}))
        .await;
    let got = receiver.next(Duration::from_secs(15)).await.expect("delivered");
    assert_eq!(got.header("webhook-signature").unwrap().split(' ').count(), 2);
    assert!(verifies(&new, &got), "the new secret verifies");
    assert!(verifies(&old, &got), "the old secret still verifies during the overlap");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_test_event_is_sent_on_request_and_logged_as_test() {
    let env = TestEnv::start().await;
    let mut receiver = Receiver::start(200).await;
    let (_, key) = env.tenant("acme").await;
    let w = env
        .webhook(&key, json!({"url": receiver.url(), "events": ["company.*"]}))
        .await;
    let id = w["id"].as_str().unwrap();
    let sent = env.api("POST", &format!("/v1/webhooks/{id}/test"), &key, None).await;
    assert_eq!(sent.status, 202, "{sent:?}");
    let got = receiver
        .next(Duration::from_secs(15))
        .await
        .expect("the test event arrives");
    let body: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(body["type"], "company.created");
    assert_eq!(body["data"]["hookwire_test"], true);
    let d = env.delivery_in(&key, id, "success").await;
    assert_eq!(d["is_test"], true);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exhausted_deliveries_can_be_retried_and_recovered() {
    let env = TestEnv::start().await;
    let mut receiver = Receiver::start(500).await;
    let (tenant, key) = env.tenant("acme").await;
    let w = env
        .webhook(
            &key,
            json!({"url": receiver.url(), "events": ["task.*"], "retry_count": 0}),
        )
        .await;
    let id = w["id"].as_str().unwrap();
    env.wait_routed(1).await;
    for n in 0..3 {
        env.publish(json!({"type": "task.updated", "tenant_id": tenant, "data": {"n": n}}))
            .await;
    }
    for _ in 0..3 {
        assert!(receiver.next(Duration::from_secs(15)).await.is_some());
    }
    let page = env
        .wait_for(&format!("/v1/deliveries?webhook_id={id}&status=exhausted"), &key, |b| {
            b["count"] == 3
        })
        .await;
    receiver.answer(vec![(200, Duration::ZERO)]);

    // One delivery retried by hand.
    let one = page["results"][0]["id"].as_str().unwrap().to_owned();
    let r = env
        .api("POST", &format!("/v1/deliveries/{one}/retry"), &key, None)
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    assert!(receiver.next(Duration::from_secs(15)).await.is_some());
    let d = env
        .wait_for(&format!("/v1/deliveries/{one}"), &key, |b| b["status"] == "success")
        .await;
    assert_eq!(d["attempt_count"], 2);

    // The other two through recover.
    let since = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let r = env
        .api(
            "POST",
            &format!("/v1/webhooks/{id}/recover"),
            &key,
            Some(json!({"since": since})),
        )
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(r.body["retried"], 2);
    for _ in 0..2 {
        assert!(receiver.next(Duration::from_secs(15)).await.is_some());
    }
    env.wait_for(&format!("/v1/deliveries?webhook_id={id}&status=success"), &key, |b| {
        b["count"] == 3
    })
    .await;
    let r = env
        .api("POST", &format!("/v1/webhooks/{id}/recover"), &key, Some(json!({})))
        .await;
    assert_eq!(r.status, 400);
    let (_, other) = env.tenant("other").await;
    assert_eq!(
        env.api("POST", &format!("/v1/deliveries/{one}/retry"), &other, None)
            .await
            .status,
        404
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deactivating_a_webhook_stops_its_scheduled_retries() {
    let env = TestEnv::start().await;
    let mut receiver = Receiver::start(503).await;
    let (tenant, key) = env.tenant("acme").await;
    let w = env
        .webhook(
            &key,
            json!({"url": receiver.url(), "events": ["*"],
                   "retry_policy": {"strategy": "fixed", "interval_seconds": 2, "max_retries": 5}}),
        )
        .await;
    let id = w["id"].as_str().unwrap();
    env.wait_routed(1).await;
    env.publish(json!({"type": "person.deleted", "tenant_id": tenant, "data": {}}))
        .await;
    assert!(receiver.next(Duration::from_secs(15)).await.is_some(), "first attempt");
    let r = env
        .api(
            "PATCH",
            &format!("/v1/webhooks/{id}"),
            &key,
            Some(json!({"is_active": false})),
        )
        .await;
    assert_eq!(r.status, 200);
    receiver.expect_nothing(Duration::from_secs(4)).await;
    let d = env.delivery_in(&key, id, "failed").await;
    assert!(d["error"].as_str().unwrap().starts_with("webhook_disabled"), "{d}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_webhook_failing_for_too_long_is_deactivated_with_a_reason() {
    let env = TestEnv::start_with(|o| o.registry.webhooks.auto_disable_after = Duration::from_secs(2)).await;
    let mut receiver = Receiver::start(500).await;
    let (tenant, key) = env.tenant("acme").await;
    let w = env
        .webhook(
            &key,
            json!({"url": receiver.url(), "events": ["*"],
                   "retry_policy": {"strategy": "fixed", "interval_seconds": 1, "max_retries": 20}}),
        )
        .await;
    let id = w["id"].as_str().unwrap();
    env.wait_routed(1).await;
    env.publish(json!({"type": "person.created", "tenant_id": tenant, "data": {}}))
        .await;
    let hook = env
        .wait_for(&format!("/v1/webhooks/{id}"), &key, |b| b["is_active"] == false)
        .await;
    assert!(hook["disabled_reason"]
        .as_str()
        .unwrap()
        .contains("deactivated automatically"));
    assert!(hook["failure_count"].as_i64().unwrap() >= 3);
    // Its pending retry is not attempted.
    while receiver.next(Duration::from_millis(200)).await.is_some() {}
    receiver.expect_nothing(Duration::from_secs(3)).await;
    // Reactivating clears the reason.
    let r = env
        .api(
            "PATCH",
            &format!("/v1/webhooks/{id}"),
            &key,
            Some(json!({"is_active": true})),
        )
        .await;
    assert_eq!(r.body["disabled_reason"], serde_json::Value::Null);
    env.stop().await;
}
