//! Which lane a tenant's deliveries take: the standard one, or the bulk lane once the tenant
//! publishes more than `ingest.bulk_lane_after` deliveries in a second on this publisher. A
//! flood (or a burst of batches) then waits in the bulk queues, and every other tenant's
//! deliveries go on through the standard ones without queueing behind it; dispatchers consume
//! both lanes with a prefetch each.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use uuid::Uuid;

/// Deliveries counted per tenant in whole seconds since the publisher started.
pub struct Lanes {
    /// Deliveries a second a tenant may send in the standard lane; 0 sends everything there.
    after: u32,
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
            started: Instant::now(),
            counts: Mutex::default(),
        }
    }

    /// Counts `deliveries` for `tenant` and says whether they take the bulk lane: when the
    /// tenant's count in this second, these included, or in the second before exceeds the
    /// threshold. A tenant back under it returns to the standard lane a second later.
    pub fn bulk(&self, tenant: Uuid, deliveries: usize) -> bool {
        if self.after == 0 || deliveries == 0 {
            return false;
        }
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
        *this > self.after || *last > self.after
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
}
