//! Portal sessions over HTTP: how a link opens once, what its cookie may do, when it ends; and
//! the headers the console is served with. The browser's view is in `console.rs`.

use hookwire_test_support::{Response, TestEnv};
use serde_json::{json, Value};

/// The session's cookie (`name=value`) and CSRF token, from opening `url`'s token.
async fn open(env: &TestEnv, url: &str) -> (Response, Option<(String, String)>) {
    let token = url.split("#session=").nth(1).expect("a token after #session=");
    let r = env
        .http
        .post(
            &format!("{}/v1/portal-sessions/open", env.registry),
            &[],
            Some(&json!({ "token": token })),
        )
        .await
        .unwrap();
    let cookie = r.header("set-cookie").map(|c| c.split(';').next().unwrap().to_owned());
    let csrf = r.body["csrf_token"].as_str().map(str::to_owned);
    let held = cookie.zip(csrf);
    (r, held)
}

/// A request with the session's cookie, and its CSRF token when `csrf` is given.
async fn with_cookie(
    env: &TestEnv,
    method: &str,
    path: &str,
    cookie: &str,
    csrf: Option<&str>,
    body: Option<Value>,
) -> Response {
    let mut headers = vec![("cookie", cookie)];
    if let Some(csrf) = csrf {
        headers.push(("x-csrf-token", csrf));
    }
    env.http
        .request(method, &format!("{}{path}", env.registry), &headers, body.as_ref())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_portal_link_opens_once_and_its_session_acts_with_the_key() {
    let env = TestEnv::start().await;
    let (tenant, key) = env.tenant("Acme").await;
    for lifetime in [59, 86_401] {
        let r = env
            .api(
                "POST",
                "/v1/portal-sessions",
                &key,
                Some(json!({"expires_in_seconds": lifetime})),
            )
            .await;
        assert_eq!(r.status, 400, "{r:?}");
    }
    let r = env.api("POST", "/v1/portal-sessions", &key, None).await;
    assert_eq!(r.status, 201, "{r:?}");
    let url = r.body["url"].as_str().unwrap().to_owned();
    assert!(
        url.starts_with(&format!("{}/console/#session=hwp_", env.registry)),
        "{url}"
    );
    let expires: chrono::DateTime<chrono::Utc> = r.body["expires_at"].as_str().unwrap().parse().unwrap();
    let lifetime = (expires - chrono::Utc::now()).num_seconds();
    assert!(
        (3590..=3600).contains(&lifetime),
        "one hour by default, not {lifetime} s"
    );

    let (opened, held) = open(&env, &url).await;
    assert_eq!(opened.status, 200, "{opened:?}");
    let set_cookie = opened.header("set-cookie").unwrap().to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert_eq!(opened.body["tenant_id"], json!(tenant));
    assert_eq!(opened.body["read_only"], false);
    let (cookie, csrf) = held.unwrap();
    // Once only.
    let (again, _) = open(&env, &url).await;
    assert_eq!(again.status, 401, "{again:?}");

    // Reads need the cookie alone; changes need its CSRF token too.
    let hooks = with_cookie(&env, "GET", "/v1/webhooks", &cookie, None, None).await;
    assert_eq!(hooks.status, 200, "{hooks:?}");
    let fields = json!({"url": "https://example.com/hook", "events": ["person.created"]});
    let forged = with_cookie(&env, "POST", "/v1/webhooks", &cookie, None, Some(fields.clone())).await;
    assert_eq!(forged.status, 403, "{forged:?}");
    let wrong = with_cookie(
        &env,
        "POST",
        "/v1/webhooks",
        &cookie,
        Some("guess"),
        Some(fields.clone()),
    )
    .await;
    assert_eq!(wrong.status, 403, "{wrong:?}");
    let made = with_cookie(&env, "POST", "/v1/webhooks", &cookie, Some(&csrf), Some(fields)).await;
    assert_eq!(made.status, 201, "{made:?}");
    // The webhook counts against the key the session acts with.
    let keys = env
        .admin("GET", &format!("/v1/admin/api-keys?tenant_id={tenant}"), None)
        .await;
    assert_eq!(keys.body["results"][0]["webhook_count"], 1, "{keys:?}");

    // A session cannot open another.
    let nested = with_cookie(&env, "POST", "/v1/portal-sessions", &cookie, Some(&csrf), None).await;
    assert_eq!(nested.status, 403, "{nested:?}");
    // Called with a key, `current` names no session.
    assert_eq!(
        env.api("GET", "/v1/portal-sessions/current", &key, None).await.status,
        404
    );

    // Revoking the key ends the session.
    let key_id = keys.body["results"][0]["id"].as_str().unwrap();
    assert_eq!(
        env.admin("DELETE", &format!("/v1/admin/api-keys/{key_id}"), None)
            .await
            .status,
        204
    );
    let after = with_cookie(&env, "GET", "/v1/webhooks", &cookie, None, None).await;
    assert_eq!(after.status, 401, "{after:?}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_opens_a_session_for_a_tenant_acting_with_one_of_its_keys() {
    let env = TestEnv::start().await;
    let (tenant, _) = env.tenant("Acme").await;
    let (other, _) = env.tenant("Globex").await;
    let other_key = env
        .admin("GET", &format!("/v1/admin/api-keys?tenant_id={other}"), None)
        .await
        .body["results"][0]["id"]
        .clone();
    let own_key = env
        .admin("GET", &format!("/v1/admin/api-keys?tenant_id={tenant}"), None)
        .await
        .body["results"][0]["id"]
        .clone();

    let missing = env
        .admin_post("/v1/admin/portal-sessions", json!({"tenant_id": uuid::Uuid::new_v4()}))
        .await;
    assert_eq!(missing.status, 404, "{missing:?}");
    let foreign = env
        .admin_post(
            "/v1/admin/portal-sessions",
            json!({"tenant_id": tenant, "api_key_id": other_key}),
        )
        .await;
    assert_eq!(foreign.status, 400, "{foreign:?}");
    let made = env
        .admin_post(
            "/v1/admin/portal-sessions",
            json!({"tenant_id": tenant, "expires_in_seconds": 600}),
        )
        .await;
    assert_eq!(made.status, 201, "{made:?}");
    assert_eq!(made.body["api_key_id"], own_key, "the tenant's key with webhooks:write");

    // A key that only reads opens read-only sessions, whatever was asked.
    let (_, reader) = env
        .tenant_with_key("Reader", json!({"scopes": ["webhooks:read"]}))
        .await;
    let r = env
        .api(
            "POST",
            "/v1/portal-sessions",
            &reader,
            Some(json!({"read_only": false})),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["read_only"], true);
    let (_, held) = open(&env, r.body["url"].as_str().unwrap()).await;
    let (cookie, csrf) = held.unwrap();
    let refused = with_cookie(
        &env,
        "POST",
        "/v1/webhooks",
        &cookie,
        Some(&csrf),
        Some(json!({"url": "https://example.com/hook", "events": ["*"]})),
    )
    .await;
    assert_eq!(refused.status, 403, "{refused:?}");
    assert!(
        refused.body["type"].as_str().unwrap().ends_with("read_only_session"),
        "{refused:?}"
    );
    // Signing out works read-only, and ends the session.
    let out = with_cookie(
        &env,
        "DELETE",
        "/v1/portal-sessions/current",
        &cookie,
        Some(&csrf),
        None,
    )
    .await;
    assert_eq!(out.status, 204, "{out:?}");
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    let after = with_cookie(&env, "GET", "/v1/portal-sessions/current", &cookie, None, None).await;
    assert_eq!(after.status, 401, "{after:?}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_served_with_a_strict_content_security_policy() {
    let env = TestEnv::start().await;
    let page = env.http.get(&format!("{}/console/", env.registry), &[]).await.unwrap();
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    let csp = page.header("content-security-policy").unwrap();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    let script = env
        .http
        .get(&format!("{}/console/js/main.js", env.registry), &[])
        .await
        .unwrap();
    assert_eq!(script.header("content-type"), Some("text/javascript; charset=utf-8"));
    let etag = script.header("etag").unwrap().to_owned();
    let again = env
        .http
        .get(
            &format!("{}/console/js/main.js", env.registry),
            &[("if-none-match", &etag)],
        )
        .await
        .unwrap();
    assert_eq!(again.status, 304);
    let missing = env
        .http
        .get(&format!("{}/console/js/nope.js", env.registry), &[])
        .await
        .unwrap();
    assert_eq!(missing.status, 404);
    let bare = env.http.get(&format!("{}/console", env.registry), &[]).await.unwrap();
    assert_eq!((bare.status, bare.header("location")), (308, Some("/console/")));
    env.stop().await;

    // Embedding allowed for one origin: the policy names it and the cookie crosses sites.
    let env =
        TestEnv::start_with(|o| o.registry.console.frame_ancestors = vec!["https://app.example.com".into()]).await;
    let page = env.http.get(&format!("{}/console/", env.registry), &[]).await.unwrap();
    assert!(page
        .header("content-security-policy")
        .unwrap()
        .contains("frame-ancestors https://app.example.com"));
    assert_eq!(page.header("x-frame-options"), None);
    let (_, key) = env.tenant("Acme").await;
    let r = env.api("POST", "/v1/portal-sessions", &key, None).await;
    let (opened, _) = open(&env, r.body["url"].as_str().unwrap()).await;
    let set_cookie = opened.header("set-cookie").unwrap();
    for attribute in ["SameSite=None", "Secure", "Partitioned", "HttpOnly"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    env.stop().await;
}
