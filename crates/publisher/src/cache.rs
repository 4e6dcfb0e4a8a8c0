//! The routing cache: every subscription and the event-type catalog, in memory.
//!
//! Readers take an `Arc` of the current snapshot and route without holding a lock; a change
//! builds a new snapshot and swaps it in. The sync task binds an exclusive queue to the changes
//! exchange *before* it loads the registry's snapshot, so a change made while loading waits in
//! that queue and is applied after it; a notice older than what the cache holds is ignored
//! (`modified_at`). A full reload every `registry.resync_interval` repairs anything missed; it
//! runs beside the notices, which keep being applied while the registry takes its time.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use futures_util::future::BoxFuture;
use futures_util::StreamExt as _;
use hookwire_core::messages::{ChangeNotice, Event, RoutingSnapshot, Subscription};
use hookwire_core::patterns;
use hookwire_core::topology::Topology;
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

/// Loads the snapshot, retrying until it succeeds or `cancel` fires; once the cache holds one
/// (a reconnect), a failure keeps routing with it instead.
async fn load(cache: &Cache, registry: &RegistryClient, cancel: &CancellationToken) -> bool {
    let mut failures = 0u32;
    loop {
        if took(cache, registry.routing().await) || cache.is_loaded() {
            return true;
        }
        failures += 1;
        let wait = std::time::Duration::from_millis(200 * u64::from(failures.min(25)));
        tokio::select! {
            () = cancel.cancelled() => return false,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Puts a snapshot the registry sent in the cache; says why not when it could not be read.
fn took(cache: &Cache, snapshot: anyhow::Result<RoutingSnapshot>) -> bool {
    match snapshot {
        Ok(snapshot) => {
            let n = snapshot.subscriptions.len();
            cache.replace(snapshot);
            tracing::info!(subscriptions = n, "routing snapshot loaded");
            true
        }
        Err(e) => {
            tracing::warn!(
                error = format!("{e:#}"),
                "cannot load the routing snapshot from the registry; routing with the cache held"
            );
            false
        }
    }
}

/// Keeps the cache in step with the registry until `cancel` fires.
pub async fn sync(cache: Arc<Cache>, config: Config, registry: RegistryClient, cancel: CancellationToken) {
    let topology = Topology::new(&config.broker.prefix);
    hookwire_broker::supervise(
        config.broker.clone(),
        "hookwire-publisher changes".into(),
        cancel,
        move |conn, stop| {
            let (cache, config, registry, topology) =
                (cache.clone(), config.clone(), registry.clone(), topology.clone());
            async move {
                let channel = conn.create_channel().await?;
                hookwire_broker::declare(&channel, &topology).await?;
                // Bound before the snapshot is read: changes made meanwhile wait in the queue.
                let mut notices = hookwire_broker::consume_changes(&channel, &topology, "hookwire-publisher").await?;
                if !load(&cache, &registry, &stop).await {
                    return Ok(());
                }
                let mut resync = tokio::time::interval(config.registry.resync_interval);
                resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                resync.tick().await;
                // A periodic reload runs beside the notices, so a registry that is slow to answer
                // (up to twice `request_timeout`) does not hold them up. Its snapshot may have been
                // read before some of the notices applied meanwhile, so those are applied again
                // on top of it; each is as new as what it replaces, or ignored.
                let mut reload: Option<BoxFuture<'static, anyhow::Result<RoutingSnapshot>>> = None;
                let mut since_reload: Vec<ChangeNotice> = Vec::new();
                loop {
                    tokio::select! {
                        () = stop.cancelled() => return Ok(()),
                        _ = resync.tick(), if reload.is_none() => {
                            let registry = registry.clone();
                            reload = Some(Box::pin(async move { registry.routing().await }));
                        }
                        snapshot = async { reload.as_mut().expect("polled only while reloading").await }, if reload.is_some() => {
                            reload = None;
                            let replayed = std::mem::take(&mut since_reload);
                            if took(&cache, snapshot) {
                                for notice in replayed {
                                    cache.apply(notice);
                                }
                            }
                        }
                        next = notices.next() => match next {
                            Some(Ok(delivery)) => match serde_json::from_slice::<ChangeNotice>(&delivery.data) {
                                Ok(notice) => {
                                    if reload.is_some() {
                                        since_reload.push(notice.clone());
                                    }
                                    cache.apply(notice);
                                }
                                Err(e) => tracing::error!(error = %e, "undecodable change notice ignored"),
                            },
                            Some(Err(e)) => return Err(e.into()),
                            None => anyhow::bail!("the broker cancelled the change-notice consumer"),
                        },
                    }
                }
            }
        },
    )
    .await;
}
