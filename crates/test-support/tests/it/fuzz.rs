//! The management API fuzzed from its own OpenAPI document: no input may cause a 5xx.

use hookwire_test_support::{TestEnv, ADMIN_TOKEN};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn schemathesis_finds_no_server_error() {
    let env = TestEnv::start_with(|o| {
        // Deep enough that the fuzzer meets validation, not the rate limiter.
        o.registry.rate_limits.default.count = 1_000_000;
        o.registry.rate_limits.create_webhook.count = 1_000_000;
    })
    .await;
    let (_, key) = env.tenant_with_key("fuzz", json!({"max_webhooks": 100000})).await;
    let spec = format!("{}/v1/openapi.json", env.registry);
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("schemathesis")
            .args([
                "run",
                &spec,
                "--checks",
                "not_a_server_error",
                "--max-examples",
                "25",
                "--seed",
                "42",
            ])
            .args(["-H", &format!("X-API-Key: {key}")])
            .args(["-H", &format!("Authorization: Bearer {ADMIN_TOKEN}")])
            .env("NO_COLOR", "1")
            .output()
    })
    .await
    .unwrap()
    .expect("schemathesis is installed (scripts/test-deps.sh)");
    let report = String::from_utf8_lossy(&out.stdout);
    let tail: Vec<&str> = report.lines().rev().take(12).collect();
    println!("{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("generated"), "schemathesis ran no test case:\n{report}");
    env.stop().await;
}
