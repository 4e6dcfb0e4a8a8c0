//! The registry's internal API, as the publisher and the dispatcher call it (admin token).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use hookwire_core::messages::{RoutingRead, RoutingSnapshot};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// A client of one registry. Cheap to clone; connections are pooled.
#[derive(Clone)]
pub struct RegistryClient {
    base: String,
    token: SecretString,
    timeout: Duration,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl RegistryClient {
    pub fn new(base: &str, token: SecretString, timeout: Duration) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            token,
            timeout,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    fn request(&self, method: &str, path: &str) -> anyhow::Result<hyper::http::request::Builder> {
        let uri: hyper::Uri = format!("{}{path}", self.base).parse()?;
        Ok(hyper::Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {}", self.token.expose_secret())))
    }

    /// Sends `req` and reads the whole answer, each within the timeout.
    async fn send(
        &self,
        req: hyper::Request<Full<Bytes>>,
    ) -> anyhow::Result<(hyper::StatusCode, hyper::HeaderMap, Bytes)> {
        let res = tokio::time::timeout(self.timeout, self.client.request(req)).await??;
        let (parts, body) = res.into_parts();
        let bytes = tokio::time::timeout(self.timeout, body.collect()).await??.to_bytes();
        Ok((parts.status, parts.headers, bytes))
    }

    async fn call<R: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<Option<R>> {
        let mut req = self.request(method, path)?;
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let (status, _, bytes) = self
            .send(req.body(Full::new(Bytes::from(body.unwrap_or_default())))?)
            .await?;
        anyhow::ensure!(status.is_success(), "the registry answered {status}");
        if bytes.is_empty() {
            return Ok(None);
        }
        Ok(Some(serde_json::from_slice(&bytes)?))
    }

    /// `GET /v1/internal/routing`: every subscription (secrets sealed) and the catalog, or
    /// `Unchanged` when `held` (the `ETag` of the snapshot held) still names the registry's.
    pub async fn routing(&self, held: Option<&str>) -> anyhow::Result<RoutingRead> {
        let mut req = self.request("GET", "/v1/internal/routing")?;
        if let Some(tag) = held {
            req = req.header("if-none-match", tag);
        }
        let (status, headers, bytes) = self.send(req.body(Full::default())?).await?;
        if status == hyper::StatusCode::NOT_MODIFIED && held.is_some() {
            return Ok(RoutingRead::Unchanged);
        }
        anyhow::ensure!(status.is_success(), "the registry answered {status}");
        anyhow::ensure!(!bytes.is_empty(), "the registry sent an empty routing snapshot");
        // A large snapshot takes a noticeable time to decode: off the runtime's threads.
        let snapshot = tokio::task::spawn_blocking(move || serde_json::from_slice::<RoutingSnapshot>(&bytes)).await??;
        Ok(RoutingRead::Snapshot {
            snapshot,
            tag: headers
                .get(hyper::header::ETAG)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        })
    }

    /// [`Self::routing`] as what `hookwire_broker::follow` reads snapshots with.
    pub fn routing_reader(
        self,
    ) -> Arc<dyn Fn(Option<String>) -> BoxFuture<'static, anyhow::Result<RoutingRead>> + Send + Sync> {
        Arc::new(move |held| {
            let client = self.clone();
            Box::pin(async move { client.routing(held.as_deref()).await })
        })
    }

    /// A JSON `POST` to an internal endpoint; `None` when the answer has no body.
    pub async fn post<B: Serialize, R: DeserializeOwned>(&self, path: &str, body: &B) -> anyhow::Result<Option<R>> {
        self.call("POST", path, Some(serde_json::to_vec(body)?)).await
    }
}
