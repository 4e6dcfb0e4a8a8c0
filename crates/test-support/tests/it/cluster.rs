//! The services on a three-node RabbitMQ cluster (`scripts/cluster.sh`, started by `make test`)
//! under steady load: the node leading the most queues stopped and started again, then another
//! killed with SIGKILL and restarted. Every event answered 202 is delivered; the producer sees
//! 503s only for a short window, which the test prints.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hookwire_core::config::BrokerConfig;
use hookwire_test_support::{delete_topology, eventually, Receiver, TestEnv, PRODUCER_TOKEN};
use serde_json::json;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/cluster.sh");

fn cluster_url() -> String {
    let out = std::process::Command::new("bash")
        .args([SCRIPT, "url"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// `rabbitmqctl -q -n hwN@localhost args…`; its standard output.
fn ctl(node: u8, args: &[&str]) -> String {
    rabbit_tool("rabbitmqctl", node, args)
}

/// `tool -q -n hwN@localhost args…` (`rabbitmqctl`, `rabbitmq-queues`), which must succeed; its
/// standard output.
fn rabbit_tool(tool: &str, node: u8, args: &[&str]) -> String {
    let out = std::process::Command::new(tool)
        .args(["-q", "-n", &format!("hw{node}@localhost")])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool} runs: {e}"));
    assert!(
        out.status.success(),
        "{tool} {args:?} on hw{node}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// This installation's queues as one node sees them: name → (leader node number, members).
fn queues(asked: u8, prefix: &str) -> BTreeMap<String, (u8, usize)> {
    let listed: serde_json::Value = serde_json::from_str(&ctl(
        asked,
        &["list_queues", "name", "leader", "members", "--formatter", "json"],
    ))
    .unwrap();
    listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|q| q["name"].as_str().is_some_and(|n| n.starts_with(prefix)))
        .map(|q| {
            let leader = q["leader"].as_str().unwrap_or_default();
            let number = leader.strip_prefix("hw").and_then(|l| l[..1].parse().ok()).unwrap_or(0);
            let members = q["members"].as_array().map_or(0, Vec::len);
            (q["name"].as_str().unwrap().to_owned(), (number, members))
        })
        .collect()
}

/// When the publisher answered, its status (0: no answer) and the accepted event's id.
type Answer = (Instant, u16, Option<String>);

/// Waits until the load has had `n` more events accepted: each fault meets traffic, and the test
/// goes on once traffic flows again, not after a fixed time.
async fn flowing(answers: &Mutex<Vec<Answer>>, n: usize) {
    let accepted = || answers.lock().unwrap().iter().filter(|a| a.1 == 202).count();
    let target = accepted() + n;
    let flowed = eventually(Duration::from_secs(60), || async {
        (accepted() >= target).then_some(())
    })
    .await;
    assert!(flowed.is_some(), "fewer than {n} more events accepted within 60 s");
}

fn node_pid(node: u8) -> String {
    let pidfile = format!("/var/lib/hookwire-cluster/hw{node}/mnesia/hw{node}@localhost.pid");
    std::fs::read_to_string(&pidfile)
        .expect("the node's pidfile")
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_accepted_is_lost_when_broker_nodes_stop_or_die_under_load() {
    // Every node up, also after an earlier run that stopped midway.
    let up = std::process::Command::new("bash")
        .args([SCRIPT, "up"])
        .status()
        .unwrap();
    assert!(up.success(), "the cluster starts");
    let url = cluster_url();
    let prefix = format!("hwclu.{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let mut broker = BrokerConfig::new(url.clone(), prefix.clone());
    broker.delivery_shards = 3;
    let env = TestEnv::start_with(|o| {
        o.registry.broker = broker.clone();
        o.publisher.broker = broker.clone();
        o.dispatcher.broker = broker.clone();
    })
    .await;
    let mut receiver = Receiver::start(200).await;
    let (tenant, key) = env.tenant("cluster").await;
    env.webhook(&key, json!({"url": receiver.url(), "events": ["person.created"]}))
        .await;
    env.wait_routed(1).await;
    // Every quorum queue has a replica on each of the three nodes.
    let before = queues(1, &prefix);
    assert!(before.len() >= 5, "{before:?}");
    assert!(before.values().all(|(_, members)| *members == 3), "{before:?}");
    // The delivery shards' leaders can be spread over the nodes, so their work does not all
    // land on one: the `balanced` locator places new leaders on the least busy node (which may
    // still be one node when the services declare at once), and a rebalance, as an operator
    // runs it (docs/capacity.md), spreads them.
    let t = env.topology();
    let pattern = format!("^{}\\.(deliveries|bulk)", prefix.replace('.', "\\."));
    rabbit_tool(
        "rabbitmq-queues",
        1,
        &["rebalance", "quorum", "--queue-pattern", &pattern],
    );
    let spread = eventually(Duration::from_secs(10), || async {
        let now = queues(1, &prefix);
        let leaders: HashSet<u8> = t
            .delivery_queues()
            .into_iter()
            .map(|q| now[&t.delivery_queue_name(q)].0)
            .collect();
        (leaders.len() == 3).then_some(())
    })
    .await;
    assert!(
        spread.is_some(),
        "delivery queues not led from all three nodes: {:?}",
        queues(1, &prefix)
    );
    let before = queues(1, &prefix);

    // Steady load: one event at a time, every 10 ms, each answer kept.
    let stop = Arc::new(AtomicBool::new(false));
    let answers: Arc<Mutex<Vec<Answer>>> = Arc::default();
    let load = {
        let (stop, answers, http, publisher) = (stop.clone(), answers.clone(), env.http.clone(), env.publisher.clone());
        let body = json!({"type": "person.created", "tenant_id": tenant, "data": {}});
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let r = http
                    .post(
                        &format!("{publisher}/v1/events"),
                        &[("authorization", &format!("Bearer {PRODUCER_TOKEN}"))],
                        Some(&body),
                    )
                    .await;
                let (status, id) = match r {
                    Ok(r) => (r.status, r.body["event_id"].as_str().map(str::to_owned)),
                    Err(_) => (0, None),
                };
                answers.lock().unwrap().push((Instant::now(), status, id));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let received: Arc<Mutex<HashSet<String>>> = Arc::default();
    let collect = {
        let received = received.clone();
        tokio::spawn(async move {
            while let Some(got) = receiver.next(Duration::from_secs(120)).await {
                received
                    .lock()
                    .unwrap()
                    .insert(got.header("webhook-id").unwrap_or_default().to_owned());
            }
        })
    };
    let t0 = Instant::now();
    let mut phases = Vec::new();
    flowing(&answers, 200).await;

    // The node leading the most of this installation's queues: its application stopped, then
    // started again.
    let mut led = BTreeMap::<u8, usize>::new();
    for (leader, _) in before.values() {
        *led.entry(*leader).or_default() += 1;
    }
    let busiest = *led.iter().max_by_key(|(_, n)| **n).unwrap().0;
    println!("[cluster] queues led per node: {led:?}; stopping hw{busiest}");
    phases.push((format!("stop_app hw{busiest}"), t0.elapsed()));
    ctl(busiest, &["stop_app"]);
    let other = if busiest == 1 { 2 } else { 1 };
    let led_elsewhere = || queues(other, &prefix).values().all(|(leader, _)| *leader != busiest);
    let moved = eventually(Duration::from_secs(5), || async { led_elsewhere().then_some(()) }).await;
    assert!(
        moved.is_some(),
        "leaders left hw{busiest}: {:?}",
        queues(other, &prefix)
    );
    flowing(&answers, 200).await;
    phases.push((format!("start_app hw{busiest}"), t0.elapsed()));
    ctl(busiest, &["start_app"]);
    flowing(&answers, 200).await;

    // Another node killed outright, then started again.
    let victim = (busiest % 3) + 1;
    println!("[cluster] SIGKILL hw{victim}");
    phases.push((format!("kill -9 hw{victim}"), t0.elapsed()));
    let killed = std::process::Command::new("kill")
        .args(["-9", &node_pid(victim)])
        .status()
        .unwrap();
    assert!(killed.success());
    flowing(&answers, 200).await;
    phases.push((format!("restart hw{victim}"), t0.elapsed()));
    let restarted = std::process::Command::new("bash")
        .args([SCRIPT, "up"])
        .status()
        .unwrap();
    assert!(restarted.success(), "the killed node starts again");
    flowing(&answers, 200).await;
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();

    let answers = answers.lock().unwrap().clone();
    let accepted: HashSet<String> = answers
        .iter()
        .filter(|a| a.1 == 202)
        .filter_map(|a| a.2.clone())
        .collect();
    let unexpected: Vec<_> = answers
        .iter()
        .filter(|a| !matches!(a.1, 202 | 503))
        .map(|a| a.1)
        .collect();
    assert!(unexpected.is_empty(), "answers other than 202 and 503: {unexpected:?}");
    // The windows of 503s: refusals less than a second apart belong to one window.
    let refused: Vec<Instant> = answers.iter().filter(|a| a.1 == 503).map(|a| a.0).collect();
    let mut windows: Vec<(Instant, Instant)> = Vec::new();
    for at in &refused {
        match windows.last_mut() {
            Some((_, last)) if at.duration_since(*last) < Duration::from_secs(1) => *last = *at,
            _ => windows.push((*at, *at)),
        }
    }
    let offset = |at: Instant| at.checked_duration_since(t0).unwrap_or_default();
    println!("[cluster] phases (since the load settled): {phases:?}");
    for (first, last) in &windows {
        println!("[cluster] 503s from {:?} to {:?}", offset(*first), offset(*last));
    }
    let windows: Vec<Duration> = windows.iter().map(|(first, last)| *last - *first).collect();
    println!(
        "[cluster] {} events answered: {} accepted, {} refused with 503 in {} window(s) of at most {:?}",
        answers.len(),
        accepted.len(),
        refused.len(),
        windows.len(),
        windows.iter().max().copied().unwrap_or_default()
    );
    assert!(accepted.len() > 500, "the load ran: {} accepted", accepted.len());

    let all = eventually(Duration::from_secs(90), || async {
        let got = received.lock().unwrap();
        accepted.is_subset(&got).then_some(())
    })
    .await;
    let missing = accepted.difference(&received.lock().unwrap()).count();
    assert!(all.is_some(), "{missing} accepted events were never delivered");
    collect.abort();
    env.stop().await;
    delete_topology(&broker).await;
}
