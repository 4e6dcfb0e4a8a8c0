//! The routing snapshot the publishers and dispatchers read: sent again only after a change.

use super::*;

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
