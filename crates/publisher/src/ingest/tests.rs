//! How `prepare` packs and routes a request's deliveries.

use super::*;
use hookwire_core::messages::{CatalogType, RoutingSnapshot, Subscription};
use hookwire_core::topology::{GROUP_ROUTING_KEY, TASK_ROUTING_KEY};
use uuid::Uuid;

use hookwire_core::fixtures::{event, subscription as sub};

/// The routes of a cache holding `subscriptions` and the catalog type `person.created`.
fn person_created_routes(subscriptions: Vec<Subscription>) -> std::sync::Arc<crate::cache::Routes> {
    let cache = crate::cache::Cache::default();
    cache.replace(RoutingSnapshot {
        subscriptions,
        event_types: vec![CatalogType {
            value: "person.created".into(),
            schema: None,
        }],
        ..RoutingSnapshot::default()
    });
    cache.routes()
}

#[test]
fn an_event_for_many_webhooks_goes_out_in_groups() {
    let tenant = Uuid::new_v4();
    let routes = person_created_routes((0..250).map(|_| sub(tenant, &["*"], &[], false, true)).collect());
    let topology = Topology::new("t");
    let events = vec![(
        event(Some(tenant), "person.created", &[], false),
        TraceParent::new_root(),
    )];
    let shapes = |group_size| {
        let prepared = prepare(&events, &routes, &topology, &Lanes::new(0), group_size);
        assert_eq!(prepared.matched, vec![250]);
        let mut delivery_ids = std::collections::HashSet::new();
        let sizes: Vec<usize> = prepared
            .messages
            .iter()
            .filter(|m| m.exchange == topology.deliveries_exchange())
            .map(|m| {
                let tasks = serde_json::from_slice::<TaskMessage>(&m.body).unwrap().into_tasks();
                delivery_ids.extend(tasks.iter().map(|t| t.delivery_id));
                tasks.len()
            })
            .collect();
        assert_eq!(delivery_ids.len(), 250, "every delivery once");
        sizes
    };
    assert_eq!(shapes(100), vec![100, 100, 50]);
    assert_eq!(shapes(1), vec![1; 250]);
    assert_eq!(shapes(1000), vec![250], "one group when they all fit");
    let single = prepare(&events[..], &routes, &topology, &Lanes::new(0), 1);
    let first: TaskMessage = serde_json::from_slice(&single.messages[0].body).unwrap();
    assert!(
        matches!(first, TaskMessage::V1(_)),
        "group size 1 sends delivery_task.v1"
    );
}

#[test]
fn an_ordered_webhooks_deliveries_go_to_the_lines_queue_in_request_order() {
    let tenant = Uuid::new_v4();
    let mut ordered = sub(tenant, &["*"], &[], false, true);
    ordered.ordered = true;
    let ordered_id = ordered.target.webhook_id;
    let routes = person_created_routes(vec![ordered, sub(tenant, &["*"], &[], false, true)]);
    let topology = Topology::new("t");
    let events: Vec<_> = (0..3)
        .map(|_| {
            (
                event(Some(tenant), "person.created", &[], false),
                TraceParent::new_root(),
            )
        })
        .collect();
    let prepared = prepare(&events, &routes, &topology, &Lanes::new(0), 100);
    let to_lines: Vec<_> = prepared
        .messages
        .iter()
        .filter(|m| m.routing_key == topology.lines_queue())
        .collect();
    assert_eq!(to_lines.len(), 1, "one message for the request's ordered deliveries");
    assert_eq!(to_lines[0].exchange, "", "straight to the queue");
    let tasks = serde_json::from_slice::<TaskMessage>(&to_lines[0].body)
        .unwrap()
        .into_tasks();
    let in_order: Vec<Uuid> = events.iter().map(|(e, _)| e.id).collect();
    assert_eq!(tasks.iter().map(|t| t.event_id).collect::<Vec<_>>(), in_order);
    assert!(tasks.iter().all(|t| t.target.webhook_id == ordered_id && !t.in_line));
    let to_dispatchers: usize = prepared
        .messages
        .iter()
        .filter(|m| m.exchange == topology.deliveries_exchange())
        .map(|m| serde_json::from_slice::<TaskMessage>(&m.body).unwrap().deliveries())
        .sum();
    assert_eq!(
        to_dispatchers, 3,
        "the other webhook's deliveries go straight to dispatchers"
    );
    assert_eq!(prepared.matched, vec![2, 2, 2], "both webhooks count as matched");
}

#[test]
fn a_tenant_past_its_share_of_a_second_takes_the_bulk_lane() {
    let (flood, quiet) = (Uuid::new_v4(), Uuid::new_v4());
    let routes = person_created_routes(vec![
        sub(flood, &["*"], &[], false, true),
        sub(quiet, &["*"], &[], false, true),
    ]);
    let topology = Topology::sharded("t", 2);
    let lanes = Lanes::new(2);
    let keys = |tenant| {
        let events = [(
            event(Some(tenant), "person.created", &[], false),
            TraceParent::new_root(),
        )];
        let prepared = prepare(&events, &routes, &topology, &lanes, 1);
        let key = prepared.messages[0].routing_key.clone();
        (key.starts_with("bulk."), prepared.in_bulk)
    };
    let flooding: Vec<_> = (0..4).map(|_| keys(flood)).collect();
    assert_eq!(flooding, [(false, false), (false, false), (true, true), (true, true)]);
    assert_eq!(keys(quiet), (false, false), "another tenant keeps the standard lane");
}

#[test]
fn a_request_of_many_events_goes_out_in_few_messages() {
    let (crowd, single) = (Uuid::new_v4(), Uuid::new_v4());
    let mut subscriptions: Vec<Subscription> = (0..150).map(|_| sub(crowd, &["*"], &[], false, true)).collect();
    subscriptions.push(sub(single, &["*"], &[], false, true));
    let routes = person_created_routes(subscriptions);
    let topology = Topology::new("t");
    // One event for 150 webhooks, then six for one webhook each.
    let mut events = vec![(
        event(Some(crowd), "person.created", &[], false),
        TraceParent::new_root(),
    )];
    events.extend((0..6).map(|_| {
        (
            event(Some(single), "person.created", &[], false),
            TraceParent::new_root(),
        )
    }));
    let shapes = |group_size| {
        let prepared = prepare(&events, &routes, &topology, &Lanes::new(0), group_size);
        let routed: Vec<Uuid> = match serde_json::from_slice(&prepared.messages.last().unwrap().body).unwrap() {
            LedgerMessage::Batch { entries } => entries
                .into_iter()
                .flat_map(|e| match e {
                    LedgerMessage::EventRouted { deliveries, .. } => deliveries.into_iter().map(|d| d.delivery_id),
                    other => panic!("{other:?}"),
                })
                .collect(),
            other => panic!("{other:?}"),
        };
        let mut sent = Vec::new();
        let shapes: Vec<(String, String, usize)> = prepared.messages[..prepared.messages.len() - 1]
            .iter()
            .map(|m| {
                let message = serde_json::from_slice::<TaskMessage>(&m.body).unwrap();
                let kind = serde_json::to_value(&message).unwrap()["kind"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                let tasks = message.into_tasks();
                assert_eq!(m.id, tasks[0].delivery_id.to_string(), "named after its first delivery");
                sent.extend(tasks.iter().map(|t| t.delivery_id));
                (kind, m.routing_key.clone(), tasks.len())
            })
            .collect();
        assert_eq!(sent, routed, "every delivery once, in the order routed");
        shapes
    };
    let shape = |kind: &str, key: &str, n| (kind.to_owned(), key.to_owned(), n);
    assert_eq!(
        shapes(100),
        vec![
            shape("delivery_group.v1", GROUP_ROUTING_KEY, 100),
            shape("delivery_batch.v1", GROUP_ROUTING_KEY, 56),
        ]
    );
    assert_eq!(shapes(1000), vec![shape("delivery_batch.v1", GROUP_ROUTING_KEY, 156)]);
    assert_eq!(
        shapes(1),
        vec![shape("delivery_task.v1", TASK_ROUTING_KEY, 1); 156],
        "a group size of 1 sends only delivery_task.v1"
    );
    assert_eq!(
        prepare(&events[1..2], &routes, &topology, &Lanes::new(0), 100)
            .messages
            .len(),
        2,
        "an event for one webhook is one task and its ledger record"
    );
}

#[test]
fn routes_by_tenant_pattern_channel_test_mode_and_activity() {
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let subs = vec![
        sub(a, &["person.*"], &[], false, true),        // 0
        sub(b, &["*.created"], &[], false, true),       // 1
        sub(a, &["*"], &["eu"], false, true),           // 2
        sub(a, &["person.created"], &[], true, true),   // 3 test
        sub(a, &["person.created"], &[], false, false), // 4 inactive
    ];
    let ids: Vec<Uuid> = subs.iter().map(|s| s.target.webhook_id).collect();
    let routes = person_created_routes(subs);
    let hit = |e: &Event| {
        let mut v: Vec<usize> = routes
            .route(e)
            .iter()
            .map(|s| ids.iter().position(|i| *i == s.target.webhook_id).unwrap())
            .collect();
        v.sort();
        v
    };
    assert_eq!(hit(&event(Some(a), "person.created", &[], false)), vec![0]);
    assert_eq!(hit(&event(Some(a), "person.created", &["eu"], false)), vec![0, 2]);
    assert_eq!(
        hit(&event(None, "person.created", &[], false)),
        vec![0, 1],
        "a feed event reaches every tenant"
    );
    assert_eq!(hit(&event(Some(b), "person.created", &[], false)), vec![1]);
    assert_eq!(
        hit(&event(Some(a), "person.created", &[], true)),
        vec![3],
        "test events reach only test webhooks"
    );
    assert_eq!(hit(&event(Some(a), "company.updated", &[], false)), Vec::<usize>::new());
}
