//! The audit log: every change with who made it, what it changed and the request it came with;
//! secrets never in it; a tenant sees its own changes only.

use hookwire_test_support::TestEnv;
use serde_json::{json, Value};

fn entries(page: &Value) -> Vec<Value> {
    page["results"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_change_is_recorded_with_its_actor_and_request_and_no_secret() {
    let env = TestEnv::start().await;
    let (tenant, key) = env.tenant("Acme").await;
    let (_, other_key) = env.tenant("Globex").await;
    let keys = env
        .admin("GET", &format!("/v1/admin/api-keys?tenant_id={tenant}"), None)
        .await;
    let key_id = keys.body["results"][0]["id"].as_str().unwrap().to_owned();

    let w = env
        .webhook(
            &key,
            json!({"url": "https://example.com/a", "events": ["person.created"], "headers": {"x-token": "header-secret"}}),
        )
        .await;
    let id = w["id"].as_str().unwrap().to_owned();
    let patched = env
        .patch_webhook(&key, &id, json!({"url": "https://example.com/b", "name": "CRM"}))
        .await;
    assert_eq!(patched.status, 200, "{patched:?}");
    let request_id = patched.header("x-request-id").unwrap().to_owned();
    let rotated = env
        .api("POST", &format!("/v1/webhooks/{id}/rotate-secret"), &key, None)
        .await;
    assert_eq!(rotated.status, 200);
    assert_eq!(
        env.api("DELETE", &format!("/v1/webhooks/{id}"), &key, None)
            .await
            .status,
        204
    );
    let (code, _) = env.registry_admin(&["create-tenant", "--name", "From the command"]);
    assert_eq!(code, 0);

    // The tenant's own log, newest first.
    let own = env.api("GET", "/v1/audit-log", &key, None).await;
    assert_eq!(own.status, 200, "{own:?}");
    let actions: Vec<String> = entries(&own.body)
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        actions,
        [
            "webhook.deleted",
            "webhook.secret_rotated",
            "webhook.updated",
            "webhook.created",
            "api_key.created",
            "tenant.created"
        ],
        "{own:?}"
    );
    let log = entries(&own.body);
    let updated = &log[2];
    assert_eq!(updated["actor"]["kind"], "api_key");
    assert_eq!(updated["actor"]["id"], json!(key_id));
    assert_eq!(updated["request_id"], json!(request_id));
    assert_eq!(updated["resource_id"], json!(id));
    assert_eq!(
        updated["changes"]["url"],
        json!({"before": "https://example.com/a", "after": "https://example.com/b"})
    );
    assert_eq!(updated["changes"]["name"], json!({"before": "", "after": "CRM"}));
    assert!(
        updated["changes"].get("events").is_none(),
        "unchanged fields are left out"
    );
    assert_eq!(
        log[1]["changes"]["secret"],
        json!({"before": "[masked]", "after": "[masked]"})
    );
    assert_eq!(log[5]["actor"]["kind"], "admin");
    // No secret anywhere: signing secrets, the key (only its prefix names it), header values.
    let text = own.body.to_string();
    assert!(
        text.contains(&format!("\"{}…\"", &key[..10])),
        "the key is named by its prefix"
    );
    for secret in ["whsec_", key.as_str(), &key[10..], "header-secret"] {
        assert!(!text.contains(secret), "{secret} appears in the audit log: {text}");
    }

    // Another tenant sees none of it; the operator sees all, and filters.
    let theirs = env.api("GET", "/v1/audit-log", &other_key, None).await;
    assert!(
        entries(&theirs.body).iter().all(|e| e["resource_id"] != json!(id)),
        "{theirs:?}"
    );
    let about = env
        .admin("GET", &format!("/v1/admin/audit-log?resource_id={id}"), None)
        .await;
    assert_eq!(about.body["count"], 4, "{about:?}");
    let command = env
        .admin("GET", "/v1/admin/audit-log?action=tenant.created&limit=10", None)
        .await;
    assert!(
        entries(&command.body)
            .iter()
            .any(|e| e["actor"]["kind"] == "admin_command"),
        "the admin command's change is recorded: {command:?}"
    );
    let refused = env.api("GET", "/v1/audit-log?since=yesterday", &key, None).await;
    assert_eq!(refused.status, 400);
    env.stop().await;
}
