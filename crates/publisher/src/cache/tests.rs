//! The routing cache against notices, snapshots and feeds.

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
