//! Credentials with least privilege: the internal token opens the internal API only; named admin
//! tokens open the admin API, are named in the audit log and are refused once revoked.

use hookwire_test_support::{TestEnv, ADMIN_TOKEN};
use serde_json::{json, Value};

const INTERNAL_TOKEN: &str = hookwire_core::config::dev_defaults::INTERNAL_TOKEN;

async fn get(env: &TestEnv, path: &str, token: &str) -> u16 {
    env.http
        .get(
            &format!("{}{path}", env.registry),
            &[("authorization", &format!("Bearer {token}"))],
        )
        .await
        .unwrap()
        .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_internal_token_opens_the_internal_api_and_nothing_else() {
    let env = TestEnv::start().await;
    let (_, key) = env.tenant("Acme").await;
    assert_eq!(get(&env, "/v1/internal/routing", INTERNAL_TOKEN).await, 200);
    assert_eq!(get(&env, "/v1/internal/routing", &key).await, 401);
    assert_eq!(get(&env, "/v1/admin/tenants", INTERNAL_TOKEN).await, 401);
    // The services run with it: an event is routed and delivered as ever (the publisher read its
    // routing data with the internal token).
    assert_eq!(
        env.publish(json!({"type": "person.created", "data": {}})).await.status,
        202
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_admin_token_works_is_audited_and_is_refused_once_revoked() {
    let env = TestEnv::start().await;
    // The first from the admin command, the next through the API.
    let (code, out) = env.registry_admin(&["create-admin-token", "--name", "ops"]);
    assert_eq!(code, 0, "{out}");
    let first: Value = serde_json::from_str(&out).expect("the command prints the token as JSON");
    let ops = first["token"].as_str().unwrap().to_owned();
    assert!(ops.starts_with("hwat_"));
    assert_eq!(get(&env, "/v1/admin/tenants", &ops).await, 200);
    let made = env
        .http
        .post(
            &format!("{}/v1/admin/admin-tokens", env.registry),
            &[("authorization", &format!("Bearer {ops}"))],
            Some(&json!({"name": "terraform"})),
        )
        .await
        .unwrap();
    assert_eq!(made.status, 201, "{made:?}");
    let terraform = made.body["token"].as_str().unwrap().to_owned();
    let terraform_id = made.body["id"].as_str().unwrap().to_owned();

    // A change made with it names it in the audit log.
    let tenant = env
        .http
        .post(
            &format!("{}/v1/admin/tenants", env.registry),
            &[("authorization", &format!("Bearer {terraform}"))],
            Some(&json!({"name": "Made by terraform"})),
        )
        .await
        .unwrap();
    assert_eq!(tenant.status, 201);
    let tenant_id = tenant.body["id"].as_str().unwrap();
    let log = env
        .admin("GET", &format!("/v1/admin/audit-log?resource_id={tenant_id}"), None)
        .await;
    let actor = &log.body["results"][0]["actor"];
    assert_eq!(actor["name"], "terraform", "{log:?}");
    assert_eq!(actor["id"], json!(terraform_id));
    // It acts for a tenant as the bootstrap token does.
    let acting = env
        .http
        .get(
            &format!("{}/v1/webhooks", env.registry),
            &[
                ("authorization", &format!("Bearer {terraform}")),
                ("hookwire-tenant-id", tenant_id),
            ],
        )
        .await
        .unwrap();
    assert_eq!(acting.status, 200, "{acting:?}");

    // Listed without the token; refused from the next request once revoked.
    let listed = env.admin("GET", "/v1/admin/admin-tokens", None).await;
    assert_eq!(listed.body["count"], 2);
    assert!(!listed.body.to_string().contains(&terraform));
    let revoked = env
        .admin("DELETE", &format!("/v1/admin/admin-tokens/{terraform_id}"), None)
        .await;
    assert_eq!(revoked.status, 204);
    assert_eq!(get(&env, "/v1/admin/tenants", &terraform).await, 401);
    assert_eq!(get(&env, "/v1/admin/tenants", &ops).await, 200);
    assert_eq!(get(&env, "/v1/admin/tenants", ADMIN_TOKEN).await, 200);
    env.stop().await;
}
