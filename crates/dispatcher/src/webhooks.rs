//! What this dispatcher knows about webhooks, kept in step with the registry by
//! `hookwire_broker::follow` (its snapshot at every broker (re)connect and every
//! `registry.resync_interval`, change notices in between): a deleted or deactivated webhook gets
//! no further attempt (retries already scheduled included), and a changed one is delivered with
//! its new URL, secrets and headers. It also knows which events' payloads were erased, whose
//! deliveries end unsent, and which deliveries were sent again by request, whose earlier tasks
//! are dropped (both from the snapshot and from notices).

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

use chrono::{DateTime, Utc};
use hookwire_core::messages::{ChangeNotice, RoutingSnapshot, Subscription, Target};
use hookwire_core::retry::RESENDS_KEPT;
use uuid::Uuid;

/// The latest word on one webhook.
#[derive(Debug, Clone)]
pub enum Known {
    Active(Box<Target>),
    Inactive,
    Deleted,
}

/// How far a publisher's clock (which stamps events) may run behind this dispatcher's (which
/// stamps snapshots): a webhook not heard of yet, for an event stamped less than this before the
/// snapshot, may be one created just after it, so its task keeps its own settings; older, the
/// webhook was deleted. Within the margin a webhook deleted behind a lost notice may get an
/// attempt; without it, a publisher's clock a little behind could end a new webhook's first
/// delivery as deleted.
const CLOCK_SKEW: chrono::TimeDelta = chrono::TimeDelta::seconds(5);

#[derive(Default)]
pub struct Webhooks {
    state: RwLock<State>,
}

#[derive(Default)]
struct State {
    /// Each webhook's latest word, and when the registry said it (`modified_at`, `deleted_at`).
    known: HashMap<Uuid, (DateTime<Utc>, Known)>,
    /// When the registry was asked for the snapshot held: a webhook it does not list, for an
    /// event older than that, was deleted.
    snapshot_at: Option<DateTime<Utc>>,
    /// Events whose payloads were erased: the snapshot's list, and notices since (`follow`
    /// applies again on top of a snapshot the notices that came while it was read).
    expunged: HashSet<Uuid>,
    /// Deliveries sent again by request, and when: their tasks sent before are dropped. From
    /// the snapshot's list and notices (`ChangeNotice::Resent`), the latest time of each; kept
    /// across snapshots (a notice may come before the snapshot that lists it), for as long as a
    /// retry can wait ([`RESENDS_KEPT`]).
    resent: HashMap<Uuid, DateTime<Utc>>,
    /// Tenants' ceilings on deliveries per second (those with one).
    tenant_limits: HashMap<Uuid, u32>,
}

impl Webhooks {
    /// Tenant `id`'s ceiling on deliveries per second across all dispatchers, if it has one.
    pub fn tenant_limit(&self, id: Uuid) -> Option<u32> {
        let state = self.state.read().expect("webhooks lock is never poisoned");
        state.tenant_limits.get(&id).copied()
    }

    /// The latest word on a webhook, for an event accepted at `event_created_at` and routed
    /// with the webhook's settings of `routed_with` (its `modified_at`); `None` when there is
    /// none newer than that (the task's own settings then stand): a publisher may route with a
    /// change a moment before this dispatcher has its notice.
    pub fn get(&self, id: Uuid, event_created_at: DateTime<Utc>, routed_with: Option<DateTime<Utc>>) -> Option<Known> {
        let state = self.state.read().expect("webhooks lock is never poisoned");
        if let Some((at, k)) = state.known.get(&id) {
            if routed_with.is_some_and(|routed| routed > *at) {
                return None;
            }
            return Some(k.clone());
        }
        state
            .snapshot_at
            .filter(|at| event_created_at < *at - CLOCK_SKEW)
            .map(|_| Known::Deleted)
    }

    /// Whether a task of delivery `id`, sent again by request at `resent_at` (`None`: never),
    /// belongs to a chain a later resend replaced: it is dropped unsent.
    pub fn superseded(&self, id: Uuid, resent_at: Option<DateTime<Utc>>) -> bool {
        let state = self.state.read().expect("webhooks lock is never poisoned");
        state
            .resent
            .get(&id)
            .is_some_and(|latest| resent_at.is_none_or(|at| at < *latest))
    }

    /// Whether event `id`'s payload was erased: its deliveries are not attempted any more.
    pub fn expunged(&self, id: Uuid) -> bool {
        let state = self.state.read().expect("webhooks lock is never poisoned");
        state.expunged.contains(&id)
    }
}

impl hookwire_broker::follow::Follower for Webhooks {
    fn replace(&self, snapshot: RoutingSnapshot, asked_at: DateTime<Utc>) {
        let known = snapshot
            .subscriptions
            .iter()
            .map(|s| (s.target.webhook_id, (s.modified_at, state_of(s))))
            .collect();
        let state = &mut *self.state.write().expect("webhooks lock is never poisoned");
        let mut resent = std::mem::take(&mut state.resent);
        note_resends(&mut resent, snapshot.resent.into_iter().map(|r| (r.delivery_id, r.at)));
        *state = State {
            known,
            snapshot_at: Some(asked_at),
            expunged: snapshot.expunged.into_iter().collect(),
            resent,
            tenant_limits: snapshot
                .tenant_limits
                .into_iter()
                .filter_map(|l| Some((l.tenant_id, l.max_deliveries_per_second?)))
                .collect(),
        };
    }

    /// The registry had no webhook it does not list in the snapshot held at `asked_at` either.
    fn unchanged(&self, asked_at: DateTime<Utc>) {
        self.state.write().expect("webhooks lock is never poisoned").snapshot_at = Some(asked_at);
    }

    fn apply(&self, notices: Vec<ChangeNotice>) {
        let state = &mut *self.state.write().expect("webhooks lock is never poisoned");
        let known = &mut state.known;
        let mut resent = Vec::new();
        for notice in notices {
            match notice {
                ChangeNotice::Upserted { subscription } => {
                    let id = subscription.target.webhook_id;
                    if known.get(&id).is_some_and(|(at, _)| *at > subscription.modified_at) {
                        continue;
                    }
                    known.insert(id, (subscription.modified_at, state_of(&subscription)));
                }
                ChangeNotice::Deleted { webhook_id, deleted_at } => {
                    known.insert(webhook_id, (deleted_at, Known::Deleted));
                }
                ChangeNotice::Expunged { event_ids } => state.expunged.extend(event_ids),
                ChangeNotice::Resent { delivery_id, at } => resent.push((delivery_id, at)),
                ChangeNotice::TenantLimitSet(limit) => match limit.max_deliveries_per_second {
                    Some(rate) => {
                        state.tenant_limits.insert(limit.tenant_id, rate);
                    }
                    None => {
                        state.tenant_limits.remove(&limit.tenant_id);
                    }
                },
                ChangeNotice::EventTypeUpserted { .. }
                | ChangeNotice::ProducerTokenUpserted { .. }
                | ChangeNotice::ProducerTokenRevoked { .. } => {}
            }
        }
        if !resent.is_empty() {
            note_resends(&mut state.resent, resent);
        }
    }

    fn is_loaded(&self) -> bool {
        self.state
            .read()
            .expect("webhooks lock is never poisoned")
            .snapshot_at
            .is_some()
    }
}

/// Adds resends to those remembered (the latest time of each delivery wins), and forgets those
/// older than [`RESENDS_KEPT`].
fn note_resends(resent: &mut HashMap<Uuid, DateTime<Utc>>, new: impl IntoIterator<Item = (Uuid, DateTime<Utc>)>) {
    for (id, at) in new {
        let latest = resent.entry(id).or_insert(at);
        *latest = (*latest).max(at);
    }
    if !resent.is_empty() {
        let forgotten = Utc::now() - RESENDS_KEPT;
        resent.retain(|_, at| *at > forgotten);
    }
}

fn state_of(s: &Subscription) -> Known {
    if s.is_active {
        Known::Active(Box::new(s.target.clone()))
    } else {
        Known::Inactive
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use hookwire_broker::follow::Follower as _;

    use super::*;

    fn subscription(is_active: bool, modified_at: DateTime<Utc>) -> Subscription {
        let mut s = hookwire_core::fixtures::subscription(Uuid::nil(), &["*"], &[], false, is_active);
        s.target.webhook_id = Uuid::nil();
        s.modified_at = modified_at;
        s.target.modified_at = Some(modified_at);
        s
    }

    #[test]
    fn a_webhook_not_heard_of_is_taken_for_deleted_only_for_events_well_before_the_snapshot() {
        let webhooks = Webhooks::default();
        let asked = Utc::now();
        webhooks.replace(RoutingSnapshot::default(), asked);
        let id = Uuid::from_u128(7);
        // A webhook created just after the snapshot, its first event stamped by a publisher whose
        // clock runs a second behind: the task keeps its own settings.
        let stamped = asked - Duration::seconds(1);
        assert!(webhooks.get(id, stamped, Some(stamped)).is_none());
        // An event from a minute before the snapshot, for a webhook it does not list: deleted.
        assert!(matches!(
            webhooks.get(id, asked - Duration::minutes(1), None),
            Some(Known::Deleted)
        ));
    }

    #[test]
    fn erased_events_are_known_from_notices_and_from_the_snapshot() {
        let webhooks = Webhooks::default();
        let (noticed, listed) = (Uuid::from_u128(1), Uuid::from_u128(2));
        webhooks.apply(vec![ChangeNotice::Expunged {
            event_ids: vec![noticed],
        }]);
        assert!(webhooks.expunged(noticed));
        // A later snapshot has the registry's whole list (which holds an erasure while its
        // deliveries may still be attempted).
        let snapshot = RoutingSnapshot {
            expunged: vec![listed],
            ..RoutingSnapshot::default()
        };
        webhooks.replace(snapshot, Utc::now());
        assert!(webhooks.expunged(listed));
        assert!(!webhooks.expunged(noticed));
    }

    #[test]
    fn a_resend_drops_the_tasks_of_the_chain_before_it() {
        let webhooks = Webhooks::default();
        let (delivery, other) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let first = Utc::now() - Duration::minutes(5);
        let second = Utc::now();
        assert!(!webhooks.superseded(delivery, None), "nothing heard yet");
        webhooks.apply(vec![ChangeNotice::Resent {
            delivery_id: delivery,
            at: second,
        }]);
        // The publisher's chain and an earlier resend's are dropped; this resend's is not.
        assert!(webhooks.superseded(delivery, None));
        assert!(webhooks.superseded(delivery, Some(first)));
        assert!(!webhooks.superseded(delivery, Some(second)));
        assert!(!webhooks.superseded(other, None), "another delivery");
        // A notice of the earlier resend arriving late changes nothing.
        webhooks.apply(vec![ChangeNotice::Resent {
            delivery_id: delivery,
            at: first,
        }]);
        assert!(!webhooks.superseded(delivery, Some(second)));
        // A snapshot read before the notice does not list it: the reload keeps what the notices
        // said.
        webhooks.replace(RoutingSnapshot::default(), Utc::now());
        assert!(webhooks.superseded(delivery, None));
        // Forgotten once no task of the replaced chain can come back.
        webhooks.apply(vec![ChangeNotice::Resent {
            delivery_id: other,
            at: Utc::now() - RESENDS_KEPT - Duration::seconds(1),
        }]);
        assert!(!webhooks.superseded(other, None));
    }

    #[test]
    fn a_dispatcher_that_missed_the_notice_learns_the_resend_from_the_snapshot() {
        let webhooks = Webhooks::default();
        let (delivery, old) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let at = Utc::now() - Duration::hours(3);
        let snapshot = RoutingSnapshot {
            resent: vec![
                hookwire_core::messages::Resent {
                    delivery_id: delivery,
                    at,
                },
                hookwire_core::messages::Resent {
                    delivery_id: old,
                    at: Utc::now() - RESENDS_KEPT - Duration::seconds(1),
                },
            ],
            ..RoutingSnapshot::default()
        };
        webhooks.replace(snapshot, Utc::now());
        assert!(webhooks.superseded(delivery, None), "the publisher's chain");
        assert!(
            webhooks.superseded(delivery, Some(at - Duration::seconds(1))),
            "an earlier resend's"
        );
        assert!(!webhooks.superseded(delivery, Some(at)), "the resend's own chain");
        assert!(!webhooks.superseded(old, None), "too old to have a chain left");
        // A later notice for it is newer than what the snapshot said.
        let later = Utc::now();
        webhooks.apply(vec![ChangeNotice::Resent {
            delivery_id: delivery,
            at: later,
        }]);
        assert!(webhooks.superseded(delivery, Some(at)));
    }

    #[test]
    fn a_task_routed_with_newer_settings_than_heard_of_keeps_them() {
        let webhooks = Webhooks::default();
        let deactivated = Utc::now();
        webhooks.apply(vec![ChangeNotice::Upserted {
            subscription: Box::new(subscription(false, deactivated)),
        }]);
        let event = Utc::now();
        // Re-enabled a moment later: the publisher heard of it and routed, this dispatcher not yet.
        let reenabled = deactivated + Duration::milliseconds(5);
        assert!(webhooks.get(Uuid::nil(), event, Some(reenabled)).is_none());
        // Routed before the deactivation, or by a producer that does not say: it is inactive.
        let before = deactivated - Duration::milliseconds(5);
        assert!(matches!(
            webhooks.get(Uuid::nil(), event, Some(before)),
            Some(Known::Inactive)
        ));
        assert!(matches!(webhooks.get(Uuid::nil(), event, None), Some(Known::Inactive)));
        // Once the dispatcher hears of the re-enabling, its settings are used again.
        webhooks.apply(vec![ChangeNotice::Upserted {
            subscription: Box::new(subscription(true, reenabled)),
        }]);
        assert!(matches!(
            webhooks.get(Uuid::nil(), event, Some(reenabled)),
            Some(Known::Active(_))
        ));
    }
}
