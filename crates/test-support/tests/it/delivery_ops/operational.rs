//! Operational events that tell a tenant of its exhausted deliveries and deactivated webhooks.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operational_events_tell_a_tenant_of_exhausted_deliveries_and_a_disabled_webhook() {
    let env = TestEnv::start_with(|o| o.registry.webhooks.auto_disable_after = Duration::from_secs(2)).await;
    let (mut watcher, mut everything, mut stranger) = (
        Receiver::start(200).await,
        Receiver::start(200).await,
        Receiver::start(200).await,
    );
    let failing = Receiver::start(500).await;
    let (tenant, key) = env.tenant("acme").await;
    let (_, other) = env.tenant("other").await;
    // A third tenant's failing webhook: its exhausted delivery has no one to tell there.
    let (quiet_tenant, quiet) = env.tenant("quiet").await;
    let theirs = env
        .webhook(
            &quiet,
            json!({"url": failing.url(), "events": ["company.*"], "retry_count": 0}),
        )
        .await;
    let watch = env
        .webhook(&key, json!({"url": watcher.url(), "events": ["hookwire.*"]}))
        .await;
    env.webhook(&key, json!({"url": everything.url(), "events": ["*"]}))
        .await;
    env.webhook(&other, json!({"url": stranger.url(), "events": ["hookwire.*"]}))
        .await;
    let f = env
        .webhook(
            &key,
            json!({"url": failing.url(), "events": ["task.*"], "retry_count": 0}),
        )
        .await;
    let f_id = f["id"].as_str().unwrap();
    env.wait_routed(5).await;
    env.publish(json!({"type": "company.created", "tenant_id": quiet_tenant, "data": {}}))
        .await;
    env.delivery_in(&quiet, theirs["id"].as_str().unwrap(), "exhausted")
        .await;

    // Producers cannot publish Hookwire's own types.
    let refused = env
        .publish(json!({"type": "hookwire.delivery_exhausted", "tenant_id": tenant, "data": {}}))
        .await;
    assert_eq!(refused.status, 400, "{refused:?}");
    assert!(refused.body["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("only Hookwire publishes"));
    // Nor can an operator add to them; the catalog lists them for subscribing.
    let reserved = env
        .admin_post(
            "/v1/admin/event-types",
            json!({"value": "hookwire.anything", "label": "x"}),
        )
        .await;
    assert_eq!(
        (reserved.status, &reserved.body["errors"][0]["field"]),
        (400, &json!("value"))
    );
    let catalog = env.api("GET", "/v1/event-types?limit=500", &key, None).await;
    let listed: Vec<&str> = catalog.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["value"].as_str().filter(|v| v.starts_with("hookwire.")))
        .collect();
    assert_eq!(listed, ["hookwire.delivery_exhausted", "hookwire.webhook_disabled"]);

    // One event a second to the failing webhook, each exhausted at its only attempt, until it has
    // failed for longer than 2 s and is deactivated.
    let mut sent = 0;
    let deactivated = eventually(Duration::from_secs(20), || {
        sent += 1;
        let (env, key, tenant) = (&env, &key, &tenant);
        async move {
            env.publish(json!({"type": "task.updated", "tenant_id": tenant, "data": {"n": sent}}))
                .await;
            tokio::time::sleep(Duration::from_secs(1)).await;
            let w = env.api("GET", &format!("/v1/webhooks/{f_id}"), key, None).await;
            (w.body["is_active"] == false).then_some(w.body)
        }
    })
    .await
    .expect("the failing webhook is deactivated");
    // The watcher hears of every exhausted delivery once and of the deactivation, signed like
    // any delivery. Read until it has been quiet for 3 s: an event published as the webhook was
    // deactivated may still be on its way to the log.
    let mut told = std::collections::BTreeSet::new();
    let mut disabled = None;
    while let Some(got) = watcher.next(Duration::from_secs(3)).await {
        assert!(verifies(watch["secret"].as_str().unwrap(), &got));
        let body: Value = serde_json::from_slice(&got.body).unwrap();
        let data = &body["data"];
        assert_eq!(data["webhook_id"], f_id, "{body}");
        match body["type"].as_str().unwrap() {
            "hookwire.delivery_exhausted" => {
                assert_eq!(data["event_type"], "task.updated");
                assert_eq!(
                    (data["attempts"].as_u64(), data["response_status"].as_u64()),
                    (Some(1), Some(500))
                );
                assert!(
                    told.insert(data["delivery_id"].as_str().unwrap().to_owned()),
                    "told twice: {body}"
                );
            }
            "hookwire.webhook_disabled" => {
                assert!(disabled.is_none(), "told twice: {body}");
                assert_eq!(data["disabled_reason"], deactivated["disabled_reason"]);
                assert_eq!(data["url"], failing.url());
                disabled = Some(body);
            }
            other => panic!("unexpected type {other}: {body}"),
        }
    }
    assert!(disabled.is_some(), "the deactivation was told");
    // Its deliveries have settled: exhausted, or failed once it was deactivated; the watcher was
    // told of exactly the exhausted ones.
    let log = env
        .wait_for(&format!("/v1/deliveries?webhook_id={f_id}"), &key, |b| {
            let all = b["results"].as_array().unwrap();
            !all.is_empty()
                && all
                    .iter()
                    .all(|d| d["status"] == "exhausted" || d["status"] == "failed")
        })
        .await;
    let exhausted_ids: std::collections::BTreeSet<String> = log["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["status"] == "exhausted")
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(exhausted_ids.len() >= 2, "{log}");
    assert_eq!(told, exhausted_ids);
    assert!(sent >= 3, "{sent}");
    // The operational events are in the tenant's delivery log like any other.
    let logged = env.delivery_in(&key, watch["id"].as_str().unwrap(), "success").await;
    assert!(
        logged["event_type"].as_str().unwrap().starts_with("hookwire."),
        "{logged}"
    );

    // A webhook on `*` got the task events and none of Hookwire's; another tenant's got nothing.
    let mut types = std::collections::BTreeSet::new();
    while let Some(got) = everything.next(Duration::from_secs(2)).await {
        let body: Value = serde_json::from_slice(&got.body).unwrap();
        types.insert(body["type"].as_str().unwrap().to_owned());
    }
    assert_eq!(types, std::collections::BTreeSet::from(["task.updated".to_owned()]));
    stranger.expect_nothing(Duration::from_secs(1)).await;
    // A tenant with no webhook on them pays nothing for them: no event in its log.
    let logged = |tenant: &str| {
        env.psql(&format!(
            "SELECT count(*) FROM events WHERE tenant_id = '{tenant}' AND event_type LIKE 'hookwire.%'"
        ))
    };
    assert_eq!(logged(&quiet_tenant).as_deref(), Some("0"));
    assert_ne!(logged(&tenant).as_deref(), Some("0"));
    env.stop().await;
}
