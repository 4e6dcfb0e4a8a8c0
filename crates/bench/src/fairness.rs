//! Scenario 8, tenant fairness: tenant B sends 50 events/s to its webhook while tenant A floods
//! its own with `POST /v1/events:batch` (1,000 events a request, 4 clients, as fast as the
//! publisher takes them). Targets: B's p99 during the flood at most twice its p99 alone, and A's
//! flood drained at no less than 90 % of its rate alone. Then A floods with single events from 64
//! clients instead, so that its tasks and B's are of one kind.

use std::time::{Duration, Instant};

use crate::bench::{percentile, Bench};
use crate::between::drain;
use crate::metric;

const NAME: &str = "8 fairness";

/// How A floods: batches of 1,000 from 4 clients, or single events from 64.
#[derive(Clone, Copy)]
enum Shape {
    Batches,
    Singles,
}

/// A's flood: publish for `run`, then wait until every accepted event arrived. Its deliveries/s
/// from the first request to the last receipt.
async fn flood(b: &Bench, tenant: &str, run: Duration, shape: Shape) -> anyhow::Result<(u64, f64)> {
    let started = Instant::now();
    let (workers, batch) = match shape {
        Shape::Batches => (4, 1000),
        Shape::Singles => (64, 1),
    };
    let (accepted, _) = b.load(tenant, run, workers, batch, None, false).await;
    anyhow::ensure!(
        b.wait_all(&["fair-a".into()], accepted, Duration::from_secs(600)).await,
        "tenant A's flood did not drain"
    );
    Ok((accepted, accepted as f64 / started.elapsed().as_secs_f64()))
}

/// The publisher's confirm time of single events (its standard link): total seconds, count.
async fn confirms(b: &Bench) -> (f64, f64) {
    let series = |part: &str| format!("hookwire_publisher_publish_confirm_seconds_{part}{{link=\"standard\"}}");
    (
        metric(&b.publisher, &series("sum")).await,
        metric(&b.publisher, &series("count")).await,
    )
}

/// B's requests: how long the publisher took to answer 202 (its part of publish→receipt), and
/// of that the mean wait for the broker's confirms since `before` (`confirms`).
async fn answer_rows(b: &mut Bench, name: &str, before: (f64, f64)) {
    let mut answers = std::mem::take(&mut *b.paced_answers.lock().expect("answers lock"));
    answers.sort_unstable();
    b.row(name, "p50 publish→202", percentile(&answers, 0.50), "ms", "");
    b.row(name, "p99 publish→202", percentile(&answers, 0.99), "ms", "");
    let after = confirms(b).await;
    let mean = (after.0 - before.0) / (after.1 - before.1) * 1000.0;
    b.row(name, "mean broker confirm (single events)", mean, "ms", "");
}

/// A's flood of `shape` with B at 50 events/s beside it: B's latency rows under `phase`, and
/// (B's p99, A's deliveries/s).
async fn beside_flood(
    b: &mut Bench,
    (tenant_a, tenant_b): (&str, &str),
    run: Duration,
    shape: Shape,
    phase: &str,
) -> anyhow::Result<(f64, f64)> {
    let before = confirms(b).await;
    let (a, (accepted, _)) = tokio::join!(
        flood(b, tenant_a, run, shape),
        b.load(tenant_b, run, 1, 1, Some(50), false)
    );
    let (flooded, rate) = a?;
    b.wait_all(&["fair-b".to_owned()], accepted, Duration::from_secs(60))
        .await;
    let during = b.records.take("fair-b");
    let _ = b.records.take("fair-a");
    let name = format!("{NAME}: B during {phase}");
    let p99 = b.latency_rows(&name, &during, "≤ 2× alone");
    answer_rows(b, &name, before).await;
    b.delivered += flooded + accepted;
    Ok((p99, rate))
}

pub async fn run(b: &mut Bench, run: Duration) -> anyhow::Result<()> {
    let tenant_a = b.tenant(&[("ok", "fair-a".into(), 30)], 0).await?;
    let tenant_b = b.tenant(&[("ok", "fair-b".into(), 30)], 0).await?;
    let tenants = (tenant_a.as_str(), tenant_b.as_str());

    b.paced_answers.lock().expect("answers lock").clear();
    eprintln!("8. fairness: tenant B alone at 50 events/s");
    let before = confirms(b).await;
    let (accepted, _) = b.load(&tenant_b, run, 1, 1, Some(50), false).await;
    b.wait_all(&["fair-b".to_owned()], accepted, Duration::from_secs(60))
        .await;
    let alone = b.records.take("fair-b");
    let p99_alone = b.latency_rows(&format!("{NAME}: B alone @50/s"), &alone, "");
    answer_rows(b, &format!("{NAME}: B alone @50/s"), before).await;
    b.delivered += accepted;
    drain(b).await;

    eprintln!("8. fairness: tenant A's flood alone");
    let (flooded, rate_alone) = flood(b, &tenant_a, run, Shape::Batches).await?;
    let _ = b.records.take("fair-a");
    b.delivered += flooded;
    drain(b).await;

    eprintln!("8. fairness: tenant A's flood with tenant B at 50 events/s");
    let (p99_during, rate_with) = beside_flood(b, tenants, run, Shape::Batches, "A's flood").await?;
    b.row(
        NAME,
        "B's p99 during the flood / alone",
        p99_during / p99_alone,
        "×",
        "≤ 2",
    );
    b.row(NAME, "A's flood alone", rate_alone, "deliveries/s", "");
    b.row(NAME, "A's flood with B", rate_with, "deliveries/s", "");
    b.row(NAME, "A's rate with B / alone", rate_with / rate_alone, "×", "≥ 0.9");
    drain(b).await;

    // The same with A's flood as single events: its tasks and B's are both single tasks.
    eprintln!("8. fairness: tenant A's flood of single events (64 clients) with tenant B at 50 events/s");
    let (p99_singles, rate_singles) = beside_flood(b, tenants, run, Shape::Singles, "A's single events").await?;
    b.row(
        NAME,
        "B's p99 during single events / alone",
        p99_singles / p99_alone,
        "×",
        "≤ 2",
    );
    b.row(NAME, "A's single events with B", rate_singles, "deliveries/s", "");
    Ok(())
}
