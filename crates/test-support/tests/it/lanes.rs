//! A tenant publishing past its share of a second (`ingest.bulk_lane_after`, divided between
//! the publishers running) has its further deliveries wait in the bulk lane's queues, so other
//! tenants' deliveries do not queue behind them; both lanes are delivered, retries included.
//! Ordered webhooks' lines release into the lanes the same way (`lines.bulk_lane_after`).

use std::collections::HashSet;
use std::time::Duration;

use hookwire_test_support::{eventually, free_port, Receiver, TestEnv};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tenant_past_its_share_waits_in_the_bulk_lane_and_others_do_not_queue_behind_it() {
    let env = TestEnv::start_with(|o| {
        o.in_process_dispatcher = false;
        o.publisher.ingest.bulk_lane_after = 6;
        o.publisher.ingest.replica_census_interval = Duration::from_millis(200);
    })
    .await;
    // Two publishers: each takes half of the six a second, three.
    let _second = env.spawn_publisher_process(free_port(), 6).await;
    let counted = eventually(Duration::from_secs(10), || async {
        let n = env.metric(&env.publisher, "hookwire_publisher_replicas").await?;
        (n == 2.0).then_some(())
    })
    .await;
    assert!(counted.is_some(), "the publisher counted two publishers");
    // Every one of the flood's deliveries fails once: its retry goes through the delay queues
    // and back to its own lane.
    let mut script = vec![(500, Duration::ZERO); 5];
    script.push((200, Duration::ZERO));
    let mut flood_rx = Receiver::scripted(script).await;
    let mut quiet_rx = Receiver::start(200).await;
    let (flood, flood_key) = env.tenant("flood").await;
    let (quiet, quiet_key) = env.tenant("quiet").await;
    let policy = json!({"strategy": "fixed", "interval_seconds": 1, "max_retries": 3});
    env.webhook(
        &flood_key,
        json!({"url": flood_rx.url(), "events": ["*"], "retry_policy": policy}),
    )
    .await;
    env.webhook(&quiet_key, json!({"url": quiet_rx.url(), "events": ["*"]}))
        .await;
    env.wait_routed(2).await;

    // Five events in one request: three within this publisher's share, two past it (all five
    // within the share of a publisher alone).
    let events: Vec<_> = (0..5)
        .map(|n| json!({"type": "task.created", "tenant_id": flood, "data": {"n": n}}))
        .collect();
    let r = env.publish_batch(json!({"events": events})).await;
    assert_eq!(r.status, 202, "{r:?}");
    let r = env
        .publish(json!({"type": "task.created", "tenant_id": quiet, "data": {}}))
        .await;
    assert_eq!(r.status, 202, "{r:?}");

    // No dispatcher runs yet: the queues show the lanes.
    assert_eq!(
        env.lane_depth(true, true).await,
        1,
        "the two past the share: one bulk message"
    );
    assert_eq!(
        env.lane_depth(false, true).await,
        1,
        "the first three: one standard message"
    );
    assert_eq!(
        env.lane_depth(false, false).await,
        1,
        "the quiet tenant's event: a standard task"
    );
    assert_eq!(env.lane_depth(true, false).await, 0);

    let _dispatcher = env.spawn_dispatcher_process(hookwire_test_support::free_port()).await;
    let got = quiet_rx.next(Duration::from_secs(10)).await;
    assert!(got.is_some(), "the quiet tenant's event arrived");
    let mut delivered = HashSet::new();
    let mut requests = 0;
    while delivered.len() < 5 {
        let got = flood_rx
            .next(Duration::from_secs(15))
            .await
            .unwrap_or_else(|| panic!("only {} of the flood's 5 events delivered", delivered.len()));
        requests += 1;
        if got.status == 200 {
            delivered.insert(got.header("webhook-id").unwrap_or_default().to_owned());
        }
    }
    assert_eq!(requests, 10, "each failed once, then was delivered by its retry");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_ordered_webhooks_lines_release_past_the_tenants_share_into_the_bulk_lane() {
    let env = TestEnv::start_with(|o| {
        o.in_process_dispatcher = false;
        o.registry.lines.bulk_lane_after = 2;
    })
    .await;
    let mut rx = Receiver::start(200).await;
    let (tenant, key) = env.tenant("ordered").await;
    env.webhook(&key, json!({"url": rx.url(), "events": ["*"], "ordering": "subject"}))
        .await;
    env.wait_routed(1).await;

    // Five subjects, five idle lines: each releases its event at once, two within the
    // tenant's share of the second and three past it.
    let events: Vec<_> = (0..5)
        .map(|n| json!({"type": "task.created", "tenant_id": tenant, "subject": format!("s{n}"), "data": {"n": n}}))
        .collect();
    let r = env.publish_batch(json!({"events": events})).await;
    assert_eq!(r.status, 202, "{r:?}");
    let released = eventually(Duration::from_secs(10), || async {
        let n = env
            .metric(&env.registry, "hookwire_registry_lines_released_total")
            .await?;
        (n == 5.0).then_some(())
    })
    .await;
    assert!(released.is_some(), "the lines released their five events");
    assert_eq!(
        env.metric(&env.registry, "hookwire_registry_lines_released_bulk_total")
            .await,
        Some(3.0),
        "three past the share took the bulk lane"
    );
    // No dispatcher runs yet: the queues show the lanes.
    let bulk = env.lane_depth(true, true).await + env.lane_depth(true, false).await;
    let standard = env.lane_depth(false, true).await + env.lane_depth(false, false).await;
    assert!(bulk >= 1 && standard >= 1, "bulk {bulk}, standard {standard}");

    let _dispatcher = env.spawn_dispatcher_process(free_port()).await;
    let mut delivered = HashSet::new();
    while delivered.len() < 5 {
        let got = rx
            .next(Duration::from_secs(15))
            .await
            .unwrap_or_else(|| panic!("only {} of the 5 events delivered", delivered.len()));
        delivered.insert(got.header("webhook-id").unwrap_or_default().to_owned());
    }
    env.stop().await;
}
