//! Exhausted deliveries retried and recovered, retries stopped by deactivation, webhooks deactivated for failing too long, and replays.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exhausted_deliveries_can_be_retried_and_recovered() {
    let env = TestEnv::start().await;
    let mut receiver = Receiver::start(500).await;
    let (tenant, key) = env.tenant("acme").await;
    let w = env
        .webhook(
            &key,
            json!({"url": receiver.url(), "events": ["task.*"], "retry_count": 0}),
        )
        .await;
    let id = w["id"].as_str().unwrap();
    env.wait_routed(1).await;
    for n in 0..3 {
        env.publish(json!({"type": "task.updated", "tenant_id": tenant, "data": {"n": n}}))
            .await;
    }
    for _ in 0..3 {
        assert!(receiver.next(Duration::from_secs(15)).await.is_some());
    }
    let page = env
        .wait_for(&format!("/v1/deliveries?webhook_id={id}&status=exhausted"), &key, |b| {
            b["count"] == 3
        })
        .await;
    receiver.answer(vec![(200, Duration::ZERO)]);

    // One delivery retried by hand.
    let one = page["results"][0]["id"].as_str().unwrap().to_owned();
    let r = env
        .api("POST", &format!("/v1/deliveries/{one}/retry"), &key, None)
        .await;
    assert_eq!((r.status, &r.body["status"]), (202, &json!("retrying")), "{r:?}");
    assert!(receiver.next(Duration::from_secs(15)).await.is_some());
    let d = env
        .wait_for(&format!("/v1/deliveries/{one}"), &key, |b| b["status"] == "success")
        .await;
    assert_eq!(d["attempt_count"], 2);
    // The first attempt, which the delivery's row held, moved out when the second came.
    let codes: Vec<_> = d["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["attempt"].as_u64(), a["response_status"].as_u64()))
        .collect();
    assert_eq!(codes, [(Some(1), Some(500)), (Some(2), Some(200))]);

    // The other two through recover. The receiver takes a second to answer them, so they are not
    // done when the same recover is sent again at once: it finds them already on their way.
    receiver.answer(vec![(200, Duration::from_secs(1))]);
    let since = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let path = format!("/v1/webhooks/{id}/recover");
    let recover = || env.api("POST", &path, &key, Some(json!({"since": since})));
    let r = recover().await;
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(r.body["retried"], 2);
    let again = recover().await;
    assert_eq!((again.status, &again.body["retried"]), (202, &json!(0)), "{again:?}");
    let listed = env
        .api(
            "GET",
            &format!("/v1/deliveries?webhook_id={id}&status=retrying"),
            &key,
            None,
        )
        .await;
    assert_eq!(listed.body["count"], 2, "{listed:?}");
    for _ in 0..2 {
        assert!(receiver.next(Duration::from_secs(15)).await.is_some());
    }
    env.wait_for(&format!("/v1/deliveries?webhook_id={id}&status=success"), &key, |b| {
        b["count"] == 3
    })
    .await;
    let r = env
        .api("POST", &format!("/v1/webhooks/{id}/recover"), &key, Some(json!({})))
        .await;
    assert_eq!(r.status, 400);
    let (_, other) = env.tenant("other").await;
    assert_eq!(
        env.api("POST", &format!("/v1/deliveries/{one}/retry"), &other, None)
            .await
            .status,
        404
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deactivating_a_webhook_stops_its_scheduled_retries() {
    let env = TestEnv::start().await;
    let mut receiver = Receiver::start(503).await;
    let (tenant, key) = env.tenant("acme").await;
    let w = env
        .webhook(
            &key,
            json!({"url": receiver.url(), "events": ["*"],
                   "retry_policy": {"strategy": "fixed", "interval_seconds": 2, "max_retries": 5}}),
        )
        .await;
    let id = w["id"].as_str().unwrap();
    env.wait_routed(1).await;
    env.publish(json!({"type": "person.deleted", "tenant_id": tenant, "data": {}}))
        .await;
    assert!(receiver.next(Duration::from_secs(15)).await.is_some(), "first attempt");
    let r = env.patch_webhook(&key, id, json!({"is_active": false})).await;
    assert_eq!(r.status, 200);
    receiver.expect_nothing(Duration::from_secs(4)).await;
    let d = env.delivery_in(&key, id, "failed").await;
    assert!(d["error"].as_str().unwrap().starts_with("webhook_disabled"), "{d}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_webhook_failing_for_too_long_is_deactivated_with_a_reason() {
    let env = TestEnv::start_with(|o| o.registry.webhooks.auto_disable_after = Duration::from_secs(2)).await;
    let mut receiver = Receiver::start(500).await;
    let (tenant, key) = env.tenant("acme").await;
    let w = env
        .webhook(
            &key,
            json!({"url": receiver.url(), "events": ["*"],
                   "retry_policy": {"strategy": "fixed", "interval_seconds": 1, "max_retries": 20}}),
        )
        .await;
    let id = w["id"].as_str().unwrap();
    env.wait_routed(1).await;
    env.publish(json!({"type": "person.created", "tenant_id": tenant, "data": {}}))
        .await;
    let hook = env
        .wait_for(&format!("/v1/webhooks/{id}"), &key, |b| b["is_active"] == false)
        .await;
    assert!(hook["disabled_reason"]
        .as_str()
        .unwrap()
        .contains("deactivated automatically"));
    assert!(hook["failure_count"].as_i64().unwrap() >= 3);
    // Its pending retry is not attempted.
    while receiver.next(Duration::from_millis(200)).await.is_some() {}
    receiver.expect_nothing(Duration::from_secs(3)).await;
    // Reactivating clears the reason.
    let r = env.patch_webhook(&key, id, json!({"is_active": true})).await;
    assert_eq!(r.body["disabled_reason"], serde_json::Value::Null);
    let read = env.api("GET", &format!("/v1/webhooks/{id}"), &key, None).await;
    assert_eq!(read.body["disabled_reason"], serde_json::Value::Null, "{read:?}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_written_again_reports_the_webhook_it_deactivated_under_the_same_key() {
    use diesel_async::AsyncConnection as _;
    use hookwire_registry::db::ledger::Batch;
    use hookwire_registry::operational;

    let env = TestEnv::start().await;
    let (tenant, key) = env.tenant("acme").await;
    let w = env
        .webhook(&key, json!({"url": "http://127.0.0.1:1/", "events": ["task.*"]}))
        .await;
    let ids = Ids {
        webhook_id: w["id"].as_str().unwrap().parse().unwrap(),
        tenant_id: tenant.parse().unwrap(),
        event_id: Uuid::new_v4(),
    };
    // Two failures five minutes apart, the first ten minutes ago: past a limit of one minute.
    let first = Utc::now() - chrono::Duration::minutes(10);
    let records = [(1, first), (2, first + chrono::Duration::minutes(5))]
        .map(|(n, at)| attempt_record(ids, Uuid::from_u128(n), 1, 500, at));
    let mut batch = Batch::default();
    for r in records {
        batch.add(r);
    }
    let mut conn = diesel_async::AsyncPgConnection::establish(env.database_url())
        .await
        .unwrap();
    let limit = Duration::from_secs(60);
    let once = batch.write(&mut conn, limit).await.unwrap();
    assert_eq!(once.deactivated.len(), 1);
    assert!(once.deactivated_before.is_empty());
    // Written again, as after a registry that stopped before publishing the batch's events:
    // nothing is deactivated now, but the webhook is reported again, under the same key.
    let again = batch.write(&mut conn, limit).await.unwrap();
    assert!(again.deactivated.is_empty());
    assert_eq!(again.deactivated_before.len(), 1);
    let key_of = |w: &hookwire_registry::db::models::Webhook| operational::disabled(w)["idempotency_key"].clone();
    assert_eq!(key_of(&once.deactivated[0]), key_of(&again.deactivated_before[0]));
    // Turned back on, the webhook starts a new run of failures: not reported, and a later
    // deactivation would have a key of its own.
    let id = w["id"].as_str().unwrap();
    let r = env.patch_webhook(&key, id, json!({"is_active": true})).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        env.psql(&format!(
            "SELECT count(*) FROM webhooks WHERE id = '{id}' AND failing_since IS NULL"
        ))
        .as_deref(),
        Some("1")
    );
    env.stop().await;
}

/// A replay sends a webhook the events it takes that were published before it existed (its
/// tenant's and feed events, of its types and test mode), each once, with the event's own id;
/// events it got already, or does not take, are not sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replay_sends_the_events_a_webhook_never_got_once() {
    let env = TestEnv::start().await;
    let (tenant, key) = env.tenant("acme").await;
    let (other, _) = env.tenant("other").await;
    let mut receiver = Receiver::start(200).await;
    let since = Utc::now() - chrono::Duration::seconds(1);
    let publish = |event: Value| async {
        let r = env.publish(event).await;
        assert_eq!(r.status, 202, "{r:?}");
        r.body["event_id"].as_str().unwrap().to_owned()
    };
    // Before the webhook: two it will take, three it will not.
    let mine = publish(json!({"type": "task.created", "tenant_id": tenant, "data": {"n": 1}})).await;
    let feed = publish(json!({"type": "task.updated", "data": {"n": 2}})).await;
    publish(json!({"type": "company.created", "tenant_id": tenant, "data": {}})).await;
    publish(json!({"type": "task.created", "tenant_id": other, "data": {}})).await;
    publish(json!({"type": "task.created", "tenant_id": tenant, "is_test": true, "data": {}})).await;
    let stored = eventually(Duration::from_secs(10), || async {
        (env.psql("SELECT count(*) FROM events").as_deref() == Some("5")).then_some(())
    })
    .await;
    assert!(stored.is_some(), "the events were not logged");

    let hook = env
        .webhook(&key, json!({"url": receiver.url(), "events": ["task.*"]}))
        .await;
    let hook_id = hook["id"].as_str().unwrap().to_owned();
    env.wait_routed(1).await;
    let live = publish(json!({"type": "task.created", "tenant_id": tenant, "data": {"n": 3}})).await;
    let got = receiver.next(Duration::from_secs(10)).await.expect("the live event");
    assert_eq!(got.header("webhook-id"), Some(live.as_str()));
    env.delivery_in(&key, &hook_id, "success").await;

    let path = format!("/v1/webhooks/{hook_id}/replay");
    let replay = |body: Value| env.api("POST", &path, &key, Some(body));
    let r = replay(json!({"since": since.to_rfc3339()})).await;
    assert_eq!(
        (r.status, &r.body),
        (202, &json!({"replayed": 2, "more": false})),
        "{r:?}"
    );
    let mut ids = Vec::new();
    for _ in 0..2 {
        let got = receiver.next(Duration::from_secs(10)).await.expect("a replayed event");
        let body: Value = serde_json::from_slice(&got.body).unwrap();
        assert_eq!(got.header("webhook-id"), body["id"].as_str());
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    ids.sort();
    let mut expected = vec![mine.clone(), feed.clone()];
    expected.sort();
    assert_eq!(ids, expected);
    assert!(
        receiver.next(Duration::from_millis(500)).await.is_none(),
        "more than the two"
    );

    // Once logged, a replay finds nothing left to send. Each replayed delivery has the id the
    // publisher gives an event's delivery to a webhook, so a replay sent twice is one delivery.
    env.wait_for(
        &format!("/v1/deliveries?webhook_id={hook_id}&status=success"),
        &key,
        |b| b["count"] == 3,
    )
    .await;
    let logged = env
        .api("GET", &format!("/v1/deliveries?event_id={mine}"), &key, None)
        .await;
    let derived = hookwire_core::id::delivery(mine.parse().unwrap(), hook_id.parse().unwrap());
    assert_eq!(logged.body["results"][0]["id"], json!(derived), "{logged:?}");
    let r = replay(json!({"since": since.to_rfc3339()})).await;
    assert_eq!(r.body, json!({"replayed": 0, "more": false}), "{r:?}");

    // Bad times are refused; so is a webhook that is not active.
    let r = replay(json!({})).await;
    assert_eq!((r.status, r.error_fields()), (400, vec!["since"]));
    // A window that ends where it starts holds nothing.
    let r = replay(json!({"since": since.to_rfc3339(), "until": since.to_rfc3339()})).await;
    assert_eq!(
        (r.status, &r.body),
        (202, &json!({"replayed": 0, "more": false})),
        "{r:?}"
    );
    env.patch_webhook(&key, &hook_id, json!({"is_active": false})).await;
    let r = replay(json!({"since": since.to_rfc3339()})).await;
    assert_eq!(
        (r.status, &r.body["type"]),
        (409, &json!("https://hookwire.dev/problems/webhook_inactive"))
    );
    env.stop().await;
}
