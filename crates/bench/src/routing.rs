//! The publisher's routing cache at the size of a large installation, in-process (no broker, no
//! HTTP): what routing one event and taking in one webhook change cost with `WEBHOOKS` webhooks
//! spread over `TENANTS` tenants. The end-to-end scenarios use a few hundred webhooks, where
//! this cost does not show.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use hookwire_core::fixtures;
use hookwire_core::messages::{CatalogType, ChangeNotice, Event, RoutingSnapshot, Subscription};
use hookwire_publisher::cache::Cache;
use uuid::Uuid;

pub const WEBHOOKS: usize = 100_000;
pub const TENANTS: usize = 10_000;
/// Webhooks, besides those, subscribed to a feed type no other webhook takes.
pub const FEED_SUBSCRIBERS: usize = 100;

/// Mean cost of each operation.
pub struct Costs {
    /// Routing an event of one tenant (matching its 10 webhooks).
    pub tenant_event: Duration,
    /// Routing a feed event (no tenant: matching every webhook).
    pub feed_event: Duration,
    /// Routing a feed event of a type only `FEED_SUBSCRIBERS` webhooks take, once the type's
    /// subscribers are known.
    pub narrow_feed_event: Duration,
    /// Taking in a change to one of those `FEED_SUBSCRIBERS` webhooks, then routing the next feed
    /// event of their type.
    pub narrow_feed_after_change: Duration,
    /// Taking in one change notice.
    pub change: Duration,
}

fn subscription(tenant: Uuid) -> Subscription {
    fixtures::subscription(tenant, &["person.*", "company.created"], &[], false, true)
}

fn event(tenant: Option<Uuid>) -> Event {
    fixtures::event(tenant, "person.updated", &[], false)
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

/// The costs with `webhooks` webhooks spread evenly over `tenants` tenants.
pub fn measure(webhooks: usize, tenants: usize) -> anyhow::Result<Costs> {
    let ids: Vec<Uuid> = (0..tenants).map(|_| Uuid::new_v4()).collect();
    let per_tenant = webhooks / tenants;
    let cache = Cache::default();
    let mut narrow: Vec<Subscription> = (0..FEED_SUBSCRIBERS)
        .map(|i| fixtures::subscription(ids[i % tenants], &["series_updated"], &[], false, true))
        .collect();
    // The catalog's types the webhooks take (the publisher indexes feeds by them).
    let catalog = ["person.created", "person.updated", "company.created", "series_updated"].map(|value| CatalogType {
        value: value.into(),
        schema: None,
    });
    cache.replace(RoutingSnapshot {
        subscriptions: (0..webhooks)
            .map(|i| subscription(ids[i % tenants]))
            .chain(narrow.iter().cloned())
            .collect(),
        event_types: catalog.to_vec(),
        ..RoutingSnapshot::default()
    });
    let tenant_events: Vec<Event> = ids.iter().take(1_000).map(|t| event(Some(*t))).collect();
    let mut next = tenant_events.iter().cycle();
    let routes = cache.routes();
    let tenant_event = mean(
        200_000,
        || routes.route(next.next().expect("cycles")),
        |r| r.len() == per_tenant,
    )?;
    let feed = event(None);
    let feed_event = mean(20, || routes.route(&feed), |r| r.len() == webhooks)?;
    let narrow_feed = fixtures::event(None, "series_updated", &[], false);
    // The first feed event of a type finds its subscribers (a walk over every webhook, as a feed
    // event of any type did before the index); the row is the cost of the ones after it.
    routes.route(&narrow_feed);
    let narrow_feed_event = mean(200, || routes.route(&narrow_feed), |r| r.len() == FEED_SUBSCRIBERS)?;
    drop(routes);
    let mut round = 0;
    let narrow_feed_after_change = mean(
        20,
        || {
            let subscriber = &mut narrow[round % FEED_SUBSCRIBERS];
            round += 1;
            subscriber.modified_at = Utc::now();
            cache.apply(vec![ChangeNotice::Upserted {
                subscription: Box::new(subscriber.clone()),
            }]);
            cache.routes().route(&narrow_feed)
        },
        |r| r.len() == FEED_SUBSCRIBERS,
    )?;
    let mut changed = subscription(ids[0]);
    let change = mean(
        2_000,
        || {
            changed.modified_at = Utc::now();
            cache.apply(vec![ChangeNotice::Upserted {
                subscription: Box::new(changed.clone()),
            }]);
            cache.routes()
        },
        |routes: &Arc<hookwire_publisher::cache::Routes>| routes.len() == webhooks + FEED_SUBSCRIBERS + 1,
    )?;
    Ok(Costs {
        tenant_event,
        feed_event,
        narrow_feed_event,
        narrow_feed_after_change,
        change,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_measured_operations_give_the_right_answers() {
        // `measure` fails the run when an answer is wrong: 10 matches per tenant event, every
        // webhook for a feed event, its 100 subscribers for the narrow feed, one more webhook
        // after the change.
        super::measure(1_000, 100).expect("every answer right");
    }
}
