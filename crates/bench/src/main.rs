//! `hookwire-bench`: measures the running stack (see README.md and docs/benchmarks.md).

mod bench;
mod between;
mod client;
mod fairness;
mod machine;
mod ordering;
mod receiver;
mod references;
mod registry_api;
mod routing;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::bench::Bench;
use crate::between::{drain, max_retry_depth, settle};
use crate::client::Api;
use crate::machine::{cpu_snapshot, proc_stats, Steal, SERVICES};
use crate::receiver::Records;
use crate::references::{reference_http, reference_rabbit, reference_rabbit_latency};

pub(crate) fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// Whether scenario `name` (`routing`, `ref`, `1` … `9`) runs: all of them unless `HOOKWIRE_BENCH_ONLY`
/// lists some (`HOOKWIRE_BENCH_ONLY=1,3`), for profiling one scenario at a time.
pub(crate) fn wanted(name: &str) -> bool {
    std::env::var("HOOKWIRE_BENCH_ONLY").map_or(true, |only| only.split(',').any(|s| s.trim() == name))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let records = Records::default();
    let receiver = receiver::start(records.clone()).await?;
    let mut b = Bench {
        api: Api::default(),
        records,
        receiver,
        registry: env("HOOKWIRE_BENCH_REGISTRY", "http://127.0.0.1:8080"),
        publisher: env("HOOKWIRE_BENCH_PUBLISHER", "http://127.0.0.1:8081"),
        admin: env("HOOKWIRE_ADMIN_TOKEN", hookwire_core::config::dev_defaults::ADMIN_TOKEN),
        producer: env(
            "HOOKWIRE_PRODUCER_TOKEN",
            hookwire_core::config::dev_defaults::PRODUCER_TOKEN,
        ),
        rows: Vec::new(),
        subscriptions: 0,
        created: Vec::new(),
        phase: None,
        peaks: SERVICES.iter().map(|s| (*s, 0)).collect(),
        delivered: 0,
        phase_start: (0, Vec::new()),
        steal: Steal::start(),
        paced_answers: Default::default(),
    };
    let (_, ready) = b
        .api
        .call("GET", &format!("{}/readyz", b.publisher), ("x", "y"), None)
        .await?;
    b.subscriptions = ready["subscriptions"].as_u64().unwrap_or(0) as usize;
    let secs = |name: &str, default: u64| env(name, &default.to_string()).parse::<u64>().unwrap_or(default);
    let run = Duration::from_secs(secs("HOOKWIRE_BENCH_SECONDS", 15));
    let statements_before = ledger_statements(&b).await;

    if wanted("routing") {
        eprintln!(
            "routing cache: {} webhooks in {} tenants, in-process",
            routing::WEBHOOKS,
            routing::TENANTS
        );
        let costs = routing::measure(routing::WEBHOOKS, routing::TENANTS)?;
        let name = "routing cache 100k webhooks";
        let micros = |d: Duration| d.as_secs_f64() * 1e6;
        b.row(
            name,
            "one tenant's event (10 matches)",
            micros(costs.tenant_event),
            "µs",
            "",
        );
        b.row(name, "feed event (100,000 matches)", micros(costs.feed_event), "µs", "");
        b.row(
            name,
            "feed event of a type 100 webhooks take (100 matches)",
            micros(costs.narrow_feed_event),
            "µs",
            "",
        );
        b.row(
            name,
            "change to one of those 100, then their type's feed event",
            micros(costs.narrow_feed_after_change),
            "µs",
            "",
        );
        b.row(name, "one webhook change", micros(costs.change), "µs", "");
    }

    // References: what the machine does without Hookwire in between.
    let (mut bare, mut rabbit) = (f64::NAN, f64::NAN);
    if wanted("ref") {
        b.phase(Some("reference"));
        eprintln!("reference: bare hyper client → receiver");
        bare = reference_http(&b, Duration::from_secs(5)).await?;
        b.row("reference", "bare hyper requests/s", bare, "1/s", "");
        eprintln!("reference: RabbitMQ publish (confirms) + consume");
        rabbit = reference_rabbit().await?;
        b.row("reference", "RabbitMQ msgs/s (confirmed, consumed)", rabbit, "1/s", "");
        for (rate, batch) in LATENCY_SHAPES {
            eprintln!("reference: RabbitMQ latency at {rate} msgs/s in batches of {batch}");
            let (to_consumer, to_confirm) = reference_rabbit_latency(rate, batch, Duration::from_secs(5)).await?;
            let name = format!("reference RabbitMQ @{rate}/s{}", shape(batch));
            b.latency_rows(&format!("{name} publish→consume"), &to_consumer, "");
            b.latency_rows(&format!("{name} publish→confirm"), &to_confirm, "");
        }
    }

    if wanted("1") {
        b.phase(Some("1 max sustained"));
        // 1. Max sustained, one webhook per event.
        eprintln!("1. max sustained deliveries/s, one webhook per event");
        let max_rate = b.max_sustained("1 max sustained", "max", run, false, "≥ 5000").await?;
        b.row("1 max sustained", "ratio to bare hyper", max_rate / bare, "×", "");
        b.row(
            "1 max sustained",
            "ratio to RabbitMQ reference",
            max_rate / rabbit,
            "×",
            "",
        );
    }
    settle(&mut b).await;
    if wanted("2") {
        b.phase(Some("2 fan-out 100"));
        // 2. Fan-out: one event to 100 webhooks.
        eprintln!("2. fan-out: one event to 100 webhooks");
        let hooks: Vec<(&str, String, u32)> = (0..100).map(|i| ("ok", format!("fan-{i}"), 30)).collect();
        let tags: Vec<String> = hooks.iter().map(|h| h.1.clone()).collect();
        let tenant = b.tenant(&hooks, 10).await?;
        let cpu = cpu_snapshot();
        let (accepted, _) = b.load(&tenant, run, 2, 5, None, false).await;
        b.cpu_rows("2 fan-out 100", &cpu, run.as_secs_f64());
        b.throughput("2 fan-out 100", &tags, accepted * 100, "≥ 10000").await?;
        b.delivered += accepted * 100;
    }
    settle(&mut b).await;
    if wanted("3") {
        b.phase(Some("3 latency"));
        // 3. Latency at fixed rates: one event per request (the targets), then in batches.
        for (i, (rate, batch)) in LATENCY_SHAPES.into_iter().enumerate() {
            if i > 0 {
                // Each shape starts from quiet, as each scenario does, not while the last one's
                // records are still being written (bench/history.md, "After run 37").
                drain(&b).await;
            }
            eprintln!("3. latency at {rate} events/s in batches of {batch}");
            let target = match (batch, rate) {
                (1, 500) => "≤ 5 (p50 ≤ 2)",
                (1, _) => "≤ 20",
                _ => "",
            };
            let name = format!("3 latency @{rate}/s{}", shape(batch));
            b.latency(&name, &format!("lat-{rate}-{batch}"), run, (rate, batch), false, target)
                .await?;
        }
    }
    settle(&mut b).await;
    if wanted("4") {
        b.phase(Some("4 isolation"));
        // 4. Isolation: 10 % of webhooks time out. The baseline is the same shape, all healthy.
        let mut p99s = Vec::new();
        for dead in [false, true] {
            let label = if dead {
                "4 isolation (10 % dead)"
            } else {
                "4 isolation baseline"
            };
            eprintln!(
                "4. isolation: {}",
                if dead {
                    "1 of 10 webhooks times out"
                } else {
                    "10 healthy webhooks"
                }
            );
            let prefix = if dead { "iso" } else { "isobase" };
            let mut hooks: Vec<(&str, String, u32)> = (0..9).map(|i| ("ok", format!("{prefix}-{i}"), 30)).collect();
            hooks.push(if dead {
                ("slow", format!("{prefix}-slow"), 1)
            } else {
                ("ok", format!("{prefix}-9"), 30)
            });
            let tenant = b.tenant(&hooks, 0).await?;
            let (accepted, _) = b.load(&tenant, run, 2, 1, Some(100), false).await;
            let tags: Vec<String> = (0..9).map(|i| format!("{prefix}-{i}")).collect();
            b.wait_all(&tags, accepted * 9, Duration::from_secs(60)).await;
            let mut healthy = receiver::Tally::default();
            for t in &tags {
                let tally = b.records.take(t);
                healthy.latencies_us.extend(tally.latencies_us);
                healthy.slow.extend(tally.slow);
                healthy.ids.extend(tally.ids.into_iter().map(|id| format!("{t}/{id}")));
            }
            let _ = b.records.take(&format!("{prefix}-slow"));
            let _ = b.records.take(&format!("{prefix}-9"));
            b.row(
                label,
                "healthy received vs accepted",
                healthy.ids.len() as f64 - (accepted * 9) as f64,
                "missing<0",
                "0",
            );
            p99s.push(b.latency_rows(label, &healthy, if dead { "≤ 2× baseline" } else { "" }));
            b.delivered += accepted * 9;
        }
        b.row(
            "4 isolation (10 % dead)",
            "healthy p99 / all-healthy p99",
            p99s[1] / p99s[0],
            "×",
            "≤ 2",
        );
    }
    settle(&mut b).await;
    if wanted("5") {
        b.phase(Some("5 retry storm"));
        // 5. Retry storm: every receiver fails twice, then succeeds.
        eprintln!("5. retry storm: every receiver fails twice");
        let hooks: Vec<(&str, String, u32)> = (0..10).map(|i| ("flaky", format!("storm-{i}"), 30)).collect();
        let tags: Vec<String> = hooks.iter().map(|h| h.1.clone()).collect();
        let tenant = b.tenant(&hooks, 5).await?;
        let started = Instant::now();
        // A fixed rate, so the storm has the same size whatever the publisher's ceiling.
        let (accepted, _) = b.load(&tenant, Duration::from_secs(5), 2, 50, Some(600), false).await;
        let (stop_probe, probe_stopped) = tokio::sync::oneshot::channel::<()>();
        let depth_probe = tokio::spawn(max_retry_depth(probe_stopped));
        let complete = b.wait_all(&tags, accepted * 10, Duration::from_secs(120)).await;
        let took = started.elapsed().as_secs_f64();
        let _ = stop_probe.send(());
        let peak = depth_probe.await.unwrap_or(0);
        let (end_tx, end_rx) = tokio::sync::oneshot::channel::<()>();
        let _ = end_tx.send(());
        let depth = max_retry_depth(end_rx).await;
        b.row(
            "5 retry storm",
            "deliveries (3 attempts each)",
            (accepted * 10) as f64,
            "deliveries",
            "",
        );
        b.row("5 retry storm", "completion time", took, "s", "");
        b.row("5 retry storm", "peak retry queue depth", peak as f64, "messages", "");
        b.row(
            "5 retry storm",
            "retry queue depth at the end",
            depth as f64,
            "messages",
            "0",
        );
        for t in &tags {
            let _ = b.records.take(t);
        }
        anyhow::ensure!(complete, "the retry storm did not complete");
        b.delivered += accepted * 10;
    }
    settle(&mut b).await;
    if wanted("6") {
        b.phase(Some("6 registry API"));
        // 6. Registry API.
        eprintln!("6. registry API");
        registry_api::run(&mut b, Duration::from_secs(5)).await?;
    }
    settle(&mut b).await;
    if wanted("7") {
        // 7. Scenarios 1 and 3 (500/s, one event per request) with an idempotency key on every
        // event: what keys cost producers that send them.
        b.phase(Some("7 keyed max sustained"));
        eprintln!("7. idempotency keys: max sustained, every event keyed");
        let claims = claim_seconds(&b).await;
        b.max_sustained("7 keyed max sustained", "keyed-max", run, true, "")
            .await?;
        b.claim_row("7 keyed max sustained", claims).await;
        settle(&mut b).await;
        b.phase(Some("7 keyed latency @500/s"));
        eprintln!("7. idempotency keys: latency at 500 events/s, every event keyed");
        let claims = claim_seconds(&b).await;
        b.latency("7 keyed latency @500/s", "keyed-lat", run, (500, 1), true, "")
            .await?;
        b.claim_row("7 keyed latency @500/s", claims).await;
    }
    settle(&mut b).await;
    if wanted("8") {
        // 8. Tenant fairness: one tenant's flood, another's steady trickle.
        b.phase(Some("8 fairness"));
        fairness::run(&mut b, run).await?;
    }
    settle(&mut b).await;
    if wanted("9") {
        // 9. Ordered delivery per subject, beside the same load unordered.
        b.phase(Some("9 ordered"));
        ordering::run(&mut b).await?;
    }

    // The results path: SQL statements per delivery (ledger writer counter).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let statements = ledger_statements(&b).await - statements_before;
    b.row(
        "results path",
        "SQL statements per delivery",
        statements / b.delivered as f64,
        "statements",
        "≤ 1",
    );
    b.phase(None);
    for (service, peak) in b.peaks.clone() {
        if let Some((cpu, _)) = proc_stats(service) {
            b.row(
                "whole run",
                &format!("{service} peak RSS"),
                peak as f64 / 1024.0,
                "MiB",
                if service == "dispatcher" { "≤ 64" } else { "" },
            );
            b.row("whole run", &format!("{service} CPU time"), cpu, "s", "");
        }
    }
    write_results(&b)?;
    b.cleanup().await;
    Ok(())
}

/// The publisher's idempotency-claim histogram: (seconds in all, claims).
pub(crate) async fn claim_seconds(b: &Bench) -> (f64, f64) {
    let name = "hookwire_publisher_idempotency_claim_seconds";
    (
        metric(&b.publisher, &format!("{name}_sum")).await,
        metric(&b.publisher, &format!("{name}_count")).await,
    )
}

pub(crate) async fn ledger_statements(b: &Bench) -> f64 {
    metric(&b.registry, "hookwire_registry_ledger_statements_total").await
}

/// A counter (or a histogram's `_sum` or `_count`) of a service's metrics (0 when unreadable).
pub(crate) async fn metric(service: &str, name: &str) -> f64 {
    // The metrics body is text, not JSON: read it raw.
    let text = raw_get(&format!("{service}/metrics")).await.unwrap_or_default();
    text.lines()
        .find(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with(' ')))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

pub(crate) async fn raw_get(url: &str) -> anyhow::Result<String> {
    use http_body_util::BodyExt as _;
    let client: hyper_util::client::legacy::Client<_, http_body_util::Empty<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let res = client.get(url.parse()?).await?;
    Ok(String::from_utf8_lossy(&res.into_body().collect().await?.to_bytes()).into_owned())
}

pub(crate) fn write_results(b: &Bench) -> anyhow::Result<()> {
    let mut md = String::from("| scenario | metric | value | unit | target |\n|---|---|---:|---|---|\n");
    for r in &b.rows {
        let _ = writeln!(
            md,
            "| {} | {} | {:.2} | {} | {} |",
            r.scenario, r.metric, r.value, r.unit, r.target
        );
    }
    let json: Vec<Value> = b
        .rows
        .iter()
        .map(|r| json!({"scenario": r.scenario, "metric": r.metric, "value": r.value, "unit": r.unit, "target": r.target}))
        .collect();
    std::fs::create_dir_all("bench/results")?;
    std::fs::write("bench/results/latest.md", &md)?;
    std::fs::write("bench/results/latest.json", serde_json::to_string_pretty(&json)?)?;
    println!("\n{md}");
    println!("written: bench/results/latest.md, bench/results/latest.json");
    Ok(())
}

/// The shapes of scenario 3 and of the broker's latency reference: (events or messages per
/// second, per request or confirm round). One at a time, as a producer publishing each event as
/// it happens sends them, carries the targets; the batches are the shape of runs 1–29 (five per
/// request at 500/s, twenty at 2,000/s).
pub(crate) const LATENCY_SHAPES: [(u64, usize); 4] = [(500, 1), (2000, 1), (500, 5), (2000, 20)];

/// A latency row's suffix: nothing for one event per request, `×N` for batches of N.
pub(crate) fn shape(batch: usize) -> String {
    if batch == 1 {
        String::new()
    } else {
        format!(" ×{batch}")
    }
}
