//! Names of every exchange and queue, derived from one prefix (`broker.prefix`) so that several
//! installations, or parallel tests, can share a broker without sharing messages.
//!
//! ```text
//! publisher ──▶ {p}.deliveries (direct) ──▶ {p}.deliveries (quorum queue) ──▶ dispatchers
//!                  │   ▲          "group" ─▶ {p}.deliveries.groups (quorum) ──▶ dispatchers
//!                  │   └── dead-lettered after the TTL ◀── {p}.retry.<n>s ◀─── failed attempt
//! publisher, registry ──▶ {p}.lines (quorum, single active consumer) ──▶ registry ──▶ {p}.deliveries
//! publisher, dispatchers ──▶ {p}.ledger (quorum queue) ──▶ registry (batched writes)
//! registry ──▶ {p}.changes (fanout) ──▶ one exclusive queue per publisher and dispatcher
//! producers (AMQP) ──▶ {p}.ingest (direct) ──▶ {p}.ingest (quorum queue) ──▶ publishers
//! undecodable messages ──▶ {p}.dead (quorum queue), for an operator to inspect
//! ```

/// Delay tiers of the retry queues, in seconds. A retry waits in the largest tier not longer
/// than what is left of its delay, hop after hop, so any delay is reached within a second
/// without a queue per delay and without the delayed-message plugin.
pub const RETRY_TIERS_SECONDS: [u32; 10] = [1, 5, 10, 30, 60, 300, 600, 1800, 3600, 14400];

/// Routing key of events on the ingest exchange.
pub const INGEST_ROUTING_KEY: &str = "event";

/// Routing key of delivery tasks on the deliveries exchange.
pub const TASK_ROUTING_KEY: &str = "task";

/// Routing key of delivery groups (one event for several webhooks) on the deliveries exchange.
pub const GROUP_ROUTING_KEY: &str = "group";

/// The names for one prefix.
#[derive(Debug, Clone)]
pub struct Topology {
    prefix: String,
}

impl Topology {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self { prefix: prefix.into() }
    }

    /// Direct exchange that delivery tasks are published to (and retries dead-letter back to).
    pub fn deliveries_exchange(&self) -> String {
        format!("{}.deliveries", self.prefix)
    }

    /// Quorum queue the dispatchers consume.
    pub fn deliveries_queue(&self) -> String {
        format!("{}.deliveries", self.prefix)
    }

    /// Quorum queue of delivery groups, consumed by the dispatchers with a prefetch of its own
    /// (a group is up to a thousand deliveries, a task one).
    pub fn groups_queue(&self) -> String {
        format!("{}.deliveries.groups", self.prefix)
    }

    /// Quorum queue where a retry waits `seconds` before it returns to the deliveries exchange.
    pub fn retry_queue(&self, seconds: u32) -> String {
        format!("{}.retry.{seconds}s", self.prefix)
    }

    /// Quorum queue of the deliveries of webhooks with `ordering: "subject"`, in the order they
    /// were accepted. One registry at a time consumes it (single active consumer), puts each in
    /// its subject's line and releases a line's next delivery to the deliveries exchange.
    pub fn lines_queue(&self) -> String {
        format!("{}.lines", self.prefix)
    }

    /// Quorum queue of event records and attempt results, consumed by the registry.
    pub fn ledger_queue(&self) -> String {
        format!("{}.ledger", self.prefix)
    }

    /// Fanout exchange of subscription change notices from the registry.
    pub fn changes_exchange(&self) -> String {
        format!("{}.changes", self.prefix)
    }

    /// Direct exchange where producers may publish `event.v1` messages (routing key `event`)
    /// instead of calling `POST /v1/events`.
    pub fn ingest_exchange(&self) -> String {
        format!("{}.ingest", self.prefix)
    }

    /// Quorum queue the publishers consume the ingest exchange from.
    pub fn ingest_queue(&self) -> String {
        format!("{}.ingest", self.prefix)
    }

    /// Direct exchange of `hookwire listen`'s relayed requests, routed by listen id
    /// (`crate::relay`).
    pub fn relay_exchange(&self) -> String {
        format!("{}.relay", self.prefix)
    }

    /// Quorum queue of messages no service could decode.
    pub fn dead_letter_queue(&self) -> String {
        format!("{}.dead", self.prefix)
    }
}

/// The tier a retry with `remaining_seconds` left to wait goes to next.
pub fn retry_tier(remaining_seconds: u64) -> u32 {
    RETRY_TIERS_SECONDS
        .iter()
        .rev()
        .copied()
        .find(|&t| u64::from(t) <= remaining_seconds)
        .unwrap_or(RETRY_TIERS_SECONDS[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_largest_tier_that_does_not_overshoot() {
        assert_eq!(retry_tier(0), 1);
        assert_eq!(retry_tier(1), 1);
        assert_eq!(retry_tier(7), 5);
        assert_eq!(retry_tier(3599), 1800);
        assert_eq!(retry_tier(86_400), 14_400);
    }
}
