//! Changes whose notices never came reach the dispatchers with their reloads of the routing snapshot.

use super::*;

/// A webhook whose receiver fails every attempt (retried every second), once its first attempt
/// has been made, with a dispatcher that reloads the registry's snapshot every `resync`; and a
/// healthy receiver to move it to.
struct Failing {
    env: TestEnv,
    key: String,
    id: String,
    new: Receiver,
    _old: Receiver,
}

impl Failing {
    async fn start(resync: Duration) -> Self {
        let env = TestEnv::start_with(|o| o.dispatcher.registry.resync_interval = resync).await;
        let mut old = Receiver::start(500).await;
        let new = Receiver::start(200).await;
        let (tenant, key) = env.tenant("acme").await;
        let policy = json!({"strategy": "fixed", "max_retries": 30, "interval_seconds": 1, "max_age_seconds": 600});
        let w = env
            .webhook(
                &key,
                json!({"url": old.url(), "events": ["person.*"], "retry_policy": policy}),
            )
            .await;
        env.wait_routed(1).await;
        env.publish(json!({"type": "person.created", "tenant_id": tenant, "data": {}}))
            .await;
        old.next(Duration::from_secs(10)).await.expect("the first attempt");
        let id = w["id"].as_str().unwrap().to_owned();
        Self {
            env,
            key,
            id,
            new,
            _old: old,
        }
    }

    /// Moves the webhook to the healthy receiver in the database, behind the registry's back (no
    /// notice), setting `also` besides the URL.
    fn move_in_database(&self, also: &str) {
        let moved = self.env.psql(&format!(
            "WITH m AS (UPDATE webhooks SET url = '{}'{also} WHERE id = '{}' RETURNING 1) SELECT count(*) FROM m",
            self.new.url(),
            self.id
        ));
        assert_eq!(moved.as_deref(), Some("1"), "the webhook was changed in the database");
    }
}

/// A change whose notice never came (made here in the database, which sends none; in life the
/// broker away when the registry sent it) reaches the dispatchers with their next reload of the
/// registry's snapshot (`registry.resync_interval`, 1 s here): the next retry goes to the new URL.
/// A dispatcher used to read that snapshot only once, at start, and kept the old URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_change_whose_notice_was_lost_reaches_dispatchers_with_their_next_reload() {
    let mut f = Failing::start(Duration::from_secs(1)).await;
    f.move_in_database(", modified_at = now()");
    let got = f
        .new
        .next(Duration::from_secs(10))
        .await
        .expect("a retry reaches the new URL");
    let delivered = f.env.delivery_in(&f.key, &f.id, "success").await;
    assert_eq!(got.header("webhook-id"), delivered["event_id"].as_str());
    f.env.stop().await;
}

/// Reloads name the version held and get "unchanged" while the registry's version says so, but
/// every tenth takes the whole snapshot: a change the version does not show (made here in the
/// database without touching `modified_at`, as no code of the registry does) still reaches the
/// dispatchers within ten `registry.resync_interval`s.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_change_the_version_does_not_show_reaches_dispatchers_with_a_whole_reload() {
    let mut f = Failing::start(Duration::from_millis(200)).await;
    // The dispatcher has reloaded the webhook as created and now hears "unchanged".
    let before = routing_reloads(&f.env, 304).await;
    let quiet = eventually(Duration::from_secs(5), || async {
        (routing_reloads(&f.env, 304).await >= before + 2.0).then_some(())
    })
    .await;
    assert!(quiet.is_some(), "reloads are answered `unchanged`");
    f.move_in_database("");
    f.new
        .next(Duration::from_secs(15))
        .await
        .expect("a retry reaches the new URL");
    f.env.stop().await;
}

/// How many reloads of the routing snapshot the registry answered with `status`.
async fn routing_reloads(env: &TestEnv, status: u16) -> f64 {
    let series = format!(
        r#"hookwire_registry_http_requests_total{{method="GET",route="/v1/internal/routing",status="{status}"}}"#
    );
    env.metric(&env.registry, &series).await.unwrap_or(0.0)
}
