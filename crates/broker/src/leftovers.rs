//! Delivery queues of shards past the installation's count (`broker.delivery_shards`), left by
//! a time it ran more: their tasks, and retries that were waiting in the delay queues when the
//! count was lowered (they come back under their old shard's routing key), wait there with no
//! publisher routing to them. Dispatchers consume them as well, so lowering the count strands
//! nothing.

use hookwire_core::config::BrokerConfig;
use hookwire_core::topology::{DeliveryQueue, Topology};
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::Connection;

/// The delivery queues of shards past `topology`'s count that exist, shard by shard from the
/// first past the count up to the first with none of its queues. Probed on a connection of its
/// own: lapin reports a channel the broker closes (a queue not found) as an error of the whole
/// connection, which ends the session using it.
pub async fn leftover_delivery_queues(config: &BrokerConfig, topology: &Topology) -> lapin::Result<Vec<DeliveryQueue>> {
    let conn = crate::connect(config, "hookwire shard probe").await?;
    let found = probe(&conn, topology).await;
    let _ = conn.close(200, "probed".into()).await;
    found
}

async fn probe(conn: &Connection, topology: &Topology) -> lapin::Result<Vec<DeliveryQueue>> {
    let mut found = Vec::new();
    for shard in topology.shards()..u16::MAX {
        let before = found.len();
        for bulk in [false, true] {
            for grouped in [false, true] {
                let queue = DeliveryQueue { bulk, grouped, shard };
                if exists(conn, &topology.delivery_queue_name(queue)).await? {
                    found.push(queue);
                }
            }
        }
        if found.len() == before {
            break;
        }
    }
    Ok(found)
}

/// Whether queue `name` exists: a passive declare, on a channel of its own because the broker
/// closes the channel of one that fails.
async fn exists(conn: &Connection, name: &str) -> lapin::Result<bool> {
    let channel = conn.create_channel().await?;
    let options = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let found = channel
        .queue_declare(name.into(), options, FieldTable::default())
        .await
        .is_ok();
    if found {
        channel.close(200, "probed".into()).await?;
    }
    Ok(found)
}
