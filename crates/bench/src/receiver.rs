//! The benchmark's receiver: a plain hyper HTTP/1 server that answers by path and records, per
//! scenario tag, every `webhook-id` it sees and the latency from the send time the generator put
//! in the event (`data.s`, unix microseconds; both sides share this process's clock).
//!
//! `/ok/<tag>` answers 200; `/slow/<tag>` answers after 30 s (webhooks time out first);
//! `/flaky/<tag>` answers 500 to the first two attempts of each event, then 200;
//! `/fail5/<tag>` answers 500 to 5 % of attempts at random. Events that carry a line (`data.k`,
//! a subject's number, and `data.q`, its place in the subject's order) are checked for order:
//! an event whose first success comes after a later one of its subject is out of order.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The one field of an event body the receiver reads: its send time. Typed, so the rest of the
/// body is skipped rather than built into a `serde_json::Value` (the receiver shares the
/// machine's two cores with what it measures).
#[derive(serde::Deserialize)]
struct Sent {
    data: SentData,
}

#[derive(serde::Deserialize)]
struct SentData {
    s: Option<u64>,
    k: Option<u32>,
    q: Option<u64>,
}

pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64
}

/// An event slower than this is listed with its time of receipt.
pub const SLOW_US: u64 = 20_000;

#[derive(Default)]
pub struct Tally {
    pub ids: HashSet<String>,
    pub requests: u64,
    pub latencies_us: Vec<u64>,
    /// `(received, latency)` in µs of each event slower than [`SLOW_US`]: when the stalls were,
    /// to set beside PostgreSQL's and RabbitMQ's logs.
    pub slow: Vec<(u64, u64)>,
    pub first_us: Option<u64>,
    pub last_us: Option<u64>,
    /// Events whose first success came after that of a later event of their line.
    pub out_of_order: u64,
    /// Per line, the attempts answered 500.
    pub line_failures: HashMap<u32, u32>,
    attempts: HashMap<String, u32>,
    /// Per line, the latest place that succeeded.
    lines: HashMap<u32, u64>,
}

#[derive(Clone, Default)]
pub struct Records(Arc<Mutex<HashMap<String, Tally>>>);

impl Records {
    /// Unique ids received under `tag`.
    pub fn unique(&self, tag: &str) -> usize {
        self.0.lock().unwrap().get(tag).map_or(0, |t| t.ids.len())
    }

    pub fn take(&self, tag: &str) -> Tally {
        self.0.lock().unwrap().remove(tag).unwrap_or_default()
    }

    /// Records a request; returns the status to answer.
    fn record(&self, kind: &str, tag: &str, id: &str, sent: &SentData) -> u16 {
        let now = now_micros();
        let mut all = self.0.lock().unwrap();
        let t = all.entry(tag.to_owned()).or_default();
        t.requests += 1;
        t.first_us.get_or_insert(now);
        t.last_us = Some(now);
        if kind == "flaky" {
            let n = t.attempts.entry(id.to_owned()).or_default();
            *n += 1;
            if *n <= 2 {
                return 500;
            }
        }
        if kind == "fail5" && hookwire_core::id::random::<f64>() < 0.05 {
            if let Some(k) = sent.k {
                *t.line_failures.entry(k).or_default() += 1;
            }
            return 500;
        }
        if t.ids.insert(id.to_owned()) {
            if let (Some(k), Some(q)) = (sent.k, sent.q) {
                let latest = t.lines.entry(k).or_insert(q);
                if q < *latest {
                    t.out_of_order += 1;
                }
                *latest = (*latest).max(q);
            }
            if let Some(sent) = sent.s {
                let latency = now.saturating_sub(sent);
                t.latencies_us.push(latency);
                if latency > SLOW_US {
                    t.slow.push((now, latency));
                }
            }
        }
        200
    }
}

/// Starts the receiver on a free loopback port.
pub async fn start(records: Records) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let records = records.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let records = records.clone();
                    async move {
                        let path = req.uri().path().to_owned();
                        let id = req
                            .headers()
                            .get("webhook-id")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned();
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let sent = serde_json::from_slice::<Sent>(&body).map_or(
                            SentData {
                                s: None,
                                k: None,
                                q: None,
                            },
                            |b| b.data,
                        );
                        let mut parts = path.trim_start_matches('/').splitn(2, '/');
                        let kind = parts.next().unwrap_or_default().to_owned();
                        let tag = parts.next().unwrap_or_default().to_owned();
                        if kind == "slow" {
                            tokio::time::sleep(Duration::from_secs(30)).await;
                        }
                        let status = records.record(&kind, &tag, &id, &sent);
                        Ok::<_, std::convert::Infallible>(
                            hyper::Response::builder()
                                .status(status)
                                .body(Full::new(Bytes::new()))
                                .expect("a valid response"),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}
