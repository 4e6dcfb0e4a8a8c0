//! A local webhook receiver: records every request and answers what the test scripts.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// The `Retry-After` the receiver sends with every 429 and 503.
pub const RETRY_AFTER_SECONDS: u64 = 3;

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    /// Header names in lowercase.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
    pub at: Instant,
    /// The status the receiver answered it with.
    pub status: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// How to answer the next requests: each `(status, delay)` is used once, in order; the last
/// one is repeated. A status of [`FLAKY`] answers 500 or 200 at random (one in four fails)
/// after a random part of its delay.
#[derive(Clone)]
struct Script(Arc<Mutex<Vec<(u16, Duration)>>>);

/// See [`Script`]: `(FLAKY, most)` fails one request in four and answers each after a random
/// delay of up to `most`.
pub const FLAKY: u16 = 0;

impl Script {
    fn next(&self) -> (u16, Duration) {
        let mut s = self.0.lock().expect("script lock");
        let (status, delay) = if s.len() > 1 { s.remove(0) } else { s[0] };
        if status != FLAKY {
            return (status, delay);
        }
        let status = if hookwire_core::id::random::<u8>() < 64 {
            500
        } else {
            200
        };
        (status, delay.mul_f64(hookwire_core::id::random::<f64>()))
    }
}

pub struct Receiver {
    pub addr: SocketAddr,
    rx: mpsc::UnboundedReceiver<Received>,
    script: Script,
    /// Connections the receiver holds open.
    open: Arc<AtomicUsize>,
    /// The body of every answer (`received` unless a test sets another).
    body: Arc<Mutex<Bytes>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// A receiver that answers `status` to everything.
    pub async fn start(status: u16) -> Self {
        Self::scripted(vec![(status, Duration::ZERO)]).await
    }

    /// A receiver that answers each request with the next `(status, delay)`.
    pub async fn scripted(script: Vec<(u16, Duration)>) -> Self {
        assert!(!script.is_empty());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a receiver");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = mpsc::unbounded_channel();
        let script = Script(Arc::new(Mutex::new(script)));
        let s = script.clone();
        let open = Arc::new(AtomicUsize::new(0));
        let counted = open.clone();
        let body = Arc::new(Mutex::new(Bytes::from_static(b"received")));
        let answer_body = body.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (tx, s, counted, answer_body) = (tx.clone(), s.clone(), counted.clone(), answer_body.clone());
                counted.fetch_add(1, Ordering::AcqRel);
                tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let (tx, s, answer_body) = (tx.clone(), s.clone(), answer_body.clone());
                        async move {
                            let at = Instant::now();
                            let headers = req
                                .headers()
                                .iter()
                                .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
                                .collect();
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes().to_vec())
                                .unwrap_or_default();
                            let (status, delay) = s.next();
                            let _ = tx.send(Received {
                                headers,
                                body,
                                at,
                                status,
                            });
                            tokio::time::sleep(delay).await;
                            let mut res = hyper::Response::builder().status(status);
                            if status == 429 || status == 503 {
                                // Receivers that shed load say when to come back.
                                res = res.header("retry-after", RETRY_AFTER_SECONDS.to_string());
                            }
                            Ok::<_, std::convert::Infallible>(
                                res.body(Full::new(answer_body.lock().expect("body lock").clone()))
                                    .expect("a valid response"),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                    counted.fetch_sub(1, Ordering::AcqRel);
                });
            }
        });
        Self {
            addr,
            rx,
            script,
            open,
            body,
            task,
        }
    }

    /// Connections open to the receiver now (a client's keep-alive connections among them).
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// The URL to subscribe with.
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Answers every next request with `body`.
    pub fn answer_body(&self, body: &str) {
        *self.body.lock().expect("body lock") = Bytes::copy_from_slice(body.as_bytes());
    }

    /// Replaces the script for the next requests.
    pub fn answer(&self, script: Vec<(u16, Duration)>) {
        *self.script.0.lock().expect("script lock") = script;
    }

    /// The next request, or `None` after `within`.
    pub async fn next(&mut self, within: Duration) -> Option<Received> {
        tokio::time::timeout(within, self.rx.recv()).await.ok().flatten()
    }

    /// Asserts that nothing arrives for `quiet`.
    pub async fn expect_nothing(&mut self, quiet: Duration) {
        if let Some(r) = self.next(quiet).await {
            panic!(
                "expected no request, got one with webhook-id {:?}",
                r.header("webhook-id")
            );
        }
    }

    /// Asserts that nothing is received from `since` until `quiet` from now. Requests received
    /// before `since`, still waiting to be read, are passed over: a retry sent before a change
    /// took effect is not one sent after it.
    pub async fn expect_nothing_since(&mut self, since: Instant, quiet: Duration) {
        let until = Instant::now() + quiet;
        while let Some(r) = self.next(until.saturating_duration_since(Instant::now())).await {
            assert!(
                r.at < since,
                "expected no request, got one with webhook-id {:?}, {:?} after the change",
                r.header("webhook-id"),
                r.at - since
            );
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}
