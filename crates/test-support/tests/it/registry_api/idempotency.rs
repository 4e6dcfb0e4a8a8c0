//! A POST sent again with its `Idempotency-Key` is answered once.

use super::*;

/// A POST with `Idempotency-Key: idem` as `credential` (an API key, or `Bearer <admin token>`).
async fn post_once(env: &TestEnv, credential: &str, idem: &str, path: &str, body: Option<&Value>) -> Response {
    let auth = if credential.starts_with("Bearer ") {
        ("authorization", credential)
    } else {
        ("x-api-key", credential)
    };
    env.http
        .post(
            &format!("{}{path}", env.registry),
            &[auth, ("idempotency-key", idem)],
            body,
        )
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_post_sent_again_with_its_idempotency_key_is_answered_once() {
    let env = TestEnv::start_with(|o| o.registry.rate_limits.create_webhook.count = 100).await;
    let (tenant, key) = env.tenant("acme").await;
    let (_, other) = env.tenant("other").await;
    let count = |key: String| {
        let env = &env;
        async move { env.api("GET", "/v1/webhooks", &key, None).await.body["count"].clone() }
    };
    let create = webhook("http://127.0.0.1:1/");

    // The same create twice: one webhook, and the first answer again, secret and all.
    let first = post_once(&env, &key, "create-1", "/v1/webhooks", Some(&create)).await;
    assert_eq!(first.status, 201, "{first:?}");
    assert_eq!(first.header("idempotent-replayed"), None);
    let again = post_once(&env, &key, "\"create-1\"", "/v1/webhooks", Some(&create)).await;
    assert_eq!(again.status, 201, "{again:?}");
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.header("content-type"), Some("application/json"));
    assert_eq!(again.body, first.body);
    assert_eq!(count(key.clone()).await, 1);
    // Another credential's key of the same name is its own.
    let theirs = post_once(&env, &other, "create-1", "/v1/webhooks", Some(&create)).await;
    assert_eq!(theirs.status, 201);
    assert_ne!(theirs.body["id"], first.body["id"]);
    assert_eq!(count(other.clone()).await, 1);
    // The key with another request: 422, nothing done.
    let changed = json!({"url": "http://127.0.0.1:2/", "events": ["person.created"]});
    let r = post_once(&env, &key, "create-1", "/v1/webhooks", Some(&changed)).await;
    assert_eq!(r.status, 422, "{r:?}");
    assert_eq!(
        r.body["type"].as_str().unwrap().rsplit('/').next(),
        Some("idempotency_key_reused")
    );
    assert_eq!(count(key.clone()).await, 1);
    // A malformed key: 400.
    let r = post_once(&env, &key, &"k".repeat(256), "/v1/webhooks", Some(&create)).await;
    assert_eq!(r.status, 400);
    assert_eq!(count(key.clone()).await, 1);

    // A request that failed leaves its key free: the same key runs again, with another body too.
    let bad = json!({"url": "ftp://example.com/", "events": ["person.created"]});
    for _ in 0..2 {
        let r = post_once(&env, &key, "create-2", "/v1/webhooks", Some(&bad)).await;
        assert_eq!(r.status, 400, "{r:?}");
        assert_eq!(r.header("idempotent-replayed"), None);
    }
    let r = post_once(&env, &key, "create-2", "/v1/webhooks", Some(&changed)).await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(count(key.clone()).await, 2);

    // A rotation sent twice rotates once: the receiver's secret still signs beside the new one.
    let id = first.body["id"].as_str().unwrap();
    let rotate = format!("/v1/webhooks/{id}/rotate-secret");
    let rotated = post_once(&env, &key, "rotate-1", &rotate, None).await;
    assert_eq!(rotated.status, 200, "{rotated:?}");
    let replayed = post_once(&env, &key, "rotate-1", &rotate, None).await;
    assert_eq!(replayed.header("idempotent-replayed"), Some("true"));
    assert_eq!(replayed.body["secret"], rotated.body["secret"]);
    assert_ne!(rotated.body["secret"], first.body["secret"]);
    let now = env.api("GET", &format!("/v1/webhooks/{id}"), &key, None).await;
    assert_eq!(now.body["secret"], rotated.body["secret"]);

    // The admin's API key, created once and shown again; the stored answers are encrypted.
    let admin = format!("Bearer {ADMIN_TOKEN}");
    let new_key = json!({"tenant_id": tenant});
    let made = post_once(&env, &admin, "key-1", "/v1/admin/api-keys", Some(&new_key)).await;
    assert_eq!(made.status, 201, "{made:?}");
    let made_again = post_once(&env, &admin, "key-1", "/v1/admin/api-keys", Some(&new_key)).await;
    assert_eq!(made_again.header("idempotent-replayed"), Some("true"));
    assert_eq!(made_again.body["key"], made.body["key"]);
    let keys = env
        .admin("GET", &format!("/v1/admin/api-keys?tenant_id={tenant}"), None)
        .await;
    assert_eq!(keys.body["count"], 2, "{:?}", keys.body);
    let stored = env
        .psql("SELECT string_agg(body_sealed, ' ') FROM api_idempotency_keys")
        .unwrap();
    for secret in [&first.body["secret"], &rotated.body["secret"], &made.body["key"]] {
        let secret = secret.as_str().unwrap().trim_start_matches("whsec_");
        assert!(!stored.contains(secret), "an answer is stored in plaintext");
    }

    // A request still running under the key: 409; left for a minute by a registry that died, the
    // same request takes it over and runs.
    let pending = json!({"url": "http://127.0.0.1:3/", "events": ["person.created"]});
    env.psql(&format!(
        "INSERT INTO api_idempotency_keys (scope, key, fingerprint, holder)
         VALUES (sha256(convert_to('{key}', 'UTF8')), 'create-3',
                 sha256(convert_to('POST' || chr(10) || '/v1/webhooks' || chr(10) || '{pending}', 'UTF8')),
                 gen_random_uuid())"
    ))
    .expect("the claim is inserted");
    let r = post_once(&env, &key, "create-3", "/v1/webhooks", Some(&pending)).await;
    assert_eq!(r.status, 409, "{r:?}");
    assert_eq!(
        r.body["type"].as_str().unwrap().rsplit('/').next(),
        Some("idempotency_in_progress")
    );
    env.psql("UPDATE api_idempotency_keys SET created_at = now() - interval '61 seconds' WHERE key = 'create-3'")
        .unwrap();
    let r = post_once(&env, &key, "create-3", "/v1/webhooks", Some(&pending)).await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(count(key.clone()).await, 3);

    // A client that gives up does not stop its request: the retry gets the answer it missed.
    // The key's row is held in another transaction for two seconds, so the create waits on it
    // (its limit check locks that row) well past the client's 300 ms.
    let held = std::process::Command::new("psql")
        .args([
            "-c",
            &format!(
                "BEGIN; SELECT 1 FROM api_keys WHERE key_hash = sha256(convert_to('{key}', 'UTF8')) FOR UPDATE;
                 SELECT pg_sleep(2); COMMIT;"
            ),
            env.database_url(),
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Until that transaction holds the row (a fixed wait was too short on a loaded machine).
    hookwire_test_support::eventually(std::time::Duration::from_secs(10), || async {
        env.psql(
            "SELECT 1 FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event = 'PgSleep' AND query LIKE '%FOR UPDATE%'",
        )
        .filter(|row| row == "1")
    })
    .await
    .expect("psql holds the key's row");
    let slow = json!({"url": "http://127.0.0.1:4/", "events": ["person.created"]});
    let gave_up = tokio::time::timeout(
        std::time::Duration::from_millis(300),
        post_once(&env, &key, "create-4", "/v1/webhooks", Some(&slow)),
    )
    .await;
    assert!(gave_up.is_err(), "the create was not held: {gave_up:?}");
    let answered = hookwire_test_support::eventually(std::time::Duration::from_secs(10), || async {
        let r = post_once(&env, &key, "create-4", "/v1/webhooks", Some(&slow)).await;
        (r.status != 409).then_some(r)
    })
    .await
    .expect("the first request is answered");
    assert_eq!(answered.status, 201, "{answered:?}");
    assert_eq!(answered.header("idempotent-replayed"), Some("true"));
    assert_eq!(count(key.clone()).await, 4);
    let _ = held.wait_with_output();

    // An answer is given again only to a credential still valid.
    let key_id = env
        .admin("GET", &format!("/v1/admin/api-keys?tenant_id={tenant}"), None)
        .await
        .body["results"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        env.admin("DELETE", &format!("/v1/admin/api-keys/{key_id}"), None)
            .await
            .status,
        204
    );
    let r = post_once(&env, &key, "create-1", "/v1/webhooks", Some(&create)).await;
    assert_eq!(r.status, 401, "{r:?}");
    env.stop().await;
}
