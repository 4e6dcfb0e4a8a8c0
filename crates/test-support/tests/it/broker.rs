//! The connection every service opens to RabbitMQ.

use std::time::Duration;

use hookwire_broker::lapin::options::{BasicGetOptions, BasicPublishOptions, QueueDeclareOptions};
use hookwire_broker::lapin::types::FieldTable;
use hookwire_broker::lapin::BasicProperties;
use hookwire_core::config::BrokerConfig;
use hookwire_test_support::{broker_url, eventually};

fn config(url: String) -> BrokerConfig {
    BrokerConfig::new(url, "unused")
}

/// Small frames keep each connection's buffers small (`hookwire_broker::FRAME_MAX`); a message
/// larger than several frames still arrives whole, and an operator's `frame_max` wins.
#[tokio::test]
async fn connections_use_32_kib_frames_unless_the_url_names_a_size() {
    let url = broker_url();
    let conn = hookwire_broker::connect(&config(url.clone()), "hookwire tests frames")
        .await
        .expect("broker reachable");
    assert_eq!(conn.configuration().frame_max(), 32 * 1024);

    // 200 KB is seven frames of 32 KiB.
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let channel = conn.create_channel().await.expect("a channel");
    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("a private queue");
    channel
        .basic_publish(
            "".into(),
            queue.name().as_str().into(),
            BasicPublishOptions::default(),
            &body,
            BasicProperties::default(),
        )
        .await
        .expect("published");
    let got = eventually(Duration::from_secs(5), || async {
        channel
            .basic_get(queue.name().as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .expect("basic.get")
    })
    .await
    .expect("the message is in the queue within 5 s");
    assert_eq!(got.delivery.data.len(), body.len());
    assert!(got.delivery.data == body, "the message came back changed");

    let sep = if url.contains('?') { '&' } else { '?' };
    let named = hookwire_broker::connect(&config(format!("{url}{sep}frame_max=65536")), "hookwire tests frames")
        .await
        .expect("broker reachable");
    assert_eq!(named.configuration().frame_max(), 65536);

    let err = hookwire_broker::connect(&config("amqp://127.0.0.1:notaport/%2f".into()), "hookwire tests frames")
        .await
        .expect_err("a malformed URL is refused");
    assert!(err.to_string().contains("port"), "{err}");
}
