//! The management API and event ingest fuzzed from their own OpenAPI documents with every schemathesis check: no
//! server error, no answer the document does not describe, nothing the document allows refused
//! and nothing it forbids accepted (beyond the rules in `tests/fuzz/schemathesis.toml`), 405 for
//! methods it does not list, and created resources found again.

use hookwire_test_support::{TestEnv, ADMIN_TOKEN, PRODUCER_TOKEN};
use serde_json::json;

/// Examples per operation: 100 here; `make fuzz` sets more (`HOOKWIRE_FUZZ_EXAMPLES`).
fn examples() -> String {
    std::env::var("HOOKWIRE_FUZZ_EXAMPLES").unwrap_or_else(|_| "100".into())
}

/// One schemathesis run over the operations `paths` selects, as `credential`, with every check
/// but those `excluded` names (`--exclude-checks …`, or nothing); its report.
async fn schemathesis(
    spec: String,
    paths: [&'static str; 2],
    credential: String,
    excluded: &'static [&'static str],
) -> String {
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fuzz/schemathesis.toml");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("schemathesis")
            .args(["--config-file", config, "run", &spec])
            .args(["--checks", "all", "--max-examples", &examples(), "--seed", "42"])
            // A slow CI machine answers slowly, not wrongly: no 10 s read timeout.
            .args(["--request-timeout", "60"])
            .args(paths)
            .args(excluded)
            .args(["-H", &credential])
            .env("NO_COLOR", "1")
            .output()
    })
    .await
    .unwrap()
    .expect("schemathesis is installed (scripts/test-deps.sh)");
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    let tail: Vec<&str> = report.lines().rev().take(14).collect();
    println!("{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("generated"), "schemathesis ran no test case:\n{report}");
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn schemathesis_finds_the_api_as_its_document_says() {
    let env = TestEnv::start_with(|o| {
        // Deep enough that the fuzzer meets validation, not the rate limiter.
        o.registry.rate_limits.default.count = 1_000_000;
        o.registry.rate_limits.create_webhook.count = 1_000_000;
    })
    .await;
    let (_, key) = env.tenant_with_key("fuzz", json!({"max_webhooks": 100000})).await;
    let spec = format!("{}/v1/openapi.json", env.registry);
    // The customer API with a tenant's key, then the admin API with the admin token: the admin
    // pass deletes tenants and revokes keys, so it goes last. A listen session's stream of
    // requests never ends by design (tests/it/cli.rs covers it), so it is left out.
    schemathesis(
        spec.clone(),
        ["--exclude-path-regex", "^/v1/admin/|^/v1/listen/[^/]+/requests$"],
        format!("X-API-Key: {key}"),
        &[],
    )
    .await;
    schemathesis(
        spec,
        ["--include-path-regex", "^/v1/admin/"],
        format!("Authorization: Bearer {ADMIN_TOKEN}"),
        // Two checks the admin API answers otherwise by design: DELETE revokes a key or
        // archives a type, which stay readable (`revoked_at`, `archived`); and a POST sent
        // again with its Idempotency-Key gets its first answer, also when a later request
        // deleted what it created (the fuzzer draws keys it drew before).
        &["--exclude-checks", "use_after_free,ensure_resource_availability"],
    )
    .await;
    // Event ingest, from the publisher's own document, with the producer token.
    schemathesis(
        format!("{}/v1/openapi.json", env.publisher),
        ["--include-path-regex", "^/v1/events"],
        format!("Authorization: Bearer {PRODUCER_TOKEN}"),
        &[],
    )
    .await;
    env.stop().await;
}
