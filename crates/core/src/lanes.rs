//! Which lane a tenant's deliveries take: the standard one, or the bulk lane once the tenant
//! sends more than its share of a threshold in a second through this process (the threshold
//! divided by the replicas sending, as last counted). Publishers count the deliveries they
//! route (`ingest.bulk_lane_after`), the registry the tasks ordered webhooks' lines release
//! (`lines.bulk_lane_after`). A flood (or a burst of batches) then waits in the bulk queues,
//! and every other tenant's deliveries go on through the standard ones without queueing behind
//! it; dispatchers consume both lanes with a prefetch each.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use uuid::Uuid;

/// Deliveries counted per tenant in whole seconds since the process started.
pub struct Lanes {
    /// Deliveries a second a tenant may send in the standard lane, across the replicas; 0
    /// sends everything there.
    after: u32,
    /// Replicas sending, this one included, as last counted.
    replicas: AtomicU32,
    started: Instant,
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    /// The second being counted.
    second: u64,
    /// Each tenant's deliveries in this second and the one before.
    tenants: HashMap<Uuid, (u32, u32)>,
}

impl Lanes {
    pub fn new(after: u32) -> Self {
        Self {
            after,
            replicas: AtomicU32::new(1),
            started: Instant::now(),
            counts: Mutex::default(),
        }
    }

    /// How many replicas send, this one included: each takes that share of the threshold.
    pub fn set_replicas(&self, replicas: u32) {
        self.replicas.store(replicas.max(1), Ordering::Relaxed);
    }

    /// This replica's share of the threshold (at least 1).
    fn share(&self) -> u32 {
        (self.after / self.replicas.load(Ordering::Relaxed).max(1)).max(1)
    }

    /// Counts `deliveries` for `tenant` and says whether they take the bulk lane: when the
    /// tenant's count in this second, these included, or in the second before exceeds this
    /// replica's share. A tenant back under it returns to the standard lane a second later.
    pub fn bulk(&self, tenant: Uuid, deliveries: usize) -> bool {
        if self.after == 0 || deliveries == 0 {
            return false;
        }
        let share = self.share();
        let now = self.started.elapsed().as_secs();
        let mut counts = self.counts.lock().expect("the lane counts are never poisoned");
        if now != counts.second {
            // A new second: this one's counts become the previous ones; tenants silent for a
            // whole second are forgotten, so the map holds only tenants that publish.
            let consecutive = now == counts.second + 1;
            counts.second = now;
            counts.tenants.retain(|_, (this, last)| {
                *last = if consecutive { *this } else { 0 };
                *this = 0;
                *last > 0
            });
        }
        let (this, last) = counts.tenants.entry(tenant).or_default();
        *this = this.saturating_add(u32::try_from(deliveries).unwrap_or(u32::MAX));
        *this > share || *last > share
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_over_its_share_goes_to_the_bulk_lane_and_others_stay() {
        let lanes = Lanes::new(100);
        let (flood, quiet) = (Uuid::new_v4(), Uuid::new_v4());
        // The first 100 of the second stay in the standard lane, the rest go to bulk.
        let lanes_taken: Vec<bool> = (0..5).map(|_| lanes.bulk(flood, 30)).collect();
        assert_eq!(lanes_taken, [false, false, false, true, true]);
        assert!(!lanes.bulk(quiet, 1), "another tenant keeps the standard lane");
        assert!(!Lanes::new(0).bulk(flood, 1_000_000), "0 turns the bulk lane off");
    }

    #[test]
    fn each_of_several_replicas_takes_its_share() {
        let lanes = Lanes::new(100);
        lanes.set_replicas(4);
        let tenant = Uuid::new_v4();
        assert!(!lanes.bulk(tenant, 25), "a quarter of the threshold on this replica");
        assert!(lanes.bulk(tenant, 1), "past its quarter");
        let few = Lanes::new(3);
        few.set_replicas(10);
        assert!(!few.bulk(tenant, 1), "a share never falls below one delivery");
        assert!(few.bulk(tenant, 1));
    }
}
