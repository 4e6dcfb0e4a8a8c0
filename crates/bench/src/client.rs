//! A pooled JSON client for the registry and the publisher.

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

#[derive(Clone)]
pub struct Api {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Default for Api {
    fn default() -> Self {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        Self {
            client: Client::builder(TokioExecutor::new())
                .pool_max_idle_per_host(256)
                .build(http),
        }
    }
}

impl Api {
    pub async fn call(
        &self,
        method: &str,
        url: &str,
        auth: (&str, &str),
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let req = hyper::Request::builder()
            .method(method)
            .uri(url)
            .header(auth.0, auth.1)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(bytes)))?;
        let res = self.client.request(req).await?;
        let status = res.status().as_u16();
        let body = res.into_body().collect().await?.to_bytes();
        let value = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body).unwrap_or(Value::Null)
        };
        Ok((status, value))
    }
}
