//! The admin's API keys: listed, changed and revoked.

use super::*;

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
