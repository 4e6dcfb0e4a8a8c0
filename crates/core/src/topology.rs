//! Names of every exchange and queue, derived from one prefix (`broker.prefix`) so that several
//! installations, or parallel tests, can share a broker without sharing messages.
//!
//! ```text
//! publisher ──▶ {p}.deliveries (direct) ──▶ {p}.deliveries[.<s>] (quorum queues) ──▶ dispatchers
//!                  │   ▲          "group" ─▶ {p}.deliveries.groups[.<s>] (quorum) ──▶ dispatchers
//!                  │   │   "bulk.task" / "bulk.group" ─▶ {p}.bulk[.groups][.<s>] ──▶ dispatchers
//!                  │   └── dead-lettered after the TTL ◀── {p}.delay.<n>s ◀── {p}.delay ◀── failed attempt
//! publisher, registry ──▶ {p}.lines (quorum, single active consumer) ──▶ registry ──▶ {p}.deliveries
//! dispatchers ──▶ {p}.lines.ended (quorum, single active consumer) ──▶ registry (lines move on)
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

/// Header naming a retry's delay tier on the delay exchange (`Topology::delay_exchange`).
pub const DELAY_HEADER: &str = "hookwire-delay";

/// The names for one prefix.
#[derive(Debug, Clone)]
pub struct Topology {
    prefix: String,
    /// Delivery shards (`broker.delivery_shards`): each a task queue and a group queue.
    shards: u16,
}

/// One of the queues the dispatchers consume: the tasks or the groups of one lane of one shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryQueue {
    /// The bulk lane: deliveries of tenants publishing more than their fair share, so that a
    /// tenant's flood or backlog waits in queues of its own, not ahead of everybody else's.
    pub bulk: bool,
    pub grouped: bool,
    pub shard: u16,
}

impl DeliveryQueue {
    /// Its routing key on the deliveries exchange: `task` or `group`, after `bulk.` in the bulk
    /// lane, then `.<shard>` past the first shard (whose names predate sharding).
    pub fn routing_key(&self) -> String {
        let kind = if self.grouped {
            GROUP_ROUTING_KEY
        } else {
            TASK_ROUTING_KEY
        };
        let lane = if self.bulk { BULK_KEY_PREFIX } else { "" };
        match self.shard {
            0 => format!("{lane}{kind}"),
            s => format!("{lane}{kind}.{s}"),
        }
    }
}

/// What the routing keys of the bulk lane's queues start with.
const BULK_KEY_PREFIX: &str = "bulk.";

/// Whether a message routed under `key` on the deliveries exchange is in the bulk lane.
pub fn is_bulk_key(key: &str) -> bool {
    key.starts_with(BULK_KEY_PREFIX)
}

impl Topology {
    /// One delivery shard.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self::sharded(prefix, 1)
    }

    /// `shards` delivery shards (at least one).
    pub fn sharded(prefix: impl Into<String>, shards: u16) -> Self {
        Self {
            prefix: prefix.into(),
            shards: shards.max(1),
        }
    }

    pub fn shards(&self) -> u16 {
        self.shards
    }

    /// Every queue the dispatchers consume: tasks and groups of each lane of each shard.
    pub fn delivery_queues(&self) -> Vec<DeliveryQueue> {
        let mut queues = Vec::with_capacity(4 * usize::from(self.shards));
        for shard in 0..self.shards {
            for bulk in [false, true] {
                for grouped in [false, true] {
                    queues.push(DeliveryQueue { bulk, grouped, shard });
                }
            }
        }
        queues
    }

    /// The queue of the lane (`bulk`) a message whose first delivery is `delivery_id` goes to:
    /// shards are picked by id (delivery ids end in hash bits), so each delivery's retries
    /// return to one shard.
    pub fn delivery_queue(&self, delivery_id: uuid::Uuid, grouped: bool, bulk: bool) -> DeliveryQueue {
        DeliveryQueue {
            bulk,
            grouped,
            shard: (delivery_id.as_u128() % u128::from(self.shards)) as u16,
        }
    }

    /// The name of `queue`.
    pub fn delivery_queue_name(&self, queue: DeliveryQueue) -> String {
        let base = match (queue.bulk, queue.grouped) {
            (false, false) => self.deliveries_queue(),
            (false, true) => self.groups_queue(),
            (true, false) => format!("{}.bulk", self.prefix),
            (true, true) => format!("{}.bulk.groups", self.prefix),
        };
        match queue.shard {
            0 => base,
            s => format!("{base}.{s}"),
        }
    }

    /// Direct exchange that delivery tasks are published to (and retries dead-letter back to).
    pub fn deliveries_exchange(&self) -> String {
        format!("{}.deliveries", self.prefix)
    }

    /// Quorum queue of the first shard's tasks (`delivery_queue_name` names every shard's).
    pub fn deliveries_queue(&self) -> String {
        format!("{}.deliveries", self.prefix)
    }

    /// Quorum queue of the first shard's delivery groups, consumed by the dispatchers with a
    /// prefetch of its own (a group is up to a thousand deliveries, a task one).
    pub fn groups_queue(&self) -> String {
        format!("{}.deliveries.groups", self.prefix)
    }

    /// Headers exchange retries are published to, under their shard's routing key with their
    /// tier in `DELAY_HEADER`; it routes each to the delay queue of its tier.
    pub fn delay_exchange(&self) -> String {
        format!("{}.delay", self.prefix)
    }

    /// Quorum queue where a retry waits `seconds`, then returns to the deliveries exchange under
    /// the routing key it was published with (its shard).
    pub fn retry_queue(&self, seconds: u32) -> String {
        format!("{}.delay.{seconds}s", self.prefix)
    }

    /// Quorum queue of the deliveries of webhooks with `ordering: "subject"`, in the order they
    /// were accepted. One registry at a time consumes it (single active consumer), puts each in
    /// its subject's line and releases a line's next delivery to the deliveries exchange.
    pub fn lines_queue(&self) -> String {
        format!("{}.lines", self.prefix)
    }

    /// Quorum queue of the final records of deliveries released from lines, from the
    /// dispatchers: there the registry moves their lines on. Apart from the lines queue so
    /// that a line moves on while a flood of new deliveries waits to join the lines.
    pub fn line_ends_queue(&self) -> String {
        format!("{}.lines.ended", self.prefix)
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

    /// Every queue an event, its deliveries and their records pass through: the producers'
    /// ingest queue, the delivery queues of each shard and lane, the lines, the ledger, the dead
    /// letters and the delay tiers.
    pub fn queues(&self) -> Vec<String> {
        let mut queues = vec![self.ingest_queue()];
        queues.extend(self.delivery_queues().into_iter().map(|q| self.delivery_queue_name(q)));
        queues.extend([
            self.lines_queue(),
            self.line_ends_queue(),
            self.ledger_queue(),
            self.dead_letter_queue(),
        ]);
        queues.extend(RETRY_TIERS_SECONDS.iter().map(|s| self.retry_queue(*s)));
        queues
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

    #[test]
    fn shards_past_the_first_add_their_number() {
        let t = Topology::sharded("p", 3);
        let names: Vec<_> = t
            .delivery_queues()
            .into_iter()
            .map(|q| (t.delivery_queue_name(q), q.routing_key()))
            .collect();
        let expected = [
            ("p.deliveries", "task"),
            ("p.deliveries.groups", "group"),
            ("p.bulk", "bulk.task"),
            ("p.bulk.groups", "bulk.group"),
            ("p.deliveries.1", "task.1"),
            ("p.deliveries.groups.1", "group.1"),
            ("p.bulk.1", "bulk.task.1"),
            ("p.bulk.groups.1", "bulk.group.1"),
            ("p.deliveries.2", "task.2"),
            ("p.deliveries.groups.2", "group.2"),
            ("p.bulk.2", "bulk.task.2"),
            ("p.bulk.groups.2", "bulk.group.2"),
        ];
        assert_eq!(names, expected.map(|(n, k)| (n.to_owned(), k.to_owned())));
        let spread: std::collections::HashSet<_> = (0..300)
            .map(|_| t.delivery_queue(uuid::Uuid::new_v4(), false, false).shard)
            .collect();
        assert_eq!(spread.len(), 3, "ids spread over every shard");
        assert_eq!(Topology::sharded("p", 0).shards(), 1);
    }
}
