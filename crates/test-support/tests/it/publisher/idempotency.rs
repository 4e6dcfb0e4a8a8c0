//! Idempotency keys: an event sent once per key, across requests at once, publishers and unconfirmed publishes.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idempotency_key_sends_an_event_once() {
    let env = TestEnv::start().await;
    let mut rx = Receiver::start(200).await;
    let (tenant, key) = env.tenant("acme").await;
    let (other_tenant, other_key) = env.tenant("other").await;
    env.webhook(&key, json!({"url": rx.url(), "events": ["*"]})).await;
    env.webhook(&other_key, json!({"url": rx.url(), "events": ["*"]})).await;
    env.wait_routed(2).await;
    let event = json!({"type": "person.created", "tenant_id": tenant, "data": {}, "idempotency_key": "order-1"});
    let first = env.publish(event.clone()).await;
    assert_eq!(first.status, 202, "{first:?}");
    assert_eq!(first.body["matched"], 1);
    let again = env.publish(event).await;
    assert_eq!(again.status, 202);
    assert_eq!(
        again.body["event_id"], first.body["event_id"],
        "the first event id comes back"
    );
    assert_eq!(again.body["matched"], 0);
    assert_eq!(again.body["duplicate"], true);
    // The same key in another tenant is another event.
    let theirs = env
        .publish(json!({"type": "person.created", "tenant_id": other_tenant, "data": {}, "idempotency_key": "order-1"}))
        .await;
    assert_ne!(theirs.body["event_id"], first.body["event_id"]);
    assert_eq!(theirs.body["matched"], 1);
    // Within one batch a repeated key is a duplicate of its first use.
    let e = json!({"type": "task.created", "tenant_id": tenant, "data": {}, "idempotency_key": "batch-7"});
    let r = env.publish_batch(json!({"events": [e, e]})).await;
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(r.body["results"][0]["event_id"], r.body["results"][1]["event_id"]);
    assert_eq!(r.body["results"][1]["duplicate"], true);
    for _ in 0..3 {
        assert!(rx.next(Duration::from_secs(10)).await.is_some());
    }
    rx.expect_nothing(Duration::from_millis(800)).await;
    env.stop().await;
}

/// A settlement commits without waiting for the WAL flush, and only it: the connection it ran
/// on goes back to the pool, where the delivery log's writer may take it next, and that writer
/// acknowledges ledger messages once their transaction commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn settling_keys_leaves_the_connections_later_commits_durable() {
    use diesel::QueryableByName;
    use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl as _};
    use hookwire_core::event_keys::{Claim, Claimed, Settlement};
    use hookwire_registry::db::event_keys;

    #[derive(QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::Text)]
        synchronous_commit: String,
    }
    let env = TestEnv::start().await;
    let mut conn = AsyncPgConnection::establish(env.database_url()).await.unwrap();
    let claim = |key: &str| Claim {
        scope: "feed".into(),
        key: key.into(),
        event_id: uuid::Uuid::new_v4(),
        holder: Some(uuid::Uuid::new_v4()),
    };
    let (done, released) = (claim("settle-1"), claim("settle-2"));
    for how in [Settlement::Done, Settlement::Released] {
        let c = if how == Settlement::Done { &done } else { &released };
        let claimed = event_keys::claim(&mut conn, std::slice::from_ref(c)).await.unwrap();
        assert_eq!(claimed, [Claimed::New]);
        event_keys::settle(&mut conn, std::slice::from_ref(c), how)
            .await
            .unwrap();
        let setting: Setting = diesel::sql_query("SHOW synchronous_commit")
            .get_result(&mut conn)
            .await
            .unwrap();
        assert_eq!(setting.synchronous_commit, "on", "after {how:?}");
    }
    // Seen from another connection: one key done, the other free again.
    assert_eq!(
        env.psql("SELECT string_agg(key || '=' || state, ',' ORDER BY key) FROM idempotency_keys")
            .as_deref(),
        Some("settle-1=done")
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_keyed_batch_is_sent_once_even_when_posted_twice_at_the_same_time() {
    let env = TestEnv::start().await;
    let mut rx = Receiver::start(200).await;
    let (tenant, key) = env.tenant("acme").await;
    env.webhook(&key, json!({"url": rx.url(), "events": ["*"]})).await;
    env.wait_routed(1).await;
    let event = |n: usize| json!({"type": "task.created", "tenant_id": tenant, "data": {"n": n}, "idempotency_key": format!("order-{n}")});
    let forward = json!({"events": (0..300).map(event).collect::<Vec<_>>()});
    let backward = json!({"events": (0..300).rev().map(event).collect::<Vec<_>>()});
    // A producer's timed-out request and its retry, in flight together, keys in opposite orders.
    let (a, b) = tokio::join!(env.publish_batch(forward.clone()), env.publish_batch(backward));
    for r in [&a, &b] {
        assert!(
            r.status == 202 || r.status == 409,
            "accepted or in progress, never an error: {} {}",
            r.status,
            r.body["detail"]
        );
    }
    // The producer retries until accepted.
    let mut last = None;
    for _ in 0..50 {
        let r = env.publish_batch(forward.clone()).await;
        assert!(r.status == 202 || r.status == 409, "{} {}", r.status, r.body["detail"]);
        if r.status == 202 {
            last = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let last = last.expect("the retried batch is accepted within 5 s");
    // Across every accepted request, each key has one event id and was sent by one of them.
    let mut sent: HashMap<usize, (String, usize)> = HashMap::new();
    let forward_keys: Vec<usize> = (0..300).collect();
    let backward_keys: Vec<usize> = (0..300).rev().collect();
    for (r, keys) in [(&a, &forward_keys), (&b, &backward_keys), (&last, &forward_keys)] {
        if r.status != 202 {
            continue;
        }
        for (result, n) in r.body["results"].as_array().unwrap().iter().zip(keys) {
            let id = result["event_id"].as_str().unwrap().to_owned();
            let entry = sent.entry(*n).or_insert_with(|| (id.clone(), 0));
            assert_eq!(entry.0, id, "order-{n} answered with two event ids");
            entry.1 += usize::from(result["duplicate"] != true);
        }
    }
    assert_eq!(sent.len(), 300);
    assert!(
        sent.values().all(|(_, times)| *times == 1),
        "each key sent exactly once"
    );
    let mut ids = std::collections::HashSet::new();
    for _ in 0..300 {
        let got = rx
            .next(Duration::from_secs(15))
            .await
            .expect("every keyed event arrives");
        ids.insert(got.header("webhook-id").unwrap().to_owned());
    }
    assert_eq!(ids.len(), 300);
    assert!(
        sent.values().all(|(id, _)| ids.contains(id)),
        "the answered ids are the ones delivered"
    );
    rx.expect_nothing(Duration::from_millis(800)).await;
    // The registry's claim API refuses a key claimed twice in one request.
    let claim = json!({"scope": tenant, "key": "twice", "event_id": hookwire_core::id::v7()});
    let r = env
        .admin_post("/v1/internal/idempotency/claim", json!({"claims": [claim, claim]}))
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body["detail"].as_str().unwrap().contains("`twice`"), "{r:?}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn publishers_claiming_the_same_keys_in_any_order_never_deadlock() {
    let env = TestEnv::start().await;
    let (tenant, _) = env.tenant("acme").await;
    // Six publishers claim the same 1,000 keys at once, each in another order, as producers'
    // retries and overlapping batches do.
    let body = |stride: usize| {
        let claims: Vec<Value> = (0..1000)
            .map(|i| (i * stride + stride) % 1000)
            .map(|n| json!({"scope": tenant, "key": format!("k-{n}"), "event_id": hookwire_core::id::v7()}))
            .collect();
        json!({"claims": claims})
    };
    let strides = [1, 3, 7, 9, 11, 999];
    let bodies: Vec<Value> = strides.iter().map(|s| body(*s)).collect();
    let claim = |b: &Value| env.admin_post("/v1/internal/idempotency/claim", b.clone());
    let (r0, r1, r2, r3, r4, r5) = tokio::join!(
        claim(&bodies[0]),
        claim(&bodies[1]),
        claim(&bodies[2]),
        claim(&bodies[3]),
        claim(&bodies[4]),
        claim(&bodies[5])
    );
    let answers = [r0, r1, r2, r3, r4, r5];
    let mut new = HashMap::new();
    for (r, b) in answers.iter().zip(&bodies) {
        assert_eq!(r.status, 200, "{} {}", r.status, r.body["detail"]);
        for (answer, claim) in r.body["results"]
            .as_array()
            .unwrap()
            .iter()
            .zip(b["claims"].as_array().unwrap())
        {
            match answer["status"].as_str().unwrap() {
                "new" => *new.entry(claim["key"].to_string()).or_insert(0) += 1,
                "in_progress" => {}
                other => panic!("a fresh key is new or in progress, not {other}"),
            }
        }
    }
    assert_eq!(new.len(), 1000, "every key claimed");
    assert!(new.values().all(|n| *n == 1), "by exactly one publisher");
    // Each settles the keys it won, in its own order, while three others claim them again.
    let won: Vec<Value> = answers
        .iter()
        .zip(&bodies)
        .map(|(r, b)| {
            let answers = r.body["results"].as_array().unwrap();
            let claims = b["claims"].as_array().unwrap();
            let mine: Vec<&Value> = claims
                .iter()
                .zip(answers)
                .filter(|(_, a)| a["status"] == "new")
                .map(|(c, _)| c)
                .collect();
            json!({"claims": mine, "done": true})
        })
        .collect();
    let settle = |b: &Value| env.admin_post("/v1/internal/idempotency/settle", b.clone());
    let (s0, s1, s2, s3, s4, s5, c0, c1, c2) = tokio::join!(
        settle(&won[0]),
        settle(&won[1]),
        settle(&won[2]),
        settle(&won[3]),
        settle(&won[4]),
        settle(&won[5]),
        claim(&bodies[1]),
        claim(&bodies[2]),
        claim(&bodies[5])
    );
    for s in [s0, s1, s2, s3, s4, s5] {
        assert_eq!(s.status, 204, "{} {}", s.status, s.body["detail"]);
    }
    for c in [c0, c1, c2] {
        assert_eq!(c.status, 200, "{} {}", c.status, c.body["detail"]);
        let statuses = c.body["results"].as_array().unwrap();
        assert!(statuses
            .iter()
            .all(|a| a["status"] == "duplicate" || a["status"] == "in_progress"));
    }
    let after = claim(&bodies[4]).await;
    let statuses = after.body["results"].as_array().unwrap();
    assert!(
        statuses.iter().all(|a| a["status"] == "duplicate"),
        "settled: every key is done"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_refused_as_in_progress_gives_back_the_keys_it_claimed() {
    let env = TestEnv::start().await;
    let mut rx = Receiver::start(200).await;
    let (tenant, key) = env.tenant("acme").await;
    env.webhook(&key, json!({"url": rx.url(), "events": ["*"]})).await;
    env.wait_routed(1).await;
    let claim = |key: &str, event_id: &str| json!({"scope": tenant, "key": key, "event_id": event_id});
    // Another publisher is accepting `busy` right now; `maybe` was published without a confirm.
    let busy = claim("busy", &hookwire_core::id::v7().to_string());
    env.admin_post("/v1/internal/idempotency/claim", json!({"claims": [busy]}))
        .await;
    let earlier = hookwire_core::id::v7().to_string();
    let maybe = claim("maybe", &earlier);
    env.admin_post("/v1/internal/idempotency/claim", json!({"claims": [maybe]}))
        .await;
    env.admin_post(
        "/v1/internal/idempotency/settle",
        json!({"claims": [maybe], "done": false, "maybe_sent": true}),
    )
    .await;
    let event = |key: &str| json!({"type": "task.created", "tenant_id": tenant, "data": {}, "idempotency_key": key});
    let r = env
        .publish_batch(json!({"events": [event("fresh"), event("busy"), event("maybe")]}))
        .await;
    assert_eq!(r.status, 409, "{r:?}");
    assert_eq!(
        r.body["type"].as_str().map(|t| t.ends_with("idempotency_in_progress")),
        Some(true),
        "{r:?}"
    );
    // The keys that request claimed are free again at once, not after the 30 s takeover.
    let fresh = env.publish(event("fresh")).await;
    assert_eq!(fresh.status, 202, "{fresh:?}");
    assert_eq!(fresh.body["matched"], 1);
    let again = env.publish(event("maybe")).await;
    assert_eq!(again.status, 202, "{again:?}");
    assert_eq!(
        again.body["event_id"],
        earlier.as_str(),
        "still resumed under its first event id"
    );
    for _ in 0..2 {
        assert!(rx.next(Duration::from_secs(10)).await.is_some());
    }
    rx.expect_nothing(Duration::from_millis(500)).await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_whose_publish_was_not_confirmed_is_sent_again_under_the_same_event_id() {
    let env = TestEnv::start().await;
    let mut rx = Receiver::start(200).await;
    let (tenant, key) = env.tenant("acme").await;
    env.webhook(&key, json!({"url": rx.url(), "events": ["*"]})).await;
    env.wait_routed(1).await;
    // What a publisher leaves behind when the broker did not confirm a publish that it may have
    // stored (a confirm timeout): the claim of event `first`, unconfirmed.
    let first = hookwire_core::id::v7().to_string();
    let claim = json!({"scope": tenant, "key": "order-9", "event_id": first});
    let r = env
        .admin_post("/v1/internal/idempotency/claim", json!({"claims": [claim]}))
        .await;
    assert_eq!(r.body["results"][0]["status"], "new", "{r:?}");
    let r = env
        .admin_post(
            "/v1/internal/idempotency/settle",
            json!({"claims": [claim], "done": false, "maybe_sent": true}),
        )
        .await;
    assert_eq!(r.status, 204, "{r:?}");

    // The producer's retry is accepted and sent under the first event id, so a receiver that
    // got the first copy sees the same webhook-id twice.
    let event = json!({"type": "person.created", "tenant_id": tenant, "data": {}, "idempotency_key": "order-9"});
    let retry = env.publish(event.clone()).await;
    assert_eq!(retry.status, 202, "{retry:?}");
    assert_eq!(retry.body["event_id"], first.as_str());
    assert_eq!(retry.body["matched"], 1);
    let got = rx.next(Duration::from_secs(10)).await.expect("the retry is delivered");
    assert_eq!(got.header("webhook-id"), Some(first.as_str()));
    // Confirmed now: the key is done.
    let again = env.publish(event).await;
    assert_eq!(again.status, 202, "{again:?}");
    assert_eq!(again.body["event_id"], first.as_str());
    assert_eq!(again.body["duplicate"], true);
    // A key released (nothing was sent) is a new event with a new id.
    let released = json!({"scope": tenant, "key": "order-10", "event_id": hookwire_core::id::v7()});
    env.admin_post("/v1/internal/idempotency/claim", json!({"claims": [released]}))
        .await;
    env.admin_post(
        "/v1/internal/idempotency/settle",
        json!({"claims": [released], "done": false}),
    )
    .await;
    let fresh = env
        .publish(json!({"type": "person.created", "tenant_id": tenant, "data": {}, "idempotency_key": "order-10"}))
        .await;
    assert_eq!(fresh.status, 202, "{fresh:?}");
    assert_ne!(fresh.body["event_id"], released["event_id"]);
    assert!(rx.next(Duration::from_secs(10)).await.is_some());
    // A claim whose publisher died mid-publish (pending, never settled) is taken over after
    // 30 s, under its event id too.
    let abandoned = hookwire_core::id::v7().to_string();
    let claim = json!({"scope": tenant, "key": "order-11", "event_id": abandoned});
    env.admin_post("/v1/internal/idempotency/claim", json!({"claims": [claim]}))
        .await;
    let busy = env
        .publish(json!({"type": "person.created", "tenant_id": tenant, "data": {}, "idempotency_key": "order-11"}))
        .await;
    assert_eq!(busy.status, 409, "a fresh pending claim is in progress: {busy:?}");
    env.psql("UPDATE idempotency_keys SET updated_at = now() - interval '31 seconds' WHERE key = 'order-11'")
        .expect("the claim is aged");
    let resumed = env
        .publish(json!({"type": "person.created", "tenant_id": tenant, "data": {}, "idempotency_key": "order-11"}))
        .await;
    assert_eq!(resumed.status, 202, "{resumed:?}");
    assert_eq!(resumed.body["event_id"], abandoned.as_str());
    let got = rx
        .next(Duration::from_secs(10))
        .await
        .expect("the resumed event is delivered");
    assert_eq!(got.header("webhook-id"), Some(abandoned.as_str()));
    rx.expect_nothing(Duration::from_millis(500)).await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_published_twice_under_one_id_is_one_delivery_in_the_log() {
    let env = TestEnv::start().await;
    let mut rx = Receiver::start(200).await;
    let (tenant, key) = env.tenant("acme").await;
    let hook = env.webhook(&key, json!({"url": rx.url(), "events": ["*"]})).await;
    env.wait_routed(1).await;
    let event = json!({"type": "person.created", "tenant_id": tenant, "data": {}, "idempotency_key": "order-13"});
    let first = env.publish(event.clone()).await;
    assert_eq!(first.status, 202, "{first:?}");
    let event_id = first.body["event_id"].as_str().unwrap().to_owned();
    assert!(rx.next(Duration::from_secs(10)).await.is_some());
    // As if the broker had not confirmed that publish though it stored it (a confirm timeout):
    // the key is left unconfirmed, and the producer's retry is published again, same event id.
    env.psql("UPDATE idempotency_keys SET state = 'unconfirmed' WHERE key = 'order-13'")
        .expect("the key is left unconfirmed");
    let retry = env.publish(event).await;
    assert_eq!(retry.status, 202, "{retry:?}");
    assert_eq!(retry.body["event_id"], event_id.as_str());
    let copy = rx.next(Duration::from_secs(10)).await.expect("the second copy");
    assert_eq!(copy.header("webhook-id"), Some(event_id.as_str()));
    // An event published after both, once it is in the log, shows the log has caught up.
    env.publish(json!({"type": "task.created", "tenant_id": tenant, "data": {}}))
        .await;
    let id = hook["id"].as_str().unwrap();
    env.wait_for(
        &format!("/v1/deliveries?webhook_id={id}&event_type=task.created&status=success"),
        &key,
        |b| b["count"] == 1,
    )
    .await;
    let log = env
        .api(
            "GET",
            &format!("/v1/deliveries?webhook_id={id}&event_type=person.created"),
            &key,
            None,
        )
        .await;
    assert_eq!(
        log.body["count"], 1,
        "one event, one webhook: one delivery, {}",
        log.body
    );
    assert_eq!(log.body["results"][0]["event_id"], event_id.as_str());
    assert_eq!(log.body["results"][0]["status"], "success");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_publisher_that_stalled_cannot_undo_the_claim_another_publisher_resumed() {
    let env = TestEnv::start().await;
    let mut rx = Receiver::start(200).await;
    let (tenant, key) = env.tenant("acme").await;
    env.webhook(&key, json!({"url": rx.url(), "events": ["*"]})).await;
    env.wait_routed(1).await;
    // Publisher A claims the key, then stalls past the 30 s takeover.
    let event_id = hookwire_core::id::v7().to_string();
    let a = json!({"scope": tenant, "key": "order-12", "event_id": event_id, "holder": hookwire_core::id::v7()});
    let r = env
        .admin_post("/v1/internal/idempotency/claim", json!({"claims": [a]}))
        .await;
    assert_eq!(r.body["results"][0]["status"], "new", "{r:?}");
    env.psql("UPDATE idempotency_keys SET updated_at = now() - interval '31 seconds' WHERE key = 'order-12'")
        .expect("the claim is aged");
    // Publisher B takes it over, under the same event id, and is publishing it.
    let b = json!({"scope": tenant, "key": "order-12", "event_id": hookwire_core::id::v7(), "holder": hookwire_core::id::v7()});
    let r = env
        .admin_post("/v1/internal/idempotency/claim", json!({"claims": [b]}))
        .await;
    assert_eq!(r.body["results"][0]["status"], "resume", "{r:?}");
    assert_eq!(r.body["results"][0]["event_id"], event_id.as_str());
    let event = json!({"type": "person.created", "tenant_id": tenant, "data": {}, "idempotency_key": "order-12"});
    // A wakes up, and its publish fails before sending: it releases its claim, then (another
    // failure) leaves it unconfirmed. Neither may touch B's.
    for settle in [
        json!({"claims": [a], "done": false}),
        json!({"claims": [a], "done": false, "maybe_sent": true}),
    ] {
        let r = env.admin_post("/v1/internal/idempotency/settle", settle).await;
        assert_eq!(r.status, 204, "{r:?}");
        let retry = env.publish(event.clone()).await;
        assert_eq!(
            retry.status, 409,
            "B is still accepting the event; a new event id here would be a second copy: {retry:?}"
        );
    }
    // B's publish is confirmed: the producer's retry gets the one event id.
    let mut b_settled = b.clone();
    b_settled["event_id"] = json!(event_id);
    let r = env
        .admin_post(
            "/v1/internal/idempotency/settle",
            json!({"claims": [b_settled], "done": true}),
        )
        .await;
    assert_eq!(r.status, 204, "{r:?}");
    let retry = env.publish(event.clone()).await;
    assert_eq!(retry.status, 202, "{retry:?}");
    assert_eq!(retry.body["event_id"], event_id.as_str());
    assert_eq!(retry.body["duplicate"], true);
    rx.expect_nothing(Duration::from_millis(300)).await;
    env.stop().await;
}
