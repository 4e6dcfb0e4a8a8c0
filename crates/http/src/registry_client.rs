//! The registry's internal API, as the publisher and the dispatcher call it (admin token).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use hookwire_core::messages::RoutingSnapshot;
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

    async fn call<R: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<Option<R>> {
        let uri: hyper::Uri = format!("{}{path}", self.base).parse()?;
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {}", self.token.expose_secret()));
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req.body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        let res = tokio::time::timeout(self.timeout, self.client.request(req)).await??;
        let status = res.status();
        let bytes = tokio::time::timeout(self.timeout, res.into_body().collect())
            .await??
            .to_bytes();
        anyhow::ensure!(status.is_success(), "the registry answered {status}");
        if bytes.is_empty() {
            return Ok(None);
        }
        Ok(Some(serde_json::from_slice(&bytes)?))
    }

    /// `GET /v1/internal/routing`: every subscription (secrets sealed) and the catalog.
    pub async fn routing(&self) -> anyhow::Result<RoutingSnapshot> {
        self.call("GET", "/v1/internal/routing", None)
            .await?
            .ok_or_else(|| anyhow::anyhow!("the registry sent an empty routing snapshot"))
    }

    /// [`Self::routing`] as what `hookwire_broker::follow` reads snapshots with.
    pub fn routing_reader(self) -> Arc<dyn Fn() -> BoxFuture<'static, anyhow::Result<RoutingSnapshot>> + Send + Sync> {
        Arc::new(move || {
            let client = self.clone();
            Box::pin(async move { client.routing().await })
        })
    }

    /// A JSON `POST` to an internal endpoint; `None` when the answer has no body.
    pub async fn post<B: Serialize, R: DeserializeOwned>(&self, path: &str, body: &B) -> anyhow::Result<Option<R>> {
        self.call("POST", path, Some(serde_json::to_vec(body)?)).await
    }
}
