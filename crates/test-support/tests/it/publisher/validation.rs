//! What ingest refuses, and how: bad events with clear errors, batches whole or not at all, invalid messages on the ingest exchange set aside.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_events_are_refused_with_clear_errors() {
    let env = TestEnv::start().await;
    let schema = json!({"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}});
    let r = env
        .admin_post(
            "/v1/admin/event-types",
            json!({"value": "invoice.paid", "label": "Invoice paid", "schema": schema}),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let r = env
        .admin_post(
            "/v1/admin/event-types",
            json!({"value": "bad.schema", "label": "x", "schema": {"type": 12}}),
        )
        .await;
    assert_eq!(r.status, 400, "an invalid JSON Schema is refused: {r:?}");
    // The publisher learns the new type from a change notice: then it checks an event's data
    // against the type's schema rather than refusing the type.
    let learned = eventually(Duration::from_secs(10), || async {
        let r = env
            .publish(json!({"type": "invoice.paid", "data": {"id": "seven"}}))
            .await;
        (r.body["errors"][0]["field"] == "data").then_some(())
    })
    .await;
    assert!(learned.is_some(), "the publisher learned the type invoice.paid");

    let r = env.publish(json!({"type": "nope.created", "data": {}})).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["errors"][0]["field"], "type");
    let r = env
        .publish(json!({"type": "invoice.paid", "data": {"id": "seven"}}))
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.body["errors"][0]["field"], "data");
    assert!(
        r.body["errors"][0]["message"].as_str().unwrap().contains("/id"),
        "{r:?}"
    );
    assert_eq!(
        env.publish(json!({"type": "invoice.paid", "data": {"id": 7}}))
            .await
            .status,
        202
    );
    // U+0000 in data would never commit to the delivery log (PostgreSQL jsonb refuses it).
    let r = env
        .publish(json!({"type": "person.created", "data": {"note": ["ok", "a\u{0}b"]}}))
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.body["errors"][0]["field"], "data.note[1]");
    let r = env.publish(json!({"type": "person.created"})).await;
    assert_eq!(r.body["errors"][0]["field"], "data");
    let r = env
        .publish(json!({"type": "person.created", "data": {}, "tenant_id": "x", "surprise": 1}))
        .await;
    let fields = r.error_fields();
    assert_eq!(fields, vec!["tenant_id", "surprise"]);

    let url = format!("{}/v1/events", env.publisher);
    let auth = format!("Bearer {PRODUCER_TOKEN}");
    let r = env
        .http
        .raw("POST", &url, &[("authorization", &auth)], b"{oops".to_vec())
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let big = vec![b' '; 9 * 1024 * 1024];
    let r = env
        .http
        .raw("POST", &url, &[("authorization", &auth)], big)
        .await
        .unwrap();
    assert_eq!(r.status, 413);
    let r = env
        .http
        .post(&url, &[("authorization", "Bearer wrong")], Some(&json!({})))
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_is_accepted_whole_or_refused_whole() {
    let env = TestEnv::start().await;
    let mut rx = Receiver::start(200).await;
    let (tenant, key) = env.tenant("acme").await;
    env.webhook(&key, json!({"url": rx.url(), "events": ["*"]})).await;
    env.wait_routed(1).await;
    let events: Vec<_> = (0..50)
        .map(|n| json!({"type": "task.created", "tenant_id": tenant, "data": {"n": n}}))
        .collect();
    let r = env.publish_batch(json!({"events": events})).await;
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(r.body["results"].as_array().unwrap().len(), 50);
    let mut ids = std::collections::HashSet::new();
    for _ in 0..50 {
        let got = rx
            .next(Duration::from_secs(15))
            .await
            .expect("every event of the batch arrives");
        ids.insert(got.header("webhook-id").unwrap().to_owned());
    }
    assert_eq!(ids.len(), 50);
    let mixed = json!({"events": [{"type": "task.created", "data": {}}, {"type": "nope", "data": {}}]});
    let r = env.publish_batch(mixed).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["errors"][0]["field"], "events[1].type");
    rx.expect_nothing(Duration::from_millis(700)).await;
    let too_many: Vec<_> = (0..1001).map(|_| json!({"type": "task.created", "data": {}})).collect();
    let r = env.publish_batch(json!({"events": too_many})).await;
    assert_eq!(r.status, 400);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn producers_may_publish_events_to_the_ingest_exchange() {
    let env = TestEnv::start().await;
    let mut rx = Receiver::start(200).await;
    let (tenant, key) = env.tenant("acme").await;
    let w = env
        .webhook(&key, json!({"url": rx.url(), "events": ["person.*"]}))
        .await;
    env.wait_routed(1).await;
    let t = env.topology();
    let event = json!({"kind": "event.v1", "type": "person.updated", "tenant_id": tenant, "data": {"via": "amqp"}});
    env.publish_amqp(&t.ingest_exchange(), "event", event.to_string().as_bytes())
        .await;
    let got = rx
        .next(Duration::from_secs(15))
        .await
        .expect("the AMQP event is delivered");
    let body: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(body["data"]["via"], "amqp");
    env.delivery_in(&key, w["id"].as_str().unwrap(), "success").await;

    // Invalid messages are dead-lettered, not retried for ever, and nothing is sent.
    env.publish_amqp(&t.ingest_exchange(), "event", b"not json").await;
    let unknown = json!({"kind": "event.v1", "type": "nope", "data": {}});
    env.publish_amqp(&t.ingest_exchange(), "event", unknown.to_string().as_bytes())
        .await;
    let dead = hookwire_test_support::eventually(Duration::from_secs(10), || async {
        (env.queue_depth(&t.dead_letter_queue()).await >= 2).then_some(())
    })
    .await;
    assert!(dead.is_some(), "both invalid messages reached the dead-letter queue");
    assert_eq!(env.queue_depth(&t.ingest_queue()).await, 0);
    rx.expect_nothing(Duration::from_millis(500)).await;
    env.stop().await;
}
