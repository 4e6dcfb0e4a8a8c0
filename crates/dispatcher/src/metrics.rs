//! The dispatcher's Prometheus metrics.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// success, retrying, failed, exhausted
    pub outcome: String,
}

pub struct Metrics {
    pub registry: Registry,
    pub attempts: Family<OutcomeLabels, Counter>,
    pub attempt_seconds: Histogram,
    pub end_to_end_seconds: Histogram,
    pub retries_scheduled: Counter,
    pub parked: Counter,
    pub not_sent: Counter,
    pub spilled: Counter,
    pub superseded: Counter,
    pub dead_lettered: Counter,
    pub set_aside: Counter,
    pub in_flight: Gauge,
    pub replicas: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("hookwire_dispatcher");
        let m = Self {
            attempts: Family::default(),
            attempt_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 18)),
            end_to_end_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 22)),
            retries_scheduled: Counter::default(),
            parked: Counter::default(),
            not_sent: Counter::default(),
            spilled: Counter::default(),
            superseded: Counter::default(),
            dead_lettered: Counter::default(),
            set_aside: Counter::default(),
            in_flight: Gauge::default(),
            replicas: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "attempts",
            "Delivery attempts, by the delivery's state after them",
            m.attempts.clone(),
        );
        registry.register(
            "attempt_seconds",
            "Duration of one HTTP attempt",
            m.attempt_seconds.clone(),
        );
        registry.register(
            "end_to_end_seconds",
            "From event accepted to delivered, for successful deliveries",
            m.end_to_end_seconds.clone(),
        );
        registry.register(
            "retries_scheduled",
            "Retries put in the retry queues",
            m.retries_scheduled.clone(),
        );
        registry.register(
            "parked",
            "Tasks parked because their webhook had too many waiting",
            m.parked.clone(),
        );
        registry.register(
            "not_sent",
            "Attempts counted as failed without a request: their webhook's receiver was failing and had no request to spare",
            m.not_sent.clone(),
        );
        registry.register(
            "spilled",
            "Members of delivery groups sent on as tasks of their own: their webhook was slow, or the broker delivered their group again",
            m.spilled.clone(),
        );
        registry.register(
            "superseded",
            "Tasks dropped unsent because their delivery was sent again by request since (a retry by hand while its retries were under way)",
            m.superseded.clone(),
        );
        registry.register(
            "set_aside",
            "Deliveries ended failed unsent: the broker had delivered their task to dispatchers that stopped with it, time after time",
            m.set_aside.clone(),
        );
        registry.register(
            "dead_lettered",
            "Undecodable tasks sent to the dead-letter queue",
            m.dead_lettered.clone(),
        );
        registry.register(
            "in_flight",
            "Tasks being worked on by this replica",
            m.in_flight.clone(),
        );
        registry.register(
            "replicas",
            "Dispatchers consuming tasks, this one included, as last counted: each paces a webhook's rate_limit_per_second at rate / replicas",
            m.replicas.clone(),
        );
        Self { registry, ..m }
    }
}
