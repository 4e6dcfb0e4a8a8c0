//! What this dispatcher has heard about webhooks since it started, from the registry's change
//! notices: a deleted or deactivated webhook gets no further attempt (retries already scheduled
//! included), and a changed one is delivered with its new URL, secrets and headers.

use std::collections::HashMap;
use std::sync::RwLock;

use hookwire_core::messages::{ChangeNotice, Target};
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
    known: RwLock<HashMap<Uuid, (chrono::DateTime<chrono::Utc>, Known)>>,
}

impl Webhooks {
    pub fn get(&self, id: Uuid) -> Option<Known> {
        self.known
            .read()
            .expect("webhooks lock is never poisoned")
            .get(&id)
            .map(|(_, k)| k.clone())
    }

    pub fn apply(&self, notice: ChangeNotice) {
        let mut known = self.known.write().expect("webhooks lock is never poisoned");
        match notice {
            ChangeNotice::Upserted { subscription } => {
                let id = subscription.target.webhook_id;
                if known.get(&id).is_some_and(|(at, _)| *at > subscription.modified_at) {
                    return;
                }
                let state = if subscription.is_active {
                    Known::Active(Box::new(subscription.target.clone()))
                } else {
                    Known::Inactive
                };
                known.insert(id, (subscription.modified_at, state));
            }
            ChangeNotice::Deleted { webhook_id, deleted_at } => {
                known.insert(webhook_id, (deleted_at, Known::Deleted));
            }
            ChangeNotice::EventTypeUpserted { .. } => {}
        }
    }
}
