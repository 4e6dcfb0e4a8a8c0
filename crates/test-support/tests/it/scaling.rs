//! The production overlay scales dispatchers on the depth of the queues they consume: KEDA's
//! triggers select those queues by pattern, which must keep matching every shard and lane the
//! topology names, and nothing else.

use hookwire_core::topology::Topology;
use regex::Regex;

/// The `queueName` patterns of the dispatcher's `ScaledObject`, in file order.
fn trigger_patterns() -> Vec<Regex> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/k8s/overlays/production/dispatcher-scaling.yaml"
    );
    let text = std::fs::read_to_string(path).expect("the overlay's scaling manifest");
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("queueName:"))
        .map(|p| Regex::new(p.trim()).unwrap_or_else(|e| panic!("{p} is not a pattern: {e}")))
        .collect()
}

#[test]
fn the_dispatchers_scaling_triggers_match_each_delivery_queue_and_no_other() {
    let [tasks, groups] = <[Regex; 2]>::try_from(trigger_patterns()).expect("two queue triggers");
    for shards in [1, 3, 8] {
        let topology = Topology::sharded("hookwire", shards);
        let consumed: Vec<(String, bool)> = topology
            .delivery_queues()
            .into_iter()
            .map(|q| (topology.delivery_queue_name(q), q.grouped))
            .collect();
        for (name, grouped) in &consumed {
            assert_eq!(tasks.is_match(name), !grouped, "{name}: the tasks' trigger");
            assert_eq!(groups.is_match(name), *grouped, "{name}: the groups' trigger");
        }
        for name in topology.queues() {
            if consumed.iter().all(|(c, _)| *c != name) {
                assert!(
                    !tasks.is_match(&name) && !groups.is_match(&name),
                    "{name} is not a delivery queue, yet a trigger counts it"
                );
            }
        }
    }
}
