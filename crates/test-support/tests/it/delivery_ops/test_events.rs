//! Test events sent on request: the type's example or the customer's data, logged as tests.

use super::*;

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

/// A catalog type's example: the admin sets it, checked against the type's schema (also when
/// either changes later), customers read it, and a webhook's test sends it on request, or data
/// of the customer's own, checked against the schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_test_sends_the_types_example_or_data_its_schema_accepts() {
    let env = TestEnv::start().await;
    let schema = json!({"type": "object", "required": ["amount"], "properties": {"amount": {"type": "integer"}}});
    let invoice = |example: Value| json!({"value": "invoice.paid", "label": "Invoice paid", "schema": schema, "example": example});
    let r = env
        .admin_post("/v1/admin/event-types", invoice(json!({"amount": "ten"})))
        .await;
    assert_eq!((r.status, r.error_fields()), (400, vec!["example"]), "{r:?}");
    let r = env
        .admin_post("/v1/admin/event-types", invoice(json!({"amount": 10})))
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["example"], json!({"amount": 10}));
    // A schema the example does not meet, or an example the schema refuses: 400, nothing changed.
    let path = "/v1/admin/event-types/invoice.paid";
    let r = env
        .admin(
            "PATCH",
            path,
            Some(json!({"schema": {"type": "object", "required": ["currency"]}})),
        )
        .await;
    assert_eq!((r.status, r.error_fields()), (400, vec!["schema"]), "{r:?}");
    let r = env
        .admin("PATCH", path, Some(json!({"example": {"amount": 1.5}})))
        .await;
    assert_eq!((r.status, r.error_fields()), (400, vec!["example"]), "{r:?}");
    let (_, key) = env.tenant("acme").await;
    let shown = env.api("GET", "/v1/event-types/invoice.paid", &key, None).await;
    assert_eq!(
        (&shown.body["schema"], &shown.body["example"]),
        (&schema, &json!({"amount": 10}))
    );
    // Hookwire's own types come with examples.
    for value in ["hookwire.delivery_exhausted", "hookwire.webhook_disabled"] {
        let t = env.api("GET", &format!("/v1/event-types/{value}"), &key, None).await;
        assert!(t.body["example"]["webhook_id"].is_string(), "{t:?}");
        let violations = hookwire_core::schema::check(&t.body["schema"], &t.body["example"], 5);
        assert!(violations.is_empty(), "{value}: {violations:?}");
    }

    let mut receiver = Receiver::start(200).await;
    let w = env
        .webhook(
            &key,
            json!({"url": receiver.url(), "events": ["invoice.*", "person.created"]}),
        )
        .await;
    let id = w["id"].as_str().unwrap();
    let test = |body: Value| {
        let (env, key) = (&env, key.clone());
        async move {
            env.api("POST", &format!("/v1/webhooks/{id}/test"), &key, Some(body))
                .await
        }
    };
    let mut received = async |sent: hookwire_test_support::Response| {
        assert_eq!(sent.status, 202, "{sent:?}");
        let got = receiver.next(Duration::from_secs(15)).await.expect("the test arrives");
        let body: Value = serde_json::from_slice(&got.body).unwrap();
        (body["type"].clone(), body["data"].clone())
    };
    let example = test(json!({"event_type": "invoice.paid", "example": true})).await;
    assert_eq!(received(example).await, (json!("invoice.paid"), json!({"amount": 10})));
    let own = test(json!({"event_type": "invoice.paid", "data": {"amount": 7}})).await;
    assert_eq!(received(own).await, (json!("invoice.paid"), json!({"amount": 7})));
    for (body, field) in [
        (json!({"event_type": "invoice.paid", "data": {"amount": "x"}}), "data"),
        (json!({"event_type": "task.created"}), "event_type"),
        (json!({"event_type": "person.created", "example": true}), "example"),
        (json!({"data": {"amount": 1}, "example": true}), "example"),
    ] {
        let r = test(body.clone()).await;
        assert_eq!((r.status, r.error_fields()), (400, vec![field]), "{body}: {r:?}");
    }
    receiver.expect_nothing(Duration::from_millis(500)).await;
    env.stop().await;
}
