//! The publisher's routing cache at the size of a large installation, in-process (no broker, no
//! HTTP): what routing one event and taking in one webhook change cost with `WEBHOOKS` webhooks
//! spread over `TENANTS` tenants. The end-to-end scenarios use a few hundred webhooks, where
//! this cost does not show.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use hookwire_core::messages::{ChangeNotice, Event, RoutingSnapshot, Subscription, Target};
use hookwire_core::retry::{RetryPolicy, Strategy};
use hookwire_publisher::cache::Cache;
use uuid::Uuid;

pub const WEBHOOKS: usize = 100_000;
pub const TENANTS: usize = 10_000;

/// Mean cost of each operation.
pub struct Costs {
    /// Routing an event of one tenant (matching its 10 webhooks).
    pub tenant_event: Duration,
    /// Routing a feed event (no tenant: matching every webhook).
    pub feed_event: Duration,
    /// Taking in one change notice.
    pub change: Duration,
}

fn subscription(tenant: Uuid) -> Subscription {
    Subscription {
        events: vec!["person.*".into(), "company.created".into()],
        channels: vec![],
        is_active: true,
        is_test: false,
        modified_at: Utc::now(),
        target: Target {
            webhook_id: Uuid::new_v4(),
            tenant_id: tenant,
            url: "https://example.com/hooks".into(),
            secrets_sealed: vec![],
            auth_header: None,
            headers: Default::default(),
            timeout_seconds: 30,
            retry_policy: RetryPolicy {
                strategy: Strategy::Exponential,
                max_retries: 5,
                interval_seconds: 10,
                max_age_seconds: 86_400,
            },
            rate_limit_per_second: None,
        },
    }
}

fn event(tenant: Option<Uuid>) -> Event {
    Event {
        id: Uuid::new_v4(),
        event_type: "person.updated".into(),
        tenant_id: tenant,
        subject: None,
        channels: vec![],
        data: serde_json::Value::Null,
        is_test: false,
        created_at: Utc::now(),
    }
}

/// Mean time of `f` over `n` calls; each result is checked by `check`, so the work is not
/// optimised away and a wrong answer fails the run.
fn mean<T>(n: u32, mut f: impl FnMut() -> T, check: impl Fn(&T) -> bool) -> anyhow::Result<Duration> {
    let start = Instant::now();
    for _ in 0..n {
        let out = f();
        anyhow::ensure!(check(&out), "the routing cache gave a wrong answer");
    }
    Ok(start.elapsed() / n)
}

pub fn measure() -> anyhow::Result<Costs> {
    let tenants: Vec<Uuid> = (0..TENANTS).map(|_| Uuid::new_v4()).collect();
    let per_tenant = WEBHOOKS / TENANTS;
    let cache = Cache::default();
    cache.replace(RoutingSnapshot {
        subscriptions: (0..WEBHOOKS).map(|i| subscription(tenants[i % TENANTS])).collect(),
        event_types: vec![],
    });
    let tenant_events: Vec<Event> = tenants.iter().take(1_000).map(|t| event(Some(*t))).collect();
    let mut next = tenant_events.iter().cycle();
    let routes = cache.routes();
    let tenant_event = mean(
        200_000,
        || routes.route(next.next().expect("cycles")),
        |r| r.len() == per_tenant,
    )?;
    let feed = event(None);
    let feed_event = mean(20, || routes.route(&feed), |r| r.len() == WEBHOOKS)?;
    drop(routes);
    let mut changed = subscription(tenants[0]);
    let change = mean(
        2_000,
        || {
            changed.modified_at = Utc::now();
            cache.apply(vec![ChangeNotice::Upserted {
                subscription: Box::new(changed.clone()),
            }]);
            cache.routes()
        },
        |routes: &Arc<hookwire_publisher::cache::Routes>| routes.len() == WEBHOOKS + 1,
    )?;
    Ok(Costs {
        tenant_event,
        feed_event,
        change,
    })
}
