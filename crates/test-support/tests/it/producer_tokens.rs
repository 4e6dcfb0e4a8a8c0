//! Producer tokens: one per producer, limited to its types and tenants, named in metrics, and
//! refused by the publisher within seconds of its revocation.

use std::time::Duration;

use hookwire_test_support::{eventually, Response, TestEnv};
use serde_json::{json, Value};

async fn publish_with(env: &TestEnv, token: &str, path: &str, body: Value) -> Response {
    env.http
        .post(
            &format!("{}{path}", env.publisher),
            &[("authorization", &format!("Bearer {token}"))],
            Some(&body),
        )
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_producer_token_publishes_its_types_for_its_tenants_until_revoked() {
    let env = TestEnv::start().await;
    let (acme, _) = env.tenant("Acme").await;
    let (globex, _) = env.tenant("Globex").await;
    let refused = env
        .admin_post(
            "/v1/admin/producer-tokens",
            json!({"name": "billing", "event_types": ["nothing.*"]}),
        )
        .await;
    assert_eq!(refused.status, 400, "patterns must match the catalog: {refused:?}");
    let made = env
        .admin_post(
            "/v1/admin/producer-tokens",
            json!({"name": "billing", "event_types": ["person.*"], "tenant_ids": [acme]}),
        )
        .await;
    assert_eq!(made.status, 201, "{made:?}");
    let token = made.body["token"].as_str().unwrap().to_owned();
    let id = made.body["id"].as_str().unwrap().to_owned();
    assert!(token.starts_with("hwpt_"));
    let listed = env.admin("GET", "/v1/admin/producer-tokens", None).await;
    assert_eq!(listed.body["count"], 1);
    assert!(!listed.body.to_string().contains(&token), "never listed");
    assert!(env
        .admin("GET", &format!("/v1/admin/producer-tokens/{id}"), None)
        .await
        .body["token"]
        .is_null());

    // Accepted within its patterns and tenants, as soon as the publisher knows it.
    let event = json!({"type": "person.created", "tenant_id": acme, "data": {}});
    let accepted = eventually(Duration::from_secs(10), || async {
        let r = publish_with(&env, &token, "/v1/events", event.clone()).await;
        (r.status == 202).then_some(r)
    })
    .await;
    assert!(accepted.is_some(), "the publisher accepts the new token within seconds");
    // Outside them: 403 saying which.
    for (body, says) in [
        (
            json!({"type": "task.created", "tenant_id": acme, "data": {}}),
            "person.*",
        ),
        (
            json!({"type": "person.created", "tenant_id": globex, "data": {}}),
            "tenant",
        ),
        (json!({"type": "person.created", "data": {}}), "tenant_id"),
    ] {
        let r = publish_with(&env, &token, "/v1/events", body).await;
        assert_eq!(r.status, 403, "{r:?}");
        assert!(r.body["detail"].as_str().unwrap().contains(says), "{r:?}");
    }
    let batch = json!({"events": [event.clone(), {"type": "task.created", "tenant_id": acme, "data": {}}]});
    let r = publish_with(&env, &token, "/v1/events:batch", batch).await;
    assert_eq!(r.status, 403);
    assert!(r.body["detail"].as_str().unwrap().starts_with("events[1]"), "{r:?}");
    // The bootstrap token still publishes anything.
    assert_eq!(
        env.publish(json!({"type": "task.created", "data": {}})).await.status,
        202
    );
    // Metrics name the producer.
    let counted = env
        .metric(
            &env.publisher,
            "hookwire_publisher_events_by_producer_total{producer=\"billing\"}",
        )
        .await;
    assert_eq!(counted, Some(1.0));

    // Revoked: refused within seconds, and recorded.
    assert_eq!(
        env.admin("DELETE", &format!("/v1/admin/producer-tokens/{id}"), None)
            .await
            .status,
        204
    );
    let gone = eventually(Duration::from_secs(10), || async {
        let r = publish_with(&env, &token, "/v1/events", event.clone()).await;
        (r.status == 401).then_some(())
    })
    .await;
    assert!(gone.is_some(), "the publisher refuses a revoked token within seconds");
    let audit = env
        .admin("GET", &format!("/v1/admin/audit-log?resource_id={id}"), None)
        .await;
    let actions: Vec<&str> = audit.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["producer_token.revoked", "producer_token.created"]);
    assert!(!audit.body.to_string().contains(&token));
    env.stop().await;
}
