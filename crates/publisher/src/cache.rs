//! The routing cache: every subscription and the event-type catalog, in memory.
//!
//! Readers take an `Arc` of the current snapshot and route without holding a lock; a change
//! builds a new snapshot and swaps it in. `hookwire_broker::follow` keeps it in step with the
//! registry: its snapshot at every broker (re)connect and every `registry.resync_interval`, and
//! the change notices in between; a notice older than what the cache holds is ignored
//! (`modified_at`).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use hookwire_core::messages::{ChangeNotice, Event, RoutingSnapshot, Subscription};
use hookwire_core::patterns;
use hookwire_http::registry_client::RegistryClient;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::Config;

/// One immutable view of everything routing needs.
#[derive(Debug, Default)]
pub struct Routes {
    subscriptions: HashMap<Uuid, Arc<Subscription>>,
    /// Event type → its compiled JSON Schema, if any.
    types: HashMap<String, Option<Arc<jsonschema::Validator>>>,
}

/// Compiles a catalog schema. The registry refuses invalid schemas, so a failure here means the
/// catalog changed under us: the type is then accepted without its schema, loudly.
fn compile(event_type: &str, schema: Option<serde_json::Value>) -> Option<Arc<jsonschema::Validator>> {
    let schema = schema?;
    match jsonschema::validator_for(&schema) {
        Ok(v) => Some(Arc::new(v)),
        Err(e) => {
            tracing::error!(event_type, error = %e, "the catalog schema does not compile; events of this type are not checked");
            None
        }
    }
}

impl Routes {
    pub fn knows_type(&self, event_type: &str) -> bool {
        self.types.contains_key(event_type)
    }

    /// The schema violations of `data` for its type (at most `max`), empty when it conforms.
    pub fn schema_errors(&self, event_type: &str, data: &serde_json::Value, max: usize) -> Vec<String> {
        match self.types.get(event_type) {
            Some(Some(validator)) => validator
                .iter_errors(data)
                .take(max)
                .map(|e| {
                    let path = e.instance_path().to_string();
                    if path.is_empty() {
                        e.to_string()
                    } else {
                        format!("{path}: {e}")
                    }
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.subscriptions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.subscriptions.is_empty()
    }

    /// The subscriptions an event goes to (contract §4): active ones only; test events only to
    /// test webhooks and production events only to the others; a tenant's event only to that
    /// tenant, a feed event (no tenant) to all; patterns; and channels when the webhook has any.
    pub fn route(&self, event: &Event) -> Vec<Arc<Subscription>> {
        self.subscriptions
            .values()
            .filter(|s| {
                s.is_active
                    && s.is_test == event.is_test
                    && event.tenant_id.is_none_or(|t| t == s.target.tenant_id)
                    && patterns::any_matches(&s.events, &event.event_type)
                    && (s.channels.is_empty() || s.channels.iter().any(|c| event.channels.contains(c)))
            })
            .cloned()
            .collect()
    }
}

/// The shared cache.
#[derive(Default)]
pub struct Cache {
    current: RwLock<Arc<Routes>>,
    loaded: std::sync::atomic::AtomicBool,
}

impl Cache {
    /// The current snapshot; cheap (an `Arc` clone).
    pub fn routes(&self) -> Arc<Routes> {
        self.current.read().expect("cache lock is never poisoned").clone()
    }

    /// Whether a snapshot has been loaded since start (for `/readyz` and ingest).
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(std::sync::atomic::Ordering::Acquire)
    }

    pub fn replace(&self, snapshot: RoutingSnapshot) {
        let routes = Routes {
            subscriptions: snapshot
                .subscriptions
                .into_iter()
                .map(|s| (s.target.webhook_id, Arc::new(s)))
                .collect(),
            types: snapshot
                .event_types
                .into_iter()
                .map(|t| {
                    let compiled = compile(&t.value, t.schema);
                    (t.value, compiled)
                })
                .collect(),
        };
        *self.current.write().expect("cache lock is never poisoned") = Arc::new(routes);
        self.loaded.store(true, std::sync::atomic::Ordering::Release);
    }

    pub fn apply(&self, notice: ChangeNotice) {
        let mut guard = self.current.write().expect("cache lock is never poisoned");
        let mut subscriptions = guard.subscriptions.clone();
        let mut types = guard.types.clone();
        match notice {
            ChangeNotice::Upserted { subscription } => {
                let id = subscription.target.webhook_id;
                let newer = subscriptions
                    .get(&id)
                    .is_none_or(|old| old.modified_at <= subscription.modified_at);
                if newer {
                    subscriptions.insert(id, Arc::from(subscription));
                }
            }
            ChangeNotice::Deleted { webhook_id, .. } => {
                subscriptions.remove(&webhook_id);
            }
            ChangeNotice::EventTypeUpserted { event_type } => {
                let compiled = compile(&event_type.value, event_type.schema);
                types.insert(event_type.value, compiled);
            }
        }
        *guard = Arc::new(Routes { subscriptions, types });
    }
}

impl hookwire_broker::follow::Follower for Cache {
    fn replace(&self, snapshot: RoutingSnapshot, _asked_at: chrono::DateTime<chrono::Utc>) {
        Cache::replace(self, snapshot);
    }

    fn apply(&self, notice: ChangeNotice) {
        Cache::apply(self, notice);
    }

    fn is_loaded(&self) -> bool {
        Cache::is_loaded(self)
    }
}

/// Keeps the cache in step with the registry until `cancel` fires (`hookwire_broker::follow`).
pub async fn sync(cache: Arc<Cache>, config: Config, registry: RegistryClient, cancel: CancellationToken) {
    hookwire_broker::follow::follow(
        config.broker,
        "hookwire-publisher",
        config.registry.resync_interval,
        cache,
        registry.routing_reader(),
        cancel,
    )
    .await;
}
