//! Between scenarios: waiting for the previous one's work to finish, and the broker's, the
//! database's and the disk's deferred writes done, so a scenario does not pay for the last.

use std::time::{Duration, Instant};

use crate::bench::Bench;
use crate::env;
use crate::machine::kib_field;
use crate::metric;

/// A broker connection for reading queue depths, and the installation's topology.
pub(crate) async fn depth_probe() -> Option<(hookwire_broker::lapin::Connection, hookwire_core::topology::Topology)> {
    let mut config = hookwire_core::config::BrokerConfig::new(
        env("HOOKWIRE__BROKER__URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
        "hookwire",
    );
    config.delivery_shards = env("HOOKWIRE__BROKER__DELIVERY_SHARDS", "1").parse().unwrap_or(1);
    let conn = hookwire_broker::connect(&config, "hookwire-bench depth").await.ok()?;
    Some((conn, config.topology()))
}

/// Messages ready or unacknowledged in `queues`, summed.
pub(crate) async fn depth(conn: &hookwire_broker::lapin::Connection, queues: &[String]) -> u32 {
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
pub(crate) async fn max_retry_depth(mut stop: tokio::sync::oneshot::Receiver<()>) -> u32 {
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

/// Waits until the previous scenario's work is done, ends its phase, then `quiesce`s (outside
/// any phase).
pub(crate) async fn settle(b: &mut Bench) {
    drain(b).await;
    b.phase(None);
    quiesce().await;
}

/// Vacuums the delivery log, has PostgreSQL checkpoint, rolls RabbitMQ's write-ahead log over
/// and writes the page cache out: what one measurement leaves to be written is not written
/// during the next.
pub(crate) async fn quiesce() {
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
pub(crate) async fn roll_broker_log() {
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
pub(crate) async fn flush_page_cache() {
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
pub(crate) async fn run_step(mut command: std::process::Command, done: &str, failed: &str) {
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
pub(crate) async fn checkpoint() {
    psql_step("CHECKPOINT", "checkpointed PostgreSQL", "PostgreSQL did not checkpoint").await;
}

/// `VACUUM ANALYZE` of the delivery log's tables. Otherwise PostgreSQL's autovacuum cleans up one
/// scenario's rows during the next: a 10 s vacuum of `deliveries` after fan-out overlapped
/// scenario 3, in which the slowest event took 237 ms.
pub(crate) async fn vacuum_log() {
    psql_step(
        "VACUUM ANALYZE deliveries, delivery_attempts, events",
        "vacuumed the delivery log",
        "the delivery log was not vacuumed",
    )
    .await;
}

/// Runs `sql` through `psql` on the database `make bench` points the services at, as a
/// [`run_step`]; skipped (and said) without that URL.
pub(crate) async fn psql_step(sql: &str, done: &str, failed: &str) {
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
pub(crate) async fn drain(b: &Bench) {
    let Some((conn, topology)) = depth_probe().await else {
        return;
    };
    let mut queues: Vec<String> = topology
        .delivery_queues()
        .into_iter()
        .map(|q| topology.delivery_queue_name(q))
        .collect();
    queues.push(topology.ledger_queue());
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
