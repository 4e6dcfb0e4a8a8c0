//! Ordered delivery (`ordering: "subject"`): each subject's events reach the webhook in the
//! order they were accepted, one at a time, through failures, retries, two dispatchers and one
//! of them killed.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use futures_util::future::join_all;
use hookwire_test_support::{eventually, free_port, Receiver, TestEnv, FLAKY};
use serde_json::{json, Value};

const PRODUCERS: u64 = 4;
const PER_PRODUCER: u64 = 500;
const SUBJECTS_PER_PRODUCER: u64 = 10;

/// The subject of producer `p`'s `n`-th event: one of its ten, or none for every fiftieth
/// event (the webhook's one line of events without a subject, shared by all producers).
fn subject(p: u64, n: u64) -> Option<String> {
    (n % 50 != 49).then(|| format!("p{p}-s{}", n % SUBJECTS_PER_PRODUCER))
}

fn event(tenant: &str, p: u64, n: u64) -> Value {
    let mut e = json!({"type": "task.created", "tenant_id": tenant, "data": {"p": p, "n": n}});
    if let Some(s) = subject(p, n) {
        e["subject"] = json!(s);
    }
    e
}

/// Producer `p` publishes its events one after another: the first two producers one per
/// request, the others in requests of 25 (a request's events are accepted in their order).
async fn produce(env: &TestEnv, tenant: &str, p: u64) {
    if p < 2 {
        for n in 0..PER_PRODUCER {
            let r = env.publish(event(tenant, p, n)).await;
            assert_eq!(r.status, 202, "{:?}", r.body);
        }
    } else {
        for start in (0..PER_PRODUCER).step_by(25) {
            let events: Vec<Value> = (start..start + 25).map(|n| event(tenant, p, n)).collect();
            let r = env.publish_batch(json!({ "events": events })).await;
            assert_eq!(r.status, 202, "{:?}", r.body);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_ordered_webhook_gets_each_subjects_events_in_order_through_failures_and_a_crash() {
    let env = TestEnv::start().await;
    // A receiver that fails one request in four and answers within 0 to 20 ms at random.
    let mut receiver = Receiver::scripted(vec![(FLAKY, Duration::from_millis(20))]).await;
    let (tenant, key) = env.tenant("ordered").await;
    let hook = ordered_webhook(&env, &key, &receiver).await;
    assert_eq!(hook["ordering"], "subject", "{hook}");
    let webhook_id = hook["id"].as_str().unwrap().to_owned();
    env.wait_routed(1).await;
    let port = hookwire_test_support::free_port();
    let second = env.spawn_dispatcher_process(port).await;

    let producing = join_all((0..PRODUCERS).map(|p| produce(&env, &tenant, p)));
    let total = (PRODUCERS * PER_PRODUCER) as usize;
    // Successful receipts in the order they arrived: (producer, n, event id).
    let mut receipts: Vec<(u64, u64, String)> = Vec::new();
    let mut succeeded = HashSet::new();
    let mut seen_waiting = None;
    let receiving = async {
        while succeeded.len() < total {
            let r = receiver
                .next(Duration::from_secs(60))
                .await
                .unwrap_or_else(|| panic!("only {} of {total} events delivered", succeeded.len()));
            if r.status != 200 {
                continue;
            }
            let body: Value = serde_json::from_slice(&r.body).unwrap();
            let (p, n) = (body["data"]["p"].as_u64().unwrap(), body["data"]["n"].as_u64().unwrap());
            let id = r.header("webhook-id").unwrap().to_owned();
            succeeded.insert(id.clone());
            receipts.push((p, n, id));
            if seen_waiting.is_none() && succeeded.len() == total / 4 {
                // The log shows a delivery held behind another of its subject.
                let path = format!("/v1/deliveries?webhook_id={webhook_id}&status=waiting");
                let page = env.api("GET", &path, &key, None).await;
                seen_waiting = page.body["results"].as_array().and_then(|r| r.first().cloned());
            }
        }
    };
    // The second dispatcher dies (SIGKILL) once it has delivered a hundred events.
    let kill = async {
        eventually(Duration::from_secs(120), || async {
            (env.metric(
                &format!("http://127.0.0.1:{port}"),
                r#"hookwire_dispatcher_attempts_total{outcome="success"}"#,
            )
            .await
            .unwrap_or_default()
                >= 100.0)
                .then_some(())
        })
        .await
        .expect("the second dispatcher delivers");
        env.kill_dispatcher(second, false).await;
    };
    tokio::join!(producing, receiving, kill);

    // Per subject (and per producer on the line without one), the first successful receipt of
    // each event comes in the order the producer published them, and none is missing.
    let mut first: HashSet<String> = HashSet::new();
    let mut lines: BTreeMap<(Option<String>, u64), Vec<u64>> = BTreeMap::new();
    for (p, n, id) in &receipts {
        if first.insert(id.clone()) {
            lines.entry((subject(*p, *n), *p)).or_default().push(*n);
        }
    }
    let mut checked = 0;
    for ((s, p), ns) in &lines {
        let expected: Vec<u64> = (0..PER_PRODUCER).filter(|n| subject(*p, *n) == *s).collect();
        assert_eq!(
            ns, &expected,
            "subject {s:?} of producer {p}: receipts out of order or missing"
        );
        checked += ns.len();
    }
    assert_eq!(checked, total);
    let repeats = receipts.len() - total;
    eprintln!("{total} events, {repeats} repeated successes after the crash");

    let waiting = seen_waiting.expect("a delivery was seen waiting in its line");
    let waited_for = waiting["waiting_for"]
        .as_str()
        .expect("it names the delivery it waits for");
    let blocker = env
        .api("GET", &format!("/v1/deliveries/{waited_for}"), &key, None)
        .await;
    assert_eq!(blocker.status, 200, "{:?}", blocker.body);
    assert_eq!(
        blocker.body["subject"], waiting["subject"],
        "it waits for its own subject's delivery"
    );
    // Once all are delivered nothing waits.
    let page = env
        .wait_for(
            &format!("/v1/deliveries?webhook_id={webhook_id}&status=waiting"),
            &key,
            |b| b["count"] == 0,
        )
        .await;
    assert_eq!(page["count"], 0);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ordering_is_set_on_create_and_patch_and_a_bad_value_is_refused() {
    let env = TestEnv::start().await;
    let (_tenant, key) = env.tenant("settings").await;
    let hook = env
        .webhook(&key, json!({"url": "http://127.0.0.1:9/hook", "events": ["*"]}))
        .await;
    assert_eq!(hook["ordering"], "none", "the default: {hook}");
    let id = hook["id"].as_str().unwrap();
    let r = env.patch_webhook(&key, id, json!({"ordering": "subject"})).await;
    assert_eq!(
        (r.status, &r.body["ordering"]),
        (200, &json!("subject")),
        "{:?}",
        r.body
    );
    let r = env.patch_webhook(&key, id, json!({"ordering": "fifo"})).await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(r.error_fields(), vec!["ordering"], "{:?}", r.body);
    let r = env
        .api(
            "POST",
            "/v1/webhooks",
            &key,
            Some(json!({"url": "http://127.0.0.1:9/h", "events": ["*"], "ordering": null})),
        )
        .await;
    assert_eq!(
        (r.status, &r.body["ordering"]),
        (201, &json!("none")),
        "null takes the default: {:?}",
        r.body
    );
    env.stop().await;
}

/// Events of one subject, published while its first delivery keeps failing, wait behind it;
/// a retry by hand of a waiting one sends it at once, out of its line.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_delivery_holds_its_subject_only_and_a_retry_by_hand_jumps_the_line() {
    let env = TestEnv::start().await;
    let mut receiver = Receiver::start(200).await;
    let (tenant, key) = env.tenant("lines").await;
    let hook = ordered_webhook(&env, &key, &receiver).await;
    let webhook_id = hook["id"].as_str().unwrap().to_owned();
    env.wait_routed(1).await;
    let publish = |subject: &'static str, n: u64| {
        env.publish(json!({"type": "task.created", "tenant_id": tenant, "subject": subject,
                           "data": {"s": subject, "n": n}}))
    };
    // "a"'s first delivery fails (and is retried a second later); then its next two events and
    // one of "b" are published.
    receiver.answer(vec![(500, Duration::ZERO), (200, Duration::ZERO)]);
    assert_eq!(publish("a", 0).await.status, 202);
    assert_eq!(next(&mut receiver).await, ("a".into(), 0, 500));
    for (s, n) in [("a", 1), ("a", 2), ("b", 0)] {
        assert_eq!(publish(s, n).await.status, 202);
    }
    let mut order = Vec::new();
    for _ in 0..4 {
        order.push(next(&mut receiver).await);
    }
    // "b" did not wait for "a"; "a"'s later events came after its success, in order.
    let expected: Vec<(String, u64, u16)> = [("b", 0), ("a", 0), ("a", 1), ("a", 2)]
        .map(|(s, n)| (s.to_owned(), n, 200))
        .to_vec();
    assert_eq!(order, expected);

    // Now "a" fails for good for a while: its next event waits, and a retry by hand of the
    // waiting one sends it now.
    receiver.answer(vec![(500, Duration::ZERO)]);
    for n in [3, 4] {
        assert_eq!(publish("a", n).await.status, 202);
    }
    let waiting = env.delivery_in(&key, &webhook_id, "waiting").await;
    let blocker = waiting["waiting_for"]
        .as_str()
        .expect("names what it waits for")
        .to_owned();
    let r = env.api("GET", &format!("/v1/deliveries/{blocker}"), &key, None).await;
    assert_eq!(r.body["subject"], "a");
    assert_ne!(r.body["status"], "waiting", "the one out is not waiting: {:?}", r.body);
    // The stats count the waiting one apart (once the log has the four successes, which the
    // dispatcher records after the receiver has them).
    let stats_path = format!("/v1/webhooks/{webhook_id}/stats");
    let stats = env.wait_for(&stats_path, &key, |b| b["counts"]["success"] == 4).await;
    let counts = &stats["counts"];
    assert_eq!(counts["waiting"], 1, "{stats}");
    assert_eq!(
        counts["pending"].as_u64().unwrap() + counts["retrying"].as_u64().unwrap(),
        1,
        "only the one out is pending or retrying: {stats}"
    );
    receiver.answer(vec![(200, Duration::ZERO)]);
    let id = waiting["id"].as_str().unwrap();
    let r = env.api("POST", &format!("/v1/deliveries/{id}/retry"), &key, None).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let detail = env.api("GET", &format!("/v1/deliveries/{id}"), &key, None).await;
    assert_ne!(detail.body["status"], "waiting", "it left its line: {:?}", detail.body);
    // Both get delivered in the end, and nothing is left waiting.
    let done = env
        .wait_for(
            &format!("/v1/deliveries?webhook_id={webhook_id}&status=success"),
            &key,
            |b| b["count"] == 6,
        )
        .await;
    assert_eq!(done["count"], 6);
    let stats = env.api("GET", &stats_path, &key, None).await;
    assert_eq!(
        stats.body["counts"]["waiting"], 0,
        "nothing waits any more: {:?}",
        stats.body
    );
    env.stop().await;
}

/// A retry by hand runs in the transaction that hands its task to the broker: when the broker
/// refuses the task (503), the delivery stays waiting in its line, and goes out in order later.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_by_hand_the_broker_refuses_leaves_the_delivery_waiting_in_its_line() {
    // No dispatcher yet: what lines release waits in the task queues.
    let env = TestEnv::start_with(|o| o.in_process_dispatcher = false).await;
    let mut receiver = Receiver::start(200).await;
    let (tenant, key) = env.tenant("refused").await;
    let hook = ordered_webhook(&env, &key, &receiver).await;
    let webhook_id = hook["id"].as_str().unwrap().to_owned();
    env.wait_routed(1).await;
    let released = "hookwire_registry_lines_released_total";
    // One event at a time, each released alone (a task queue's message) before the next.
    let mut sent = 0.0;
    let mut publish = async |subject: &str, n: u64| {
        let r = env
            .publish(json!({"type": "task.created", "tenant_id": tenant, "subject": subject,
                            "data": {"s": subject, "n": n}}))
            .await;
        assert_eq!(r.status, 202, "{:?}", r.body);
        sent += 1.0;
        let out = eventually(Duration::from_secs(5), || async {
            (env.metric(&env.registry, released).await? >= sent).then_some(())
        })
        .await;
        assert!(out.is_some(), "the lines released the {sent} events published");
    };
    publish("a", 0).await;
    // "a"'s second event waits behind its first, which is out (in a task queue).
    let r = env
        .publish(json!({"type": "task.created", "tenant_id": tenant, "subject": "a", "data": {"s": "a", "n": 1}}))
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let waiting = env.delivery_in(&key, &webhook_id, "waiting").await;
    let (id, blocker) = (waiting["id"].as_str().unwrap(), waiting["waiting_for"].clone());
    // Other subjects' first events, until every shard's task queue holds one: the broker's
    // refusal below applies to a queue holding messages.
    let queues = env.standard_task_queues();
    let mut others = 0;
    loop {
        let mut empty = false;
        for q in &queues {
            empty |= env.queue_depth(q).await == 0;
        }
        if !empty {
            break;
        }
        assert!(others < 40, "{others} subjects did not fill every shard's task queue");
        publish(&format!("s{others}"), 0).await;
        others += 1;
    }

    // The broker refuses the retry's task: 503, and the delivery is still waiting behind "a"'s
    // first event.
    let refusing = env.refuse_tasks().await;
    let r = env.api("POST", &format!("/v1/deliveries/{id}/retry"), &key, None).await;
    assert_eq!(r.status, 503, "{:?}", r.body);
    drop(refusing);
    let detail = env.api("GET", &format!("/v1/deliveries/{id}"), &key, None).await;
    assert_eq!(detail.body["status"], "waiting", "{:?}", detail.body);
    assert_eq!(detail.body["waiting_for"], blocker, "{:?}", detail.body);

    // With a dispatcher, "a"'s events arrive in order, and every other subject's.
    let _dispatcher = env.spawn_dispatcher_process(free_port()).await;
    let mut got = Vec::new();
    while got.len() < 2 + others {
        got.push(next(&mut receiver).await);
    }
    let a: Vec<_> = got.iter().filter(|(s, _, _)| s == "a").collect();
    assert_eq!(a, [&("a".to_owned(), 0, 200), &("a".to_owned(), 1, 200)], "{got:?}");
    env.stop().await;
}

/// A task the broker has delivered time after time to dispatchers that stopped with it (a
/// delivery that crashes them, say) ends `failed` unsent on its last delivery before the
/// broker's limit, so its line moves on instead of waiting on the dead-letter queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_task_that_keeps_stopping_dispatchers_ends_failed_and_its_line_moves_on() {
    let env = TestEnv::start_with(|o| o.in_process_dispatcher = false).await;
    let mut receiver = Receiver::start(200).await;
    let (tenant, key) = env.tenant("poison").await;
    let hook = ordered_webhook(&env, &key, &receiver).await;
    let webhook_id = hook["id"].as_str().unwrap().to_owned();
    env.wait_routed(1).await;
    for n in [0, 1] {
        let r = env
            .publish(json!({"type": "task.created", "tenant_id": tenant, "subject": "a", "data": {"s": "a", "n": n}}))
            .await;
        assert_eq!(r.status, 202, "{r:?}");
    }
    // No dispatcher runs: the line's first event waits in a task queue, the second in the line.
    let out = eventually(Duration::from_secs(10), || async {
        (env.delivery_depth(false).await == 1).then_some(())
    })
    .await;
    assert!(out.is_some(), "the line sent its first event out");
    env.mark_redelivered(i64::from(hookwire_broker::DELIVERY_LIMIT - 1))
        .await;

    let _dispatcher = env.spawn_dispatcher_process(free_port()).await;
    assert_eq!(
        next(&mut receiver).await,
        ("a".into(), 1, 200),
        "the line moved on to the second event; the first was not sent"
    );
    let failed = env.delivery_in(&key, &webhook_id, "failed").await;
    let error = failed["error"].as_str().unwrap_or_default();
    assert!(error.starts_with("set_aside: not sent"), "{failed}");
    assert!(
        receiver.next(Duration::from_secs(1)).await.is_none(),
        "the first event was never sent"
    );
    env.stop().await;
}

/// Erasing a subject's payloads (a data-protection request) empties the tasks its line holds,
/// and its waiting deliveries end unsent.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn erasing_a_subject_empties_the_tasks_waiting_in_its_line() {
    let env = TestEnv::start().await;
    let mut receiver = Receiver::start(500).await;
    let (tenant, key) = env.tenant("erasure").await;
    let hook = ordered_webhook(&env, &key, &receiver).await;
    let webhook_id = hook["id"].as_str().unwrap().to_owned();
    env.wait_routed(1).await;
    for n in 0..3 {
        let r = env
            .publish(
                json!({"type": "task.created", "tenant_id": tenant, "subject": "person/9",
                            "data": {"s": "person/9", "n": n, "email": "ana@example.com"}}),
            )
            .await;
        assert_eq!(r.status, 202);
    }
    assert_eq!(
        next(&mut receiver).await,
        ("person/9".into(), 0, 500),
        "the first is out, failing"
    );
    let path = format!("/v1/deliveries?webhook_id={webhook_id}&status=waiting");
    env.wait_for(&path, &key, |b| b["count"] == 2).await;
    let holding = "SELECT count(*) FROM line_waiting WHERE convert_from(task, 'UTF8') LIKE '%ana@example.com%'";
    assert_eq!(
        env.psql(holding).as_deref(),
        Some("2"),
        "the line holds the two waiting payloads"
    );

    let r = env
        .admin_post(
            "/v1/admin/events/expunge",
            json!({"subject": "person/9", "tenant_id": tenant}),
        )
        .await;
    assert_eq!((r.status, &r.body["events_expunged"]), (200, &json!(3)), "{r:?}");
    assert_eq!(
        env.psql(holding).as_deref(),
        Some("0"),
        "no payload left at rest in the line"
    );
    let busy = "SELECT count(*) FROM delivery_lines WHERE convert_from(busy_task, 'UTF8') LIKE '%ana@example.com%'";
    assert_eq!(env.psql(busy).as_deref(), Some("0"));
    // The line moves on past them: all three end `failed`, and none is sent again.
    receiver.answer(vec![(200, Duration::ZERO)]);
    let failed = format!("/v1/deliveries?webhook_id={webhook_id}&status=failed");
    let page = env.wait_for(&failed, &key, |b| b["count"] == 3).await;
    for d in page["results"].as_array().unwrap() {
        assert!(
            d["error"].as_str().unwrap_or_default().starts_with("payload_expunged"),
            "{d}"
        );
    }
    receiver.expect_nothing(Duration::from_millis(500)).await;
    assert_eq!(env.psql("SELECT count(*) FROM line_waiting").as_deref(), Some("0"));
    env.stop().await;
}

/// The next request's subject, number and the status it was answered with.
async fn next(receiver: &mut Receiver) -> (String, u64, u16) {
    let r = receiver.next(Duration::from_secs(20)).await.expect("deliveries arrive");
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    (
        body["data"]["s"].as_str().unwrap().to_owned(),
        body["data"]["n"].as_u64().unwrap(),
        r.status,
    )
}

/// A webhook of `key`'s tenant to `receiver`, ordered by subject, retried every second.
async fn ordered_webhook(env: &TestEnv, key: &str, receiver: &Receiver) -> Value {
    let retries = json!({"strategy": "fixed", "interval_seconds": 1, "max_retries": 100});
    env.webhook(
        key,
        json!({"url": receiver.url(), "events": ["*"], "ordering": "subject", "retry_policy": retries}),
    )
    .await
}
