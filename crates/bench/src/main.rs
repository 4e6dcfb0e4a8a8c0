//! `hookwire-bench`: measures the running stack (see README.md and docs/benchmarks.md).

mod client;
mod fairness;
mod receiver;
mod routing;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{json, Value};

use crate::client::Api;
use crate::receiver::{now_micros, Records};

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// Whether scenario `name` (`routing`, `ref`, `1` … `8`) runs: all of them unless `HOOKWIRE_BENCH_ONLY`
/// lists some (`HOOKWIRE_BENCH_ONLY=1,3`), for profiling one scenario at a time.
fn wanted(name: &str) -> bool {
    std::env::var("HOOKWIRE_BENCH_ONLY").map_or(true, |only| only.split(',').any(|s| s.trim() == name))
}

struct Bench {
    api: Api,
    records: Records,
    receiver: SocketAddr,
    registry: String,
    publisher: String,
    admin: String,
    producer: String,
    rows: Vec<Row>,
    subscriptions: usize,
    /// Every webhook the run created, with its key, to delete at the end.
    created: Vec<(String, String)>,
    /// The scenario whose memory peaks are being watched, and each service's peak so far (KiB).
    phase: Option<String>,
    peaks: Vec<(&'static str, u64)>,
    /// Deliveries the run has received so far, and the count and CPU times when the phase began.
    delivered: u64,
    phase_start: (u64, Vec<(String, f64)>),
    steal: Steal,
}

struct Row {
    scenario: String,
    metric: String,
    value: f64,
    unit: String,
    target: String,
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// The pid of a service started by `make run`, or of RabbitMQ's Erlang VM.
fn pid_of(service: &str) -> Option<String> {
    if service == "rabbitmq" {
        let out = std::process::Command::new("pgrep")
            .args(["-o", "beam.smp"])
            .output()
            .ok()?;
        return Some(String::from_utf8_lossy(&out.stdout).trim().to_owned()).filter(|p| !p.is_empty());
    }
    std::fs::read_to_string(format!(".run/{service}.pid"))
        .ok()
        .map(|p| p.trim().to_owned())
}

/// User + system CPU seconds in the text of a `/proc/<pid>/stat` file.
fn cpu_seconds(stat: &str) -> Option<f64> {
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some((fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?) / 100.0)
}

/// CPU seconds and peak RSS (KiB, since the last `reset_peak_rss`) of a process, read from /proc.
fn proc_stats(service: &str) -> Option<(f64, u64)> {
    let pid = pid_of(service)?;
    let cpu = cpu_seconds(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)?;
    let hwm = kib_field(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?, "VmHWM:")?;
    Some((cpu, hwm))
}

/// The value of a `Name:   1234 kB` line of a /proc file (`status`, `meminfo`), in KiB.
fn kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Starts a service's peak RSS over from its current RSS (`clear_refs` 5, Linux 4.0+), so each
/// scenario's peak is its own. Where that is refused, peaks stay cumulative.
fn reset_peak_rss(service: &str) {
    if let Some(pid) = pid_of(service) {
        let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
    }
}

/// The services whose CPU and memory the bench reports.
const SERVICES: [&str; 3] = ["registry", "publisher", "dispatcher"];

/// CPU seconds of every PostgreSQL process (the server forks one per connection).
fn postgres_cpu() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    dir.flatten()
        .filter(|e| std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == "postgres"))
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|stat| cpu_seconds(&stat))
        .sum()
}

fn cpu_snapshot() -> Vec<(String, f64)> {
    let mut cpu: Vec<(String, f64)> = SERVICES
        .iter()
        .chain(&["rabbitmq"])
        .filter_map(|s| proc_stats(s).map(|(cpu, _)| (s.to_string(), cpu)))
        .collect();
    cpu.push(("postgresql".into(), postgres_cpu()));
    if let Some(own) = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| cpu_seconds(&s))
    {
        cpu.push(("bench (generator, receiver)".into(), own));
    }
    if let Some(busy) = machine_busy_seconds() {
        cpu.push(("machine, all processes".into(), busy));
    }
    cpu
}

/// The first line of /proc/stat (every core): user, nice, system, idle, iowait, irq, softirq,
/// steal, …, in USER_HZ (100/s).
fn machine_ticks() -> Option<Vec<f64>> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    Some(
        stat.lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .map(|t| t.parse().unwrap_or(0.0))
            .collect(),
    )
}

/// CPU seconds the whole machine has been busy (every core, kernel work included): user, nice,
/// system, irq, softirq and steal.
fn machine_busy_seconds() -> Option<f64> {
    let ticks = machine_ticks()?;
    let busy = [0, 1, 2, 5, 6, 7].iter().filter_map(|i| ticks.get(*i)).sum::<f64>();
    Some(busy / 100.0)
}

/// The host's steal so far, in ticks (every core).
fn steal_ticks() -> Option<f64> {
    machine_ticks()?.get(7).copied()
}

/// How much CPU time the host took from this virtual machine (`steal` in /proc/stat, every
/// core), sampled every 10 ms by a thread of its own from the start of the run: a stall in which
/// the host ran something else shows as steal within its window, one in which it did not as none.
#[derive(Clone, Default)]
struct Steal(Arc<Mutex<Vec<(u64, f64)>>>);

impl Steal {
    fn start() -> Self {
        let steal = Self::default();
        let samples = steal.0.clone();
        std::thread::spawn(move || loop {
            if let Some(ticks) = steal_ticks() {
                samples
                    .lock()
                    .expect("steal lock")
                    .push((receiver::now_micros(), ticks));
            }
            std::thread::sleep(Duration::from_millis(10));
        });
        steal
    }

    /// Milliseconds of CPU (both cores together) the host took between the last sample at or
    /// before `from` and the first at or after `to` (unix µs; a reading now when `to` is more
    /// recent than the last sample); `None` without a sample before `from`.
    fn between(&self, from: u64, to: u64) -> Option<f64> {
        let samples = self.0.lock().expect("steal lock");
        let before = samples.iter().rev().find(|(at, _)| *at <= from)?.1;
        let after = match samples.iter().find(|(at, _)| *at >= to) {
            Some((_, ticks)) => *ticks,
            None => steal_ticks()?,
        };
        Some((after - before) * 10.0)
    }
}

impl Bench {
    fn row(&mut self, scenario: &str, metric: &str, value: f64, unit: &str, target: &str) {
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
    fn phase(&mut self, next: Option<&str>) {
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

    fn cpu_rows(&mut self, scenario: &str, before: &[(String, f64)], seconds: f64) {
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
    async fn cleanup(&self) {
        eprintln!("deleting the {} webhooks this run created", self.created.len());
        for (key, id) in &self.created {
            let url = format!("{}/v1/webhooks/{id}", self.registry);
            let _ = self.api.call("DELETE", &url, ("x-api-key", key), None).await;
        }
    }

    /// A tenant with webhooks pointing at the receiver: `(kind, tag, timeout_seconds)` each.
    async fn tenant(&mut self, hooks: &[(&str, String, u32)], retries: u32) -> anyhow::Result<String> {
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
            let body = json!({
                "url": format!("http://{}/{kind}/{tag}", self.receiver),
                "events": ["task.created"],
                "timeout_seconds": timeout,
                "retry_policy": {"strategy": "fixed", "interval_seconds": 1, "max_retries": retries},
            });
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
    async fn load(
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
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        (accepted.load(Ordering::Relaxed), refused.load(Ordering::Relaxed))
    }

    /// Waits until `expected` unique deliveries arrived under `tags`; prints progress.
    async fn wait_all(&self, tags: &[String], expected: u64, within: Duration) -> bool {
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
    async fn throughput(&mut self, name: &str, tags: &[String], accepted: u64, target: &str) -> anyhow::Result<()> {
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
    async fn max_sustained(
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
    async fn latency(
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
    async fn claim_row(&mut self, name: &str, (sum, count): (f64, f64)) {
        let (now_sum, now_count) = claim_seconds(self).await;
        let mean_ms = (now_sum - sum) * 1e3 / (now_count - count).max(1.0);
        self.row(name, "mean idempotency claim (publisher)", mean_ms, "ms", "");
    }

    fn latency_rows(&mut self, name: &str, tally: &receiver::Tally, p99_target: &str) -> f64 {
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

/// The slow events of a phase (`Tally::slow`) as stalls: events received within a second of
/// each other are one stall. Each is said with its wall-clock time (UTC), to be set beside
/// PostgreSQL's log (checkpoints) and RabbitMQ's, how far into the phase (its first receipt at
/// `start`), and with the CPU time `steal(from, to)` says the host took from the slowest event's
/// publish to the last receipt.
fn stalls(slow: &[(u64, u64)], start: u64, steal: impl Fn(u64, u64) -> Option<f64>) -> Vec<String> {
    let mut slow = slow.to_vec();
    slow.sort_unstable();
    let mut said = Vec::new();
    let mut rest = slow.as_slice();
    while let Some(&(first, _)) = rest.first() {
        let mut end = 1;
        while end < rest.len() && rest[end].0 - rest[end - 1].0 < 1_000_000 {
            end += 1;
        }
        let (worst_at, worst) = rest[..end]
            .iter()
            .copied()
            .max_by_key(|&(_, l)| l)
            .unwrap_or((first, 0));
        let last = rest[end - 1].0;
        let stolen = steal(worst_at.saturating_sub(worst), last)
            .map_or_else(|| "unknown".to_owned(), |ms| format!("{ms:.0} ms"));
        said.push(format!(
            "{end} event{} over {} ms, received from {} UTC ({:.1} s into the phase), up to {:.1} ms; CPU taken by the host meanwhile: {stolen}",
            if end == 1 { "" } else { "s" },
            receiver::SLOW_US / 1000,
            time_of_day(first),
            first.saturating_sub(start) as f64 / 1e6,
            worst as f64 / 1000.0
        ));
        rest = &rest[end..];
    }
    said
}

/// `HH:MM:SS.mmm` of a unix time in µs (UTC).
fn time_of_day(unix_us: u64) -> String {
    let ms = unix_us / 1000 % 86_400_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
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
        registry_api(&mut b, Duration::from_secs(5)).await?;
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
async fn claim_seconds(b: &Bench) -> (f64, f64) {
    let name = "hookwire_publisher_idempotency_claim_seconds";
    (
        metric(&b.publisher, &format!("{name}_sum")).await,
        metric(&b.publisher, &format!("{name}_count")).await,
    )
}

async fn ledger_statements(b: &Bench) -> f64 {
    metric(&b.registry, "hookwire_registry_ledger_statements_total").await
}

/// A counter (or a histogram's `_sum` or `_count`) of a service's metrics (0 when unreadable).
async fn metric(service: &str, name: &str) -> f64 {
    // The metrics body is text, not JSON: read it raw.
    let text = raw_get(&format!("{service}/metrics")).await.unwrap_or_default();
    text.lines()
        .find(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with(' ')))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

async fn raw_get(url: &str) -> anyhow::Result<String> {
    use http_body_util::BodyExt as _;
    let client: hyper_util::client::legacy::Client<_, http_body_util::Empty<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let res = client.get(url.parse()?).await?;
    Ok(String::from_utf8_lossy(&res.into_body().collect().await?.to_bytes()).into_owned())
}

async fn reference_http(b: &Bench, duration: Duration) -> anyhow::Result<f64> {
    let url = format!("http://{}/ok/reference", b.receiver);
    let done = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + duration;
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (api, url, done) = (b.api.clone(), url.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < until {
                if api
                    .call("POST", &url, ("webhook-id", "r"), Some(&json!({})))
                    .await
                    .is_ok()
                {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let _ = b.records.take("reference");
    Ok(done.load(Ordering::Relaxed) as f64 / duration.as_secs_f64())
}

/// A fresh quorum queue `hookwire-bench.{name}` and a confirm-mode channel on a new connection.
async fn reference_queue(
    name: &str,
) -> anyhow::Result<(
    hookwire_broker::lapin::Connection,
    hookwire_broker::lapin::Channel,
    String,
)> {
    use hookwire_broker::lapin::options::*;
    use hookwire_broker::lapin::types::{AMQPValue, FieldTable, LongString};
    let config = hookwire_core::config::BrokerConfig::new(
        env("HOOKWIRE__BROKER__URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
        "bench",
    );
    let conn = hookwire_broker::connect(&config, &format!("hookwire-bench {name}")).await?;
    let ch = conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from(b"quorum".to_vec())),
    );
    let queue = format!("hookwire-bench.{name}");
    let _ = ch
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await;
    ch.queue_declare(
        queue.as_str().into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        args,
    )
    .await?;
    Ok((conn, ch, queue))
}

/// Publishes 20,000 persistent messages to a quorum queue with confirms (batches of 500) while
/// consuming and acking them; messages per second end to end.
async fn reference_rabbit() -> anyhow::Result<f64> {
    use hookwire_broker::lapin::options::*;
    use hookwire_broker::lapin::types::FieldTable;
    let (conn, ch, queue) = reference_queue("reference").await?;
    let queue = queue.as_str();
    let consumer_ch = conn.create_channel().await?;
    consumer_ch.basic_qos(1000, BasicQosOptions::default()).await?;
    let mut consumer = consumer_ch
        .basic_consume(
            queue.into(),
            "bench".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    const N: usize = 20_000;
    let started = Instant::now();
    let consume = tokio::spawn(async move {
        use futures_util::StreamExt as _;
        let mut n = 0;
        while n < N {
            match consumer.next().await {
                Some(Ok(d)) => {
                    let _ = d.ack(BasicAckOptions::default()).await;
                    n += 1;
                }
                _ => break,
            }
        }
        n
    });
    let body = vec![b'x'; 600];
    for chunk in 0..N / 500 {
        let ids: Vec<String> = (0..500).map(|i| format!("{chunk}-{i}")).collect();
        let msgs: Vec<hookwire_broker::Outgoing<'_>> = ids
            .iter()
            .map(|id| hookwire_broker::Outgoing {
                exchange: "",
                routing_key: queue,
                body: &body,
                message_id: id,
            })
            .collect();
        hookwire_broker::publish_confirmed(&ch, &msgs).await?;
    }
    let consumed = consume.await?;
    let rate = consumed as f64 / started.elapsed().as_secs_f64();
    let _ = ch.queue_delete(queue.into(), QueueDeleteOptions::default()).await;
    Ok(rate)
}

/// A broker connection for reading queue depths, and the installation's topology.
async fn depth_probe() -> Option<(hookwire_broker::lapin::Connection, hookwire_core::topology::Topology)> {
    let config = hookwire_core::config::BrokerConfig::new(
        env("HOOKWIRE__BROKER__URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
        "hookwire",
    );
    let conn = hookwire_broker::connect(&config, "hookwire-bench depth").await.ok()?;
    Some((conn, hookwire_core::topology::Topology::new("hookwire")))
}

/// Messages ready or unacknowledged in `queues`, summed.
async fn depth(conn: &hookwire_broker::lapin::Connection, queues: &[String]) -> u32 {
    use hookwire_broker::lapin::options::QueueDeclareOptions;
    let mut depth = 0;
    for q in queues {
        if let Ok(ch) = conn.create_channel().await {
            let opts = QueueDeclareOptions {
                passive: true,
                ..Default::default()
            };
            if let Ok(q) = ch.queue_declare(q.as_str().into(), opts, Default::default()).await {
                depth += q.message_count();
            }
            let _ = ch.close(200, "done".into()).await;
        }
    }
    depth
}

/// The deepest the retry queues were until `stop` fires (sampled every 200 ms, at least once).
async fn max_retry_depth(mut stop: tokio::sync::oneshot::Receiver<()>) -> u32 {
    let Some((conn, topology)) = depth_probe().await else {
        return 0;
    };
    let queues: Vec<String> = hookwire_core::topology::RETRY_TIERS_SECONDS
        .iter()
        .map(|s| topology.retry_queue(*s))
        .collect();
    let mut max = 0;
    loop {
        max = max.max(depth(&conn, &queues).await);
        tokio::select! {
            _ = &mut stop => return max,
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

/// Waits until the previous scenario's work is done, ends its phase, then vacuums the delivery
/// log, has PostgreSQL checkpoint, rolls RabbitMQ's write-ahead log over and writes the page
/// cache out (outside any phase).
async fn settle(b: &mut Bench) {
    drain(b).await;
    b.phase(None);
    vacuum_log().await;
    checkpoint().await;
    roll_broker_log().await;
    flush_page_cache().await;
}

/// Starts RabbitMQ's write-ahead log afresh and waits until the old one's entries are written to
/// the quorum queues' segment files. Ra does this by itself whenever the log reaches 512 MiB, in
/// one burst of writes that held deliveries for up to 750 ms when forced during scenario 3 at
/// 2,000/s (bench/history.md, "Runs 27–29"); fan-out fills the log two or three times. Done
/// here, one scenario's traffic does not roll the log over during the next. Needs `rabbitmqctl`
/// for the local node; skipped (and said) without it.
async fn roll_broker_log() {
    let mut ctl = std::process::Command::new("rabbitmqctl");
    ctl.args([
        "-q",
        "eval",
        "ra_log_wal:force_roll_over(ra_log_wal), timer:sleep(200), \
         ra_log_segment_writer:await(ra_log_segment_writer).",
    ])
    .stdout(std::process::Stdio::null());
    run_step(
        ctl,
        "rolled RabbitMQ's write-ahead log over",
        "RabbitMQ's write-ahead log was not rolled over",
    )
    .await;
}

/// Writes every dirty page of the page cache to disk (`sync`). The kernel otherwise writes one
/// scenario's data (PostgreSQL's table files, the vacuum's pages) up to 30 s later
/// (`vm.dirty_expire_centisecs`), in bursts, while the next scenario runs; RabbitMQ confirms a
/// message only once its log is on that disk. In a run of scenarios 2 and 3, the one stall of scenario 3
/// (40 events at 500/s, up to 140 ms) came in the second `vmstat` showed 132 MB written.
async fn flush_page_cache() {
    let dirty_mib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| kib_field(&m, "Dirty:"))
        .map_or(f64::NAN, |kib| kib as f64 / 1024.0);
    run_step(
        std::process::Command::new("sync"),
        &format!("wrote {dirty_mib:.0} MiB of dirty page cache to disk"),
        "the page cache was not written out",
    )
    .await;
}

/// Runs `command` off the runtime's threads and says how it went: `done` and how long it took,
/// or `failed` and why.
async fn run_step(mut command: std::process::Command, done: &str, failed: &str) {
    let started = Instant::now();
    match tokio::task::spawn_blocking(move || command.status()).await {
        Ok(Ok(s)) if s.success() => eprintln!("    {done} in {:.1} s", started.elapsed().as_secs_f64()),
        other => eprintln!("    {failed}: {other:?}"),
    }
}

/// `CHECKPOINT`. A scenario that writes a lot (1, 2, 5) fills `max_wal_size` and starts a
/// checkpoint that PostgreSQL spreads over up to 4.5 minutes (`checkpoint_completion_target` of
/// `checkpoint_timeout`), writing as it goes and then calling `fsync` on every file it wrote, on
/// the disk that holds RabbitMQ's log. Without this step a checkpoint started by fan-out's
/// volume of log began inside scenario 3 (bench/history.md, "Checkpoints between
/// scenarios"). Needs the `pg_checkpoint` role, which `make bench` grants.
async fn checkpoint() {
    psql_step("CHECKPOINT", "checkpointed PostgreSQL", "PostgreSQL did not checkpoint").await;
}

/// `VACUUM ANALYZE` of the delivery log's tables. Otherwise PostgreSQL's autovacuum cleans up one
/// scenario's rows during the next: a 10 s vacuum of `deliveries` after fan-out overlapped
/// scenario 3, in which the slowest event took 237 ms.
async fn vacuum_log() {
    psql_step(
        "VACUUM ANALYZE deliveries, delivery_attempts, events",
        "vacuumed the delivery log",
        "the delivery log was not vacuumed",
    )
    .await;
}

/// Runs `sql` through `psql` on the database `make bench` points the services at, as a
/// [`run_step`]; skipped (and said) without that URL.
async fn psql_step(sql: &str, done: &str, failed: &str) {
    let Ok(url) = std::env::var("HOOKWIRE__DATABASE__URL") else {
        eprintln!("    no HOOKWIRE__DATABASE__URL: {failed}");
        return;
    };
    let mut psql = std::process::Command::new("psql");
    psql.args([url.as_str(), "-qAtX", "-v", "ON_ERROR_STOP=1", "-c", sql]);
    run_step(psql, done, failed).await;
}

/// Waits (up to a minute) until the previous scenario's work is done: no task waiting for a
/// dispatcher, no result waiting in the ledger queue, and the registry's writer idle (ready
/// counts miss what a consumer holds unacknowledged), so a scenario does not pay for the
/// backlog of the one before.
async fn drain(b: &Bench) {
    let Some((conn, topology)) = depth_probe().await else {
        return;
    };
    let queues = [
        topology.deliveries_queue(),
        topology.groups_queue(),
        topology.ledger_queue(),
    ];
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut quiet, mut written) = (0, f64::NAN);
    while quiet < 3 && Instant::now() < deadline {
        let now_written = metric(&b.registry, "hookwire_registry_ledger_messages_written_total").await;
        let idle = depth(&conn, &queues).await == 0 && now_written == written;
        written = now_written;
        quiet = if idle { quiet + 1 } else { 0 };
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Concurrent clients of the registry API benchmark.
const CLIENTS: usize = 8;

async fn registry_api(b: &mut Bench, each: Duration) -> anyhow::Result<()> {
    let tenant_key = {
        let admin = format!("Bearer {}", b.admin);
        let (_, t) = b
            .api
            .call(
                "POST",
                &format!("{}/v1/admin/tenants", b.registry),
                ("authorization", &admin),
                Some(&json!({"name": "api-bench"})),
            )
            .await?;
        let (_, k) = b
            .api
            .call(
                "POST",
                &format!("{}/v1/admin/api-keys", b.registry),
                ("authorization", &admin),
                Some(&json!({"tenant_id": t["id"], "max_webhooks": 100000})),
            )
            .await?;
        k["key"].as_str().context("key")?.to_owned()
    };
    let hook = json!({"url": "http://127.0.0.1:9/none", "events": ["task.created"], "is_active": false});
    // One webhook per client, as customers change their own; the last case has all eight change
    // one webhook, where a change that keeps losing to the others answers 409.
    let mut own = Vec::new();
    for _ in 0..CLIENTS {
        let (_, w) = b
            .api
            .call(
                "POST",
                &format!("{}/v1/webhooks", b.registry),
                ("x-api-key", &tenant_key),
                Some(&hook),
            )
            .await?;
        let id = w["id"].as_str().context("webhook id")?.to_owned();
        b.created.push((tenant_key.clone(), id.clone()));
        own.push(id);
    }
    let rename = Some(json!({"name": "renamed"}));
    let cases: Vec<(&str, &str, &str, Option<Value>)> = vec![
        ("GET webhooks", "GET", "/v1/webhooks?limit=100", None),
        ("GET deliveries", "GET", "/v1/deliveries?limit=100", None),
        ("POST webhooks", "POST", "/v1/webhooks", Some(hook.clone())),
        ("PATCH webhook", "PATCH", "/v1/webhooks/{own}", rename.clone()),
        ("PATCH one webhook ×8", "PATCH", "/v1/webhooks/{first}", rename),
    ];
    for (name, method, path, body) in cases {
        let latencies = Arc::new(std::sync::Mutex::new(Vec::new()));
        let errors = Arc::new(AtomicU64::new(0));
        let conflicts = Arc::new(AtomicU64::new(0));
        let created = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let until = Instant::now() + each;
        let mut tasks = Vec::new();
        for client in 0..CLIENTS {
            let created = created.clone();
            let path = path.replace("{own}", &own[client]).replace("{first}", &own[0]);
            let (api, url, key, body, latencies, errors, conflicts) = (
                b.api.clone(),
                format!("{}{path}", b.registry),
                tenant_key.clone(),
                body.clone(),
                latencies.clone(),
                errors.clone(),
                conflicts.clone(),
            );
            tasks.push(tokio::spawn(async move {
                while Instant::now() < until {
                    let t = Instant::now();
                    match api.call(method, &url, ("x-api-key", &key), body.as_ref()).await {
                        Ok((s, v)) if s < 300 => {
                            latencies.lock().unwrap().push(t.elapsed().as_micros() as u64);
                            if let Some(id) = v["id"].as_str().filter(|_| method == "POST") {
                                created.lock().unwrap().push(id.to_owned());
                            }
                        }
                        Ok((409, _)) if method == "PATCH" => {
                            conflicts.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        b.created
            .extend(created.lock().unwrap().drain(..).map(|id| (tenant_key.clone(), id)));
        let mut l = latencies.lock().unwrap().clone();
        l.sort_unstable();
        let scenario = format!("6 API {name}");
        b.row(&scenario, "requests/s", l.len() as f64 / each.as_secs_f64(), "1/s", "");
        b.row(&scenario, "p99", percentile(&l, 0.99), "ms", "");
        b.row(
            &scenario,
            "errors (non-2xx)",
            errors.load(Ordering::Relaxed) as f64,
            "requests",
            "0",
        );
        if method == "PATCH" {
            b.row(
                &scenario,
                "409 concurrent_change (client sends again)",
                conflicts.load(Ordering::Relaxed) as f64,
                "requests",
                "",
            );
        }
    }
    Ok(())
}

fn write_results(b: &Bench) -> anyhow::Result<()> {
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
const LATENCY_SHAPES: [(u64, usize); 4] = [(500, 1), (2000, 1), (500, 5), (2000, 20)];

/// A latency row's suffix: nothing for one event per request, `×N` for batches of N.
fn shape(batch: usize) -> String {
    if batch == 1 {
        String::new()
    } else {
        format!(" ×{batch}")
    }
}

/// The broker's own latency floor, in the shape of scenario 3: `rate` persistent messages per
/// second, published in confirmed batches of `batch` into a quorum queue, each timed to its
/// consumer and to its publisher confirm. Messages are padded to the size of a delivery task.
async fn reference_rabbit_latency(
    rate: u64,
    batch: usize,
    duration: Duration,
) -> anyhow::Result<(receiver::Tally, receiver::Tally)> {
    use futures_util::StreamExt as _;
    use hookwire_broker::lapin::options::*;
    let (conn, ch, queue) = reference_queue("latency").await?;
    let consumer_ch = conn.create_channel().await?;
    let mut consumer = consumer_ch
        .basic_consume(
            queue.as_str().into(),
            "bench-latency".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await?;
    let consume = tokio::spawn(async move {
        let mut tally = receiver::Tally::default();
        while let Some(Ok(d)) = consumer.next().await {
            let sent: u64 = std::str::from_utf8(&d.data[..20])
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            if sent == 0 {
                break; // the end marker
            }
            tally.latencies_us.push(now_micros().saturating_sub(sent));
        }
        tally
    });
    let mut to_confirm = receiver::Tally::default();
    let interval = Duration::from_secs_f64(batch as f64 / rate as f64);
    let until = Instant::now() + duration;
    let mut next = Instant::now();
    let mut pending = Vec::new();
    let body = |sent: u64| {
        let mut b = format!("{sent:<20}").into_bytes();
        b.resize(1200, b' ');
        b
    };
    while Instant::now() < until {
        next += interval;
        tokio::time::sleep_until(next.into()).await;
        let sent = now_micros();
        let ch = ch.clone();
        let queue = queue.clone();
        let bodies: Vec<Vec<u8>> = (0..batch).map(|_| body(sent)).collect();
        pending.push(tokio::spawn(async move {
            let messages: Vec<hookwire_broker::Outgoing<'_>> = bodies
                .iter()
                .map(|b| hookwire_broker::Outgoing {
                    exchange: "",
                    routing_key: &queue,
                    body: b,
                    message_id: "latency",
                })
                .collect();
            hookwire_broker::publish_confirmed(&ch, &messages)
                .await
                .map(|()| now_micros() - sent)
        }));
    }
    for p in pending {
        let took = p.await??;
        to_confirm.latencies_us.extend(std::iter::repeat_n(took, batch));
    }
    let end = body(0);
    let end = hookwire_broker::Outgoing {
        exchange: "",
        routing_key: &queue,
        body: &end,
        message_id: "end",
    };
    hookwire_broker::publish_confirmed(&ch, &[end]).await?;
    let to_consumer = consume.await?;
    let _ = ch
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await;
    Ok((to_consumer, to_confirm))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_events_a_second_apart_or_more_are_separate_stalls() {
        // 2026-11-24 00:54:29.243 UTC, in µs.
        let t = 1_795_481_669_243_000;
        let slow = [(t + 2_500_000, 25_000), (t, 48_300), (t + 400_000, 31_000)];
        // The host took 30 ms of CPU in the first stall's window (from the slowest event's
        // publish, t - 48.3 ms, to the last receipt, t + 400 ms); nothing is known of the second.
        let steal = |from: u64, to: u64| (from == t - 48_300 && to == t + 400_000).then_some(30.0);
        assert_eq!(
            stalls(&slow, t - 1_500_000, steal),
            [
                "2 events over 20 ms, received from 00:54:29.243 UTC (1.5 s into the phase), up to 48.3 ms; CPU taken by the host meanwhile: 30 ms",
                "1 event over 20 ms, received from 00:54:31.743 UTC (4.0 s into the phase), up to 25.0 ms; CPU taken by the host meanwhile: unknown",
            ]
        );
        assert!(stalls(&[], t, steal).is_empty());
    }
}
