//! The registry's Prometheus metrics, served at `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub status: u16,
}

pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<RequestLabels, Counter>,
    pub http_request_seconds: Histogram,
    pub ledger_messages_written: Counter,
    pub ledger_batches_written: Counter,
    pub ledger_write_failures: Counter,
    pub ledger_dead_lettered: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("hookwire_registry");
        let http_requests = Family::<RequestLabels, Counter>::default();
        let http_request_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        let ledger_messages_written = Counter::default();
        let ledger_batches_written = Counter::default();
        let ledger_write_failures = Counter::default();
        let ledger_dead_lettered = Counter::default();
        registry.register("http_requests", "API requests answered, by method and status", http_requests.clone());
        registry.register("http_request_seconds", "API request latency", http_request_seconds.clone());
        registry.register("ledger_messages_written", "Ledger messages (events and attempts) written to the delivery log", ledger_messages_written.clone());
        registry.register("ledger_batches_written", "Ledger batches written, one transaction each", ledger_batches_written.clone());
        registry.register("ledger_write_failures", "Ledger batch writes that failed and were retried", ledger_write_failures.clone());
        registry.register("ledger_dead_lettered", "Ledger messages that could not be decoded, sent to the dead-letter queue", ledger_dead_lettered.clone());
        Self {
            registry,
            http_requests,
            http_request_seconds,
            ledger_messages_written,
            ledger_batches_written,
            ledger_write_failures,
            ledger_dead_lettered,
        }
    }
}

impl Metrics {
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
