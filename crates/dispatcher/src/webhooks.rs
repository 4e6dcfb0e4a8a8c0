//! What this dispatcher knows about webhooks, kept in step with the registry by
//! `hookwire_broker::follow` (its snapshot at every broker (re)connect and every
//! `registry.resync_interval`, change notices in between): a deleted or deactivated webhook gets
//! no further attempt (retries already scheduled included), and a changed one is delivered with
//! its new URL, secrets and headers.

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
    state: RwLock<State>,
}

#[derive(Default)]
struct State {
    /// Each webhook's latest word, and when the registry said it (`modified_at`, `deleted_at`).
    known: HashMap<Uuid, (DateTime<Utc>, Known)>,
    /// When the registry was asked for the snapshot held: a webhook it does not list, for an
    /// event older than that, was deleted.
    snapshot_at: Option<DateTime<Utc>>,
}

impl Webhooks {
    /// The latest word on a webhook, for an event accepted at `event_created_at`; `None` when
    /// there is none (the task's own settings then stand).
    pub fn get(&self, id: Uuid, event_created_at: DateTime<Utc>) -> Option<Known> {
        let state = self.state.read().expect("webhooks lock is never poisoned");
        if let Some((_, k)) = state.known.get(&id) {
            return Some(k.clone());
        }
        state
            .snapshot_at
            .filter(|at| event_created_at < *at)
            .map(|_| Known::Deleted)
    }
}

impl hookwire_broker::follow::Follower for Webhooks {
    fn replace(&self, snapshot: RoutingSnapshot, asked_at: DateTime<Utc>) {
        let known = snapshot
            .subscriptions
            .iter()
            .map(|s| (s.target.webhook_id, (s.modified_at, state_of(s))))
            .collect();
        *self.state.write().expect("webhooks lock is never poisoned") = State {
            known,
            snapshot_at: Some(asked_at),
        };
    }

    fn apply(&self, notices: Vec<ChangeNotice>) {
        let known = &mut self.state.write().expect("webhooks lock is never poisoned").known;
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
                ChangeNotice::EventTypeUpserted { .. } => {}
            }
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

fn state_of(s: &Subscription) -> Known {
    if s.is_active {
        Known::Active(Box::new(s.target.clone()))
    } else {
        Known::Inactive
    }
}
