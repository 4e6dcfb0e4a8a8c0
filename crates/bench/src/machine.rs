//! What the machine and its processes did: CPU time, peak memory, CPU taken by the host (steal),
//! and the stalls a latency tail shows.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::receiver;

/// The pid of a service started by `make run`, or of RabbitMQ's Erlang VM.
pub(crate) fn pid_of(service: &str) -> Option<String> {
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
pub(crate) fn cpu_seconds(stat: &str) -> Option<f64> {
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some((fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?) / 100.0)
}

/// CPU seconds and peak RSS (KiB, since the last `reset_peak_rss`) of a process, read from /proc.
pub(crate) fn proc_stats(service: &str) -> Option<(f64, u64)> {
    let pid = pid_of(service)?;
    let cpu = cpu_seconds(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)?;
    let hwm = kib_field(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?, "VmHWM:")?;
    Some((cpu, hwm))
}

/// The value of a `Name:   1234 kB` line of a /proc file (`status`, `meminfo`), in KiB.
pub(crate) fn kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Starts a service's peak RSS over from its current RSS (`clear_refs` 5, Linux 4.0+), so each
/// scenario's peak is its own. Where that is refused, peaks stay cumulative.
pub(crate) fn reset_peak_rss(service: &str) {
    if let Some(pid) = pid_of(service) {
        let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
    }
}

/// The services whose CPU and memory the bench reports.
pub(crate) const SERVICES: [&str; 3] = ["registry", "publisher", "dispatcher"];

/// CPU seconds of every PostgreSQL process (the server forks one per connection).
pub(crate) fn postgres_cpu() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    dir.flatten()
        .filter(|e| std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == "postgres"))
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|stat| cpu_seconds(&stat))
        .sum()
}

pub(crate) fn cpu_snapshot() -> Vec<(String, f64)> {
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
pub(crate) fn machine_ticks() -> Option<Vec<f64>> {
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
pub(crate) fn machine_busy_seconds() -> Option<f64> {
    let ticks = machine_ticks()?;
    let busy = [0, 1, 2, 5, 6, 7].iter().filter_map(|i| ticks.get(*i)).sum::<f64>();
    Some(busy / 100.0)
}

/// The host's steal so far, in ticks (every core).
pub(crate) fn steal_ticks() -> Option<f64> {
    machine_ticks()?.get(7).copied()
}

/// How much CPU time the host took from this virtual machine (`steal` in /proc/stat, every
/// core), sampled every 10 ms by a thread of its own from the start of the run: a stall in which
/// the host ran something else shows as steal within its window, one in which it did not as none.
#[derive(Clone, Default)]
pub(crate) struct Steal(Arc<Mutex<Vec<(u64, f64)>>>);

impl Steal {
    pub(crate) fn start() -> Self {
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
    pub(crate) fn between(&self, from: u64, to: u64) -> Option<f64> {
        let samples = self.0.lock().expect("steal lock");
        let before = samples.iter().rev().find(|(at, _)| *at <= from)?.1;
        let after = match samples.iter().find(|(at, _)| *at >= to) {
            Some((_, ticks)) => *ticks,
            None => steal_ticks()?,
        };
        Some((after - before) * 10.0)
    }
}

/// The slow events of a phase (`Tally::slow`) as stalls: events received within a second of
/// each other are one stall. Each is said with its wall-clock time (UTC), to be set beside
/// PostgreSQL's log (checkpoints) and RabbitMQ's, how far into the phase (its first receipt at
/// `start`), and with the CPU time `steal(from, to)` says the host took from the slowest event's
/// publish to the last receipt.
pub(crate) fn stalls(slow: &[(u64, u64)], start: u64, steal: impl Fn(u64, u64) -> Option<f64>) -> Vec<String> {
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
pub(crate) fn time_of_day(unix_us: u64) -> String {
    let ms = unix_us / 1000 % 86_400_000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
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
