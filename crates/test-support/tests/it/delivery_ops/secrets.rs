//! Rotating a webhook's secret: both signatures during the overlap, the new one alone after.

use super::*;

/// A webhook whose secret was rotated just now, once the publisher routed to it.
struct Rotated {
    receiver: Receiver,
    tenant: String,
    old: String,
    new: String,
}

impl Rotated {
    async fn new(env: &TestEnv) -> Self {
        let receiver = Receiver::start(200).await;
        let (tenant, key) = env.tenant("acme").await;
        let w = env
            .webhook(&key, json!({"url": receiver.url(), "events": ["person.*"]}))
            .await;
        let id = w["id"].as_str().unwrap();
        env.wait_routed(1).await;
        let rotated = env
            .api("POST", &format!("/v1/webhooks/{id}/rotate-secret"), &key, None)
            .await;
        assert_eq!(rotated.status, 200, "{rotated:?}");
        let (old, new) = (w["secret"].as_str().unwrap(), rotated.body["secret"].as_str().unwrap());
        assert_ne!(old, new);
        Self {
            receiver,
            tenant,
            old: old.to_owned(),
            new: new.to_owned(),
        }
    }

    /// Publishes event `n` to the webhook and returns the request its receiver got within
    /// `within` (`what` names it when none came).
    async fn deliver(
        &mut self,
        env: &TestEnv,
        n: u32,
        within: Duration,
        what: &str,
    ) -> hookwire_test_support::Received {
        env.publish(json!({"type": "person.created", "tenant_id": self.tenant, "data": {"n": n}}))
            .await;
        self.receiver.next(within).await.expect(what)
    }

    /// Publishes events from `first` on until one arrives signed twice, within `within` of now:
    /// the services learn of the rotation through a change notice, so events published before
    /// it reached them are signed once. Returns that request.
    async fn deliver_signed_twice(
        &mut self,
        env: &TestEnv,
        first: u32,
        within: Duration,
    ) -> hookwire_test_support::Received {
        let deadline = tokio::time::Instant::now() + within;
        for n in first.. {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            assert!(
                !left.is_zero(),
                "no delivery signed with both secrets within {within:?}"
            );
            let got = self.deliver(env, n, left, "delivered").await;
            if got.header("webhook-signature").unwrap().split(' ').count() == 2 {
                return got;
            }
        }
        unreachable!("the events' numbers run out first")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn during_a_rotation_deliveries_carry_both_signatures() {
    let env = TestEnv::start().await;
    let mut rotated = Rotated::new(&env).await;
    let got = rotated.deliver_signed_twice(&env, 1, Duration::from_secs(15)).await;
    assert!(verifies(&rotated.new, &got), "the new secret verifies");
    assert!(
        verifies(&rotated.old, &got),
        "the old secret still verifies during the overlap"
    );
    env.stop().await;
}

/// No notice says a rotation's overlap has ended, and the services reload the registry's snapshot
/// only every `registry.resync_interval` (an hour here): the webhook's settings carry the
/// overlap's end, and the old secret signs nothing from then on. Before, it went on signing until
/// the next reload (with a dispatcher that read the snapshot only at start, until it restarted).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn once_the_overlap_ends_only_the_new_secret_signs() {
    let overlap = Duration::from_secs(3);
    let resync = Duration::from_secs(3600);
    let env = TestEnv::start_with(|o| {
        o.registry.webhooks.secret_rotation_overlap = overlap;
        o.publisher.registry.resync_interval = resync;
        o.dispatcher.registry.resync_interval = resync;
    })
    .await;
    let mut rotated = Rotated::new(&env).await;
    let rotated_at = tokio::time::Instant::now();
    let during = rotated.deliver_signed_twice(&env, 1, Duration::from_secs(2)).await;
    assert!(
        verifies(&rotated.old, &during) && verifies(&rotated.new, &during),
        "both secrets sign during the overlap: {:?}",
        during.header("webhook-signature")
    );

    tokio::time::sleep_until(rotated_at + overlap + Duration::from_millis(200)).await;
    let after = rotated
        .deliver(&env, 1000, Duration::from_secs(15), "delivered after the overlap")
        .await;
    assert_eq!(
        after.header("webhook-signature").unwrap().split(' ').count(),
        1,
        "one signature once the overlap has ended"
    );
    assert!(verifies(&rotated.new, &after), "the new secret verifies");
    assert!(!verifies(&rotated.old, &after), "the old secret no longer does");
    env.stop().await;
}
