//! Nothing accepted is ever lost: delivery under the faults a Kubernetes deployment sees.
//! Each scenario runs a steady load of events to a local receiver that records every
//! `webhook-id`, injects one fault, and checks that every event answered 202 was delivered
//! (duplicates are counted and reported, as at-least-once allows them).
//!
//! These tests restart shared infrastructure (RabbitMQ, PostgreSQL), so they run one at a time
//! and in their own test binary.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use std::time::{Duration, Instant};

use hookwire_test_support::{eventually, free_port, rabbitmqctl, Receiver, TestEnv};
use serde_json::json;
use tokio::sync::watch;

// An async mutex: the guard is held across awaits, each test on its own runtime.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What a load run saw.
#[derive(Default)]
struct Load {
    accepted: Vec<String>,
    refused: usize,
}

/// Publishes events from `workers` concurrent producers until `stop` turns true.
async fn load(publisher: String, tenant: String, workers: usize, mut stop: watch::Receiver<bool>) -> Load {
    let http = hookwire_test_support::Http::default();
    let out = Arc::new(Mutex::new(Load::default()));
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (http, publisher, tenant, out, mut stop) = (
            http.clone(),
            publisher.clone(),
            tenant.clone(),
            out.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !*stop.borrow_and_update() {
                let r = http
                    .post(
                        &format!("{publisher}/v1/events"),
                        &[(
                            "authorization",
                            &format!("Bearer {}", hookwire_test_support::PRODUCER_TOKEN),
                        )],
                        Some(&json!({"type": "task.created", "tenant_id": tenant, "data": {"w": w, "n": n}})),
                    )
                    .await;
                n += 1;
                match r {
                    Ok(r) if r.status == 202 => out
                        .lock()
                        .unwrap()
                        .accepted
                        .push(r.body["event_id"].as_str().unwrap().to_owned()),
                    _ => {
                        out.lock().unwrap().refused += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
    }
    let _ = stop.changed().await;
    for t in tasks {
        t.await.unwrap();
    }
    Arc::try_unwrap(out).ok().unwrap().into_inner().unwrap()
}

/// Receives until every accepted id has arrived (or `within` passes); returns counts per id
/// and the longest gap between two receipts.
async fn collect(rx: &mut Receiver, accepted: &[String], within: Duration) -> (HashMap<String, u32>, Duration) {
    let mut seen: HashMap<String, u32> = HashMap::new();
    let deadline = Instant::now() + within;
    let mut last: Option<Instant> = None;
    let mut gap = Duration::ZERO;
    while accepted.iter().any(|id| !seen.contains_key(id)) && Instant::now() < deadline {
        if let Some(got) = rx.next(Duration::from_millis(500)).await {
            if let Some(prev) = last {
                gap = gap.max(got.at - prev);
            }
            last = Some(got.at);
            *seen.entry(got.header("webhook-id").unwrap().to_owned()).or_default() += 1;
        }
    }
    (seen, gap)
}

fn report(name: &str, load: &Load, seen: &HashMap<String, u32>) {
    let missing = load.accepted.iter().filter(|id| !seen.contains_key(*id)).count();
    let duplicates: u32 = seen.values().map(|n| n - 1).sum();
    println!(
        "{name}: accepted {}, refused {}, delivered {}, duplicates {duplicates}, missing {missing}",
        load.accepted.len(),
        load.refused,
        seen.len()
    );
    if missing > 0 {
        // What the in-process services warned about, to tell where the events stopped.
        for line in hookwire_test_support::logs::captured().lines() {
            if line.contains(r#""level":"WARN""#) || line.contains(r#""level":"ERROR""#) {
                println!("{line}");
            }
        }
    }
    assert_eq!(missing, 0, "{name}: {missing} accepted events were never delivered");
}

async fn setup(in_process_dispatcher: bool) -> (TestEnv, Receiver, String) {
    let env = TestEnv::start_with(|o| {
        o.in_process_dispatcher = in_process_dispatcher;
        o.publisher.http.workers = 2;
    })
    .await;
    let rx = Receiver::start(200).await;
    let (tenant, key) = env.tenant("acme").await;
    env.webhook(&key, json!({"url": rx.url(), "events": ["*"], "retry_policy": {"strategy": "fixed", "interval_seconds": 1, "max_retries": 30}}))
        .await;
    env.wait_routed(1).await;
    (env, rx, tenant)
}

async fn finish(env: TestEnv) {
    env.stop().await;
}

/// Waits until the delivery log counts `n` successful deliveries.
async fn log_catches_up(env: &TestEnv, n: usize) -> bool {
    eventually(Duration::from_secs(30), || async {
        let counted: usize = env
            .psql("SELECT count(*) FROM deliveries WHERE status = 'success'")?
            .parse()
            .ok()?;
        (counted >= n).then_some(())
    })
    .await
    .is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dispatcher_killed_mid_load_loses_nothing() {
    let _serial = SERIAL.lock().await;
    let (env, mut rx, tenant) = setup(false).await;
    let port = free_port();
    let mut dispatcher = env.spawn_dispatcher_process(port).await;
    let (stop, stopped) = watch::channel(false);
    let producer = tokio::spawn(load(env.publisher.clone(), tenant, 4, stopped));
    tokio::time::sleep(Duration::from_secs(2)).await;
    dispatcher.kill().expect("SIGKILL"); // kill() sends SIGKILL
    dispatcher.wait().unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut restarted = env.spawn_dispatcher_process(port).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.send(true).unwrap();
    let load = producer.await.unwrap();
    assert!(
        load.accepted.len() > 100,
        "the load ran ({} accepted)",
        load.accepted.len()
    );
    let (seen, _) = collect(&mut rx, &load.accepted, Duration::from_secs(60)).await;
    report("dispatcher SIGKILL", &load, &seen);
    restarted.kill().unwrap();
    restarted.wait().unwrap();
    finish(env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_two_dispatchers_the_survivor_carries_on_without_a_long_gap() {
    let _serial = SERIAL.lock().await;
    let (env, mut rx, tenant) = setup(false).await;
    let mut a = env.spawn_dispatcher_process(free_port()).await;
    let mut b = env.spawn_dispatcher_process(free_port()).await;
    let (stop, stopped) = watch::channel(false);
    let producer = tokio::spawn(load(env.publisher.clone(), tenant, 4, stopped));
    tokio::time::sleep(Duration::from_secs(2)).await;
    a.kill().unwrap();
    a.wait().unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.send(true).unwrap();
    let load = producer.await.unwrap();
    let (seen, gap) = collect(&mut rx, &load.accepted, Duration::from_secs(60)).await;
    report("one of two dispatchers SIGKILLed", &load, &seen);
    println!("longest gap between receipts: {gap:?}");
    assert!(gap < Duration::from_secs(5), "deliveries stalled for {gap:?}");
    b.kill().unwrap();
    b.wait().unwrap();
    finish(env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_restart_loses_no_accepted_event() {
    let _serial = SERIAL.lock().await;
    let (env, mut rx, tenant) = setup(true).await;
    let (stop, stopped) = watch::channel(false);
    let producer = tokio::spawn(load(env.publisher.clone(), tenant, 4, stopped));
    tokio::time::sleep(Duration::from_secs(2)).await;
    rabbitmqctl(&["stop_app"]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    rabbitmqctl(&["start_app"]);
    // Every service reconnects by itself.
    for url in [&env.publisher, &env.dispatcher, &env.registry] {
        env.wait_ready(url).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.send(true).unwrap();
    let load = producer.await.unwrap();
    assert!(load.refused > 0, "the publisher answered 503 while the broker was away");
    let (seen, _) = collect(&mut rx, &load.accepted, Duration::from_secs(60)).await;
    report("RabbitMQ restart", &load, &seen);
    finish(env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgres_restart_loses_nothing_from_the_results_stream() {
    let _serial = SERIAL.lock().await;
    let (env, mut rx, tenant) = setup(true).await;
    let (stop, stopped) = watch::channel(false);
    let producer = tokio::spawn(load(env.publisher.clone(), tenant, 2, stopped));
    // Sixteen requests at once leave the registry's pool full of connections.
    let api = || futures_util::future::join_all((0..16).map(|_| env.admin("GET", "/v1/admin/tenants", None)));
    let statuses = |answers: Vec<hookwire_test_support::Response>| answers.iter().map(|r| r.status).collect::<Vec<_>>();
    assert_eq!(statuses(api().await), [200; 16]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let out = std::process::Command::new("pg_ctlcluster")
        .args(["15", "main", "restart"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pg_ctlcluster restart: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    // The API answers at once: no request is handed a connection PostgreSQL closed.
    assert_eq!(statuses(api().await), [200; 16], "the API after the restart");
    stop.send(true).unwrap();
    let load = producer.await.unwrap();
    let (seen, _) = collect(&mut rx, &load.accepted, Duration::from_secs(60)).await;
    report("PostgreSQL restart", &load, &seen);
    // The delivery log catches up with every delivery (the ledger held them meanwhile).
    assert!(
        log_catches_up(&env, load.accepted.len()).await,
        "the delivery log did not catch up"
    );
    finish(env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_the_registry_down_ingest_and_delivery_go_on_and_the_log_catches_up() {
    let _serial = SERIAL.lock().await;
    let (mut env, mut rx, tenant) = setup(true).await;
    let (stop, stopped) = watch::channel(false);
    let producer = tokio::spawn(load(env.publisher.clone(), tenant, 4, stopped));
    tokio::time::sleep(Duration::from_secs(1)).await;
    env.stop_registry().await;
    // While it is down, events are accepted and delivered from the publisher's cache.
    let during = rx
        .next(Duration::from_secs(5))
        .await
        .expect("deliveries continue without the registry");
    tokio::time::sleep(Duration::from_secs(3)).await;
    env.start_registry().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.send(true).unwrap();
    let load = producer.await.unwrap();
    assert_eq!(load.refused, 0, "ingest never needed the registry");
    let (mut seen, _) = collect(&mut rx, &load.accepted, Duration::from_secs(60)).await;
    *seen.entry(during.header("webhook-id").unwrap().to_owned()).or_default() += 1;
    report("registry down for 3 s", &load, &seen);
    assert!(
        log_catches_up(&env, load.accepted.len()).await,
        "the delivery log did not catch up"
    );
    finish(env).await;
}

/// RabbitMQ's memory alarm, raised by setting the limit far below what the node uses, and put
/// back to the default limit however the test ends.
struct MemoryAlarm;

impl MemoryAlarm {
    fn raise() -> Self {
        rabbitmqctl(&["set_vm_memory_high_watermark", "0.0001"]);
        Self
    }
}

impl Drop for MemoryAlarm {
    fn drop(&mut self) {
        rabbitmqctl(&["set_vm_memory_high_watermark", "0.4"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_a_broker_alarm_producers_get_a_prompt_503_and_nothing_is_half_sent() {
    let _serial = SERIAL.lock().await;
    let (env, mut rx, tenant) = setup(true).await;
    let event = |label: &str| json!({"type": "task.created", "tenant_id": tenant, "data": {"label": label}});
    assert_eq!(env.publish(event("before")).await.status, 202);
    assert!(
        rx.next(Duration::from_secs(10)).await.is_some(),
        "delivered before the alarm"
    );

    let alarm = MemoryAlarm::raise();
    // RabbitMQ blocks publishing connections; once the publisher knows, it refuses at once.
    // Each probe carries its own idempotency key.
    let probe = |n: usize| {
        let mut e = event("probe");
        e["idempotency_key"] = json!(format!("probe-{n}"));
        e
    };
    let mut answers = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(40);
    let refused = loop {
        assert!(
            Instant::now() < deadline,
            "no prompt 503 while the broker blocks publishing: {answers:?}"
        );
        let asked = Instant::now();
        // A request held for good would hold the test too; 15 s is past any confirm timeout.
        let Ok(r) = tokio::time::timeout(Duration::from_secs(15), env.publish(probe(answers.len()))).await else {
            answers.push((0, asked.elapsed()));
            continue;
        };
        answers.push((r.status, asked.elapsed()));
        if r.status == 503 && asked.elapsed() < Duration::from_secs(1) {
            break r;
        }
    };
    println!("answers while the alarm was up (status, time): {answers:?}");
    // The probe the broker held until the confirm timeout may still be stored: its key is left
    // unconfirmed under its event id. The probe refused at once sent nothing: its key is free.
    let held_probe = answers
        .iter()
        .position(|(_, t)| *t >= Duration::from_secs(1))
        .expect("one probe waited for the confirm timeout");
    let held_key = format!("probe-{held_probe}");
    let held = env
        .psql(&format!(
            "SELECT state || ' ' || event_id FROM idempotency_keys WHERE key = '{held_key}'"
        ))
        .unwrap_or_default();
    let held_event = held
        .strip_prefix("unconfirmed ")
        .unwrap_or_else(|| panic!("{held_key} is unconfirmed: `{held}`"))
        .to_owned();
    let refused_key = format!("probe-{}", answers.len() - 1);
    assert_eq!(
        env.psql(&format!(
            "SELECT count(*) FROM idempotency_keys WHERE key = '{refused_key}'"
        ))
        .as_deref(),
        Some("0"),
        "{refused_key}, refused at once, was released"
    );
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("resource alarm"),
        "the problem says why: {}",
        refused.body
    );
    for _ in 0..5 {
        let asked = Instant::now();
        let r = env.publish(event("refused")).await;
        assert_eq!(r.status, 503, "refused while blocked: {}", r.body);
        assert!(
            asked.elapsed() < Duration::from_secs(1),
            "refused in {:?}",
            asked.elapsed()
        );
    }

    drop(alarm);
    let accepted = eventually(Duration::from_secs(30), || async {
        let r = env.publish(event("after")).await;
        (r.status == 202).then_some(r)
    })
    .await;
    assert!(accepted.is_some(), "accepted again once the alarm cleared");
    // The producer's retry of the held probe goes out under the event id it may already have.
    let r = env.publish(probe(held_probe)).await;
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(r.body["event_id"], held_event.as_str(), "the retry keeps the event id");
    // Every delivery from here on: the one accepted after the alarm, maybe probes answered by a
    // timeout (the broker may store what it had received), never an event refused at once.
    let mut after = 0;
    let mut probes = Vec::new();
    while let Some(got) = rx.next(Duration::from_secs(3)).await {
        let body: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
        let label = body["data"]["label"].as_str().unwrap_or_default().to_owned();
        assert_ne!(label, "refused", "an event answered 503 at once was delivered");
        after += usize::from(label == "after");
        if label == "probe" {
            probes.push(got.header("webhook-id").unwrap_or_default().to_owned());
        }
    }
    assert!(after >= 1, "the event accepted after the alarm was delivered");
    println!("probes delivered (webhook-id): {probes:?}");
    // Delivered once or twice (the broker stored the held probe when the alarm cleared, as it
    // did in every run so far), always under one webhook-id.
    assert!(
        !probes.is_empty() && probes.iter().all(|id| *id == held_event),
        "the probe is delivered under its first id only: {probes:?}"
    );
    finish(env).await;
}

/// Closes, from the broker's side, every connection whose client-provided name is `name`, as an
/// operator does with `rabbitmqctl close_connection`; returns how many.
fn close_connections_named(name: &str) -> usize {
    let listed = rabbitmqctl(&["list_connections", "--no-table-headers", "pid", "client_properties"]);
    let wanted = format!("\"{name}\"");
    let pids: Vec<&str> = listed
        .lines()
        .filter(|line| line.contains(&wanted))
        .filter_map(|line| line.split('\t').next())
        .collect();
    for pid in &pids {
        rabbitmqctl(&["close_connection", pid, "closed by a test"]);
    }
    pids.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_the_broker_closes_are_opened_again() {
    let _serial = SERIAL.lock().await;
    let (env, mut rx, tenant) = setup(true).await;
    let event = |n: u32| json!({"type": "task.created", "tenant_id": tenant, "data": {"n": n}});
    assert_eq!(env.publish(event(0)).await.status, 202);
    assert!(rx.next(Duration::from_secs(10)).await.is_some(), "delivered before");
    for service in ["hookwire-dispatcher tasks", "hookwire-publisher"] {
        // This installation's only: another one on the broker (`make run`) has its own prefix.
        let name = format!("{service} ({})", env.prefix);
        assert_eq!(close_connections_named(&name), 1, "one `{name}` connection to close");
    }
    // Both come back by themselves: the next event is accepted and delivered.
    let accepted = eventually(Duration::from_secs(20), || async {
        let r = env.publish(event(1)).await;
        (r.status == 202).then_some(r)
    })
    .await;
    assert!(accepted.is_some(), "the publisher accepts events again");
    assert!(
        rx.next(Duration::from_secs(20)).await.is_some(),
        "the dispatcher delivers again"
    );
    finish(env).await;
}
