//! The registry's Prometheus metrics, served at `/metrics` (HTTP metrics come from
//! `hookwire_http::HttpMetrics`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

pub struct Metrics {
    pub registry: Registry,
    pub ledger_messages_written: Counter,
    pub ledger_batches_written: Counter,
    pub ledger_write_failures: Counter,
    pub ledger_dead_lettered: Counter,
    pub ledger_statements: Counter,
    pub operational_events: Counter,
    pub lines_joined: Counter,
    pub lines_released: Counter,
    pub lines_released_bulk: Counter,
    pub lines_write_failures: Counter,
    pub lines_dead_lettered: Counter,
    retention_deleted: Family<TableLabels, Counter>,
    pub retention_passes: Counter,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TableLabels {
    table: &'static str,
}

impl Metrics {
    /// Rows the retention task deleted from `table`.
    pub fn retention_deleted(&self, table: &'static str) -> Counter {
        self.retention_deleted.get_or_create(&TableLabels { table }).clone()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("hookwire_registry");
        let ledger_messages_written = Counter::default();
        let ledger_batches_written = Counter::default();
        let ledger_write_failures = Counter::default();
        let ledger_dead_lettered = Counter::default();
        let ledger_statements = Counter::default();
        let operational_events = Counter::default();
        let retention_deleted = Family::default();
        let retention_passes = Counter::default();
        let lines_joined = Counter::default();
        let lines_released = Counter::default();
        let lines_released_bulk = Counter::default();
        let lines_write_failures = Counter::default();
        let lines_dead_lettered = Counter::default();
        registry.register(
            "lines_joined",
            "Deliveries of ordered webhooks taken into their subject's line",
            lines_joined.clone(),
        );
        registry.register(
            "lines_released",
            "Tasks released from lines to the dispatchers (a line's next delivery, or one sent again after a restart)",
            lines_released.clone(),
        );
        registry.register(
            "lines_released_bulk",
            "Of the tasks released from lines, those sent through the bulk lane (their tenant past lines.bulk_lane_after a second)",
            lines_released_bulk.clone(),
        );
        registry.register(
            "lines_write_failures",
            "Batches of the lines queue whose transaction failed and was retried",
            lines_write_failures.clone(),
        );
        registry.register(
            "lines_dead_lettered",
            "Lines-queue messages that could not be decoded, sent to the dead-letter queue",
            lines_dead_lettered.clone(),
        );
        registry.register(
            "ledger_messages_written",
            "Ledger messages (events and attempts) written to the delivery log",
            ledger_messages_written.clone(),
        );
        registry.register(
            "ledger_batches_written",
            "Ledger batches written, one transaction each",
            ledger_batches_written.clone(),
        );
        registry.register(
            "ledger_write_failures",
            "Ledger batch writes that failed and were retried",
            ledger_write_failures.clone(),
        );
        registry.register(
            "ledger_dead_lettered",
            "Ledger messages that could not be decoded, sent to the dead-letter queue",
            ledger_dead_lettered.clone(),
        );
        registry.register(
            "ledger_statements",
            "SQL statements the ledger writer ran (its transactions' begin and commit not counted)",
            ledger_statements.clone(),
        );
        registry.register(
            "operational_events",
            "Operational events (hookwire.delivery_exhausted, hookwire.webhook_disabled) published to the ingest exchange",
            operational_events.clone(),
        );
        registry.register(
            "retention_deleted",
            "Rows the retention task deleted, by table",
            retention_deleted.clone(),
        );
        registry.register(
            "retention_passes",
            "Retention passes completed (a pass that fails is not counted)",
            retention_passes.clone(),
        );
        Self {
            registry,
            retention_deleted,
            retention_passes,
            ledger_statements,
            operational_events,
            ledger_messages_written,
            ledger_batches_written,
            ledger_write_failures,
            ledger_dead_lettered,
            lines_joined,
            lines_released,
            lines_released_bulk,
            lines_write_failures,
            lines_dead_lettered,
        }
    }
}
