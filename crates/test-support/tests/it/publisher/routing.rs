//! Which webhooks an event reaches (tenants, feeds, patterns, channels, test mode), and change notices that a silent registry does not hold up.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn routing_follows_tenants_feeds_patterns_channels_and_test_mode() {
    let env = TestEnv::start().await;
    let mut a = Receiver::start(200).await; // tenant A, person.*
    let mut b = Receiver::start(200).await; // tenant B, *.created, channel eu
    let mut t = Receiver::start(200).await; // tenant A, test webhook
    let (tenant_a, key_a) = env.tenant("a").await;
    let (tenant_b, key_b) = env.tenant("b").await;
    env.webhook(&key_a, json!({"url": a.url(), "events": ["person.*"]}))
        .await;
    env.webhook(
        &key_b,
        json!({"url": b.url(), "events": ["*.created"], "channels": ["eu"]}),
    )
    .await;
    env.webhook(&key_a, json!({"url": t.url(), "events": ["*"], "is_test": true}))
        .await;
    env.wait_routed(3).await;
    let quiet = Duration::from_millis(700);

    // A tenant's event reaches that tenant only.
    let r = env
        .publish(json!({"type": "person.created", "tenant_id": tenant_a, "data": {}}))
        .await;
    assert_eq!(r.body["matched"], 1);
    assert!(a.next(Duration::from_secs(10)).await.is_some());
    // A feed event (no tenant) reaches every tenant, but channels still apply.
    let r = env.publish(json!({"type": "person.created", "data": {}})).await;
    assert_eq!(r.body["matched"], 1);
    assert!(a.next(Duration::from_secs(10)).await.is_some());
    let r = env
        .publish(json!({"type": "person.created", "channels": ["eu"], "data": {}}))
        .await;
    assert_eq!(r.body["matched"], 2);
    assert!(a.next(Duration::from_secs(10)).await.is_some());
    assert!(b.next(Duration::from_secs(10)).await.is_some());
    // Patterns: company.created matches *.created but not person.*.
    let r = env
        .publish(json!({"type": "company.created", "tenant_id": tenant_b, "channels": ["eu"], "data": {}}))
        .await;
    assert_eq!(r.body["matched"], 1);
    assert!(b.next(Duration::from_secs(10)).await.is_some());
    // Test events reach only test webhooks, and production events never do.
    let r = env
        .publish(json!({"type": "task.deleted", "tenant_id": tenant_a, "is_test": true, "data": {}}))
        .await;
    assert_eq!(r.body["matched"], 1);
    assert!(t.next(Duration::from_secs(10)).await.is_some());
    t.expect_nothing(quiet).await;
    a.expect_nothing(quiet).await;
    b.expect_nothing(quiet).await;
    env.stop().await;
}

/// A registry that takes connections and never answers (hung, not down) holds the publisher's
/// periodic reload for its whole timeout; change notices keep being applied meanwhile. Before,
/// the reload held the notice loop: a webhook created then was not routed to for as long.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_registry_that_never_answers_does_not_hold_up_change_notices() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use hookwire_core::messages::ChangeNotice;

    let mut env = TestEnv::start_with(|o| {
        o.publisher.registry.resync_interval = Duration::from_millis(500);
        o.publisher.registry.request_timeout = Duration::from_secs(60);
    })
    .await;
    let (tenant_id, _) = env.tenant("hung registry").await;
    let before = env.routed().await.expect("the publisher says what it routes to");
    env.stop_registry().await;
    let port: u16 = env
        .registry
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port");
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket.set_reuseaddr(true).expect("SO_REUSEADDR");
    socket
        .bind(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .expect("the registry's port is free again");
    let listener = socket.listen(16).expect("listening");
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    let hung = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            // Counted once the reload's request has arrived; it is never answered.
            let mut first = [0u8; 1];
            if stream.peek(&mut first).await.is_ok_and(|n| n > 0) {
                counter.fetch_add(1, Ordering::SeqCst);
            }
            held.push(stream);
        }
    });
    // A reload's request is in flight, on a connection that will never be answered.
    let waiting = eventually(Duration::from_secs(10), || async {
        (accepted.load(Ordering::SeqCst) > 0).then_some(())
    })
    .await;
    assert!(
        waiting.is_some(),
        "the publisher's reload never reached the hung registry"
    );

    let tenant = tenant_id.parse().expect("a tenant id");
    let notice = ChangeNotice::Upserted {
        subscription: Box::new(hookwire_core::fixtures::subscription(
            tenant,
            &["person.created"],
            &[],
            false,
            true,
        )),
    };
    let body = serde_json::to_vec(&notice).expect("serializes");
    env.publish_amqp(&env.topology().changes_exchange(), "", &body).await;
    let seen = eventually(Duration::from_secs(3), || async {
        (env.routed().await? > before).then_some(())
    })
    .await;
    assert!(
        seen.is_some(),
        "a change notice sent while a reload hung was not applied within 3 s (routing {:?} webhooks)",
        env.routed().await
    );
    hung.abort();
    env.stop().await;
}
