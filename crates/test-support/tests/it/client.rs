//! A client generated from docs/openapi.json by a well-known generator (openapi-python-client)
//! runs a customer's scenario against the real stack: the document is good enough to build on.

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
