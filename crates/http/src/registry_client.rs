//! The registry's internal API, as the publisher and the dispatcher read it.

use std::time::Duration;

use bytes::Bytes;
use hookwire_core::messages::RoutingSnapshot;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use secrecy::{ExposeSecret, SecretString};

/// `GET {registry}/v1/internal/routing` with the admin token: every subscription (secrets sealed)
/// and the event-type catalog.
pub async fn routing(
    registry_url: &str,
    admin_token: &SecretString,
    timeout: Duration,
) -> anyhow::Result<RoutingSnapshot> {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let uri: hyper::Uri = format!("{}/v1/internal/routing", registry_url.trim_end_matches('/')).parse()?;
    let req = hyper::Request::get(uri)
        .header("authorization", format!("Bearer {}", admin_token.expose_secret()))
        .body(Empty::new())?;
    let res = tokio::time::timeout(timeout, client.request(req)).await??;
    let status = res.status();
    let body = tokio::time::timeout(timeout, res.into_body().collect())
        .await??
        .to_bytes();
    anyhow::ensure!(status.is_success(), "the registry answered {status}");
    Ok(serde_json::from_slice(&body)?)
}
