//! Clients run a customer's scenario against the real stack: one generated from
//! docs/openapi.json by a well-known generator (openapi-python-client), so the document is good
//! enough to build on, and the Rust client, `hookwire-client`.

use std::time::Duration;

use hookwire_test_support::{Receiver, TestEnv, ADMIN_TOKEN, PRODUCER_TOKEN};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_generated_from_the_document_runs_a_customers_scenario() {
    let env = TestEnv::start().await;
    let mut receiver = Receiver::start(200).await;
    let out_dir = std::env::temp_dir().join(format!("hookwire-client-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out_dir);
    std::fs::create_dir_all(&out_dir).unwrap();
    let document = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
    let scenario = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/client/scenario.py");
    let (registry, publisher, receiver_url) = (env.registry.clone(), env.publisher.clone(), receiver.url());
    let dir = out_dir.clone();
    let (generated, ran) = tokio::task::spawn_blocking(move || {
        let generated = std::process::Command::new("openapi-python-client")
            .args(["generate", "--path", document, "--meta", "none", "--output-path"])
            .arg(dir.join("hookwire_client"))
            .output()
            .expect("openapi-python-client is installed (scripts/test-deps.sh)");
        let ran = std::process::Command::new("python3")
            .arg(scenario)
            .args([&registry, &publisher, ADMIN_TOKEN, PRODUCER_TOKEN, &receiver_url])
            .env("PYTHONPATH", &dir)
            .output()
            .expect("python3 runs");
        (generated, ran)
    })
    .await
    .unwrap();
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    assert!(
        generated.status.success(),
        "the generator failed:\n{}",
        text(&generated)
    );
    assert!(ran.status.success(), "the scenario failed:\n{}", text(&ran));
    let said = text(&ran);
    for step in ["webhook", "event", "delivery", "rotated"] {
        assert!(said.lines().any(|l| l.starts_with(step)), "no `{step}` step:\n{said}");
    }
    // The receiver got the event and its retry by hand.
    for _ in 0..2 {
        let got = receiver.next(Duration::from_secs(20)).await.expect("a delivery");
        assert!(String::from_utf8_lossy(&got.body).contains("\"Ada\""));
    }
    std::fs::remove_dir_all(&out_dir).unwrap();
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_rust_client_runs_a_customers_scenario() {
    use hookwire_client::api::deliveries::DeliveryStatus;
    use hookwire_client::api::events::NewEvent;
    use hookwire_client::api::webhooks::{WebhookIn, WebhookPatch};
    use hookwire_client::{Auth, Client};

    let env = TestEnv::start().await;
    let mut receiver = Receiver::start(200).await;
    let (tenant, key) = env.tenant("rust-client").await;
    let api = Client::new(&env.registry, Auth::ApiKey(key));
    let producer = Client::new(&env.publisher, Auth::Bearer(PRODUCER_TOKEN.into()));

    let webhook = api
        .create_webhook(&WebhookIn::new(receiver.url(), ["person.*"]))
        .await
        .unwrap();
    let first_secret = webhook.secret.clone().expect("the secret is shown on creation");
    assert_eq!(api.webhooks().await.unwrap().results[0].id, webhook.id);
    env.wait_routed(1).await;
    let accepted = producer
        .publish(
            &NewEvent::new("person.created", serde_json::json!({"name": "Ada"})).for_tenant(tenant.parse().unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(accepted.matched, 1);
    receiver.next(Duration::from_secs(15)).await.expect("delivered");

    // The delivery log, typed, until the delivery is written.
    let delivery = hookwire_test_support::eventually(Duration::from_secs(20), || async {
        let page = api.deliveries(Some(webhook.id)).await.ok()?;
        page.results.into_iter().find(|d| d.status == DeliveryStatus::Success)
    })
    .await
    .expect("the delivery is logged as a success");
    let detail = api.delivery(delivery.id).await.unwrap();
    assert_eq!(detail.event_id, accepted.event_id);
    assert_eq!(detail.payload.as_ref().unwrap()["data"]["name"], "Ada");
    api.retry_delivery(delivery.id).await.unwrap();
    receiver.next(Duration::from_secs(15)).await.expect("the retry arrives");

    let rotated = api.rotate_secret(webhook.id).await.unwrap();
    assert_ne!(rotated.secret.as_deref(), Some(first_secret.as_str()));
    let patch = WebhookPatch {
        is_active: Some(false),
        ..WebhookPatch::default()
    };
    assert!(!api.update_webhook(webhook.id, &patch).await.unwrap().is_active);
    api.delete_webhook(webhook.id).await.unwrap();
    // A refusal is the server's problem, typed.
    let gone = api.webhook(webhook.id).await.unwrap_err();
    assert_eq!((gone.status(), gone.code()), (Some(404), Some("not_found")));
    let invalid = producer
        .publish(&NewEvent::new("no.such_type", serde_json::Value::Null))
        .await
        .unwrap_err();
    assert_eq!(invalid.status(), Some(400), "{invalid}");
    assert!(
        invalid
            .to_string()
            .contains("type: `no.such_type` is not an event type in the catalog"),
        "{invalid}"
    );
    env.stop().await;
}
