//! What this dispatcher has heard about webhooks since it started, from the registry's change
//! notices: a deleted or deactivated webhook gets no further attempt (retries already scheduled
//! included), and a changed one is delivered with its new URL, secrets and headers.

use std::collections::HashMap;
use std::sync::RwLock;

use chrono::{DateTime, Utc};
use hookwire_core::messages::{ChangeNotice, RoutingSnapshot, Subscription, Target};
use uuid::Uuid;

/// The latest word on one webhook.
#[derive(Debug, Clone)]
pub enum Known {
    Active(Box<Target>),
    Inactive,
    Deleted,
}

#[derive(Default)]
pub struct Webhooks {
    known: RwLock<HashMap<Uuid, (DateTime<Utc>, Known)>>,
    /// When the start-up snapshot was taken: a webhook it does not list, for an event older
    /// than that, was deleted.
    snapshot_at: RwLock<Option<DateTime<Utc>>>,
}

impl Webhooks {
    /// The latest word on a webhook, for an event accepted at `event_created_at`.
    pub fn get(&self, id: Uuid, event_created_at: DateTime<Utc>) -> Option<Known> {
        if let Some((_, k)) = self.known.read().expect("webhooks lock is never poisoned").get(&id) {
            return Some(k.clone());
        }
        let snapshot_at = *self.snapshot_at.read().expect("webhooks lock is never poisoned");
        snapshot_at.filter(|at| event_created_at < *at).map(|_| Known::Deleted)
    }

    /// Takes in the registry's snapshot; what notices said since start stays (it is newer).
    pub fn load(&self, snapshot: RoutingSnapshot, taken_at: DateTime<Utc>) {
        for subscription in snapshot.subscriptions {
            self.apply_if_absent(subscription);
        }
        *self.snapshot_at.write().expect("webhooks lock is never poisoned") = Some(taken_at);
    }

    fn apply_if_absent(&self, subscription: Subscription) {
        let mut known = self.known.write().expect("webhooks lock is never poisoned");
        let id = subscription.target.webhook_id;
        known
            .entry(id)
            .or_insert_with(|| (subscription.modified_at, state_of(&subscription)));
    }

    pub fn apply(&self, notice: ChangeNotice) {
        let mut known = self.known.write().expect("webhooks lock is never poisoned");
        match notice {
            ChangeNotice::Upserted { subscription } => {
                let id = subscription.target.webhook_id;
                if known.get(&id).is_some_and(|(at, _)| *at > subscription.modified_at) {
                    return;
                }
                known.insert(id, (subscription.modified_at, state_of(&subscription)));
            }
            ChangeNotice::Deleted { webhook_id, deleted_at } => {
                known.insert(webhook_id, (deleted_at, Known::Deleted));
            }
            ChangeNotice::EventTypeUpserted { .. } => {}
        }
    }
}

fn state_of(s: &Subscription) -> Known {
    if s.is_active {
        Known::Active(Box::new(s.target.clone()))
    } else {
        Known::Inactive
    }
}
