//! Who may do what: keys, scopes, limits, rate limits, tenants kept apart, and no secret in plaintext.

use super::*;

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
