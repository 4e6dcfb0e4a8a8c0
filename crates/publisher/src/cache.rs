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
mod tests {
    use chrono::{DateTime, Duration, Utc};

    use super::*;

    fn subscription(tenant: Uuid, modified_at: DateTime<Utc>) -> Subscription {
        let mut s = hookwire_core::fixtures::subscription(tenant, &["person.*"], &[], false, true);
        s.modified_at = modified_at;
        s.target.modified_at = Some(modified_at);
        s
    }

    /// The webhook ids an event goes to, sorted.
    fn routed(cache: &Cache, tenant: Option<Uuid>) -> Vec<Uuid> {
        let mut ids: Vec<Uuid> = cache
            .routes()
            .route(&hookwire_core::fixtures::event(tenant, "person.created", &[], false))
            .iter()
            .map(|s| s.target.webhook_id)
            .collect();
        ids.sort_unstable();
        ids
    }

    fn upserted(s: &Subscription) -> ChangeNotice {
        ChangeNotice::Upserted {
            subscription: Box::new(s.clone()),
        }
    }

    fn sorted(mut ids: Vec<Uuid>) -> Vec<Uuid> {
        ids.sort_unstable();
        ids
    }

    #[test]
    fn a_tenant_event_goes_to_its_tenant_and_a_feed_event_to_all() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let now = Utc::now();
        let (a1, a2, b1) = (subscription(a, now), subscription(a, now), subscription(b, now));
        let cache = Cache::default();
        cache.replace(RoutingSnapshot {
            subscriptions: vec![a1.clone(), a2.clone(), b1.clone()],
            event_types: vec![],
            ..RoutingSnapshot::default()
        });
        let id = |s: &Subscription| s.target.webhook_id;
        assert_eq!(routed(&cache, Some(a)), sorted(vec![id(&a1), id(&a2)]));
        assert_eq!(routed(&cache, Some(b)), vec![id(&b1)]);
        assert_eq!(routed(&cache, Some(Uuid::new_v4())), Vec::<Uuid>::new());
        assert_eq!(routed(&cache, None), sorted(vec![id(&a1), id(&a2), id(&b1)]));
        assert_eq!(cache.routes().len(), 3);
    }

    #[test]
    fn notices_add_change_and_remove_webhooks_and_an_older_one_changes_nothing() {
        let tenant = Uuid::new_v4();
        let now = Utc::now();
        let cache = Cache::default();
        cache.replace(RoutingSnapshot::default());
        let mut s = subscription(tenant, now);
        let id = s.target.webhook_id;
        cache.apply(vec![upserted(&s)]);
        assert_eq!(routed(&cache, Some(tenant)), vec![id]);

        // A newer change deactivates it; the older state arriving late does not undo that.
        let older = s.clone();
        s.is_active = false;
        s.modified_at = now + Duration::seconds(1);
        cache.apply(vec![upserted(&s), upserted(&older)]);
        assert!(routed(&cache, Some(tenant)).is_empty());
        assert_eq!(cache.routes().len(), 1);

        // Reactivated, then deleted; a late notice of a change made before the deletion does not
        // bring it back.
        s.is_active = true;
        s.modified_at = now + Duration::seconds(2);
        cache.apply(vec![upserted(&s)]);
        assert_eq!(routed(&cache, Some(tenant)), vec![id]);
        cache.apply(vec![
            ChangeNotice::Deleted {
                webhook_id: id,
                deleted_at: now + Duration::seconds(3),
            },
            upserted(&s),
        ]);
        assert!(routed(&cache, Some(tenant)).is_empty());
        assert!(routed(&cache, None).is_empty());
        assert_eq!(cache.routes().len(), 0);
    }

    /// The webhook ids a feed event of `event_type` goes to, sorted; and the same found by
    /// going through every webhook, as routing did before the index by type.
    fn fed(cache: &Cache, event_type: &str) -> (Vec<Uuid>, Vec<Uuid>) {
        let routes = cache.routes();
        let event = hookwire_core::fixtures::event(None, event_type, &[], false);
        let indexed = sorted(routes.route(&event).iter().map(|s| s.target.webhook_id).collect());
        let walked = sorted(
            routes
                .by_tenant
                .values()
                .flat_map(|l| l.iter())
                .filter(|s| s.is_active && !s.is_test && patterns::any_matches(&s.events, event_type))
                .map(|s| s.target.webhook_id)
                .collect(),
        );
        (indexed, walked)
    }

    #[test]
    fn a_feed_event_goes_to_the_subscribers_of_its_type_as_webhooks_change() {
        // Every touched list patched; then lists beyond a budget of 3 entries found again by the
        // next feed event, those within it patched.
        feeds_follow_changes(PATCH_BUDGET);
        feeds_follow_changes(3);
    }

    fn feeds_follow_changes(patch_budget: usize) {
        let types = ["person.created", "person.updated", "company.created", "series_updated"];
        let catalog = |v: &str| hookwire_core::messages::CatalogType {
            value: v.into(),
            schema: None,
        };
        let choices: [&[&str]; 5] = [
            &["person.*"],
            &["series_updated"],
            &["*"],
            &["company.created", "person.updated"],
            &["*.created"],
        ];
        let now = Utc::now();
        let tenants = [Uuid::new_v4(), Uuid::new_v4()];
        let mut webhooks: Vec<Subscription> = (0..6)
            .map(|i| {
                let mut s = hookwire_core::fixtures::subscription(tenants[i % 2], choices[i % 5], &[], false, true);
                s.modified_at = now;
                s
            })
            .collect();
        let cache = Cache {
            patch_budget,
            ..Cache::default()
        };
        cache.replace(RoutingSnapshot {
            subscriptions: webhooks.clone(),
            event_types: types[..3].iter().map(|t| catalog(t)).collect(),
            ..RoutingSnapshot::default()
        });
        let id = |s: &Subscription| s.target.webhook_id;
        let (feed, _) = fed(&cache, "company.created");
        assert_eq!(feed, sorted(vec![id(&webhooks[2]), id(&webhooks[3]), id(&webhooks[4])]));

        // A type joins the catalog; then, batch after batch, webhooks change their patterns, are
        // deactivated, deleted and come back: every feed always has exactly the webhooks that
        // going through all of them finds, and within the budget no list has to be found again.
        cache.apply(vec![ChangeNotice::EventTypeUpserted {
            event_type: catalog("series_updated"),
        }]);
        let (feed, _) = fed(&cache, "series_updated");
        assert_eq!(feed, sorted(vec![id(&webhooks[1]), id(&webhooks[2])]));
        for t in types {
            fed(&cache, t);
        }
        let mut seed = 7u64;
        let mut next = |n: usize| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as usize % n
        };
        for round in 1..=60 {
            let mut batch = Vec::new();
            for _ in 0..1 + next(3) {
                let w = &mut webhooks[next(6)];
                w.modified_at = now + Duration::milliseconds(round);
                match next(4) {
                    0 => batch.push(ChangeNotice::Deleted {
                        webhook_id: id(w),
                        deleted_at: w.modified_at,
                    }),
                    1 => {
                        w.is_active = !w.is_active;
                        batch.push(upserted(w));
                    }
                    _ => {
                        w.events = choices[next(5)].iter().map(|p| p.to_string()).collect();
                        batch.push(upserted(w));
                    }
                }
            }
            cache.apply(batch);
            if patch_budget == PATCH_BUDGET {
                let routes = cache.routes();
                assert!(
                    routes.by_type.values().all(|feed| feed.get().is_some()),
                    "round {round}"
                );
            }
            for t in types {
                let (indexed, walked) = fed(&cache, t);
                assert_eq!(indexed, walked, "round {round}, {t}");
            }
        }
    }

    #[test]
    fn a_snapshot_replaces_everything_held() {
        let tenant = Uuid::new_v4();
        let now = Utc::now();
        let (kept, dropped) = (subscription(tenant, now), subscription(tenant, now));
        let cache = Cache::default();
        cache.replace(RoutingSnapshot::default());
        cache.apply(vec![upserted(&kept), upserted(&dropped)]);
        cache.replace(RoutingSnapshot {
            subscriptions: vec![kept.clone()],
            event_types: vec![],
            ..RoutingSnapshot::default()
        });
        assert_eq!(routed(&cache, Some(tenant)), vec![kept.target.webhook_id]);
        assert_eq!(cache.routes().len(), 1);
    }
}
