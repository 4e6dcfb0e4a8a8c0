//! The admin command's changes reach publishers at once; a deleted tenant loses everything, and nobody else anything.

use super::*;

/// The admin command tells publishers of its changes at once, as the API does, not at their
/// next resync (30 s here): a schema changed from the shell holds for the next events, and a
/// tenant deleted from the shell gets no more deliveries.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_admin_command_tells_publishers_of_its_changes_at_once() {
    let env = TestEnv::start().await;
    let (tenant, key) = env.tenant("leaving").await;
    env.webhook(&key, json!({"url": "http://127.0.0.1:1/", "events": ["task.created"]}))
        .await;
    env.wait_routed(1).await;
    let publish = |data: Value| env.publish(json!({"type": "task.created", "tenant_id": tenant, "data": data}));
    assert_eq!(publish(json!({})).await.body["matched"], 1);

    let schema = r#"{"type": "object", "required": ["id"]}"#;
    let (code, out) = env.registry_admin(&["update-event-type", "task.created", "--schema", schema]);
    assert_eq!(code, 0, "{out}");
    let refused = eventually(Duration::from_secs(5), || async {
        (publish(json!({})).await.status == 400).then_some(())
    })
    .await;
    assert!(
        refused.is_some(),
        "an event without `id` was still accepted 5 s after the change"
    );

    let (code, out) = env.registry_admin(&["delete-tenant", &tenant]);
    assert_eq!(code, 0, "{out}");
    let unrouted = eventually(Duration::from_secs(5), || async {
        (publish(json!({"id": 1})).await.body["matched"] == 0).then_some(())
    })
    .await;
    assert!(
        unrouted.is_some(),
        "the deleted tenant's webhook still matched 5 s after the deletion"
    );
    env.stop().await;
}

/// Deleting a tenant takes its keys and webhooks at once (publishers stop routing to them) and
/// its whole delivery log at the retention task's next pass; another tenant keeps everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deleted_tenant_loses_its_keys_webhooks_and_log_and_no_one_else_does() {
    let env = TestEnv::start_with(|o| o.registry.retention.interval = Duration::from_millis(200)).await;
    let (gone, gone_key) = env.tenant("gone").await;
    let (stays, stays_key) = env.tenant("stays").await;
    // The leaving tenant's receiver fails once, so its log has an attempt row of its own.
    let mut gone_rx = Receiver::scripted(vec![(500, Duration::ZERO), (200, Duration::ZERO)]).await;
    let mut stays_rx = Receiver::start(200).await;
    let policy = json!({"strategy": "fixed", "interval_seconds": 1, "max_retries": 3});
    let gone_hook = env
        .webhook(
            &gone_key,
            json!({"url": gone_rx.url(), "events": ["task.created"], "retry_policy": policy}),
        )
        .await;
    let stays_hook = env
        .webhook(&stays_key, json!({"url": stays_rx.url(), "events": ["task.created"]}))
        .await;
    env.wait_routed(2).await;
    let publish = |tenant: &str| env.publish(json!({"type": "task.created", "tenant_id": tenant, "data": {}}));
    assert_eq!(publish(&gone).await.status, 202);
    assert_eq!(publish(&stays).await.status, 202);
    let delivered = env
        .delivery_in(&gone_key, gone_hook["id"].as_str().unwrap(), "success")
        .await;
    env.delivery_in(&stays_key, stays_hook["id"].as_str().unwrap(), "success")
        .await;
    assert_eq!(delivered["attempts"], 2);
    let log_rows = |tenant: &str| {
        let sql = format!(
            "SELECT (SELECT count(*) FROM deliveries WHERE tenant_id = '{tenant}') || ',' ||
                    (SELECT count(*) FROM events WHERE tenant_id = '{tenant}') || ',' ||
                    (SELECT count(*) FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id
                      WHERE d.tenant_id = '{tenant}')"
        );
        env.psql(&sql).expect("psql answers")
    };
    assert_eq!(log_rows(&gone), "1,1,1", "one delivery, its event, its first attempt");

    let path = format!("/v1/admin/tenants/{gone}");
    assert_eq!(env.admin("DELETE", &path, None).await.status, 204);
    assert_eq!(env.admin("DELETE", &path, None).await.status, 404);
    assert_eq!(env.admin("GET", &path, None).await.status, 404);
    assert_eq!(
        env.api("GET", "/v1/webhooks", &gone_key, None).await.status,
        401,
        "its key is refused"
    );

    // Its webhooks stop at once: the publisher drops them on the notice.
    let routed_one = eventually(Duration::from_secs(10), || async {
        (env.routed().await? == 1).then_some(())
    })
    .await;
    assert!(
        routed_one.is_some(),
        "the publisher still routes to the deleted tenant's webhook"
    );
    assert_eq!(publish(&gone).await.status, 202);
    assert_eq!(publish(&stays).await.status, 202);
    assert!(stays_rx.next(Duration::from_secs(10)).await.is_some());
    assert!(stays_rx.next(Duration::from_secs(10)).await.is_some());
    let _first_two = (
        gone_rx.next(Duration::from_secs(1)).await,
        gone_rx.next(Duration::from_secs(1)).await,
    );
    assert!(
        gone_rx.next(Duration::from_secs(1)).await.is_none(),
        "an event reached the deleted tenant's webhook"
    );

    // Its log goes at the retention task's next pass; the other tenant's stays whole. The event
    // published after the deletion, which no webhook took, stays until retention takes it.
    let purged = eventually(Duration::from_secs(10), || async {
        (log_rows(&gone) == "0,1,0").then_some(())
    })
    .await;
    assert!(
        purged.is_some(),
        "the deleted tenant's log is still there: {}",
        log_rows(&gone)
    );
    let first_event = delivered["event_id"].as_str().unwrap();
    assert_eq!(
        env.psql(&format!("SELECT count(*) FROM events WHERE id = '{first_event}'"))
            .as_deref(),
        Some("0"),
        "the delivered event's payload is gone"
    );
    assert_eq!(log_rows(&stays), "2,2,0");
    let renamed = env
        .admin(
            "PATCH",
            &format!("/v1/admin/tenants/{stays}"),
            Some(json!({"name": "still here"})),
        )
        .await;
    assert_eq!((renamed.status, &renamed.body["name"]), (200, &json!("still here")));
    let page = env.api("GET", "/v1/deliveries", &stays_key, None).await;
    assert_eq!(page.body["count"], 2, "{page:?}");
    env.stop().await;
}

/// Webhooks created while their tenant is deleted are either refused (401) or deleted with it
/// and dropped by the publisher at once: none outlives the tenant in the routing. The deletion
/// starts a little later each round, so some rounds race it with creates under way (deleting the
/// tenant row first, with its keys by cascade, deadlocked against them: 500s).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhooks_created_while_their_tenant_is_deleted_go_with_it() {
    let env = TestEnv::start_with(|o| {
        o.registry.rate_limits.create_webhook.count = 1_000;
        o.registry.database.max_connections = 8;
    })
    .await;
    let receiver = Receiver::start(200).await;
    for round in 0..16u64 {
        let (tenant, key) = env
            .tenant_with_key(&format!("t{round}"), json!({"max_webhooks": 100}))
            .await;
        let create = || {
            let (env, key, url) = (&env, key.clone(), receiver.url());
            async move {
                env.api("POST", "/v1/webhooks", &key, Some(json!({"url": url, "events": ["*"]})))
                    .await
                    .status
            }
        };
        let creates = futures_util::future::join_all((0..12).map(|_| create()));
        let delete = async {
            tokio::time::sleep(Duration::from_millis(3 * round)).await;
            env.admin("DELETE", &format!("/v1/admin/tenants/{tenant}"), None)
                .await
                .status
        };
        let (statuses, deleted) = tokio::join!(creates, delete);
        assert_eq!(deleted, 204, "round {round}, creates {statuses:?}");
        assert!(statuses.iter().all(|s| *s == 201 || *s == 401), "{statuses:?}");
        assert_eq!(env.psql("SELECT count(*) FROM webhooks").as_deref(), Some("0"));
        let routed_none = eventually(Duration::from_secs(5), || async {
            (env.routed().await? == 0).then_some(())
        })
        .await;
        assert!(
            routed_none.is_some(),
            "round {round} ({statuses:?}): the publisher routes to {:?} webhooks of a deleted tenant",
            env.routed().await
        );
    }
    env.stop().await;
}
