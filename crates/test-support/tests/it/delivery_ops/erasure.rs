//! Erasing events' payloads: gone from the log, never sent again, also when the erasure races the log's writes.

use super::*;

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
    env.wait_until_sleeping("LOCK TABLE events, deliveries").await;
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
