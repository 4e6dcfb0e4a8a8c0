//! The routing cache: every subscription and the event-type catalog, in memory.
//!
//! Readers take an `Arc` of the current snapshot and route without holding a lock; a change
//! builds a new snapshot and swaps it in. Subscriptions are held by tenant, so a tenant's event
//! is matched against that tenant's webhooks only, not the installation's, and a batch of notices
//! copies the tenants' index once and rebuilds only the lists it changed, not everything
//! (figures in docs/benchmarks.md, "Routing"). A feed event (no tenant) goes to its type's
//! subscribers, found by the type's first feed event and patched as its subscribers change.
//! `hookwire_broker::follow` keeps it in step with the
//! registry: its snapshot at every broker (re)connect and every `registry.resync_interval`, and
//! the change notices in between; a notice older than what the cache holds is ignored
//! (`modified_at`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use hookwire_core::messages::{ChangeNotice, Event, RoutingSnapshot, Subscription};
use hookwire_core::patterns;
use hookwire_http::registry_client::RegistryClient;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::Config;

/// One immutable view of everything routing needs.
#[derive(Debug, Default)]
pub struct Routes {
    /// Each tenant's subscriptions. A tenant's event is matched against its tenant's webhooks
    /// only, so routing it costs that tenant's webhooks, not the installation's.
    by_tenant: HashMap<Uuid, Arc<[Arc<Subscription>]>>,
    /// Each catalog type's subscribers across tenants (whose patterns take it), found by the
    /// first feed event of the type that needs them and patched as they change (`refeed`): a
    /// feed event (no tenant) then costs its type's subscribers, not every webhook, also right
    /// after a change.
    by_type: HashMap<String, OnceLock<Feed>>,
    /// Subscriptions in all.
    count: usize,
    /// Event type → its compiled JSON Schema, if any.
    types: HashMap<String, Option<Arc<jsonschema::Validator>>>,
}

/// The subscribers of one event type.
type Feed = Arc<[Arc<Subscription>]>;

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
            Some(Some(validator)) => hookwire_core::schema::violations(validator, data, max),
            _ => Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Every subscription whose patterns take `event_type`, across tenants: a walk over all.
    fn subscribers(&self, event_type: &str) -> Feed {
        self.by_tenant
            .values()
            .flat_map(|s| s.iter())
            .filter(|s| patterns::any_matches(&s.events, event_type))
            .cloned()
            .collect()
    }

    /// The subscriptions an event goes to (contract §4): active ones only; test events only to
    /// test webhooks and production events only to the others; a tenant's event only to that
    /// tenant, a feed event (no tenant) to all; patterns; and channels when the webhook has any.
    pub fn route(&self, event: &Event) -> Vec<Arc<Subscription>> {
        let takes = |s: &&Arc<Subscription>| {
            s.is_active
                && s.is_test == event.is_test
                && patterns::any_matches(&s.events, &event.event_type)
                && (s.channels.is_empty() || s.channels.iter().any(|c| event.channels.contains(c)))
        };
        match event.tenant_id {
            Some(tenant) => self
                .by_tenant
                .get(&tenant)
                .map(|subscriptions| subscriptions.iter().filter(takes).cloned().collect())
                .unwrap_or_default(),
            None => {
                let feed = match self.by_type.get(&event.event_type) {
                    Some(feed) => feed.get_or_init(|| self.subscribers(&event.event_type)).clone(),
                    // A type outside the catalog (ingest refuses those).
                    None => self.subscribers(&event.event_type),
                };
                feed.iter().filter(takes).cloned().collect()
            }
        }
    }
}

/// The shared cache.
pub struct Cache {
    current: RwLock<Arc<Routes>>,
    /// The writer's own record, changed in place (only the sync task writes): so a notice costs a
    /// copy of the tenants' index and its tenant's list, not of every subscription.
    book: Mutex<Book>,
    loaded: std::sync::atomic::AtomicBool,
    /// [`PATCH_BUDGET`] (tests lower it).
    patch_budget: usize,
    /// Producer tokens, kept in step with the rest.
    pub producers: crate::producers::Producers,
}

impl Default for Cache {
    fn default() -> Self {
        Self {
            current: RwLock::default(),
            book: Mutex::default(),
            loaded: std::sync::atomic::AtomicBool::default(),
            patch_budget: PATCH_BUDGET,
            producers: Default::default(),
        }
    }
}

#[derive(Default)]
struct Book {
    /// Tenant → its subscriptions by webhook id.
    tenants: HashMap<Uuid, HashMap<Uuid, Arc<Subscription>>>,
    /// Webhook id → tenant, for deletions (their notice names the webhook only).
    tenant_of: HashMap<Uuid, Uuid>,
    /// Webhooks deleted since the snapshot, and when: a late notice of an earlier change (from
    /// another registry replica, say) does not bring one back.
    deleted: HashMap<Uuid, chrono::DateTime<chrono::Utc>>,
}

impl Book {
    fn insert(&mut self, subscription: Arc<Subscription>) {
        let (id, tenant) = (subscription.target.webhook_id, subscription.target.tenant_id);
        self.tenant_of.insert(id, tenant);
        self.tenants.entry(tenant).or_default().insert(id, subscription);
    }

    /// Removes webhook `id`; says which tenant held it.
    fn remove(&mut self, id: Uuid) -> Option<Uuid> {
        let tenant = self.tenant_of.remove(&id)?;
        if let Some(subscriptions) = self.tenants.get_mut(&tenant) {
            subscriptions.remove(&id);
        }
        Some(tenant)
    }

    fn held(&self, id: Uuid) -> Option<&Arc<Subscription>> {
        self.tenants.get(self.tenant_of.get(&id)?)?.get(&id)
    }

    /// Takes in one change; adds the tenants whose lists it changed to `touched`, and the
    /// webhook it changed, with the version held before, to `changed`.
    fn apply(
        &mut self,
        notice: ChangeNotice,
        touched: &mut Vec<Uuid>,
        changed: &mut Vec<(Uuid, Option<Arc<Subscription>>)>,
    ) {
        match notice {
            ChangeNotice::Upserted { subscription } => {
                let (id, modified_at) = (subscription.target.webhook_id, subscription.modified_at);
                let deleted_since = self.deleted.get(&id).is_some_and(|at| *at >= modified_at);
                if deleted_since || self.held(id).is_some_and(|old| old.modified_at > modified_at) {
                    return;
                }
                changed.push((id, self.held(id).cloned()));
                touched.extend(self.remove(id));
                touched.push(subscription.target.tenant_id);
                self.insert(Arc::from(subscription));
            }
            ChangeNotice::Deleted { webhook_id, deleted_at } => {
                self.deleted.insert(webhook_id, deleted_at);
                changed.push((webhook_id, self.held(webhook_id).cloned()));
                touched.extend(self.remove(webhook_id));
            }
            ChangeNotice::EventTypeUpserted { .. }
            | ChangeNotice::Expunged { .. }
            | ChangeNotice::Resent { .. }
            | ChangeNotice::ProducerTokenUpserted { .. }
            | ChangeNotice::ProducerTokenRevoked { .. }
            | ChangeNotice::TenantLimitSet(_) => {}
        }
    }

    /// Tenant `tenant`'s list as routing reads it, `None` once it has no subscription.
    fn list(&self, tenant: Uuid) -> Option<Arc<[Arc<Subscription>]>> {
        let subscriptions = self.tenants.get(&tenant).filter(|t| !t.is_empty())?;
        Some(subscriptions.values().cloned().collect())
    }
}

/// How many entries of built subscriber lists one batch of notices may copy to patch them (about
/// half a millisecond): a touched type's list within it is patched (the changed webhooks out, their
/// new versions in where they take the type), smallest first; one beyond it is found again by its
/// type's next feed event (a walk over every webhook, whose cost a list that long nears anyway).
const PATCH_BUDGET: usize = 65_536;

/// The types' subscriber lists after `changed` webhooks changed (each with the version held
/// before; `book` holds the new one, or none once deleted), and `new_types` joined the catalog.
/// A type no changed webhook took before or takes now keeps its list; a touched one has its list
/// patched, within `budget` entries copied in all, or found again by its next feed event.
fn refeed<'a>(
    book: &Book,
    feeds: &HashMap<String, OnceLock<Feed>>,
    changed: &[(Uuid, Option<Arc<Subscription>>)],
    new_types: impl Iterator<Item = &'a String>,
    budget: usize,
) -> HashMap<String, OnceLock<Feed>> {
    let ids: HashSet<Uuid> = changed.iter().map(|(id, _)| *id).collect();
    let now: Vec<&Arc<Subscription>> = ids.iter().filter_map(|id| book.held(*id)).collect();
    let versions: Vec<&Subscription> = changed
        .iter()
        .filter_map(|(_, old)| old.as_deref())
        .chain(now.iter().map(|s| &***s))
        .collect();
    let mut touched: Vec<(&String, Option<&Feed>)> = feeds
        .iter()
        .filter(|(event_type, _)| versions.iter().any(|s| patterns::any_matches(&s.events, event_type)))
        .map(|(event_type, feed)| (event_type, feed.get()))
        .collect();
    touched.sort_unstable_by_key(|(_, built)| built.map_or(usize::MAX, |list| list.len()));
    let mut out = feeds.clone();
    let mut left = budget;
    for (event_type, built) in touched {
        let patched = built.filter(|list| list.len() <= left).map(|list| {
            left -= list.len();
            let kept = list.iter().filter(|s| !ids.contains(&s.target.webhook_id));
            let joined = now
                .iter()
                .copied()
                .filter(|s| patterns::any_matches(&s.events, event_type));
            OnceLock::from(kept.chain(joined).cloned().collect::<Feed>())
        });
        out.insert(event_type.clone(), patched.unwrap_or_default());
    }
    for event_type in new_types {
        out.entry(event_type.clone()).or_default();
    }
    out
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
        self.producers.replace(snapshot.producer_tokens);
        let mut book = Book::default();
        for s in snapshot.subscriptions {
            book.insert(Arc::new(s));
        }
        let types: HashMap<String, Option<Arc<jsonschema::Validator>>> = snapshot
            .event_types
            .into_iter()
            .map(|t| {
                let compiled = compile(&t.value, t.schema);
                (t.value, compiled)
            })
            .collect();
        let routes = Routes {
            by_tenant: book.tenants.keys().filter_map(|t| Some((*t, book.list(*t)?))).collect(),
            by_type: types.keys().map(|t| (t.clone(), OnceLock::new())).collect(),
            count: book.tenant_of.len(),
            types,
        };
        let mut held = self.book.lock().expect("cache lock is never poisoned");
        *self.current.write().expect("cache lock is never poisoned") = Arc::new(routes);
        *held = book;
        self.loaded.store(true, std::sync::atomic::Ordering::Release);
    }

    /// Takes in notices (one copy of the index for all of them).
    pub fn apply(&self, notices: Vec<ChangeNotice>) {
        let mut book = self.book.lock().expect("cache lock is never poisoned");
        let mut tenants = Vec::new();
        let mut types = Vec::new();
        let mut changed = Vec::new();
        for notice in notices {
            if let ChangeNotice::EventTypeUpserted { event_type } = notice {
                let compiled = compile(&event_type.value, event_type.schema);
                types.push((event_type.value, compiled));
            } else if !self.producers.apply(&notice) {
                book.apply(notice, &mut tenants, &mut changed);
            }
        }
        tenants.sort_unstable();
        tenants.dedup();
        if tenants.is_empty() && types.is_empty() {
            return;
        }
        let mut current = self.current.write().expect("cache lock is never poisoned");
        let mut by_tenant = current.by_tenant.clone();
        for tenant in tenants {
            match book.list(tenant) {
                Some(list) => by_tenant.insert(tenant, list),
                None => by_tenant.remove(&tenant),
            };
        }
        let by_type = refeed(
            &book,
            &current.by_type,
            &changed,
            types.iter().map(|(t, _)| t),
            self.patch_budget,
        );
        let mut all_types = current.types.clone();
        all_types.extend(types);
        *current = Arc::new(Routes {
            by_tenant,
            by_type,
            count: book.tenant_of.len(),
            types: all_types,
        });
    }
}

impl hookwire_broker::follow::Follower for Cache {
    fn replace(&self, snapshot: RoutingSnapshot, _asked_at: chrono::DateTime<chrono::Utc>) {
        Cache::replace(self, snapshot);
    }

    /// What is held stands; deletions since the last whole snapshot stay in the book.
    fn unchanged(&self, _asked_at: chrono::DateTime<chrono::Utc>) {}

    fn apply(&self, notices: Vec<ChangeNotice>) {
        Cache::apply(self, notices);
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

#[cfg(test)]
mod tests;
