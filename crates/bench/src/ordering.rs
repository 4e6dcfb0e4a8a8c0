//! Scenario 9, ordered delivery: 100,000 events over 1,000 subjects to one webhook with
//! `ordering: "subject"`, its receiver answering 500 to 5 % of attempts at random (retried after
//! 1 s); the same load to a webhook without ordering beside it, in the same run. Targets: no
//! event of a subject received after a later one of it, and at least 5,000 ordered
//! deliveries/s. First, one subject's rate alone (each event's round trip before the next).

use std::time::Duration;

use serde_json::json;

use crate::bench::Bench;
use crate::between::{drain, quiesce};
use crate::receiver::now_micros;

const NAME: &str = "9 ordered";
const EVENTS: u64 = 100_000;
const SUBJECTS: u64 = 1_000;
/// Producers, each publishing the events of its own subjects one request after another.
const WORKERS: u64 = 4;
const BATCH: u64 = 1_000;

/// Publishes the scenario's events for `tenant`: producer `w` owns subjects `w`, `w + 4`, …
/// and sends each subject's events in order (`data.k` the subject, `data.q` its place).
/// Returns (accepted, refused).
async fn publish(b: &Bench, tenant: &str) -> (u64, u64) {
    let per_worker_subjects = SUBJECTS / WORKERS;
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let (api, url, auth, tenant) = (
            b.api.clone(),
            format!("{}/v1/events:batch", b.publisher),
            format!("Bearer {}", b.producer),
            tenant.to_owned(),
        );
        tasks.push(tokio::spawn(async move {
            let (mut accepted, mut refused) = (0, 0);
            for start in (0..EVENTS / WORKERS).step_by(BATCH as usize) {
                let s = now_micros();
                let events: Vec<_> = (start..start + BATCH)
                    .map(|i| {
                        let k = w + WORKERS * (i % per_worker_subjects);
                        json!({"type": "task.created", "tenant_id": tenant, "subject": format!("subject-{k}"),
                               "data": {"s": s, "k": k, "q": i / per_worker_subjects}})
                    })
                    .collect();
                match api
                    .call(
                        "POST",
                        &url,
                        ("authorization", &auth),
                        Some(&json!({ "events": events })),
                    )
                    .await
                {
                    Ok((202, _)) => accepted += BATCH,
                    _ => refused += BATCH,
                }
            }
            (accepted, refused)
        }));
    }
    let mut totals = (0, 0);
    for t in tasks {
        if let Ok((a, r)) = t.await {
            totals.0 += a;
            totals.1 += r;
        }
    }
    totals
}

/// One subject's rate alone: 300 events of one subject in one request to an ordered webhook
/// whose receiver always succeeds. Each waits for the previous one's round trip.
async fn one_subject(b: &mut Bench) -> anyhow::Result<()> {
    const N: u64 = 300;
    let tag = "ord-one";
    let tenant = b
        .tenant_with(&[("ok", tag.into(), 30)], 0, json!({ "ordering": "subject" }))
        .await?;
    let s = now_micros();
    let events: Vec<_> = (0..N)
        .map(|q| json!({"type": "task.created", "tenant_id": tenant, "subject": "one", "data": {"s": s, "k": 0, "q": q}}))
        .collect();
    let url = format!("{}/v1/events:batch", b.publisher);
    let auth = format!("Bearer {}", b.producer);
    let (status, body) = b
        .api
        .call(
            "POST",
            &url,
            ("authorization", &auth),
            Some(&json!({ "events": events })),
        )
        .await?;
    anyhow::ensure!(status == 202, "publishing one subject's events: {status} {body}");
    let complete = b.wait_all(&[tag.into()], N, Duration::from_secs(120)).await;
    let tally = b.records.take(tag);
    let secs = tally.last_us.unwrap_or(0).saturating_sub(tally.first_us.unwrap_or(0)) as f64 / 1e6;
    let scenario = format!("{NAME}: one subject alone");
    b.row(
        &scenario,
        "deliveries/s (receiver)",
        (N - 1) as f64 / secs.max(1e-3),
        "1/s",
        "",
    );
    b.row(
        &scenario,
        "out-of-order receipts",
        tally.out_of_order as f64,
        "events",
        "0",
    );
    b.delivered += N;
    anyhow::ensure!(complete, "{scenario}: only {} of {N} arrived", tally.ids.len());
    Ok(())
}

pub async fn run(b: &mut Bench) -> anyhow::Result<()> {
    eprintln!("9. one subject alone: 300 events in order");
    one_subject(b).await?;
    drain(b).await;
    for (label, ordering, tag) in [("unordered", "none", "ord-none"), ("ordered", "subject", "ord-subject")] {
        eprintln!("9. {label}: {EVENTS} events over {SUBJECTS} subjects, 5 % of attempts answered 500");
        let tenant = b
            .tenant_with(&[("fail5", tag.into(), 30)], 100, json!({ "ordering": ordering }))
            .await?;
        let (accepted, refused) = publish(b, &tenant).await;
        let complete = b.wait_all(&[tag.into()], accepted, Duration::from_secs(900)).await;
        let tally = b.records.take(tag);
        let secs = tally.last_us.unwrap_or(0).saturating_sub(tally.first_us.unwrap_or(0)) as f64 / 1e6;
        let scenario = format!("{NAME}: {label}");
        let target = if ordering == "subject" { "≥ 5000" } else { "" };
        b.row(
            &scenario,
            "deliveries/s (receiver)",
            tally.ids.len() as f64 / secs.max(1e-3),
            "1/s",
            target,
        );
        b.row(
            &scenario,
            "attempts per delivery",
            tally.requests as f64 / tally.ids.len().max(1) as f64,
            "×",
            "",
        );
        let order_target = if ordering == "subject" { "0" } else { "" };
        b.row(
            &scenario,
            "out-of-order receipts",
            tally.out_of_order as f64,
            "events",
            order_target,
        );
        if ordering == "subject" {
            // A subject's line stands still for each of its failures' retry interval (1 s, the
            // shortest a policy allows): the unluckiest subject alone bounds the run's rate.
            let most = tally.line_failures.values().copied().max().unwrap_or(0);
            b.row(&scenario, "most 500s to one subject", f64::from(most), "attempts", "");
            b.row(
                &scenario,
                "deliveries/s if the run lasted only its retry waits",
                accepted as f64 / f64::from(most.max(1)),
                "1/s",
                "",
            );
        }
        b.row(&scenario, "refused", refused as f64, "events", "0");
        b.row(
            &scenario,
            "accepted vs received",
            tally.ids.len() as f64 - accepted as f64,
            "missing<0",
            "0",
        );
        b.delivered += accepted;
        anyhow::ensure!(complete, "{scenario}: only {} of {accepted} arrived", tally.ids.len());
        // The ordered half starts as every scenario does, with the unordered half's writes done
        // (otherwise RabbitMQ's write-ahead log, filled by both, rolled over 9-10 s into it).
        // Within the scenario's phase, so its CPU rows include this.
        drain(b).await;
        if ordering == "none" {
            quiesce().await;
        }
    }
    Ok(())
}
