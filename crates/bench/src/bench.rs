//! The benchmark's state and its measuring steps: tenants and webhooks, load, waiting for
//! receipts, throughput and latency rows, phases with their CPU and memory.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::json;

use crate::claim_seconds;
use crate::client::Api;
use crate::machine::{cpu_snapshot, proc_stats, reset_peak_rss, stalls, Steal};
use crate::receiver::{self, now_micros, Records};

pub(crate) struct Bench {
    pub(crate) api: Api,
    pub(crate) records: Records,
    pub(crate) receiver: SocketAddr,
    pub(crate) registry: String,
    pub(crate) publisher: String,
    pub(crate) admin: String,
    pub(crate) producer: String,
    pub(crate) rows: Vec<Row>,
    pub(crate) subscriptions: usize,
    /// Every webhook the run created, with its key, to delete at the end.
    pub(crate) created: Vec<(String, String)>,
    /// The scenario whose memory peaks are being watched, and each service's peak so far (KiB).
    pub(crate) phase: Option<String>,
    pub(crate) peaks: Vec<(&'static str, u64)>,
    /// Deliveries the run has received so far, and the count and CPU times when the phase began.
    pub(crate) delivered: u64,
    pub(crate) phase_start: (u64, Vec<(String, f64)>),
    pub(crate) steal: Steal,
    /// How long each request of the paced loads took to be answered (µs), for scenarios that
    /// split a latency into the publisher's part and the rest.
    pub(crate) paced_answers: Arc<std::sync::Mutex<Vec<u64>>>,
}

pub(crate) struct Row {
    pub(crate) scenario: String,
    pub(crate) metric: String,
    pub(crate) value: f64,
    pub(crate) unit: String,
    pub(crate) target: String,
}

pub(crate) fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

impl Bench {
    pub(crate) fn row(&mut self, scenario: &str, metric: &str, value: f64, unit: &str, target: &str) {
        eprintln!("  {scenario:<28} {metric:<34} {value:>12.2} {unit:<10} {target}");
        self.rows.push(Row {
            scenario: scenario.into(),
            metric: metric.into(),
            value,
            unit: unit.into(),
            target: target.into(),
        });
    }

    /// Ends the phase of the scenario before and starts `next`'s. A phase runs until the next
    /// scenario starts, so it includes draining its backlog and settling. Per phase: the
    /// dispatcher's peak RSS (its target is per run) and each process's CPU time per delivery.
    pub(crate) fn phase(&mut self, next: Option<&str>) {
        let ended = std::mem::replace(&mut self.phase, next.map(str::to_owned));
        let cpu = cpu_snapshot();
        let (delivered_before, cpu_before) = std::mem::replace(&mut self.phase_start, (self.delivered, cpu.clone()));
        let delivered = self.delivered - delivered_before;
        if let (Some(label), true) = (&ended, delivered > 0) {
            for (service, now) in &cpu {
                if let Some((_, before)) = cpu_before.iter().find(|(s, _)| s == service) {
                    let micros = (now - before) * 1e6 / delivered as f64;
                    self.row(label, &format!("{service} CPU per delivery"), micros, "µs", "");
                }
            }
        }
        // The whole run's peaks count the time between phases too (settling, vacuuming).
        for i in 0..self.peaks.len() {
            let service = self.peaks[i].0;
            if let Some((_, hwm)) = proc_stats(service) {
                self.peaks[i].1 = self.peaks[i].1.max(hwm);
                if let (Some(label), "dispatcher") = (&ended, service) {
                    self.row(label, "dispatcher peak RSS", hwm as f64 / 1024.0, "MiB", "≤ 64");
                }
            }
            reset_peak_rss(service);
        }
    }

    pub(crate) fn cpu_rows(&mut self, scenario: &str, before: &[(String, f64)], seconds: f64) {
        for (service, cpu) in cpu_snapshot() {
            if let Some((_, b)) = before.iter().find(|(s, _)| *s == service) {
                self.row(
                    scenario,
                    &format!("{service} CPU"),
                    100.0 * (cpu - b) / seconds,
                    "% of a core",
                    "",
                );
            }
        }
    }

    /// Deletes the webhooks the run created, so repeated runs do not grow the routing snapshot.
    pub(crate) async fn cleanup(&self) {
        eprintln!("deleting the {} webhooks this run created", self.created.len());
        for (key, id) in &self.created {
            let url = format!("{}/v1/webhooks/{id}", self.registry);
            let _ = self.api.call("DELETE", &url, ("x-api-key", key), None).await;
        }
    }

    /// A tenant with webhooks pointing at the receiver: `(kind, tag, timeout_seconds)` each.
    pub(crate) async fn tenant(&mut self, hooks: &[(&str, String, u32)], retries: u32) -> anyhow::Result<String> {
        self.tenant_with(hooks, retries, json!({})).await
    }

    /// [`Bench::tenant`], each webhook created with the fields of `extra` as well.
    pub(crate) async fn tenant_with(
        &mut self,
        hooks: &[(&str, String, u32)],
        retries: u32,
        extra: serde_json::Value,
    ) -> anyhow::Result<String> {
        let admin = ("authorization", format!("Bearer {}", self.admin));
        let (s, t) = self
            .api
            .call(
                "POST",
                &format!("{}/v1/admin/tenants", self.registry),
                (admin.0, &admin.1),
                Some(&json!({"name": "bench"})),
            )
            .await?;
        anyhow::ensure!(s == 201, "creating a tenant: {s} {t}");
        let tenant = t["id"].as_str().context("tenant id")?.to_owned();
        let (s, k) = self
            .api
            .call(
                "POST",
                &format!("{}/v1/admin/api-keys", self.registry),
                (admin.0, &admin.1),
                Some(&json!({"tenant_id": tenant, "max_webhooks": 100000})),
            )
            .await?;
        anyhow::ensure!(s == 201, "creating a key: {s} {k}");
        let key = k["key"].as_str().context("key")?.to_owned();
        for (kind, tag, timeout) in hooks {
            let mut body = json!({
                "url": format!("http://{}/{kind}/{tag}", self.receiver),
                "events": ["task.created"],
                "timeout_seconds": timeout,
                "retry_policy": {"strategy": "fixed", "interval_seconds": 1, "max_retries": retries},
            });
            if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
                body.extend(extra.clone());
            }
            let (s, w) = self
                .api
                .call(
                    "POST",
                    &format!("{}/v1/webhooks", self.registry),
                    ("x-api-key", &key),
                    Some(&body),
                )
                .await?;
            anyhow::ensure!(s == 201, "creating a webhook: {s} {w}");
            self.created
                .push((key.clone(), w["id"].as_str().context("webhook id")?.to_owned()));
        }
        self.subscriptions += hooks.len();
        let wanted = self.subscriptions;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (status, r) = self
                .api
                .call("GET", &format!("{}/readyz", self.publisher), ("x", "y"), None)
                .await?;
            let seen = r["subscriptions"].as_u64().unwrap_or(0) as usize;
            if seen >= wanted {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the publisher did not see the new webhooks within 20 s: its /readyz answered {status} \
                 with {seen} subscriptions, {wanted} expected"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(tenant)
    }

    /// Publishes batches of `batch` events from `workers` loops, for `duration`, at most
    /// `rate` events/s in total when given. A batch of one is a `POST /v1/events` of the event,
    /// larger ones go to `/v1/events:batch`. Paced workers start a share of the interval apart, so
    /// a fixed rate arrives evenly spaced, not in bursts of `workers` requests at once. With
    /// `keyed`, every event carries an `idempotency_key` of its own. Returns (accepted, refused).
    pub(crate) async fn load(
        &self,
        tenant: &str,
        duration: Duration,
        workers: usize,
        batch: usize,
        rate: Option<u64>,
        keyed: bool,
    ) -> (u64, u64) {
        let accepted = Arc::new(AtomicU64::new(0));
        let refused = Arc::new(AtomicU64::new(0));
        let until = Instant::now() + duration;
        let mut tasks = Vec::new();
        let path = if batch == 1 { "/v1/events" } else { "/v1/events:batch" };
        // Each worker paces itself to its share of the rate.
        let interval = rate.map(|r| Duration::from_secs_f64(batch as f64 * workers as f64 / r as f64));
        let start = Instant::now();
        for worker in 0..workers {
            let (api, url, auth, tenant) = (
                self.api.clone(),
                format!("{}{path}", self.publisher),
                format!("Bearer {}", self.producer),
                tenant.to_owned(),
            );
            let (accepted, refused) = (accepted.clone(), refused.clone());
            let answers = rate.map(|_| self.paced_answers.clone());
            tasks.push(tokio::spawn(async move {
                let mut next = start + interval.unwrap_or_default() * worker as u32 / workers as u32;
                let mut sent = 0u64;
                while Instant::now() < until {
                    if let Some(i) = interval {
                        next += i;
                        let now = Instant::now();
                        if next > now {
                            tokio::time::sleep(next - now).await;
                        }
                    }
                    let s = now_micros();
                    let event = |i: u64| {
                        let mut e = json!({"type": "task.created", "tenant_id": tenant, "data": {"s": s}});
                        if keyed {
                            e["idempotency_key"] = json!(format!("bench-{worker}-{i}"));
                        }
                        e
                    };
                    let body = if batch == 1 {
                        event(sent)
                    } else {
                        json!({"events": (sent..sent + batch as u64).map(event).collect::<Vec<_>>()})
                    };
                    sent += batch as u64;
                    match api.call("POST", &url, ("authorization", &auth), Some(&body)).await {
                        Ok((202, _)) => accepted.fetch_add(batch as u64, Ordering::Relaxed),
                        _ => refused.fetch_add(batch as u64, Ordering::Relaxed),
                    };
                    if let Some(answers) = &answers {
                        answers
                            .lock()
                            .expect("answers lock")
                            .push(now_micros().saturating_sub(s));
                    }
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        (accepted.load(Ordering::Relaxed), refused.load(Ordering::Relaxed))
    }

    /// Waits until `expected` unique deliveries arrived under `tags`; prints progress.
    pub(crate) async fn wait_all(&self, tags: &[String], expected: u64, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            let got: u64 = tags.iter().map(|t| self.records.unique(t) as u64).sum();
            eprint!("\r    received {got}/{expected}   ");
            if got >= expected {
                eprintln!();
                return true;
            }
            if Instant::now() > deadline {
                eprintln!(" — incomplete");
                return false;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Throughput measured at the receiver, and whether every accepted event arrived.
    pub(crate) async fn throughput(
        &mut self,
        name: &str,
        tags: &[String],
        accepted: u64,
        target: &str,
    ) -> anyhow::Result<()> {
        let complete = self.wait_all(tags, accepted, Duration::from_secs(180)).await;
        let (mut first, mut last, mut unique) = (u64::MAX, 0u64, 0u64);
        for t in tags {
            let tally = self.records.take(t);
            unique += tally.ids.len() as u64;
            first = first.min(tally.first_us.unwrap_or(u64::MAX));
            last = last.max(tally.last_us.unwrap_or(0));
        }
        let secs = (last.saturating_sub(first)) as f64 / 1e6;
        self.row(
            name,
            "deliveries/s (receiver)",
            unique as f64 / secs.max(1e-3),
            "1/s",
            target,
        );
        self.row(
            name,
            "accepted vs received",
            unique as f64 - accepted as f64,
            "missing<0",
            "0",
        );
        anyhow::ensure!(
            complete,
            "{name}: only {unique} of {accepted} accepted deliveries arrived"
        );
        Ok(())
    }

    /// Scenario 1's shape (one webhook, 8 producers posting batches of 50 as fast as accepted):
    /// CPU, accepted and delivered rates. Returns the deliveries/s.
    pub(crate) async fn max_sustained(
        &mut self,
        name: &str,
        tag: &str,
        run: Duration,
        keyed: bool,
        target: &str,
    ) -> anyhow::Result<f64> {
        let tenant = self.tenant(&[("ok", tag.into(), 30)], 10).await?;
        let cpu = cpu_snapshot();
        let (accepted, refused) = self.load(&tenant, run, 8, 50, None, keyed).await;
        self.cpu_rows(name, &cpu, run.as_secs_f64());
        self.row(
            name,
            "events accepted/s (publisher)",
            accepted as f64 / run.as_secs_f64(),
            "1/s",
            "",
        );
        self.row(name, "refused", refused as f64, "events", "0");
        self.throughput(name, &[tag.into()], accepted, target).await?;
        self.delivered += accepted;
        Ok(self
            .rows
            .iter()
            .rev()
            .find(|r| r.metric == "deliveries/s (receiver)")
            .map_or(0.0, |r| r.value))
    }

    /// Scenario 3's shape: one webhook, `rate` events/s in requests of `batch`; publish→receipt
    /// percentiles.
    pub(crate) async fn latency(
        &mut self,
        name: &str,
        tag: &str,
        run: Duration,
        (rate, batch): (u64, usize),
        keyed: bool,
        p99_target: &str,
    ) -> anyhow::Result<()> {
        let tenant = self.tenant(&[("ok", tag.to_owned(), 30)], 10).await?;
        // One worker per 8 ms of the interval: enough in flight for single events at 2,000/s.
        let workers = if batch == 1 { (rate / 125) as usize } else { 4 };
        let (accepted, _) = self.load(&tenant, run, workers, batch, Some(rate), keyed).await;
        self.wait_all(&[tag.to_owned()], accepted, Duration::from_secs(60))
            .await;
        let tally = self.records.take(tag);
        self.row(
            name,
            "accepted vs received",
            tally.ids.len() as f64 - accepted as f64,
            "missing<0",
            "0",
        );
        self.latency_rows(name, &tally, p99_target);
        self.delivered += accepted;
        Ok(())
    }

    /// The publisher's mean time to claim a request's keys since `claim_seconds` read
    /// `(sum, count)`.
    pub(crate) async fn claim_row(&mut self, name: &str, (sum, count): (f64, f64)) {
        let (now_sum, now_count) = claim_seconds(self).await;
        let mean_ms = (now_sum - sum) * 1e3 / (now_count - count).max(1.0);
        self.row(name, "mean idempotency claim (publisher)", mean_ms, "ms", "");
    }

    pub(crate) fn latency_rows(&mut self, name: &str, tally: &receiver::Tally, p99_target: &str) -> f64 {
        let mut l = tally.latencies_us.clone();
        l.sort_unstable();
        self.row(name, "p50 publish→receipt", percentile(&l, 0.50), "ms", "");
        self.row(name, "p90 publish→receipt", percentile(&l, 0.90), "ms", "");
        let p99 = percentile(&l, 0.99);
        self.row(name, "p99 publish→receipt", p99, "ms", p99_target);
        self.row(name, "max publish→receipt", percentile(&l, 1.0), "ms", "");
        if let (Some(first), Some(last)) = (tally.first_us, tally.last_us) {
            let stolen = self.steal.between(first, last).unwrap_or(f64::NAN);
            self.row(name, "CPU taken by the host (steal)", stolen, "ms", "");
        }
        let start = tally.first_us.unwrap_or(0);
        for stall in stalls(&tally.slow, start, |from, to| self.steal.between(from, to))
            .iter()
            .take(5)
        {
            eprintln!("    {name}: {stall}");
        }
        p99
    }
}
