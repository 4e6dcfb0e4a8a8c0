//! The console in a real headless Chromium: a customer's portal opened from a link, and the
//! operator's dashboard. Screenshots of the main pages land in `target/console-screenshots/`.

use std::time::Duration;

use fantoccini::Locator;
use hookwire_test_support::browser::Browser;
use hookwire_test_support::{eventually, Receiver, TestEnv, ADMIN_TOKEN};
use serde_json::{json, Value};

/// What a hostile receiver answers: markup that would run script if shown as HTML.
const HOSTILE: &str =
    "<script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\"><b>bold</b>";

/// A portal link for the key's tenant.
async fn portal_link(env: &TestEnv, key: &str, body: Value) -> String {
    let r = env.api("POST", "/v1/portal-sessions", key, Some(body)).await;
    assert_eq!(r.status, 201, "{r:?}");
    r.body["url"].as_str().expect("url").to_owned()
}

/// Runs `script` (a function body that returns a promise) in the page; its resolved value.
async fn in_page(browser: &Browser, script: &str) -> Value {
    let wrapped = format!("const done = arguments[arguments.length - 1]; (async () => {{ {script} }})().then(done, (e) => done(String(e)));");
    browser
        .client
        .execute_async(&wrapped, vec![])
        .await
        .expect("script runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_customer_creates_a_webhook_tests_it_and_retries_a_delivery_in_the_portal() {
    let env = TestEnv::start().await;
    let (tenant, key) = env.tenant("Acme").await;
    let mut receiver = Receiver::start(200).await;
    receiver.answer_body(HOSTILE);
    let url = portal_link(&env, &key, json!({})).await;
    let browser = Browser::start(1280, 1000).await;

    // The link opens the portal with no other credential, and its token leaves the address bar.
    browser.goto(&url).await;
    browser.wait_text("No webhooks yet").await;
    let address = browser.url().await;
    assert!(
        !address.contains("hwp_") && address.ends_with("/console/#/webhooks"),
        "{address}"
    );
    let cookies = in_page(&browser, "return document.cookie;").await;
    assert!(
        !cookies.as_str().unwrap_or_default().contains("hookwire_portal"),
        "the session cookie is HttpOnly: {cookies}"
    );

    // Create a webhook with the event-type picker.
    browser.click_text("New webhook").await;
    browser.type_into("#webhook-url", &receiver.url()).await;
    browser.type_into("#webhook-name", "Orders <b>service</b>").await;
    browser.click("input[value='person.created']").await;
    browser.click("#webhook-ordering option[value='subject']").await;
    browser.click_text("Create webhook").await;
    browser.wait_text("In order per subject").await;
    let hooks = env.api("GET", "/v1/webhooks", &key, None).await;
    assert_eq!(hooks.body["count"], 1, "{hooks:?}");
    assert_eq!(hooks.body["results"][0]["ordering"], "subject", "{hooks:?}");
    let id = hooks.body["results"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(hooks.body["results"][0]["events"], json!(["person.created"]));
    assert_eq!(hooks.body["results"][0]["name"], "Orders <b>service</b>");
    let secret = env.api("GET", &format!("/v1/webhooks/{id}"), &key, None).await.body["secret"].clone();
    // Revealed once at creation; hidden again and revealed on request.
    assert_eq!(
        browser.find("#secret").await.text().await.unwrap(),
        secret.as_str().unwrap()
    );
    browser.click_text("Hide").await;
    assert!(browser.find("#secret").await.text().await.unwrap().contains('•'));
    browser.click_text("Reveal").await;
    assert_eq!(
        browser.find("#secret").await.text().await.unwrap(),
        secret.as_str().unwrap()
    );
    // The name is text, not markup.
    assert!(browser
        .find("h1")
        .await
        .text()
        .await
        .unwrap()
        .contains("Orders <b>service</b>"));
    browser.screenshot("portal-webhook").await;

    // Send a test event and watch it arrive as a success.
    browser.click("#send-test").await;
    browser.click_text("see its delivery").await;
    let first = receiver
        .next(Duration::from_secs(20))
        .await
        .expect("the test event arrives");
    assert!(first.header("webhook-signature").is_some());
    browser.wait_text("Attempts (1)").await;
    let text = browser.wait_text("success").await;
    assert!(text.contains("person.created"), "{text}");

    // What the receiver sent back is shown as text: no element made from it, no script run.
    let shown = browser.find("#response-body").await.text().await.unwrap();
    assert_eq!(shown, HOSTILE);
    let made = in_page(
        &browser,
        "return [document.querySelectorAll('main script, main img, main b').length, document.title];",
    )
    .await;
    assert_eq!(made[0], 0, "{made}");
    assert_ne!(made[1], "pwned");
    browser.screenshot("portal-delivery").await;

    // Retry it: a second attempt reaches the receiver and the page shows it.
    browser.click("#retry").await;
    browser.wait_toast("Retry queued").await;
    receiver.next(Duration::from_secs(20)).await.expect("the retry arrives");
    browser.wait_text("Attempts (2)").await;
    browser.wait_text("success").await;

    // The delivery log lists it with the events published since, live; the health page draws
    // its charts; the catalog shows the types.
    browser.click_text("Deliveries").await;
    browser.wait_text("1 delivery").await;
    for n in 0..5 {
        let r = env
            .publish(json!({"type": "person.created", "tenant_id": tenant, "data": {"n": n}}))
            .await;
        assert_eq!(r.status, 202, "{r:?}");
    }
    browser.wait_text("6 deliveries").await;
    browser.find("#results tbody tr").await;
    browser.screenshot("portal-deliveries").await;
    browser.goto(&format!("{}/console/#/webhooks/{id}", env.registry)).await;
    let chart = browser
        .find("#health svg.chart polyline, #health svg.chart circle")
        .await;
    browser
        .client
        .execute(
            "arguments[0].scrollIntoView({block: 'center'});",
            vec![serde_json::to_value(&chart).unwrap()],
        )
        .await
        .unwrap();
    browser.screenshot("portal-webhook-health").await;
    browser.click_text("Event catalog").await;
    browser.wait_text("person.created").await;
    browser.screenshot("portal-catalog").await;
    // The audit log shows the webhook's creation by this session's key, field by field, as text.
    browser.click_text("Audit log").await;
    let log = browser.wait_text("webhook.created").await;
    assert!(
        log.contains("Orders <b>service</b>") && !log.contains("whsec_"),
        "{log}"
    );

    // Readable on a phone: the log's rows stack.
    browser.client.set_window_size(390, 844).await.unwrap();
    browser.click_text("Deliveries").await;
    browser.wait_text("6 deliveries").await;
    browser.screenshot("portal-deliveries-phone").await;

    browser.stop().await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn read_only_expired_revoked_and_cross_site_sessions_change_nothing() {
    let env = TestEnv::start().await;
    let (tenant, key) = env.tenant("Acme").await;
    let (_, other_key) = env.tenant("Globex").await;
    let theirs = env
        .webhook(&other_key, json!({"url": "https://example.com/hook", "events": ["*"]}))
        .await;
    let ours = env
        .webhook(&key, json!({"url": "https://example.com/ours", "events": ["*"]}))
        .await;
    let browser = Browser::start(1280, 900).await;

    // A read-only session shows no buttons that change anything, and the API refuses a change
    // even when the page is bypassed.
    let r = env
        .admin_post(
            "/v1/admin/portal-sessions",
            json!({"tenant_id": tenant, "read_only": true}),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let read_only_link = r.body["url"].as_str().unwrap().to_owned();
    browser.goto(&read_only_link).await;
    browser.wait_text("example.com/ours").await;
    assert!(browser.client.find(Locator::LinkText("New webhook")).await.is_err());
    browser
        .goto(&format!(
            "{}/console/#/webhooks/{}",
            env.registry,
            ours["id"].as_str().unwrap()
        ))
        .await;
    browser.wait_text("Signing secret").await;
    assert!(!browser.main_text().await.contains("Delete"));
    let refused = in_page(
        &browser,
        &format!(
            "const s = await (await fetch('/v1/portal-sessions/current')).json();
             const r = await fetch('/v1/webhooks/{}', {{method: 'DELETE', headers: {{'x-csrf-token': s.csrf_token}}}});
             return [r.status, (await r.json()).type.split('/').pop()];",
            ours["id"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(refused, json!([403, "read_only_session"]));

    // A writable session refuses a change without its CSRF token (what a forged request lacks),
    // and never shows another tenant's webhook.
    let link = portal_link(&env, &key, json!({"expires_in_seconds": 600})).await;
    browser.goto(&link).await;
    browser.wait_text("example.com/ours").await;
    let forged = in_page(
        &browser,
        &format!(
            "const r = await fetch('/v1/webhooks/{}', {{method: 'DELETE'}});
             const other = await fetch('/v1/webhooks/{}');
             return [r.status, (await r.json()).type.split('/').pop(), other.status];",
            ours["id"].as_str().unwrap(),
            theirs["id"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(forged, json!([403, "csrf_token_invalid", 404]));
    assert_eq!(env.api("GET", "/v1/webhooks", &key, None).await.body["count"], 1);

    // A link opens once.
    let second = Browser::start(800, 600).await;
    second.goto(&link).await;
    second.wait_text("already opened").await;
    second.stop().await;

    // An expired session ends: the next page load says so.
    let session_id = env
        .psql(&format!(
            "SELECT id FROM portal_sessions WHERE tenant_id = '{tenant}' AND NOT read_only AND opened_at IS NOT NULL"
        ))
        .expect("the session's row");
    env.psql(&format!(
        "UPDATE portal_sessions SET expires_at = now() - interval '1 second' WHERE id = '{session_id}'"
    ));
    browser.goto(&format!("{}/console/#/deliveries", env.registry)).await;
    browser.wait_text("Your session has ended").await;
    browser.screenshot("portal-session-ended").await;

    // A revoked session ends at its next request.
    let link = portal_link(&env, &key, json!({})).await;
    browser.goto(&link).await;
    browser.wait_text("example.com/ours").await;
    let id = env
        .psql(&format!(
            "SELECT id FROM portal_sessions WHERE tenant_id = '{tenant}' AND opened_at IS NOT NULL AND revoked_at IS NULL AND expires_at > now() AND NOT read_only"
        ))
        .expect("the open session");
    let r = env
        .admin("DELETE", &format!("/v1/admin/portal-sessions/{id}"), None)
        .await;
    assert_eq!(r.status, 204, "{r:?}");
    browser.click_text("Deliveries").await;
    browser.wait_text("Your session has ended").await;

    browser.stop().await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_operator_creates_a_tenant_and_an_event_type_in_the_dashboard() {
    let env = TestEnv::start().await;
    let browser = Browser::start(1280, 1000).await;
    browser.goto(&format!("{}/console/#/admin", env.registry)).await;
    browser.type_into("#admin-token", "not-the-token").await;
    browser.click_text("Sign in").await;
    browser.wait_toast("not valid").await;
    browser.type_into("#admin-token", ADMIN_TOKEN).await;
    browser.click_text("Sign in").await;
    browser.wait_text("Queue depths").await;
    browser.wait_text(&format!("{}.deliveries", env.prefix)).await;
    browser.wait_text(&format!("{}.ingest", env.prefix)).await;
    browser.screenshot("operator-overview").await;

    browser.click_text("Tenants").await;
    browser.type_into("#tenant-name", "Initech").await;
    browser.click_text("Create tenant").await;
    browser.wait_text("API keys").await;
    browser.click_text("Create API key").await;
    let key = browser.find("#new-key").await.text().await.unwrap();
    assert!(key.starts_with("hwk_"), "{key}");
    browser.wait_text("0 of").await;
    browser.screenshot("operator-tenant").await;
    let tenants = env.admin("GET", "/v1/admin/tenants", None).await;
    assert!(
        tenants.body["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "Initech"),
        "{tenants:?}"
    );
    // The key it showed works.
    assert_eq!(env.api("GET", "/v1/webhooks", &key, None).await.status, 200);

    browser.click_text("Event types").await;
    browser.type_into("#type-value", "invoice.paid").await;
    browser.type_into("#type-label", "Invoice paid").await;
    browser
        .type_into("#type-description", "An invoice was paid in full.")
        .await;
    browser
        .type_into("#type-schema", r#"{"type": "object", "required": ["id"]}"#)
        .await;
    browser.click_text("Add type").await;
    browser.wait_toast("invoice.paid added").await;
    browser.wait_text("An invoice was paid in full.").await;
    browser.screenshot("operator-event-types").await;
    browser.click_text("Audit log").await;
    browser.wait_text("event_type.created").await;
    browser.wait_text("tenant.created").await;
    browser.screenshot("operator-audit-log").await;
    let t = eventually(Duration::from_secs(5), || async {
        let r = env.admin("GET", "/v1/admin/event-types?limit=100", None).await;
        r.body["results"]
            .as_array()?
            .iter()
            .find(|t| t["value"] == "invoice.paid")
            .cloned()
    })
    .await
    .expect("the type is in the catalog");
    assert_eq!(t["schema"]["required"], json!(["id"]));

    browser.stop().await;
    env.stop().await;
}
