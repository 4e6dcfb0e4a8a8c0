//! The management API as a customer meets it: authentication, scopes, limits, isolation,
//! validation errors and pagination.

use hookwire_test_support::{Response, TestEnv, ADMIN_TOKEN};
use serde_json::{json, Value};

fn webhook(url: &str) -> serde_json::Value {
    json!({"url": url, "events": ["person.created"]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_scopes_limits_and_tenants_are_enforced() {
    let env = TestEnv::start().await;
    let (_, key) = env.tenant("acme").await;

    // 401: no key, unknown key; problem+json with a request id.
    let r = env
        .http
        .get(&format!("{}/v1/webhooks", env.registry), &[])
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert_eq!(r.body["status"], 401);
    assert!(r.header("x-request-id").is_some());
    assert_eq!(env.api("GET", "/v1/webhooks", "hwk_nope", None).await.status, 401);
    // Bearer works as well as X-API-Key, and a caller's request id is echoed.
    let r = env
        .http
        .get(
            &format!("{}/v1/webhooks", env.registry),
            &[("authorization", &format!("Bearer {key}")), ("x-request-id", "req-123")],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-request-id"), Some("req-123"));

    // 403: missing scope, webhooks disabled, limit reached — each says which.
    let (_, read_only) = env.tenant_with_key("ro", json!({"scopes": ["webhooks:read"]})).await;
    let r = env
        .api("POST", "/v1/webhooks", &read_only, Some(webhook("http://127.0.0.1:1/")))
        .await;
    assert_eq!(r.status, 403);
    assert!(r.body["detail"].as_str().unwrap().contains("webhooks:write"));
    let (_, disabled) = env.tenant_with_key("off", json!({"webhooks_enabled": false})).await;
    let r = env
        .api("POST", "/v1/webhooks", &disabled, Some(webhook("http://127.0.0.1:1/")))
        .await;
    assert_eq!(r.status, 403);
    assert!(r.body["detail"].as_str().unwrap().contains("not enabled"));
    let (_, small) = env.tenant_with_key("small", json!({"max_webhooks": 1})).await;
    assert_eq!(
        env.api("POST", "/v1/webhooks", &small, Some(webhook("http://127.0.0.1:1/")))
            .await
            .status,
        201
    );
    let r = env
        .api("POST", "/v1/webhooks", &small, Some(webhook("http://127.0.0.1:1/")))
        .await;
    assert_eq!(r.status, 403);
    assert!(r.body["detail"].as_str().unwrap().contains("limit of 1"));

    // Another tenant's webhook is invisible: 404 on every verb, absent from lists.
    let mine = env
        .api("POST", "/v1/webhooks", &key, Some(webhook("http://127.0.0.1:1/")))
        .await;
    let id = mine.body["id"].as_str().unwrap();
    let (_, other) = env.tenant("other").await;
    for method in ["GET", "DELETE"] {
        assert_eq!(
            env.api(method, &format!("/v1/webhooks/{id}"), &other, None)
                .await
                .status,
            404
        );
    }
    let r = env.patch_webhook(&other, id, json!({"name": "x"})).await;
    assert_eq!(r.status, 404);
    assert_eq!(env.api("GET", "/v1/webhooks", &other, None).await.body["count"], 0);
    assert_eq!(env.api("GET", "/v1/webhooks/not-a-uuid", &key, None).await.status, 404);

    // The admin API wants the admin token.
    let r = env
        .http
        .post(
            &format!("{}/v1/admin/tenants", env.registry),
            &[("x-api-key", &key)],
            Some(&json!({"name": "x"})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    let _ = ADMIN_TOKEN;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhooks_are_validated_field_by_field_and_updated_partially() {
    let env = TestEnv::start().await;
    let (_, key) = env.tenant("acme").await;
    let r = env
        .api(
            "POST",
            "/v1/webhooks",
            &key,
            Some(json!({"url": "ftp://x", "events": ["nope.*"], "timeout_seconds": 99, "is_test": "yes", "colour": 1})),
        )
        .await;
    assert_eq!(r.status, 400);
    let fields = r.error_fields();
    for f in ["url", "events", "timeout_seconds", "is_test", "colour"] {
        assert!(fields.contains(&f), "no error for {f}: {fields:?}");
    }
    let r = env
        .http
        .raw(
            "POST",
            &format!("{}/v1/webhooks", env.registry),
            &[("x-api-key", &key)],
            b"{not json".to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert!(r.body["detail"].as_str().unwrap().contains("not valid JSON"));
    let r = env
        .api(
            "POST",
            "/v1/webhooks",
            &key,
            Some(json!({"events": ["person.created"]})),
        )
        .await;
    assert_eq!(r.body["errors"][0], json!({"field": "url", "message": "is required"}));

    let created = env
        .api(
            "POST",
            "/v1/webhooks",
            &key,
            Some(
                json!({"url": "http://127.0.0.1:1/a", "events": ["person.*", "*.created"], "name": "crm",
                        "header_name": "X-Auth", "auth_secret": "abcdef123456"}),
            ),
        )
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(created.body["masked_auth_secret"], "****3456");
    assert!(
        !created.body.to_string().contains("abcdef123456"),
        "the auth secret is never returned"
    );
    let id = created.body["id"].as_str().unwrap();
    // Secrets appear on retrieve, never in lists.
    assert!(env.api("GET", &format!("/v1/webhooks/{id}"), &key, None).await.body["secret"].is_string());
    let list = env.api("GET", "/v1/webhooks", &key, None).await;
    assert!(list.body["results"][0].get("secret").is_none());

    assert_eq!(env.patch_webhook(&key, id, json!({})).await.status, 400);
    let r = env
        .patch_webhook(&key, id, json!({"is_active": false, "timeout_seconds": 5}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["is_active"], false);
    assert_eq!(r.body["timeout_seconds"], 5);
    assert_eq!(r.body["name"], "crm", "fields not sent are kept");
    // Setting a field to null is kept too: the auth header and the rate limit removed, as the
    // answer and every later read say.
    let r = env.patch_webhook(&key, id, json!({"rate_limit_per_second": 5})).await;
    assert_eq!(r.body["rate_limit_per_second"], 5, "{r:?}");
    let r = env
        .patch_webhook(
            &key,
            id,
            json!({"rate_limit_per_second": null, "header_name": null, "auth_secret": null}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let read = env.api("GET", &format!("/v1/webhooks/{id}"), &key, None).await;
    for answer in [&r.body, &read.body] {
        assert_eq!(
            (
                &answer["rate_limit_per_second"],
                &answer["header_name"],
                &answer["masked_auth_secret"]
            ),
            (&Value::Null, &Value::Null, &Value::Null),
            "{answer}"
        );
    }
    assert_eq!(
        env.api("DELETE", &format!("/v1/webhooks/{id}"), &key, None)
            .await
            .status,
        204
    );
    assert_eq!(
        env.api("GET", &format!("/v1/webhooks/{id}"), &key, None).await.status,
        404
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn collections_page_both_ways_and_filter() {
    let env = TestEnv::start().await;
    let (_, key) = env.tenant("acme").await;
    for (i, events) in [["person.created"], ["company.*"], ["*"]].iter().enumerate() {
        let r = env
            .api(
                "POST",
                "/v1/webhooks",
                &key,
                Some(
                    json!({"url": "http://127.0.0.1:1/", "events": events, "name": format!("w{i}"), "is_test": i == 2}),
                ),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    let page = env.api("GET", "/v1/webhooks?limit=2&ordering=name", &key, None).await;
    assert_eq!(page.body["count"], 3);
    assert_eq!(page.body["results"].as_array().unwrap().len(), 2);
    assert_eq!(page.body["results"][0]["name"], "w0");
    assert!(page.body["next"].as_str().unwrap().contains("offset=2"));
    assert!(page.body["previous"].is_null());
    let page = env
        .api("GET", "/v1/webhooks?page=2&page_size=2&ordering=name", &key, None)
        .await;
    assert_eq!(page.body["results"][0]["name"], "w2");
    assert_eq!(page.body["count"], 3);
    assert!(page.body["next"].is_null());
    assert!(page.body["previous"].as_str().unwrap().contains("page=1"));
    // Past the end: no results, and still the count.
    let past = env.api("GET", "/v1/webhooks?offset=10", &key, None).await;
    assert_eq!(
        (&past.body["count"], past.body["results"].as_array().map(Vec::len)),
        (&json!(3), Some(0)),
        "{past:?}"
    );
    let matching = env
        .api("GET", "/v1/webhooks?event_type=company.updated", &key, None)
        .await;
    assert_eq!(matching.body["count"], 2, "company.* and *");
    assert_eq!(
        env.api("GET", "/v1/webhooks?is_test=true", &key, None).await.body["count"],
        1
    );
    let r = env.api("GET", "/v1/webhooks?limit=501", &key, None).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["errors"][0]["field"], "limit");
    assert_eq!(env.api("GET", "/v1/webhooks?bogus=1", &key, None).await.status, 400);
    // Found by the fuzzer: U+0000 cannot be stored by PostgreSQL; refused, not a 500.
    let r = env.api("GET", "/v1/webhooks?channel=%00e", &key, None).await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.body["errors"][0]["field"], "channel");
    let r = env
        .api(
            "POST",
            "/v1/webhooks",
            &key,
            Some(json!({"url": "http://127.0.0.1:1/", "events": ["*"], "name": "a\u{0}b"})),
        )
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.body["errors"][0]["field"], "name");
    // Found by the fuzzer: an offset near i64::MAX overflowed the next-link arithmetic.
    let far = env
        .api("GET", "/v1/webhooks?offset=9223372036854775807", &key, None)
        .await;
    assert_eq!(far.status, 200, "{far:?}");
    assert_eq!(far.body["results"], json!([]));
    let far = env
        .api(
            "GET",
            "/v1/deliveries?page=9223372036854775807&page_size=500",
            &key,
            None,
        )
        .await;
    assert_eq!(far.status, 200, "{far:?}");
    let types = env.api("GET", "/v1/event-types?limit=500", &key, None).await;
    // The development catalog and Hookwire's two operational types.
    assert_eq!(types.body["count"], 17, "the development catalog");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_limits_answer_429_with_retry_after_and_headers_on_every_response() {
    let env = TestEnv::start_with(|o| {
        o.registry.rate_limits.create_webhook.count = 2;
        o.registry.rate_limits.default.count = 5;
    })
    .await;
    let (_, key) = env.tenant("acme").await;
    let first = env.api("GET", "/v1/webhooks", &key, None).await;
    assert_eq!(first.header("ratelimit-limit"), Some("5"));
    assert_eq!(first.header("ratelimit-remaining"), Some("4"));
    assert!(first.header("ratelimit-reset").is_some());
    for _ in 0..4 {
        assert_eq!(env.api("GET", "/v1/webhooks", &key, None).await.status, 200);
    }
    let limited = env.api("GET", "/v1/webhooks", &key, None).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.header("content-type"), Some("application/problem+json"));
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!(
        (1..=12).contains(&retry),
        "one request comes back every 12 s, not {retry}"
    );

    // Creating webhooks has its own bucket: 2 per hour.
    for _ in 0..2 {
        let r = env
            .api("POST", "/v1/webhooks", &key, Some(webhook("http://127.0.0.1:1/")))
            .await;
        assert_eq!(r.status, 201, "{r:?}");
    }
    let r = env
        .api("POST", "/v1/webhooks", &key, Some(webhook("http://127.0.0.1:1/")))
        .await;
    assert_eq!(r.status, 429);
    assert!(r.header("retry-after").unwrap().parse::<u64>().unwrap() > 60);
    // Another key is not affected.
    let (_, other) = env.tenant("other").await;
    assert_eq!(env.api("GET", "/v1/webhooks", &other, None).await.status, 200);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_dump_holds_no_secret_in_plaintext() {
    let env = TestEnv::start().await;
    let (_, key) = env.tenant("acme").await;
    let w = env
        .webhook(
            &key,
            json!({"url": "http://127.0.0.1:1/", "events": ["*"], "header_name": "Authorization",
                   "prefix": "Bearer", "auth_secret": "plaintext-auth-secret-4f9a"}),
        )
        .await;
    let signing = w["secret"].as_str().unwrap().to_owned();
    let out = std::process::Command::new("pg_dump")
        .args(["--data-only", "--dbname", env.database_url()])
        .output()
        .expect("pg_dump runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let dump = String::from_utf8_lossy(&out.stdout);
    assert!(dump.contains(w["id"].as_str().unwrap()), "the dump has the webhook row");
    let signing_key = signing.trim_start_matches("whsec_");
    for (what, secret) in [
        ("auth secret", "plaintext-auth-secret-4f9a"),
        ("signing secret", signing_key),
        ("API key", key.as_str()),
    ] {
        assert!(!dump.contains(secret), "the {what} is in the dump in plaintext");
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conflicts_and_oversized_bodies_have_their_own_status() {
    let env = TestEnv::start().await;
    let t = json!({"value": "invoice.paid", "label": "Invoice paid"});
    assert_eq!(env.admin_post("/v1/admin/event-types", t.clone()).await.status, 201);
    let again = env.admin_post("/v1/admin/event-types", t).await;
    assert_eq!(again.status, 409);
    assert_eq!(again.body["type"], "https://hookwire.dev/problems/event_type_exists");
    let (_, key) = env.tenant("acme").await;
    let huge = format!(
        r#"{{"url": "http://127.0.0.1:1/", "events": ["*"], "description": "{}"}}"#,
        "x".repeat(300_000)
    );
    let r = env
        .http
        .raw(
            "POST",
            &format!("{}/v1/webhooks", env.registry),
            &[("x-api-key", &key)],
            huge.into_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 413);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    env.stop().await;
}

/// `GET /v1/internal/routing` as a publisher or dispatcher reloads it.
async fn routing(env: &TestEnv, held: Option<&str>) -> Response {
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let mut headers = vec![("authorization", auth.as_str())];
    if let Some(tag) = held {
        headers.push(("if-none-match", tag));
    }
    env.http
        .get(&format!("{}/v1/internal/routing", env.registry), &headers)
        .await
        .expect("the registry answers")
}

/// After `change`, a reload naming `held` gets the whole snapshot with a new version, and one
/// naming that version gets `304`; returns the snapshot and its version.
async fn sent_again(env: &TestEnv, held: &str, change: &str) -> (Value, String) {
    let r = routing(env, Some(held)).await;
    assert_eq!(r.status, 200, "{change}: the snapshot is sent again: {r:?}");
    let tag = r.header("etag").expect("a version").to_owned();
    assert_ne!(tag, held, "{change}: a new version");
    assert_eq!(routing(env, Some(&tag)).await.status, 304, "{change}: then unchanged");
    (r.body, tag)
}

fn listed(snapshot: &Value, id: &str) -> Option<Value> {
    snapshot["subscriptions"]
        .as_array()
        .expect("subscriptions")
        .iter()
        .find(|s| s["target"]["webhook_id"] == id)
        .cloned()
}

/// Publishers and dispatchers reload the registry's snapshot every `registry.resync_interval`:
/// a reload that names the version it holds gets `304` and no body while nothing changed, and
/// the whole snapshot with a new version after any change to a webhook or to the catalog.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_routing_snapshot_is_sent_again_only_after_a_change() {
    let env = TestEnv::start().await;
    let (_, key) = env.tenant("acme").await;
    let first = routing(&env, None).await;
    assert_eq!(first.status, 200, "{first:?}");
    let held = first.header("etag").expect("a version").to_owned();
    let again = routing(&env, Some(&held)).await;
    assert_eq!(again.status, 304, "{again:?}");
    assert_eq!(again.body, Value::Null, "nothing is sent again");
    assert_eq!(again.header("etag"), Some(held.as_str()));

    let w = env
        .webhook(&key, json!({"url": "http://127.0.0.1:1/", "events": ["person.*"]}))
        .await;
    let id = w["id"].as_str().unwrap();
    let (snapshot, held) = sent_again(&env, &held, "created").await;
    assert!(listed(&snapshot, id).is_some(), "the new webhook is listed");

    let patched = env.patch_webhook(&key, id, json!({"url": "http://127.0.0.1:2/"})).await;
    assert_eq!(patched.status, 200, "{patched:?}");
    let (snapshot, held) = sent_again(&env, &held, "patched").await;
    let routed = listed(&snapshot, id).unwrap();
    assert_eq!(routed["target"]["url"], "http://127.0.0.1:2/");
    // One version, named alike in the answer to the change, in the API and in the snapshot.
    let read = env.api("GET", &format!("/v1/webhooks/{id}"), &key, None).await;
    assert_eq!(read.body["modified_at"], patched.body["modified_at"]);
    let at = |v: &Value| v.as_str().and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok());
    assert_eq!(at(&routed["modified_at"]), at(&patched.body["modified_at"]));

    let deleted = env.api("DELETE", &format!("/v1/webhooks/{id}"), &key, None).await;
    assert_eq!(deleted.status, 204, "{deleted:?}");
    let (snapshot, held) = sent_again(&env, &held, "deleted").await;
    assert!(listed(&snapshot, id).is_none(), "the deleted webhook is not listed");

    let added = env
        .admin_post(
            "/v1/admin/event-types",
            json!({"value": "invoice.paid", "label": "Invoice paid"}),
        )
        .await;
    assert_eq!(added.status, 201, "{added:?}");
    let (snapshot, _) = sent_again(&env, &held, "catalog").await;
    assert!(snapshot["event_types"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["value"] == "invoice.paid"));
    env.stop().await;
}

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
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let r = env.api("POST", "/v1/webhooks", &key, Some(body)).await;
    let _ = revoking.wait_with_output();
    assert_eq!(r.status, 401, "{r:?}");
    let count = env
        .psql(&format!("SELECT count(*) FROM webhooks WHERE tenant_id = '{tenant}'"))
        .unwrap();
    assert_eq!(count, "1", "only the webhook created before the revocation");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_admin_lists_changes_and_revokes_api_keys() {
    let env = TestEnv::start().await;
    let (tenant, key) = env.tenant_with_key("acme", json!({"max_webhooks": 1})).await;
    let (other_tenant, _) = env.tenant("other").await;
    let second = env.admin_post("/v1/admin/api-keys", json!({"tenant_id": tenant})).await;
    assert_eq!(second.status, 201);
    assert_eq!(second.body["revoked_at"], Value::Null);
    let second = second.body["key"].as_str().unwrap().to_owned();

    // Both tenants are listed; a tenant's keys are listed without the key or its hash.
    let tenants = env.admin("GET", "/v1/admin/tenants", None).await;
    assert_eq!(tenants.status, 200);
    let ids: Vec<&str> = tenants.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&tenant.as_str()) && ids.contains(&other_tenant.as_str()),
        "{ids:?}"
    );
    let list = env
        .admin("GET", &format!("/v1/admin/api-keys?tenant_id={tenant}"), None)
        .await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["count"], 2, "{:?}", list.body);
    let first = list.body["results"][0].clone();
    assert!(key.starts_with(first["key_prefix"].as_str().unwrap()));
    assert!(first.get("key").is_none() && first.get("key_hash").is_none(), "{first}");
    assert!(!list.body.to_string().contains(&key), "a listing shows a key");
    let id = first["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/admin/api-keys/{id}");
    assert_eq!(first["max_webhooks"], 1);
    assert_eq!(first["webhook_count"], 0);
    assert_eq!(first["last_used_at"], Value::Null, "not used yet");

    // A key at its limit; the admin raises the limit and the key's next create passes.
    env.webhook(&key, webhook("http://127.0.0.1:1/")).await;

    // Its use is noted, to the minute: a use within a minute of the last one noted writes nothing.
    let last_used = |r: &hookwire_test_support::Response| {
        r.body["last_used_at"]
            .as_str()
            .map(|t| t.parse::<chrono::DateTime<chrono::Utc>>().unwrap())
    };
    let used = last_used(&env.admin("GET", &path, None).await).expect("the key's use is noted");
    assert!((chrono::Utc::now() - used).num_seconds().abs() < 30, "{used}");
    let noted_at = |ago: &str| {
        env.psql(&format!(
            "UPDATE api_keys SET last_used_at = now() - interval '{ago}' WHERE id = '{id}' RETURNING last_used_at"
        ))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_owned()
    };
    let before = noted_at("30 seconds");
    env.api("GET", "/v1/webhooks", &key, None).await;
    let unchanged = last_used(&env.admin("GET", &path, None).await).unwrap();
    assert_eq!(
        env.psql(&format!("SELECT last_used_at FROM api_keys WHERE id = '{id}'"))
            .unwrap(),
        before,
        "written again within the minute ({unchanged})"
    );
    noted_at("2 minutes");
    env.api("GET", "/v1/webhooks", &key, None).await;
    let again = last_used(&env.admin("GET", &path, None).await).unwrap();
    assert!((chrono::Utc::now() - again).num_seconds().abs() < 30, "{again}");
    let r = env
        .api("POST", "/v1/webhooks", &key, Some(webhook("http://127.0.0.1:1/")))
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(env.admin("GET", &path, None).await.body["webhook_count"], 1);
    let r = env.admin("PATCH", &path, Some(json!({"max_webhooks": 2}))).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["max_webhooks"], 2);
    assert_eq!(r.body["webhook_count"], 1);
    env.webhook(&key, webhook("http://127.0.0.1:1/")).await;

    // Scopes and the webhooks flag take effect on the key's next request.
    let r = env
        .admin("PATCH", &path, Some(json!({"scopes": ["webhooks:read"]})))
        .await;
    assert_eq!(r.body["scopes"], json!(["webhooks:read"]));
    let r = env
        .api("POST", "/v1/webhooks", &key, Some(webhook("http://127.0.0.1:1/")))
        .await;
    assert_eq!(r.status, 403);
    assert!(r.body["detail"].as_str().unwrap().contains("webhooks:write"), "{r:?}");
    assert_eq!(env.api("GET", "/v1/webhooks", &key, None).await.status, 200);
    let r = env
        .admin("PATCH", &path, Some(json!({"webhooks_enabled": false})))
        .await;
    assert_eq!(r.body["webhooks_enabled"], false);
    env.admin(
        "PATCH",
        &path,
        Some(json!({"scopes": ["webhooks:read", "webhooks:write"]})),
    )
    .await;
    let r = env
        .api("POST", "/v1/webhooks", &key, Some(webhook("http://127.0.0.1:1/")))
        .await;
    assert_eq!(r.status, 403);
    assert!(r.body["detail"].as_str().unwrap().contains("not enabled"), "{r:?}");

    // Bad changes: every bad field named, problem+json; unknown and malformed ids are 404.
    let r = env
        .admin(
            "PATCH",
            &path,
            Some(json!({"max_webhooks": null, "scopes": ["webhooks:admin"], "webhooks_enabled": "yes", "colour": 1})),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let mut fields = r.error_fields();
    fields.sort();
    assert_eq!(
        fields,
        ["colour", "max_webhooks", "scopes[0]", "webhooks_enabled"],
        "{r:?}"
    );
    assert_eq!(env.admin("PATCH", &path, Some(json!({}))).await.status, 400);
    let unknown = "/v1/admin/api-keys/00000000-0000-7000-8000-000000000000";
    assert_eq!(env.admin("GET", unknown, None).await.status, 404);
    assert_eq!(env.admin("DELETE", unknown, None).await.status, 404);
    assert_eq!(
        env.admin("PATCH", "/v1/admin/api-keys/nope", Some(json!({"max_webhooks": 3})))
            .await
            .status,
        404
    );
    // The admin API is the admin's: a tenant's key is refused.
    let r = env
        .http
        .get(
            &format!("{}/v1/admin/api-keys", env.registry),
            &[("x-api-key", &second)],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 401);

    // Revoked: refused at once; gone from the default listing, kept with its time; revoking
    // again changes nothing; a revoked key cannot be changed. Its webhooks stay, active.
    let r = env.admin("DELETE", &path, None).await;
    assert_eq!(r.status, 204);
    let r = env.api("GET", "/v1/webhooks", &key, None).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    let live = env
        .admin("GET", &format!("/v1/admin/api-keys?tenant_id={tenant}"), None)
        .await;
    assert_eq!(live.body["count"], 1);
    assert_ne!(live.body["results"][0]["id"], json!(id));
    let revoked_at = env.admin("GET", &path, None).await.body["revoked_at"].clone();
    assert!(revoked_at.is_string(), "{revoked_at}");
    let all = env
        .admin(
            "GET",
            &format!("/v1/admin/api-keys?tenant_id={tenant}&include_revoked=true"),
            None,
        )
        .await;
    assert_eq!(all.body["count"], 2);
    assert_eq!(env.admin("DELETE", &path, None).await.status, 204);
    assert_eq!(env.admin("GET", &path, None).await.body["revoked_at"], revoked_at);
    let r = env.admin("PATCH", &path, Some(json!({"max_webhooks": 5}))).await;
    assert_eq!(r.status, 409);
    assert_eq!(r.body["type"], "https://hookwire.dev/problems/api_key_revoked", "{r:?}");
    let theirs = env.api("GET", "/v1/webhooks?is_active=true", &second, None).await;
    assert_eq!(theirs.body["count"], 2, "{:?}", theirs.body);
    let r = env.admin("GET", "/v1/admin/api-keys?include_revoked=maybe", None).await;
    assert_eq!(r.status, 400);

    // The same from a shell: list, change, revoke.
    let (code, out) = env.registry_admin(&["list-api-keys", "--tenant-id", &tenant]);
    assert_eq!(code, 0, "{out}");
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    let second_id = listed[0]["id"].as_str().unwrap().to_owned();
    let (code, out) = env.registry_admin(&["update-api-key", &second_id, "--max-webhooks", "7"]);
    assert_eq!(code, 0, "{out}");
    let second_path = format!("/v1/admin/api-keys/{second_id}");
    assert_eq!(env.admin("GET", &second_path, None).await.body["max_webhooks"], 7);
    let (code, out) = env.registry_admin(&["revoke-api-key", &second_id]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(env.api("GET", "/v1/webhooks", &second, None).await.status, 401);
    let (code, _) = env.registry_admin(&["update-api-key", &second_id, "--max-webhooks", "100001"]);
    assert_ne!(code, 0);
    env.stop().await;
}

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

/// Support staff see a tenant's webhooks and log as the tenant does, with the admin token and
/// `Hookwire-Tenant-Id`, and nothing of another tenant's.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_admin_acts_for_one_tenant_on_the_customer_api() {
    let env = TestEnv::start().await;
    let (tenant, key) = env.tenant("acme").await;
    let (other_tenant, other_key) = env.tenant("other").await;
    let ours = env.webhook(&key, webhook("http://127.0.0.1:1/")).await;
    let theirs = env.webhook(&other_key, webhook("http://127.0.0.1:2/")).await;
    let admin = format!("Bearer {ADMIN_TOKEN}");
    let as_admin = |method: &'static str, path: String, tenant: String, token: String, body: Option<Value>| {
        let env = &env;
        async move {
            env.http
                .request(
                    method,
                    &format!("{}{path}", env.registry),
                    &[("authorization", &token), ("hookwire-tenant-id", &tenant)],
                    body.as_ref(),
                )
                .await
                .unwrap()
        }
    };
    let (ours_id, theirs_id) = (ours["id"].as_str().unwrap(), theirs["id"].as_str().unwrap());

    let list = as_admin("GET", "/v1/webhooks".into(), tenant.clone(), admin.clone(), None).await;
    assert_eq!(list.status, 200, "{list:?}");
    assert_eq!(list.body, env.api("GET", "/v1/webhooks", &key, None).await.body);
    assert_eq!(list.body["results"][0]["id"], ours["id"]);
    let other = format!("/v1/webhooks/{theirs_id}");
    let r = as_admin("GET", other.clone(), tenant.clone(), admin.clone(), None).await;
    assert_eq!(r.status, 404, "another tenant's webhook");
    let r = as_admin("GET", other, other_tenant.clone(), admin.clone(), None).await;
    assert_eq!(r.status, 200);
    let r = as_admin(
        "PATCH",
        format!("/v1/webhooks/{ours_id}"),
        tenant.clone(),
        admin.clone(),
        Some(json!({"name": "fixed by support"})),
    )
    .await;
    assert_eq!((r.status, &r.body["name"]), (200, &json!("fixed by support")), "{r:?}");
    let log = as_admin("GET", "/v1/deliveries".into(), tenant.clone(), admin.clone(), None).await;
    assert_eq!(log.status, 200, "{log:?}");
    // A webhook counts against one of the tenant's keys: the admin does not create one.
    let r = as_admin(
        "POST",
        "/v1/webhooks".into(),
        tenant.clone(),
        admin.clone(),
        Some(webhook("http://127.0.0.1:3/")),
    )
    .await;
    assert_eq!(
        (r.status, r.body["type"].as_str().unwrap().rsplit('/').next()),
        (403, Some("admin_cannot_create"))
    );

    // Only the admin token, and only for a tenant that exists.
    let r = as_admin(
        "GET",
        "/v1/webhooks".into(),
        tenant.clone(),
        format!("Bearer {key}"),
        None,
    )
    .await;
    assert_eq!(r.status, 401);
    let r = as_admin("GET", "/v1/webhooks".into(), "acme".into(), admin.clone(), None).await;
    assert_eq!(r.status, 400);
    let nobody = uuid::Uuid::new_v4().to_string();
    let r = as_admin("GET", "/v1/webhooks".into(), nobody, admin.clone(), None).await;
    assert_eq!(r.status, 404);
    let r = env
        .http
        .get(&format!("{}/v1/webhooks", env.registry), &[("authorization", &admin)])
        .await
        .unwrap();
    assert_eq!(r.status, 401, "the admin token alone is no API key");

    // An idempotency key of the admin's belongs to the tenant it acted for.
    let send = |tenant: String| {
        let (env, admin) = (&env, admin.clone());
        async move {
            env.http
                .post(
                    &format!("{}/v1/webhooks/{ours_id}/rotate-secret", env.registry),
                    &[
                        ("authorization", &admin),
                        ("hookwire-tenant-id", &tenant),
                        ("idempotency-key", "k"),
                    ],
                    None,
                )
                .await
                .unwrap()
        }
    };
    assert_eq!(send(tenant.clone()).await.status, 200);
    let r = send(other_tenant).await;
    assert_eq!((r.status, r.header("idempotent-replayed")), (404, None), "{r:?}");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_method_a_resource_does_not_answer_is_405_with_allow() {
    let env = TestEnv::start().await;
    let (_, key) = env.tenant("acme").await;
    let id = env.webhook(&key, webhook("http://127.0.0.1:9/hook")).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (method, path, allow) in [
        ("TRACE", "/v1/admin/event-types".to_owned(), "GET, POST"),
        ("DELETE", "/v1/deliveries".to_owned(), "GET"),
        ("PUT", format!("/v1/webhooks/{id}"), "DELETE, GET, PATCH"),
        ("GET", format!("/v1/webhooks/{id}/rotate-secret"), "POST"),
    ] {
        let r = env.api(method, &path, &key, None).await;
        assert_eq!(r.status, 405, "{method} {path}: {r:?}");
        assert_eq!(r.header("content-type"), Some("application/problem+json"), "{r:?}");
        assert_eq!(
            r.body["type"], "https://hookwire.dev/problems/method_not_allowed",
            "{r:?}"
        );
        let mut allowed: Vec<&str> = r.header("allow").unwrap_or_default().split(", ").collect();
        allowed.sort_unstable();
        assert_eq!(allowed.join(", "), allow, "{method} {path}");
    }
    // A path that does not exist is still 404.
    assert_eq!(env.api("GET", "/v1/nothing-here", &key, None).await.status, 404);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_openapi_document_is_served_as_committed() {
    let env = TestEnv::start().await;
    let r = env
        .http
        .get(&format!("{}/v1/openapi.json", env.registry), &[])
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    let committed: Value = serde_json::from_str(include_str!("../../../../docs/openapi.json")).unwrap();
    assert_eq!(r.body, committed);
    env.stop().await;
}
