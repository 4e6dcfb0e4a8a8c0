//! Each webhook's gate: its concurrent requests, tasks waiting, pace and signs of progress.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use uuid::Uuid;

use super::Worker;

pub(super) struct Gate {
    pub(super) slots: Semaphore,
    pub(super) waiting: AtomicUsize,
    /// When an attempt to this webhook last finished, or started with none in flight (ms since
    /// the worker started): the last sign that the webhook's requests are moving.
    pub(super) last_progress_ms: AtomicU64,
    /// With `rate_limit_per_second`: when the next attempt may start (µs since the worker
    /// started). Each attempt reserves the next slot, `1/rate` after the previous one.
    pub(super) next_slot_us: AtomicU64,
    /// Whether the last attempt that finished took longer than `STALL`.
    pub(super) slow: AtomicBool,
    /// Whether the last attempt that finished failed, and took longer than `STALL` to (a
    /// timeout, say): its requests take room from `max_in_flight_failing`.
    pub(super) failing: AtomicBool,
}

/// A full gate whose webhook has finished no attempt for this long is slow: its new tasks are
/// parked. A fast webhook with a burst of work keeps its tasks in memory instead (parking them
/// would only add broker traffic and a delay).
pub(super) const STALL: Duration = Duration::from_millis(250);

impl Worker {
    pub(super) fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Waits for the next slot under `rate` attempts per second across all dispatchers, `next`
    /// being when it is (a webhook's gate's, or its tenant's): tasks are spread evenly over the
    /// replicas consuming them (RabbitMQ hands them out in turn), so each paces at
    /// `rate / replicas`. A replica that gets more than its share of one webhook's (or tenant's)
    /// tasks sends them more slowly; together they do not exceed `rate`.
    pub(super) async fn pace(&self, next: &AtomicU64, rate: u32) {
        let replicas = u64::from(self.replicas.load(Ordering::Relaxed).max(1));
        let interval = 1_000_000 * replicas / u64::from(rate.max(1));
        let now = self.started.elapsed().as_micros() as u64;
        let mut slot = next.load(Ordering::Acquire);
        loop {
            let start = slot.max(now);
            match next.compare_exchange(slot, start + interval, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    if start > now {
                        tokio::time::sleep(Duration::from_micros(start - now)).await;
                    }
                    return;
                }
                Err(current) => slot = current,
            }
        }
    }

    /// Requests in flight to the webhook behind `gate`.
    pub(super) fn in_flight(&self, gate: &Gate) -> usize {
        self.config
            .delivery
            .max_in_flight_per_webhook
            .max(1)
            .saturating_sub(gate.slots.available_permits())
    }

    /// Whether the webhook behind `gate` has shown no progress for `STALL`: no attempt
    /// finished, and none started with nothing in flight.
    pub(super) fn stalled(&self, gate: &Gate) -> bool {
        self.elapsed_ms()
            .saturating_sub(gate.last_progress_ms.load(Ordering::Acquire))
            > STALL.as_millis() as u64
    }

    /// Whether a group's member for the webhook behind `gate` should leave the group as a task
    /// of its own instead of being attempted with it: its last attempt was slow, or attempts are
    /// in flight and none has finished for `STALL`. A group is acknowledged only when all its
    /// members are done, so one slow receiver would otherwise hold every group it is in (and
    /// the groups' small prefetch window with them).
    pub(super) fn spills(&self, gate: &Gate) -> bool {
        gate.slow.load(Ordering::Acquire) || (self.in_flight(gate) > 0 && self.stalled(gate))
    }

    /// When tenant `id`'s next delivery may start under its ceiling (`pace`).
    pub(super) fn tenant_pace(&self, id: Uuid) -> Arc<AtomicU64> {
        let mut paces = self.tenant_paces.lock().expect("tenant paces lock is never poisoned");
        paces.entry(id).or_default().clone()
    }

    pub(super) fn gate(&self, webhook_id: Uuid) -> Arc<Gate> {
        let mut gates = self.gates.lock().expect("gates lock is never poisoned");
        gates
            .entry(webhook_id)
            .or_insert_with(|| {
                Arc::new(Gate {
                    slots: Semaphore::new(self.config.delivery.max_in_flight_per_webhook.max(1)),
                    waiting: AtomicUsize::new(0),
                    last_progress_ms: AtomicU64::new(self.elapsed_ms()),
                    next_slot_us: AtomicU64::new(0),
                    slow: AtomicBool::new(false),
                    failing: AtomicBool::new(false),
                })
            })
            .clone()
    }
}
