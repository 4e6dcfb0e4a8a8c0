//! What a customer does to deliveries: rotate secrets, send tests, retry, recover, deactivate.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hookwire_core::messages::{AttemptRecord, DeliveryStatus, LedgerMessage};
use hookwire_core::signing::{verify, SigningKey};
use hookwire_test_support::{eventually, free_port, terminate, Receiver, TestEnv};
use serde_json::{json, Value};
use uuid::Uuid;

fn verifies(secret: &str, got: &hookwire_test_support::Received) -> bool {
    verify(
        &SigningKey::parse(secret).unwrap(),
        got.header("webhook-id").unwrap(),
        got.header("webhook-timestamp").unwrap(),
        got.header("webhook-signature").unwrap(),
        &got.body,
        chrono::Utc::now().timestamp(),
    )
    .is_ok()
}

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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn during_a_rotation_deliveries_carry_both_signatures() {
    let env = TestEnv::start().await;
    let mut rotated = Rotated::new(&env).await;
    // The services learn of the rotation through a change notice.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = rotated.deliver(&env, 1, Duration::from_secs(15), "delivered").await;
    assert_eq!(got.header("webhook-signature").unwrap().split(' ').count(), 2);
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
    tokio::time::sleep(Duration::from_millis(300)).await;
    let during = rotated
        .deliver(&env, 1, Duration::from_secs(2), "delivered during the overlap")
        .await;
    assert!(
        verifies(&rotated.old, &during) && verifies(&rotated.new, &during),
        "both secrets sign during the overlap: {:?}",
        during.header("webhook-signature")
    );

    tokio::time::sleep_until(rotated_at + overlap + Duration::from_millis(200)).await;
    let after = rotated
        .deliver(&env, 2, Duration::from_secs(15), "delivered after the overlap")
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_test_event_is_sent_on_request_and_logged_as_test() {
    let env = TestEnv::start().await;
    let mut receiver = Receiver::start(200).await;
    let (_, key) = env.tenant("acme").await;
    let w = env
        .webhook(&key, json!({"url": receiver.url(), "events": ["company.*"]}))
        .await;
    let id = w["id"].as_str().unwrap();
    let sent = env.api("POST", &format!("/v1/webhooks/{id}/test"), &key, None).await;
    assert_eq!(sent.status, 202, "{sent:?}");
    let got = receiver
        .next(Duration::from_secs(15))
        .await
        .expect("the test event arrives");
    let body: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(body["type"], "company.created");
    assert_eq!(body["data"]["hookwire_test"], true);
    let d = env.delivery_in(&key, id, "success").await;
    assert_eq!(d["is_test"], true);
    env.stop().await;
}

/// A catalog type's example: the admin sets it, checked against the type's schema (also when
/// either changes later), customers read it, and a webhook's test sends it on request, or data
/// of the customer's own, checked against the schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_test_sends_the_types_example_or_data_its_schema_accepts() {
    let env = TestEnv::start().await;
    let schema = json!({"type": "object", "required": ["amount"], "properties": {"amount": {"type": "integer"}}});
    let invoice = |example: Value| json!({"value": "invoice.paid", "label": "Invoice paid", "schema": schema, "example": example});
    let r = env
        .admin_post("/v1/admin/event-types", invoice(json!({"amount": "ten"})))
        .await;
    assert_eq!((r.status, r.error_fields()), (400, vec!["example"]), "{r:?}");
    let r = env
        .admin_post("/v1/admin/event-types", invoice(json!({"amount": 10})))
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["example"], json!({"amount": 10}));
    // A schema the example does not meet, or an example the schema refuses: 400, nothing changed.
    let path = "/v1/admin/event-types/invoice.paid";
    let r = env
        .admin(
            "PATCH",
            path,
            Some(json!({"schema": {"type": "object", "required": ["currency"]}})),
        )
        .await;
    assert_eq!((r.status, r.error_fields()), (400, vec!["schema"]), "{r:?}");
    let r = env
        .admin("PATCH", path, Some(json!({"example": {"amount": 1.5}})))
        .await;
    assert_eq!((r.status, r.error_fields()), (400, vec!["example"]), "{r:?}");
    let (_, key) = env.tenant("acme").await;
    let shown = env.api("GET", "/v1/event-types/invoice.paid", &key, None).await;
    assert_eq!(
        (&shown.body["schema"], &shown.body["example"]),
        (&schema, &json!({"amount": 10}))
    );
    // Hookwire's own types come with examples.
    for value in ["hookwire.delivery_exhausted", "hookwire.webhook_disabled"] {
        let t = env.api("GET", &format!("/v1/event-types/{value}"), &key, None).await;
        assert!(t.body["example"]["webhook_id"].is_string(), "{t:?}");
        let violations = hookwire_core::schema::check(&t.body["schema"], &t.body["example"], 5);
        assert!(violations.is_empty(), "{value}: {violations:?}");
    }

    let mut receiver = Receiver::start(200).await;
    let w = env
        .webhook(
            &key,
            json!({"url": receiver.url(), "events": ["invoice.*", "person.created"]}),
        )
        .await;
    let id = w["id"].as_str().unwrap();
    let test = |body: Value| {
        let (env, key) = (&env, key.clone());
        async move {
            env.api("POST", &format!("/v1/webhooks/{id}/test"), &key, Some(body))
                .await
        }
    };
    let mut received = async |sent: hookwire_test_support::Response| {
        assert_eq!(sent.status, 202, "{sent:?}");
        let got = receiver.next(Duration::from_secs(15)).await.expect("the test arrives");
        let body: Value = serde_json::from_slice(&got.body).unwrap();
        (body["type"].clone(), body["data"].clone())
    };
    let example = test(json!({"event_type": "invoice.paid", "example": true})).await;
    assert_eq!(received(example).await, (json!("invoice.paid"), json!({"amount": 10})));
    let own = test(json!({"event_type": "invoice.paid", "data": {"amount": 7}})).await;
    assert_eq!(received(own).await, (json!("invoice.paid"), json!({"amount": 7})));
    for (body, field) in [
        (json!({"event_type": "invoice.paid", "data": {"amount": "x"}}), "data"),
        (json!({"event_type": "task.created"}), "event_type"),
        (json!({"event_type": "person.created", "example": true}), "example"),
        (json!({"data": {"amount": 1}, "example": true}), "example"),
    ] {
        let r = test(body.clone()).await;
        assert_eq!((r.status, r.error_fields()), (400, vec![field]), "{body}: {r:?}");
    }
    receiver.expect_nothing(Duration::from_millis(500)).await;
    env.stop().await;
}

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

/// The ids an attempt record names besides its own delivery's.
#[derive(Clone, Copy)]
struct Ids {
    webhook_id: Uuid,
    tenant_id: Uuid,
    event_id: Uuid,
}

impl Ids {
    /// A new webhook and event of `tenant`, known only to the records that name them.
    fn new(tenant: &str) -> Self {
        Self {
            webhook_id: hookwire_core::id::v7(),
            tenant_id: tenant.parse().unwrap(),
            event_id: hookwire_core::id::v7(),
        }
    }
}

/// The record of attempt `attempt` of `delivery_id`, made at `at`: a 200 succeeds, anything else
/// is to be retried. Its signature names the attempt.
fn attempt_record(ids: Ids, delivery_id: Uuid, attempt: u32, response_status: u16, at: DateTime<Utc>) -> LedgerMessage {
    LedgerMessage::AttemptRecorded(AttemptRecord {
        delivery_id,
        webhook_id: ids.webhook_id,
        tenant_id: ids.tenant_id,
        event_id: ids.event_id,
        event_type: "task.created".into(),
        subject: None,
        is_test: false,
        event_created_at: at,
        attempt,
        attempted_at: at + chrono::Duration::seconds(attempt.into()),
        response_status: Some(response_status),
        response_body: None,
        error: None,
        duration_ms: attempt * 10,
        signature: format!("v1,attempt-{attempt}"),
        status: if response_status == 200 {
            DeliveryStatus::Success
        } else {
            DeliveryStatus::Retrying
        },
        next_retry_at: None,
        in_line: false,
    })
}

/// Puts records on the ledger queue as a dispatcher does.
async fn send_to_ledger(env: &TestEnv, entries: Vec<LedgerMessage>) {
    let body = serde_json::to_vec(&LedgerMessage::Batch { entries }).unwrap();
    env.publish_amqp("", &env.topology().ledger_queue(), &body).await;
}

/// `(attempt, response_status, signature)` of each attempt in a delivery's detail.
fn attempts_of(d: &Value) -> Vec<(u64, u64, String)> {
    d["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["attempt"].as_u64().unwrap(),
                a["response_status"].as_u64().unwrap(),
                a["signature"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// A delivery's latest attempt lives in its own row and earlier ones move out when a later one
/// supersedes them. Whatever order the attempt records reach the registry in, and however often,
/// the log shows each attempt once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_log_keeps_every_attempt_whatever_order_the_records_arrive_in() {
    let env = TestEnv::start().await;
    let (tenant, key) = env.tenant("acme").await;
    let ids = Ids::new(&tenant);
    let now = Utc::now();
    let record = |delivery, attempt, status| attempt_record(ids, delivery, attempt, status, now);
    let (late, superseded, twice) = (
        hookwire_core::id::v7(),
        hookwire_core::id::v7(),
        hookwire_core::id::v7(),
    );

    // `late`'s second attempt arrives before its first; `superseded` and `twice` succeed at once.
    send_to_ledger(
        &env,
        vec![record(late, 2, 200), record(superseded, 1, 200), record(twice, 1, 200)],
    )
    .await;
    env.wait_for(&format!("/v1/deliveries/{twice}"), &key, |b| b["status"] == "success")
        .await;
    // Then: `late`'s first attempt, a second attempt of `superseded` (a retry by hand), and
    // `twice`'s first attempt again (a redelivered batch).
    send_to_ledger(
        &env,
        vec![record(late, 1, 500), record(superseded, 2, 503), record(twice, 1, 200)],
    )
    .await;
    env.wait_for(&format!("/v1/deliveries/{superseded}"), &key, |b| {
        b["attempt_count"] == 2
    })
    .await;

    let get = |id: Uuid| {
        let (env, key) = (&env, key.clone());
        async move { env.api("GET", &format!("/v1/deliveries/{id}"), &key, None).await.body }
    };
    // Each delivery's status, and its attempts' response codes in order, each with its signature.
    for (id, status, codes) in [
        (late, "success", vec![500u64, 200]),
        (superseded, "retrying", vec![200, 503]),
        (twice, "success", vec![200]),
    ] {
        let d = get(id).await;
        assert_eq!(
            (&d["status"], &d["response_status"]),
            (&json!(status), &json!(codes.last()))
        );
        assert_eq!(d["attempt_count"], codes.len());
        let expected: Vec<(u64, u64, String)> = (1..)
            .zip(codes)
            .map(|(n, code)| (n, code, format!("v1,attempt-{n}")))
            .collect();
        assert_eq!(attempts_of(&d), expected, "{d}");
    }
    env.stop().await;
}

/// Deliveries, their attempts and their events' payloads older than `retention.deliveries` are
/// deleted, unless the delivery is still being retried; younger ones stay whole. Passes run back to
/// back, so the ledger writes these deliveries during one: a pass that read which deliveries are
/// under way only at its start deleted the retrying one's attempt and event in about half the runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_log_forgets_finished_deliveries_older_than_its_retention() {
    let env = TestEnv::start_with(|o| {
        o.registry.retention.deliveries = Duration::from_secs(3600);
        o.registry.retention.interval = Duration::from_millis(2);
    })
    .await;
    let (tenant, key) = env.tenant("acme").await;
    let tenant_id: Uuid = tenant.parse().unwrap();
    // Ids as the publisher makes them (UUIDv7), from two hours ago and from now.
    let v7_at = |at: DateTime<Utc>| {
        let ms = u64::try_from(at.timestamp_millis()).unwrap();
        Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, ms / 1000, 0))
    };
    let old_at = Utc::now() - chrono::Duration::hours(2);
    let mut ids = Vec::new();
    let mut entries = Vec::new();
    // Each delivery has two attempts, so one has a row of its own (the other is in the delivery's
    // row): old and finished, old and still being retried, young and finished.
    for (at, last_status) in [(old_at, 200), (old_at, 500), (Utc::now(), 200)] {
        let (event_id, delivery_id, webhook_id) = (v7_at(at), v7_at(at), hookwire_core::id::v7());
        entries.push(LedgerMessage::EventRouted {
            event: hookwire_core::messages::Event {
                id: event_id,
                event_type: "task.created".into(),
                tenant_id: Some(tenant_id),
                subject: None,
                channels: vec![],
                data: json!({"at": at}),
                is_test: false,
                created_at: at,
            },
            deliveries: vec![hookwire_core::messages::RoutedDelivery {
                delivery_id,
                webhook_id,
                tenant_id,
            }],
        });
        let who = Ids {
            webhook_id,
            tenant_id,
            event_id,
        };
        entries.push(attempt_record(who, delivery_id, 1, 500, at));
        entries.push(attempt_record(who, delivery_id, 2, last_status, at));
        ids.push(delivery_id);
    }
    // API idempotency keys hold for 24 hours.
    env.psql(
        "INSERT INTO api_idempotency_keys (scope, key, fingerprint, holder, created_at)
         VALUES ('\\x00', 'expired', '\\x00', gen_random_uuid(), now() - interval '25 hours'),
                ('\\x00', 'fresh', '\\x00', gen_random_uuid(), now() - interval '23 hours')",
    )
    .expect("the keys are inserted");
    // Erasure requests are looked for by the ledger for 31 days.
    env.psql(
        "INSERT INTO event_erasures (id, subject, requested_at)
         VALUES (gen_random_uuid(), 'expired', now() - interval '32 days'),
                (gen_random_uuid(), 'fresh', now() - interval '30 days')",
    )
    .expect("the requests are inserted");
    // Resends by hand are listed for dispatchers for 25 hours.
    env.psql(
        "INSERT INTO delivery_resends (delivery_id, resent_at)
         VALUES ('00000000-0000-0000-0000-000000000001', now() - interval '26 hours'),
                ('00000000-0000-0000-0000-000000000002', now() - interval '24 hours')",
    )
    .expect("the resends are inserted");
    send_to_ledger(&env, entries).await;

    // An operator sees what went: one row of each of the log's tables.
    let one_row_each = || async {
        for t in ["deliveries", "delivery_attempts", "events"] {
            let series = format!(r#"hookwire_registry_retention_deleted_total{{table="{t}"}}"#);
            (env.metric(&env.registry, &series).await? == 1.0).then_some(())?;
        }
        Some(())
    };
    assert!(
        eventually(Duration::from_secs(15), one_row_each).await.is_some(),
        "the old finished delivery, its attempt and its event were not deleted"
    );
    // Another pass or two, to see they delete nothing more.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(one_row_each().await.is_some(), "a later pass deleted more");
    assert_eq!(
        env.psql("SELECT string_agg(key, ',') FROM api_idempotency_keys")
            .as_deref(),
        Some("fresh")
    );
    assert_eq!(
        env.psql("SELECT string_agg(subject, ',') FROM event_erasures")
            .as_deref(),
        Some("fresh")
    );
    assert_eq!(
        env.psql("SELECT string_agg(delivery_id::text, ',') FROM delivery_resends")
            .as_deref(),
        Some("00000000-0000-0000-0000-000000000002")
    );

    let detail = |id: Uuid| {
        let (env, key) = (&env, key.clone());
        async move { env.api("GET", &format!("/v1/deliveries/{id}"), &key, None).await }
    };
    assert_eq!(detail(ids[0]).await.status, 404);
    for kept in [ids[1], ids[2]] {
        let d = detail(kept).await;
        assert_eq!(d.status, 200);
        assert_eq!(d.body["attempts"].as_array().map(Vec::len), Some(2), "{:?}", d.body);
        assert!(d.body["payload"]["data"]["at"].is_string(), "{:?}", d.body);
    }
    let listed = env.api("GET", "/v1/deliveries", &key, None).await;
    assert_eq!(listed.body["count"], 2);
    env.stop().await;
}

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

/// A long log is counted only up to `http.count_limit`: past it `count` is a lower bound the
/// response says is one, and the `next` links still lead through every delivery to the last
/// page, whose count is exact. A filter matching fewer is counted exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_long_log_is_counted_up_to_a_bound_and_paged_to_its_end() {
    let env = TestEnv::start_with(|o| o.registry.http.count_limit = 5).await;
    let (tenant, key) = env.tenant("acme").await;
    let ids = Ids::new(&tenant);
    let now = Utc::now();
    let written: Vec<Uuid> = (0..12).map(|_| hookwire_core::id::v7()).collect();
    let records = written
        .iter()
        .enumerate()
        .map(|(i, &d)| attempt_record(ids, d, 1, if i < 2 { 500 } else { 200 }, now))
        .collect();
    send_to_ledger(&env, records).await;
    env.wait_for(&format!("/v1/deliveries/{}", written[11]), &key, |b| {
        b["status"] == "success"
    })
    .await;

    // Pages are read by following `next`, and deliveries written meanwhile (three, newer than
    // all) shift nothing: every delivery once, newest first (the twelve share one `created_at`,
    // so their ids order them). With offsets, the three would push page 1's last rows onto page 2.
    let base = env.registry.clone();
    let get = |path: String| {
        let (env, key, base) = (&env, key.clone(), base.clone());
        async move {
            let page = env.api("GET", &path, &key, None).await;
            assert_eq!(page.status, 200, "{page:?}");
            let ids: Vec<Uuid> = page.body["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["id"].as_str().unwrap().parse().unwrap())
                .collect();
            let link = |name: &str| {
                page.body[name]
                    .as_str()
                    .map(|l| l.strip_prefix(&base).unwrap().to_owned())
            };
            let count = (
                page.body["count"].as_i64().unwrap(),
                page.body["count_exact"].as_bool().unwrap(),
            );
            (ids, count, link("next"), link("previous"))
        }
    };
    let (first, count, mut next, _) = get("/v1/deliveries?limit=4".into()).await;
    let mut newer: Vec<Uuid> = (0..3).map(|_| hookwire_core::id::v7()).collect();
    let later = Utc::now() + chrono::Duration::seconds(1);
    send_to_ledger(
        &env,
        newer.iter().map(|&d| attempt_record(ids, d, 1, 200, later)).collect(),
    )
    .await;
    env.wait_for(&format!("/v1/deliveries/{}", newer[2]), &key, |b| {
        b["status"] == "success"
    })
    .await;
    let (mut pages, mut counts, mut last) = (vec![first], vec![count], String::new());
    while let Some(path) = next {
        let (page, count, n, _) = get(path.clone()).await;
        (next, last) = (n, path);
        pages.push(page);
        counts.push(count);
    }
    let mut newest_first: Vec<Uuid> = written.iter().rev().copied().collect();
    assert_eq!(
        pages.concat(),
        newest_first,
        "every delivery once, newest first: {pages:?}"
    );
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), vec![4, 4, 4]);
    // Past the bound of 5 the count is a lower bound.
    assert_eq!(counts, vec![(5, false); 3]);
    // Back from the last page by `previous`, up to the three written meanwhile.
    let mut back = Vec::new();
    let mut previous = Some(last);
    while let Some(path) = previous {
        let (page, _, _, p) = get(path).await;
        back.push(page);
        previous = p;
    }
    back.reverse();
    newer.reverse();
    newer.append(&mut newest_first);
    assert_eq!(back.concat(), newer, "{back:?}");
    // An offset still reads from where it says, and the last page of an offset counts exactly.
    let end = env.api("GET", "/v1/deliveries?limit=4&offset=12", &key, None).await;
    assert_eq!(
        (
            &end.body["count"],
            &end.body["count_exact"],
            end.body["results"].as_array().unwrap().len()
        ),
        (&json!(15), &json!(true), 3)
    );
    for bad in ["cursor=abc", "cursor=bjEuMQ&offset=4"] {
        let r = env.api("GET", &format!("/v1/deliveries?{bad}"), &key, None).await;
        assert_eq!((r.status, r.error_fields()), (400, vec!["cursor"]), "{r:?}");
    }

    let failing = env.api("GET", "/v1/deliveries?status=retrying", &key, None).await;
    assert_eq!(
        (&failing.body["count"], &failing.body["count_exact"]),
        (&json!(2), &json!(true))
    );
    // Past the end of a long log: no rows, and the count still only a lower bound.
    let beyond = env.api("GET", "/v1/deliveries?offset=100", &key, None).await;
    assert_eq!(
        (
            &beyond.body["count"],
            &beyond.body["count_exact"],
            &beyond.body["results"]
        ),
        (&json!(5), &json!(false), &json!([]))
    );
    env.stop().await;
}

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

/// A webhook's stats count its deliveries of a window by status, with the success rate of those
/// that ended; another tenant cannot read them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_webhooks_stats_count_its_deliveries_of_a_window_by_status() {
    let env = TestEnv::start().await;
    let (tenant, key) = env.tenant("acme").await;
    let (_, other_key) = env.tenant("other").await;
    let hook = env
        .webhook(
            &key,
            json!({"url": "http://127.0.0.1:9/", "events": ["*"], "is_active": false}),
        )
        .await;
    let hook_id = hook["id"].as_str().unwrap().to_owned();
    let ids = Ids {
        webhook_id: hook_id.parse().unwrap(),
        ..Ids::new(&tenant)
    };
    let now = Utc::now();
    let two_days_ago = now - chrono::Duration::days(2);
    let mut records: Vec<LedgerMessage> = [200, 200, 200, 500]
        .iter()
        .map(|&status| attempt_record(ids, hookwire_core::id::v7(), 1, status, now))
        .collect();
    let old = hookwire_core::id::v7();
    records.push(attempt_record(ids, old, 1, 200, two_days_ago));
    send_to_ledger(&env, records).await;
    env.wait_for(&format!("/v1/deliveries/{old}"), &key, |b| b["status"] == "success")
        .await;

    let path = format!("/v1/webhooks/{hook_id}/stats");
    let day = env.api("GET", &path, &key, None).await;
    assert_eq!(day.status, 200, "{day:?}");
    assert_eq!(day.body["total"], 4);
    assert_eq!(
        day.body["counts"],
        json!({"waiting": 0, "pending": 0, "retrying": 1, "success": 3, "failed": 0, "exhausted": 0})
    );
    assert_eq!(day.body["success_rate"], 1.0, "the retrying one has not ended");
    let since = (now - chrono::Duration::days(3)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let longer = env.api("GET", &format!("{path}?since={since}"), &key, None).await;
    assert_eq!(
        (&longer.body["total"], &longer.body["counts"]["success"]),
        (&json!(5), &json!(4))
    );
    let until = (now - chrono::Duration::days(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let before = env
        .api("GET", &format!("{path}?since={since}&until={until}"), &key, None)
        .await;
    assert_eq!(before.body["total"], 1, "{before:?}");
    let none = env
        .api("GET", &format!("{path}?until={since}&since={until}"), &key, None)
        .await;
    // A window that ends before it starts holds nothing.
    assert_eq!((none.status, &none.body["total"]), (200, &json!(0)), "{none:?}");
    assert_eq!(env.api("GET", &path, &other_key, None).await.status, 404);
    env.stop().await;
}

/// With a `statement_timeout` in `database.url`, a request whose query runs past it answers 503
/// `query_timeout` saying to narrow it, not 500: here a replay over a window of 500,000 events
/// of another tenant (130–200 ms to read here), with a timeout of 50 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_query_past_the_databases_statement_timeout_answers_503_saying_to_narrow_it() {
    let env = TestEnv::start_with(|o| {
        o.registry.database.url = format!("{}&options=-c%20statement_timeout%3D50", o.registry.database.url);
    })
    .await;
    let (_, key) = env.tenant("acme").await;
    let hook = env
        .webhook(&key, json!({"url": "http://127.0.0.1:9/", "events": ["task.*"]}))
        .await;
    // psql reads the same URL, timeout included: this statement lifts it for itself.
    env.psql(
        "SET statement_timeout = 0; INSERT INTO events (id, tenant_id, event_type, payload, created_at)
         SELECT encode(overlay(uuid_send(gen_random_uuid()) PLACING
                substring(int8send((extract(epoch FROM at) * 1000)::bigint) FROM 3) FROM 1 FOR 6), 'hex')::uuid,
                gen_random_uuid(), 'task.created', '{}', at
         FROM (SELECT now() - i * interval '100 ms' AS at FROM generate_series(1, 500000) i) s",
    )
    .expect("events inserted");
    let since = (Utc::now() - chrono::Duration::days(1)).to_rfc3339();
    let r = env
        .api(
            "POST",
            &format!("/v1/webhooks/{}/replay", hook["id"].as_str().unwrap()),
            &key,
            Some(json!({"since": since})),
        )
        .await;
    assert_eq!(
        (r.status, &r.body["type"]),
        (503, &json!("https://hookwire.dev/problems/query_timeout")),
        "{r:?}"
    );
    assert!(
        r.body["detail"].as_str().unwrap().contains("narrow the request"),
        "{r:?}"
    );
    assert_eq!(r.header("retry-after"), None);
    env.stop().await;
}

/// An erasure (a data-protection request) takes an event's payload and its receivers' answers
/// out of the log, and its retries still waiting in the broker end unsent; other events keep
/// theirs. By subject through the API, by event through the admin command.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_erased_event_leaves_the_log_and_its_retries_end_unsent() {
    let env = TestEnv::start().await;
    let mut receiver = Receiver::start(500).await;
    let (tenant, key) = env.tenant("acme").await;
    let w = env
        .webhook(
            &key,
            json!({"url": receiver.url(), "events": ["person.*"],
                   "retry_policy": {"strategy": "fixed", "interval_seconds": 2, "max_retries": 10}}),
        )
        .await;
    let id = w["id"].as_str().unwrap().to_owned();
    // A second webhook whose receiver takes every event at once: the log keeps its answer.
    let taker = Receiver::start(200).await;
    let w2 = env
        .webhook(&key, json!({"url": taker.url(), "events": ["person.*"]}))
        .await;
    let id2 = w2["id"].as_str().unwrap().to_owned();
    env.wait_routed(2).await;
    let mut events = Vec::new();
    for person in ["person/1", "person/2"] {
        let r = env
            .publish(json!({"type": "person.updated", "tenant_id": tenant, "subject": person,
                            "data": {"email": format!("{person}@example.com")}}))
            .await;
        events.push(r.body["event_id"].as_str().unwrap().to_owned());
    }
    let (erased, kept) = (&events[0], &events[1]);
    let delivery_of = |event: &str, webhook: &str| {
        let path = format!("/v1/deliveries?event_id={event}&webhook_id={webhook}");
        let key = key.clone();
        let env = &env;
        async move {
            let page = env.wait_for(&path, &key, |b| b["count"] == 1).await;
            page["results"][0]["id"].as_str().unwrap().to_owned()
        }
    };
    let (erased_delivery, kept_delivery) = (delivery_of(erased, &id).await, delivery_of(kept, &id).await);
    let (erased_taken, kept_taken) = (delivery_of(erased, &id2).await, delivery_of(kept, &id2).await);
    // The first webhook's have had an attempt answered 500 "received", and retry every 2 s; the
    // second's succeeded, answered 200 "received".
    for (d, status) in [
        (&erased_delivery, "retrying"),
        (&kept_delivery, "retrying"),
        (&erased_taken, "success"),
        (&kept_taken, "success"),
    ] {
        env.wait_for(&format!("/v1/deliveries/{d}"), &key, |b| {
            b["status"] == status && b["response_body"] == "received"
        })
        .await;
    }

    // Refused: no selector, both, a malformed id, the wrong token.
    for body in [
        json!({}),
        json!({"event_id": erased, "subject": "person/1"}),
        json!({"event_id": "nope"}),
        json!({"subject": ""}),
    ] {
        let r = env.admin_post("/v1/admin/events/expunge", body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {r:?}");
    }
    let r = env
        .api(
            "POST",
            "/v1/admin/events/expunge",
            &key,
            Some(json!({"subject": "person/1"})),
        )
        .await;
    assert_eq!(r.status, 401, "{r:?}");
    // Another tenant's events of the same subject: none.
    let (other, _) = env.tenant("other").await;
    let r = env
        .admin_post(
            "/v1/admin/events/expunge",
            json!({"subject": "person/1", "tenant_id": other}),
        )
        .await;
    assert_eq!((r.status, &r.body["events_expunged"]), (200, &json!(0)), "{r:?}");

    let r = env
        .admin_post(
            "/v1/admin/events/expunge",
            json!({"subject": "person/1", "tenant_id": tenant}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.body,
        json!({"events_expunged": 1, "deliveries_cleared": 2, "deliveries_stopped": 1})
    );
    let again = env
        .admin_post("/v1/admin/events/expunge", json!({"subject": "person/1"}))
        .await;
    assert_eq!(again.body["events_expunged"], 0, "{again:?}");

    // From now on only the kept event's retries arrive (the erased one's ends at its turn).
    // Counted from 200 ms after the answer: dispatchers hear of the erasure a moment after it,
    // and an attempt already under way then completes.
    let erased_at = std::time::Instant::now();
    let mut kept_seen = 0;
    while erased_at.elapsed() < Duration::from_secs(6) {
        let Some(got) = receiver.next(Duration::from_millis(500)).await else {
            continue;
        };
        if got.at < erased_at + Duration::from_millis(200) {
            continue;
        }
        let sent = got.header("webhook-id").unwrap_or_default().to_owned();
        assert_eq!(&sent, kept, "the erased event was sent after its erasure");
        kept_seen += 1;
    }
    assert!(kept_seen >= 2, "the kept event's retries went on: {kept_seen}");
    ends_unsent_as_erased(&env, &key, &erased_delivery).await;
    // The delivery that had ended keeps its status, without the receiver's answer.
    let t = env
        .api("GET", &format!("/v1/deliveries/{erased_taken}"), &key, None)
        .await;
    assert_eq!(
        (&t.body["status"], &t.body["response_body"], &t.body["payload"]),
        (&json!("success"), &Value::Null, &Value::Null),
        "{t:?}"
    );
    let t = env
        .api("GET", &format!("/v1/deliveries/{kept_taken}"), &key, None)
        .await;
    assert_eq!(t.body["response_body"], "received", "{t:?}");
    let k = env
        .api("GET", &format!("/v1/deliveries/{kept_delivery}"), &key, None)
        .await;
    assert_eq!(
        k.body["payload"]["data"],
        json!({"email": "person/2@example.com"}),
        "{k:?}"
    );
    assert_eq!(
        (&k.body["response_body"], &k.body["payload_expunged_at"]),
        (&json!("received"), &Value::Null)
    );
    let r = env
        .api("POST", &format!("/v1/deliveries/{erased_delivery}/retry"), &key, None)
        .await;
    assert_eq!(r.status, 409, "{r:?}");
    assert!(r.body["type"].as_str().unwrap().ends_with("/payload_expunged"), "{r:?}");
    // A dispatcher that starts now learns of it from the routing snapshot.
    let routing = env.admin("GET", "/v1/internal/routing", None).await;
    assert_eq!(routing.body["expunged"], json!([erased]), "{routing:?}");

    // The admin command, by event id: the kept event's retries stop too.
    let (code, out) = env.registry_admin(&["expunge-events", "--event-id", kept]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"events_expunged\": 1"), "{out}");
    env.wait_for(&format!("/v1/deliveries/{kept_delivery}"), &key, |b| {
        b["status"] == "failed"
    })
    .await;
    receiver
        .expect_nothing_since(std::time::Instant::now(), Duration::from_secs(3))
        .await;
    env.stop().await;
}

/// Waits until delivery `id` has ended unsent because its event's payload was erased, and checks
/// the log keeps neither the payload nor the receiver's answer.
async fn ends_unsent_as_erased(env: &TestEnv, key: &str, id: &str) {
    let d = env
        .wait_for(&format!("/v1/deliveries/{id}"), key, |b| b["status"] == "failed")
        .await;
    assert!(d["error"].as_str().unwrap().starts_with("payload_expunged"), "{d}");
    assert_eq!(
        (&d["payload"], &d["response_body"]),
        (&Value::Null, &Value::Null),
        "{d}"
    );
    assert!(d["payload_expunged_at"].is_string(), "{d}");
}

/// An erasure asked while the delivery log is behind (the registry down, its ledger queue
/// growing) covers the events still on their way: they are written without their payloads and
/// receivers' answers, and their retries end unsent once the log has them. Events of other
/// subjects, and those accepted after the request, are kept.
#[tokio::test]
async fn an_event_erased_before_it_reaches_the_log_is_written_erased() {
    let mut env = TestEnv::start().await;
    let mut receiver = Receiver::start(500).await;
    let (tenant, key) = env.tenant("acme").await;
    let w1 = env
        .webhook(
            &key,
            json!({"url": receiver.url(), "events": ["person.*"],
               "retry_policy": {"strategy": "fixed", "interval_seconds": 2, "max_retries": 10}}),
        )
        .await;
    // A second webhook whose receiver takes every event at once, answering 200 "received".
    let mut taker = Receiver::start(200).await;
    let w2 = env
        .webhook(&key, json!({"url": taker.url(), "events": ["person.*"]}))
        .await;
    env.wait_routed(2).await;
    env.stop_registry().await;
    let publish = |person: &'static str| {
        let (env, tenant) = (&env, &tenant);
        async move {
            let r = env
                .publish(json!({"type": "person.updated", "tenant_id": tenant, "subject": person,
                                "data": {"email": format!("{person}@example.com")}}))
                .await;
            assert_eq!(r.status, 202, "{r:?}");
            r.body["event_id"].as_str().unwrap().to_owned()
        }
    };
    let (erased, kept) = (publish("person/1").await, publish("person/2").await);
    // Both are sent (answered 500 "received") while the log cannot take them.
    let mut first = std::collections::HashSet::new();
    while first.len() < 2 {
        let got = receiver.next(Duration::from_secs(10)).await.expect("a first attempt");
        first.insert(got.header("webhook-id").unwrap_or_default().to_owned());
    }
    assert_eq!(first, [erased.clone(), kept.clone()].into(), "first attempts");
    for _ in 0..2 {
        taker.next(Duration::from_secs(10)).await.expect("taken");
    }
    assert_eq!(
        env.psql(&format!("SELECT count(*) FROM events WHERE id = '{erased}'")),
        Some("0".into())
    );

    let (code, out) = env.registry_admin(&["expunge-events", "--subject", "person/1"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"events_expunged\": 0"), "nothing in the log yet: {out}");
    // Accepted after the request: the same subject, kept.
    let later = publish("person/1").await;
    env.start_registry().await;

    let taken = format!(
        "/v1/deliveries?webhook_id={}&status=success",
        w2["id"].as_str().unwrap()
    );
    let page = env.wait_for(&taken, &key, |b| b["count"] == 3).await;
    for d in page["results"].as_array().unwrap() {
        let body = if d["event_id"] == json!(erased) {
            Value::Null
        } else {
            json!("received")
        };
        let detail = env
            .api(
                "GET",
                &format!("/v1/deliveries/{}", d["id"].as_str().unwrap()),
                &key,
                None,
            )
            .await;
        assert_eq!(detail.body["response_body"], body, "{detail:?}");
    }
    let delivery = |event: &str| {
        let path = format!(
            "/v1/deliveries?event_id={event}&webhook_id={}",
            w1["id"].as_str().unwrap()
        );
        let (env, key) = (&env, &key);
        async move {
            let page = env.wait_for(&path, key, |b| b["count"] == 1).await;
            page["results"][0]["id"].as_str().unwrap().to_owned()
        }
    };
    let erased_delivery = delivery(&erased).await;
    ends_unsent_as_erased(&env, &key, &erased_delivery).await;
    // Its chain has ended: anything received from now on was sent after that.
    let ended = std::time::Instant::now();
    for (event, email) in [(&kept, "person/2@example.com"), (&later, "person/1@example.com")] {
        let id = delivery(event).await;
        let k = env
            .wait_for(&format!("/v1/deliveries/{id}"), &key, |b| {
                b["response_body"] == "received"
            })
            .await;
        assert_eq!(
            (&k["status"], &k["payload"]["data"]["email"], &k["payload_expunged_at"]),
            (&json!("retrying"), &json!(email), &Value::Null),
            "{k}"
        );
    }
    // From then on the erased event is never sent again; the others' retries go on. (Retries
    // sent before it ended may still be waiting to be read.)
    let watched = std::time::Instant::now();
    let mut seen = std::collections::HashSet::new();
    while watched.elapsed() < Duration::from_secs(5) {
        if let Some(got) = receiver.next(Duration::from_millis(500)).await {
            if got.at >= ended {
                seen.insert(got.header("webhook-id").unwrap_or_default().to_owned());
            }
        }
    }
    assert_eq!(seen, [kept, later].into(), "retried after the erasure was written");
    env.stop().await;
}

/// A ledger batch written while an erasure's transaction is open waits for it, then sees its
/// request: PostgreSQL takes a statement's snapshot after the statement's locks, so the erasure's
/// lock on the log is what keeps an event accepted before the request from slipping past both.
#[tokio::test]
async fn a_batch_written_during_an_erasure_sees_its_request() {
    let env = TestEnv::start().await;
    let mut receiver = Receiver::start(200).await;
    let (tenant, key) = env.tenant("acme").await;
    env.webhook(&key, json!({"url": receiver.url(), "events": ["person.*"]}))
        .await;
    env.wait_routed(1).await;
    // An erasure's transaction as `EventRow::expunge` makes it: the lock first, then (1 s later,
    // the event accepted meanwhile) the request, committed a second after that.
    let url = env.database_url().to_owned();
    let erasure = std::thread::spawn(move || {
        std::process::Command::new("psql")
            .args([
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                "BEGIN; LOCK TABLE events, deliveries IN SHARE ROW EXCLUSIVE MODE; SELECT pg_sleep(1);
                 INSERT INTO event_erasures (id, subject, requested_at)
                     VALUES (gen_random_uuid(), 'person/7', clock_timestamp());
                 SELECT pg_sleep(1); COMMIT;",
                &url,
            ])
            .output()
            .expect("psql runs")
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = env
        .publish(
            json!({"type": "person.updated", "tenant_id": tenant, "subject": "person/7",
                        "data": {"email": "person/7@example.com"}}),
        )
        .await;
    let event = r.body["event_id"].as_str().unwrap().to_owned();
    let got = receiver.next(Duration::from_secs(10)).await.expect("delivered");
    assert_eq!(got.header("webhook-id"), Some(event.as_str()));
    let out = tokio::task::spawn_blocking(move || erasure.join().expect("joined"))
        .await
        .expect("joined");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let page = env
        .wait_for(&format!("/v1/deliveries?event_id={event}&status=success"), &key, |b| {
            b["count"] == 1
        })
        .await;
    let d = env
        .api(
            "GET",
            &format!("/v1/deliveries/{}", page["results"][0]["id"].as_str().unwrap()),
            &key,
            None,
        )
        .await;
    assert_eq!(
        (&d.body["payload"], &d.body["response_body"]),
        (&Value::Null, &Value::Null),
        "{d:?}"
    );
    assert!(d.body["payload_expunged_at"].is_string(), "{d:?}");
    env.stop().await;
}

/// A retry by hand while the delivery's retries are under way replaces them: the receiver gets
/// one chain of attempts (the one by hand, then its retries), each recorded once under its own
/// number. Before, the chain waiting in the broker went on beside it: two requests per turn, and
/// attempts of the same number of which the log kept one.
#[tokio::test]
async fn a_retry_by_hand_replaces_the_retries_under_way() {
    let env = TestEnv::start().await;
    let z = Duration::ZERO;
    let mut receiver = Receiver::scripted(vec![(500, z), (500, z), (500, z), (200, z)]).await;
    let (key, id) = retry_by_hand_under_way(&env, &mut receiver, 2).await;
    // The attempt by hand (500), its retry 2 s later (500), the next (200); then nothing.
    let mut received = 1;
    while receiver.next(Duration::from_secs(5)).await.is_some() {
        received += 1;
    }
    let d = env
        .wait_for(&format!("/v1/deliveries/{id}"), &key, |b| b["status"] == "success")
        .await;
    let numbers: Vec<&Value> = d["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["attempt"])
        .collect();
    assert_eq!(
        (received, &d["attempt_count"], numbers),
        (4, &json!(4), vec![&json!(1), &json!(2), &json!(3), &json!(4)]),
        "{d}"
    );
    let dropped = env
        .metric(&env.dispatcher, "hookwire_dispatcher_superseded_total")
        .await;
    assert_eq!(dropped, Some(1.0), "the replaced chain's task was dropped once");
    env.stop().await;
}

/// A dispatcher that starts after a retry by hand (a new replica, or every one after a rollout)
/// did not hear the notice that replaced the delivery's chain; it learns it from the registry's
/// routing snapshot, and drops the old chain's task all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dispatcher_started_after_a_retry_by_hand_drops_the_chain_it_replaced() {
    let env = TestEnv::start_with(|o| o.in_process_dispatcher = false).await;
    let first = env.spawn_dispatcher_process(free_port()).await;
    let z = Duration::ZERO;
    let mut receiver = Receiver::scripted(vec![(500, z), (200, z)]).await;
    let (key, id) = retry_by_hand_under_way(&env, &mut receiver, 12).await;
    receiver
        .next(Duration::from_secs(10))
        .await
        .expect("the attempt by hand");
    // The only dispatcher that heard the notice goes; the chain's retry is still up to 12 s
    // away (a margin for a loaded machine: the retry must reach the second dispatcher).
    assert!(terminate(first).success());
    let port = free_port();
    let _second = env.spawn_dispatcher_process(port).await;
    env.wait_for(&format!("/v1/deliveries/{id}"), &key, |b| b["status"] == "success")
        .await;
    // The old chain's retry reaches the new dispatcher, which drops it: counted, never sent.
    let metrics = format!("http://127.0.0.1:{port}");
    let dropped = eventually(Duration::from_secs(40), || async {
        env.metric(&metrics, "hookwire_dispatcher_superseded_total")
            .await
            .filter(|n| *n >= 1.0)
    })
    .await;
    assert_eq!(dropped, Some(1.0), "the replaced chain's task was dropped");
    receiver.expect_nothing(Duration::from_secs(1)).await;
    env.stop().await;
}

/// A webhook retrying every `interval` seconds, an event whose first attempt `receiver` fails,
/// and a retry by hand of its delivery while the retry waits: the tenant's key and the
/// delivery's id.
async fn retry_by_hand_under_way(env: &TestEnv, receiver: &mut Receiver, interval: u32) -> (String, String) {
    let (tenant, key) = env.tenant("acme").await;
    env.webhook(
        &key,
        json!({"url": receiver.url(), "events": ["person.*"],
               "retry_policy": {"strategy": "fixed", "interval_seconds": interval, "max_retries": 10}}),
    )
    .await;
    env.wait_routed(1).await;
    let r = env
        .publish(json!({"type": "person.updated", "tenant_id": tenant, "data": {"n": 1}}))
        .await;
    let event = r.body["event_id"].as_str().unwrap().to_owned();
    receiver.next(Duration::from_secs(10)).await.expect("the first attempt");
    let page = env
        .wait_for(&format!("/v1/deliveries?event_id={event}"), &key, |b| {
            b["count"] == 1 && b["results"][0]["status"] == "retrying"
        })
        .await;
    let id = page["results"][0]["id"].as_str().unwrap().to_owned();
    let r = env.api("POST", &format!("/v1/deliveries/{id}/retry"), &key, None).await;
    assert_eq!(r.status, 202, "{r:?}");
    (key, id)
}

/// Once the broker has confirmed a retry's task, the retry went out: a database write that
/// fails after it (noting a resend for the routing snapshot, marking recovered deliveries
/// `retrying`) is logged, and the caller still gets 202, never an error that would have it send
/// the retry again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_the_broker_took_is_answered_202_when_the_log_write_after_it_fails() {
    let env = TestEnv::start().await;
    let z = Duration::ZERO;

    env.psql(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS
             $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$",
    )
    .expect("the function is created");

    // A retry by hand of a delivery under way, whose resend cannot be noted.
    env.psql(
        "CREATE TRIGGER refuse_resends BEFORE INSERT ON delivery_resends FOR EACH ROW
             EXECUTE FUNCTION refuse()",
    )
    .expect("the trigger is created");
    let mut under_way = Receiver::scripted(vec![(500, z), (200, z)]).await;
    let (key, id) = retry_by_hand_under_way(&env, &mut under_way, 30).await;
    under_way
        .next(Duration::from_secs(10))
        .await
        .expect("the attempt by hand went out");
    env.wait_for(&format!("/v1/deliveries/{id}"), &key, |b| b["status"] == "success")
        .await;
    env.psql("DROP TRIGGER refuse_resends ON delivery_resends")
        .expect("the trigger is dropped");
    assert_eq!(
        env.psql("SELECT count(*) FROM delivery_resends").as_deref(),
        Some("0"),
        "the resend was not noted"
    );

    // A recover whose deliveries cannot be marked `retrying`.
    let mut receiver = Receiver::scripted(vec![(500, z), (200, z)]).await;
    let (tenant, key) = env.tenant("recover").await;
    let w = env
        .webhook(
            &key,
            json!({"url": receiver.url(), "events": ["task.*"], "retry_count": 0}),
        )
        .await;
    let webhook = w["id"].as_str().unwrap().to_owned();
    env.wait_routed(2).await;
    env.publish(json!({"type": "task.updated", "tenant_id": tenant, "data": {}}))
        .await;
    receiver.next(Duration::from_secs(10)).await.expect("the first attempt");
    env.wait_for(
        &format!("/v1/deliveries?webhook_id={webhook}&status=exhausted"),
        &key,
        |b| b["count"] == 1,
    )
    .await;
    env.psql(
        "CREATE TRIGGER refuse_retrying BEFORE UPDATE ON deliveries FOR EACH ROW
             WHEN (NEW.status = 'retrying' AND OLD.status IN ('failed', 'exhausted'))
             EXECUTE FUNCTION refuse()",
    )
    .expect("the trigger is created");
    let since = (Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let r = env
        .api(
            "POST",
            &format!("/v1/webhooks/{webhook}/recover"),
            &key,
            Some(json!({"since": since})),
        )
        .await;
    env.psql("DROP TRIGGER refuse_retrying ON deliveries")
        .expect("the trigger is dropped");
    assert_eq!((r.status, &r.body["retried"]), (202, &json!(1)), "{r:?}");
    receiver
        .next(Duration::from_secs(10))
        .await
        .expect("the recovered delivery went out");
    env.wait_for(
        &format!("/v1/deliveries?webhook_id={webhook}&status=success"),
        &key,
        |b| b["count"] == 1,
    )
    .await;
    env.stop().await;
}
