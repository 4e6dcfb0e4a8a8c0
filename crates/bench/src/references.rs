//! The references: what the machine does without Hookwire in between (bare HTTP, RabbitMQ alone).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::bench::Bench;
use crate::env;
use crate::receiver::{self, now_micros};

pub(crate) async fn reference_http(b: &Bench, duration: Duration) -> anyhow::Result<f64> {
    let url = format!("http://{}/ok/reference", b.receiver);
    let done = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + duration;
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (api, url, done) = (b.api.clone(), url.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < until {
                if api
                    .call("POST", &url, ("webhook-id", "r"), Some(&json!({})))
                    .await
                    .is_ok()
                {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let _ = b.records.take("reference");
    Ok(done.load(Ordering::Relaxed) as f64 / duration.as_secs_f64())
}

/// A fresh quorum queue `hookwire-bench.{name}` and a confirm-mode channel on a new connection.
pub(crate) async fn reference_queue(
    name: &str,
) -> anyhow::Result<(
    hookwire_broker::lapin::Connection,
    hookwire_broker::lapin::Channel,
    String,
)> {
    use hookwire_broker::lapin::options::*;
    use hookwire_broker::lapin::types::{AMQPValue, FieldTable, LongString};
    let config = hookwire_core::config::BrokerConfig::new(
        env("HOOKWIRE__BROKER__URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
        "bench",
    );
    let conn = hookwire_broker::connect(&config, &format!("hookwire-bench {name}")).await?;
    let ch = conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from(b"quorum".to_vec())),
    );
    let queue = format!("hookwire-bench.{name}");
    let _ = ch
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await;
    ch.queue_declare(
        queue.as_str().into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        args,
    )
    .await?;
    Ok((conn, ch, queue))
}

/// Publishes 20,000 persistent messages to a quorum queue with confirms (batches of 500) while
/// consuming and acking them; messages per second end to end.
pub(crate) async fn reference_rabbit() -> anyhow::Result<f64> {
    use hookwire_broker::lapin::options::*;
    use hookwire_broker::lapin::types::FieldTable;
    let (conn, ch, queue) = reference_queue("reference").await?;
    let queue = queue.as_str();
    let consumer_ch = conn.create_channel().await?;
    consumer_ch.basic_qos(1000, BasicQosOptions::default()).await?;
    let mut consumer = consumer_ch
        .basic_consume(
            queue.into(),
            "bench".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    const N: usize = 20_000;
    let started = Instant::now();
    let consume = tokio::spawn(async move {
        use futures_util::StreamExt as _;
        let mut n = 0;
        while n < N {
            match consumer.next().await {
                Some(Ok(d)) => {
                    let _ = d.ack(BasicAckOptions::default()).await;
                    n += 1;
                }
                _ => break,
            }
        }
        n
    });
    let body = vec![b'x'; 600];
    for chunk in 0..N / 500 {
        let ids: Vec<String> = (0..500).map(|i| format!("{chunk}-{i}")).collect();
        let msgs: Vec<hookwire_broker::Outgoing<'_>> = ids
            .iter()
            .map(|id| hookwire_broker::Outgoing {
                exchange: "",
                routing_key: queue,
                body: &body,
                message_id: id,
                delay: None,
            })
            .collect();
        hookwire_broker::publish_confirmed(&ch, &msgs).await?;
    }
    let consumed = consume.await?;
    let rate = consumed as f64 / started.elapsed().as_secs_f64();
    let _ = ch.queue_delete(queue.into(), QueueDeleteOptions::default()).await;
    Ok(rate)
}

/// The broker's own latency floor, in the shape of scenario 3: `rate` persistent messages per
/// second, published in confirmed batches of `batch` into a quorum queue, each timed to its
/// consumer and to its publisher confirm. Messages are padded to the size of a delivery task.
pub(crate) async fn reference_rabbit_latency(
    rate: u64,
    batch: usize,
    duration: Duration,
) -> anyhow::Result<(receiver::Tally, receiver::Tally)> {
    use futures_util::StreamExt as _;
    use hookwire_broker::lapin::options::*;
    let (conn, ch, queue) = reference_queue("latency").await?;
    let consumer_ch = conn.create_channel().await?;
    let mut consumer = consumer_ch
        .basic_consume(
            queue.as_str().into(),
            "bench-latency".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await?;
    let consume = tokio::spawn(async move {
        let mut tally = receiver::Tally::default();
        while let Some(Ok(d)) = consumer.next().await {
            let sent: u64 = std::str::from_utf8(&d.data[..20])
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            if sent == 0 {
                break; // the end marker
            }
            tally.latencies_us.push(now_micros().saturating_sub(sent));
        }
        tally
    });
    let mut to_confirm = receiver::Tally::default();
    let interval = Duration::from_secs_f64(batch as f64 / rate as f64);
    let until = Instant::now() + duration;
    let mut next = Instant::now();
    let mut pending = Vec::new();
    let body = |sent: u64| {
        let mut b = format!("{sent:<20}").into_bytes();
        b.resize(1200, b' ');
        b
    };
    while Instant::now() < until {
        next += interval;
        tokio::time::sleep_until(next.into()).await;
        let sent = now_micros();
        let ch = ch.clone();
        let queue = queue.clone();
        let bodies: Vec<Vec<u8>> = (0..batch).map(|_| body(sent)).collect();
        pending.push(tokio::spawn(async move {
            let messages: Vec<hookwire_broker::Outgoing<'_>> = bodies
                .iter()
                .map(|b| hookwire_broker::Outgoing {
                    exchange: "",
                    routing_key: &queue,
                    body: b,
                    message_id: "latency",
                    delay: None,
                })
                .collect();
            hookwire_broker::publish_confirmed(&ch, &messages)
                .await
                .map(|()| now_micros() - sent)
        }));
    }
    for p in pending {
        let took = p.await??;
        to_confirm.latencies_us.extend(std::iter::repeat_n(took, batch));
    }
    let end = body(0);
    let end = hookwire_broker::Outgoing {
        exchange: "",
        routing_key: &queue,
        body: &end,
        message_id: "end",
        delay: None,
    };
    hookwire_broker::publish_confirmed(&ch, &[end]).await?;
    let to_consumer = consume.await?;
    let _ = ch
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await;
    Ok((to_consumer, to_confirm))
}
