//! Requests at once: changes that never undo each other, limits that hold, and a migration under running registries.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn changes_to_one_webhook_at_once_never_undo_each_other() {
    let env = TestEnv::start().await;
    let (_, key) = env.tenant("acme").await;
    let w = env
        .webhook(&key, json!({"url": "http://127.0.0.1:1/", "events": ["person.*"]}))
        .await;
    let path = format!("/v1/webhooks/{}", w["id"].as_str().unwrap());
    for round in 1..=3u64 {
        // Eight PATCHes of eight different fields and a rotation, all at once.
        let patches = [
            json!({"name": format!("n{round}")}),
            json!({"description": format!("d{round}")}),
            json!({"timeout_seconds": 10 + round}),
            json!({"rate_limit_per_second": 100 + round}),
            json!({"channels": [format!("c{round}")]}),
            json!({"headers": {"X-Round": round.to_string()}}),
            json!({"retry_count": round}),
            json!({"is_test": round % 2 == 0}),
        ];
        let rotate = format!("{path}/rotate-secret");
        let (answers, rotated) = tokio::join!(
            futures_util::future::join_all(patches.iter().map(|p| env.api("PATCH", &path, &key, Some(p.clone())))),
            env.api("POST", &rotate, &key, None),
        );
        for a in answers.iter().chain([&rotated]) {
            assert_eq!(a.status, 200, "round {round}: {a:?}");
        }
        let now = env.api("GET", &path, &key, None).await.body;
        assert_eq!(
            (
                &now["name"],
                &now["description"],
                &now["timeout_seconds"],
                &now["rate_limit_per_second"],
            ),
            (
                &json!(format!("n{round}")),
                &json!(format!("d{round}")),
                &json!(10 + round),
                &json!(100 + round)
            ),
            "round {round}: {now}"
        );
        assert_eq!(now["channels"], json!([format!("c{round}")]), "round {round}: {now}");
        assert_eq!(
            now["headers"],
            json!({"X-Round": round.to_string()}),
            "round {round}: {now}"
        );
        assert_eq!(now["retry_policy"]["max_retries"], round, "round {round}: {now}");
        assert_eq!(now["is_test"], round % 2 == 0, "round {round}: {now}");
        assert_eq!(
            now["secret"], rotated.body["secret"],
            "round {round}: the rotation stands"
        );
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn creates_at_once_with_one_key_never_pass_its_limit() {
    let env = TestEnv::start_with(|o| o.registry.rate_limits.create_webhook.count = 100).await;
    let (_, key) = env.tenant_with_key("acme", json!({"max_webhooks": 3})).await;
    for round in 0..2 {
        let body = json!({"url": "http://127.0.0.1:1/", "events": ["person.*"]});
        let answers =
            futures_util::future::join_all((0..10).map(|_| env.api("POST", "/v1/webhooks", &key, Some(body.clone()))))
                .await;
        let mut statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
        statuses.sort_unstable();
        // The first round fills the limit; the second finds it full.
        let created = if round == 0 { 3 } else { 0 };
        assert_eq!(
            statuses.iter().filter(|s| **s == 201).count(),
            created,
            "round {round}: {statuses:?}"
        );
        assert_eq!(
            statuses.iter().filter(|s| **s == 403).count(),
            10 - created,
            "round {round}: {statuses:?}"
        );
    }
    assert_eq!(env.api("GET", "/v1/webhooks", &key, None).await.body["count"], 3);
    env.stop().await;
}

/// A key revoked while its create waits for the key's row (the limit check locks it) creates
/// nothing: the create answers 401, as the key's next request would.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_revoked_while_its_create_waits_creates_nothing() {
    let env = TestEnv::start().await;
    let (tenant, key) = env.tenant_with_key("acme", json!({"max_webhooks": 5})).await;
    let body = json!({"url": "http://127.0.0.1:1/", "events": ["person.*"]});
    assert_eq!(
        env.api("POST", "/v1/webhooks", &key, Some(body.clone())).await.status,
        201
    );
    // The revocation holds the key's row for a second before it commits; the create sent
    // meanwhile passed authentication (the revocation is not committed yet) and waits on it.
    let revoking = std::process::Command::new("psql")
        .args([
            "-c",
            &format!(
                "BEGIN; UPDATE api_keys SET revoked_at = now() WHERE key_hash = sha256(convert_to('{key}', 'UTF8'));
                 SELECT pg_sleep(1); COMMIT;"
            ),
            env.database_url(),
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    env.wait_until_sleeping("UPDATE api_keys SET revoked_at").await;
    let r = env.api("POST", "/v1/webhooks", &key, Some(body)).await;
    let _ = revoking.wait_with_output();
    assert_eq!(r.status, 401, "{r:?}");
    let count = env
        .psql(&format!("SELECT count(*) FROM webhooks WHERE tenant_id = '{tenant}'"))
        .unwrap();
    assert_eq!(count, "1", "only the webhook created before the revocation");
    env.stop().await;
}

/// A migration that adds a column to `api_keys` while registries run (a rolling upgrade) fails
/// none of their requests: the key's statement, prepared once per connection, names its columns.
#[tokio::test]
async fn a_column_added_to_api_keys_under_a_running_registry_fails_no_request() {
    let env = TestEnv::start().await;
    let (_, key) = env.tenant("acme").await;
    let get = || env.api("GET", "/v1/webhooks", &key, None);
    // Every pooled connection has prepared the statement.
    let warm = futures_util::future::join_all((0..16).map(|_| get())).await;
    assert!(warm.iter().all(|r| r.status == 200), "{warm:?}");
    env.psql("ALTER TABLE api_keys ADD COLUMN note text")
        .expect("the column is added");
    let after = futures_util::future::join_all((0..16).map(|_| get())).await;
    let failed: Vec<_> = after.iter().filter(|r| r.status != 200).collect();
    assert!(failed.is_empty(), "{} of 16 failed: {:?}", failed.len(), failed.first());
    env.stop().await;
}
