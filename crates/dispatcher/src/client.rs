//! The outbound HTTP client and one attempt: build the signed request, send it within the
//! webhook's timeout, read at most 1 KiB of the answer, and say what happened.
//!
//! In the production profile every resolved address is checked before connecting (the resolver
//! drops private, loopback and link-local addresses, so DNS rebinding cannot reach them), and IP
//! literals are checked the same way. Redirects are never followed: a 3xx is a failed attempt.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use hookwire_core::config::Profile;
use hookwire_core::crypto::Keyring;
use hookwire_core::messages::DeliveryTask;
use hookwire_core::signing::{signature_header, SigningKey};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Body as _;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::config::DeliveryConfig;

/// Most bytes of a response body kept in the delivery log.
pub const MAX_RESPONSE_BYTES: usize = 1024;

/// A resolver that refuses forbidden addresses when `guard` is on.
#[derive(Clone)]
pub struct GuardedResolver {
    guard: bool,
}

impl tower_service::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let guard = self.guard;
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|a| !guard || !hookwire_core::net::is_forbidden(a.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    "the host resolves only to private, loopback or link-local addresses",
                ));
            }
            Ok(allowed.into_iter())
        })
    }
}

pub type HttpClient = Client<HttpsConnector<HttpConnector<GuardedResolver>>, Full<Bytes>>;

/// Builds the shared client: keep-alive pooling, connect timeout, TLS with the webpki roots.
pub fn build(profile: Profile, settings: &DeliveryConfig) -> HttpClient {
    let mut http = HttpConnector::new_with_resolver(GuardedResolver {
        guard: profile == Profile::Production,
    });
    http.enforce_http(false);
    http.set_connect_timeout(Some(settings.connect_timeout));
    http.set_nodelay(true);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    // Without a timer the pool checks a connection's idle time only when it is next wanted, so
    // an idle connection to a receiver that is not sent to again would stay open for good.
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(settings.pool_max_idle_per_host)
        .pool_idle_timeout(settings.pool_idle_timeout)
        .pool_timer(TokioTimer::new())
        .build(https)
}

/// What one attempt did. `code` values are stable: `timeout`, `connect`, `dns`, `forbidden`,
/// `http_status`, `invalid_request`, `secret`.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub response_status: Option<u16>,
    pub response_body: Option<String>,
    /// `code: message` when the attempt failed.
    pub error: Option<String>,
    pub duration: Duration,
    pub signature: String,
    /// The receiver's `Retry-After`, in seconds, on a 429 or 503.
    pub retry_after: Option<u64>,
}

impl Attempt {
    pub fn succeeded(&self) -> bool {
        self.response_status.is_some_and(|s| (200..300).contains(&s))
    }

    /// An attempt that ends without a request being sent, for `error` (`code: message`).
    pub fn not_sent(error: String) -> Self {
        Self {
            response_status: None,
            response_body: None,
            error: Some(error),
            duration: Duration::ZERO,
            signature: String::new(),
            retry_after: None,
        }
    }

    fn failed(code: &str, message: impl std::fmt::Display, started: Instant, signature: String) -> Self {
        Self {
            response_status: None,
            response_body: None,
            error: Some(format!("{code}: {message}")),
            duration: started.elapsed(),
            signature,
            retry_after: None,
        }
    }
}

fn error_code(e: &hyper_util::client::legacy::Error) -> &'static str {
    let text = format!("{e:?}");
    if text.contains("PermissionDenied") {
        "forbidden"
    } else if text.contains("dns error") || text.contains("failed to lookup") {
        "dns"
    } else {
        "connect"
    }
}

/// Opens sealed secrets, remembering the last few thousand: a webhook's secrets are the same in
/// every task, and opening one (base64, then XChaCha20-Poly1305) per task showed in the
/// dispatcher's profile. The plaintext is held in memory only, as it is during signing anyway.
pub struct Opener {
    keyring: Keyring,
    opened: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

/// Most secrets remembered; past this the cache starts over.
const OPENED_MAX: usize = 4096;

impl Opener {
    pub fn new(keyring: Keyring) -> Self {
        Self {
            keyring,
            opened: Default::default(),
        }
    }

    pub fn open(&self, sealed: &str) -> Result<String, hookwire_core::crypto::CryptoError> {
        if let Some(plain) = self.opened.lock().expect("never poisoned").get(sealed) {
            return Ok(plain.clone());
        }
        let plain = self.keyring.open(sealed)?;
        let mut opened = self.opened.lock().expect("never poisoned");
        if opened.len() >= OPENED_MAX {
            opened.clear();
        }
        opened.insert(sealed.to_owned(), plain.clone());
        Ok(plain)
    }
}

/// Where attempts go: receivers over HTTP, relayed webhooks through the broker.
pub struct Senders<'a> {
    pub http: &'a HttpClient,
    pub relay: &'a crate::relay::Relay,
    pub topology: &'a hookwire_core::topology::Topology,
}

/// Sends one attempt of `task`.
pub async fn attempt(
    senders: Senders<'_>,
    secrets: &Opener,
    profile: Profile,
    task: &DeliveryTask,
    traceparent: &str,
) -> Attempt {
    let started = Instant::now();
    let target = &task.target;
    let now = Utc::now();
    let keys: Result<Vec<SigningKey>, String> = target
        .signing_secrets(now)
        .iter()
        .map(|s| {
            let plain = secrets.open(s).map_err(|e| e.to_string())?;
            SigningKey::parse(&plain).map_err(|e| e.to_string())
        })
        .collect();
    let keys = match keys {
        Ok(k) if !k.is_empty() => k,
        Ok(_) => return Attempt::failed("secret", "the webhook has no signing secret", started, String::new()),
        Err(e) => return Attempt::failed("secret", e, started, String::new()),
    };
    let msg_id = task.event_id.to_string();
    let timestamp = now.timestamp();
    let signature = signature_header(&keys, &msg_id, timestamp, task.body.as_bytes());

    let relayed = hookwire_core::relay::listen_id(&target.url);
    let uri: hyper::Uri = match target.url.parse() {
        Ok(u) => u,
        Err(e) => return Attempt::failed("invalid_request", e, started, signature),
    };
    if profile == Profile::Production && relayed.is_none() {
        if uri.scheme_str() != Some("https") {
            return Attempt::failed("forbidden", "production webhooks must use https", started, signature);
        }
        let host = uri
            .host()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if host.parse::<IpAddr>().is_ok_and(hookwire_core::net::is_forbidden) {
            return Attempt::failed(
                "forbidden",
                "private, loopback or link-local destination",
                started,
                signature,
            );
        }
    }
    let mut builder = hyper::Request::post(uri)
        .header("content-type", "application/json")
        .header("user-agent", concat!("hookwire/", env!("CARGO_PKG_VERSION")))
        .header("webhook-id", &msg_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", &signature);
    if let Some(auth) = &target.auth_header {
        match secrets.open(&auth.secret_sealed) {
            Ok(secret) => builder = builder.header(auth.name.as_str(), auth.value(&secret)),
            Err(e) => return Attempt::failed("secret", e, started, signature),
        }
    }
    builder = builder.header("traceparent", traceparent);
    for (name, value) in &target.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let request = match builder.body(Full::new(Bytes::from(task.body.clone()))) {
        Ok(r) => r,
        Err(e) => return Attempt::failed("invalid_request", e, started, signature),
    };
    let timeout = Duration::from_secs(u64::from(target.timeout_seconds.clamp(1, 60)));
    if let Some(listen_id) = relayed {
        return relay(senders, listen_id, request, task, timeout, started, signature).await;
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let response = match tokio::time::timeout_at(deadline, senders.http.request(request)).await {
        Err(_) => {
            return Attempt::failed(
                "timeout",
                format!("no response within {} s", timeout.as_secs()),
                started,
                signature,
            )
        }
        Ok(Err(e)) => {
            let code = error_code(&e);
            let source = std::error::Error::source(&e)
                .map(|s| s.to_string())
                .unwrap_or_else(|| e.to_string());
            return Attempt::failed(code, source, started, signature);
        }
        Ok(Ok(r)) => r,
    };
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    // Read at most MAX_RESPONSE_BYTES; the rest is not wanted (the connection is then dropped).
    let mut body = response.into_body();
    let mut kept = Vec::new();
    while kept.len() < MAX_RESPONSE_BYTES && !body.is_end_stream() {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let room = MAX_RESPONSE_BYTES - kept.len();
                    kept.extend_from_slice(&data[..data.len().min(room)]);
                }
            }
            _ => break,
        }
    }
    Attempt {
        response_status: Some(status),
        response_body: Some(String::from_utf8_lossy(&kept).into_owned()).filter(|b| !b.is_empty()),
        error: (!(200..300).contains(&status)).then(|| format!("http_status: the receiver answered {status}")),
        duration: started.elapsed(),
        signature,
        retry_after: if status == 429 || status == 503 {
            retry_after
        } else {
            None
        },
    }
}

/// An attempt through the relay of `hookwire listen`: the same request, answered by the CLI.
async fn relay(
    senders: Senders<'_>,
    listen_id: &str,
    request: hyper::Request<Full<Bytes>>,
    task: &DeliveryTask,
    timeout: Duration,
    started: Instant,
    signature: String,
) -> Attempt {
    let headers = request
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let relayed = hookwire_core::relay::RelayRequest {
        kind: hookwire_core::relay::REQUEST_KIND.into(),
        headers,
        body: task.body.clone(),
    };
    match senders.relay.send(senders.topology, listen_id, &relayed, timeout).await {
        Err((code, message)) => Attempt::failed(code, message, started, signature),
        Ok(reply) => {
            let ok = reply.status.is_some_and(|s| (200..300).contains(&s));
            let mut body = reply.body;
            if let Some(b) = body.as_mut() {
                // At most what an HTTP attempt keeps, cut on a character boundary.
                let mut end = b.len().min(MAX_RESPONSE_BYTES);
                while !b.is_char_boundary(end) {
                    end -= 1;
                }
                b.truncate(end);
            }
            Attempt {
                response_status: reply.status,
                response_body: body.filter(|b| !b.is_empty()),
                error: match (reply.error, reply.status) {
                    (Some(e), _) => Some(e),
                    (None, Some(s)) if !ok => Some(format!("http_status: the receiver answered {s}")),
                    (None, None) => Some("connect: the listener sent no answer".into()),
                    _ => None,
                },
                duration: started.elapsed(),
                signature,
                retry_after: None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookwire_core::messages::Target;
    use hookwire_core::retry::{RetryPolicy, Strategy};

    fn task(url: &str, keyring: &Keyring) -> DeliveryTask {
        let target = Target {
            webhook_id: uuid::Uuid::nil(),
            tenant_id: uuid::Uuid::nil(),
            url: url.into(),
            secrets_sealed: vec![keyring.seal(&SigningKey::generate())],
            overlap_ends_at: None,
            auth_header: None,
            headers: Default::default(),
            timeout_seconds: 2,
            retry_policy: RetryPolicy {
                strategy: Strategy::Fixed,
                max_retries: 0,
                interval_seconds: 1,
                max_age_seconds: 1,
            },
            rate_limit_per_second: None,
            modified_at: None,
        };
        let event = hookwire_core::messages::Event {
            id: hookwire_core::id::v7(),
            event_type: "person.created".into(),
            tenant_id: None,
            subject: None,
            channels: vec![],
            data: serde_json::Value::Null,
            is_test: false,
            created_at: Utc::now(),
        };
        DeliveryTask::new(hookwire_core::id::v7(), &event, target, event.request_body(), 0)
    }

    #[tokio::test]
    async fn production_never_connects_to_internal_addresses() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let keyring = Keyring::new(hookwire_core::config::dev_defaults::ENCRYPTION_KEY, "").unwrap();
        let opener = Opener::new(Keyring::new(hookwire_core::config::dev_defaults::ENCRYPTION_KEY, "").unwrap());
        let settings = crate::config::Config::load(None).expect("the defaults load").delivery;
        let client = build(Profile::Production, &settings);
        let (relay, topology) = (
            crate::relay::Relay::default(),
            hookwire_core::topology::Topology::new("t"),
        );
        for url in [
            "https://127.0.0.1:1/",
            "https://10.0.0.1/",
            "http://93.184.216.34/",
            "https://localhost:1/",
        ] {
            let tp = hookwire_core::trace::TraceParent::new_root().header();
            let senders = Senders {
                http: &client,
                relay: &relay,
                topology: &topology,
            };
            let a = attempt(senders, &opener, Profile::Production, &task(url, &keyring), &tp).await;
            let error = a.error.unwrap_or_default();
            assert!(error.starts_with("forbidden"), "{url}: {error}");
            assert_eq!(a.response_status, None);
        }
    }
}
