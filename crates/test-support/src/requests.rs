//! What a test asks of the running services over HTTP: tenants, keys and webhooks, events
//! published, the API's answers waited for, and the services' metrics.

use std::time::Duration;

use serde_json::{json, Value};

use crate::{broker_url, eventually, service_binary, Response, TestEnv, ADMIN_TOKEN, PRODUCER_TOKEN};

impl TestEnv {
    /// Creates a tenant and an API key with both scopes; returns (tenant id, key).
    pub async fn tenant(&self, name: &str) -> (String, String) {
        self.tenant_with_key(name, json!({})).await
    }

    /// Creates a tenant and a key with extra fields (`scopes`, `max_webhooks`, …).
    pub async fn tenant_with_key(&self, name: &str, key_fields: Value) -> (String, String) {
        let t = self.admin_post("/v1/admin/tenants", json!({ "name": name })).await;
        assert_eq!(t.status, 201, "{t:?}");
        let tenant_id = t.body["id"].as_str().expect("tenant id").to_owned();
        let mut fields = key_fields;
        fields["tenant_id"] = json!(tenant_id);
        let k = self.admin_post("/v1/admin/api-keys", fields).await;
        assert_eq!(k.status, 201, "{k:?}");
        (tenant_id, k.body["key"].as_str().expect("key").to_owned())
    }

    pub async fn admin_post(&self, path: &str, body: Value) -> Response {
        self.admin("POST", path, Some(body)).await
    }

    /// A request to the registry's admin API with the admin token.
    pub async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Response {
        self.http
            .request(
                method,
                &format!("{}{path}", self.registry),
                &[("authorization", &format!("Bearer {ADMIN_TOKEN}"))],
                body.as_ref(),
            )
            .await
            .expect("the registry answers")
    }

    /// Runs `hookwire-registry admin <args>` against this installation's database and broker;
    /// returns its exit code and what it printed on stdout.
    pub fn registry_admin(&self, args: &[&str]) -> (i32, String) {
        let out = std::process::Command::new(service_binary("hookwire-registry"))
            .arg("admin")
            .args(args)
            .env("HOOKWIRE__DATABASE__URL", self.database_url())
            .env("HOOKWIRE__BROKER__URL", broker_url())
            .env("HOOKWIRE__BROKER__PREFIX", &self.prefix)
            .env(
                "HOOKWIRE__BROKER__DELIVERY_SHARDS",
                self.topology().shards().to_string(),
            )
            .env("HOOKWIRE__TELEMETRY__LOG_LEVEL", "warn")
            .output()
            .expect("the registry binary runs");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// A request to the registry with an API key.
    pub async fn api(&self, method: &str, path: &str, key: &str, body: Option<Value>) -> Response {
        self.http
            .request(
                method,
                &format!("{}{path}", self.registry),
                &[("x-api-key", key)],
                body.as_ref(),
            )
            .await
            .expect("the registry answers")
    }

    /// Creates a webhook and returns its JSON (asserting 201).
    pub async fn webhook(&self, key: &str, fields: Value) -> Value {
        let r = self.api("POST", "/v1/webhooks", key, Some(fields)).await;
        assert_eq!(r.status, 201, "{r:?}");
        r.body
    }

    /// `PATCH /v1/webhooks/{id}` with `fields`, as `key`.
    pub async fn patch_webhook(&self, key: &str, id: &str, fields: Value) -> Response {
        self.api("PATCH", &format!("/v1/webhooks/{id}"), key, Some(fields))
            .await
    }

    /// Waits until the delivery log of `webhook_id` has a delivery in `status`; returns it.
    pub async fn delivery_in(&self, key: &str, webhook_id: &str, status: &str) -> Value {
        let path = format!("/v1/deliveries?webhook_id={webhook_id}&status={status}");
        let page = self
            .wait_for(&path, key, |b| b["count"].as_i64().unwrap_or(0) > 0)
            .await;
        page["results"][0].clone()
    }

    /// Publishes one event with the producer token.
    pub async fn publish(&self, event: Value) -> Response {
        self.ingest("/v1/events", &event).await
    }

    /// Posts `body` (`{"events": [...]}`, or anything a test wants refused) to the batch endpoint.
    pub async fn publish_batch(&self, body: Value) -> Response {
        self.ingest("/v1/events:batch", &body).await
    }

    async fn ingest(&self, path: &str, body: &Value) -> Response {
        self.http
            .post(
                &format!("{}{path}", self.publisher),
                &[("authorization", &format!("Bearer {PRODUCER_TOKEN}"))],
                Some(body),
            )
            .await
            .expect("the publisher answers")
    }

    /// How many webhooks the publisher routes to (its `/readyz`); `None` when it does not say.
    pub async fn routed(&self) -> Option<usize> {
        let r = self.http.get(&format!("{}/readyz", self.publisher), &[]).await.ok()?;
        Some(r.body["subscriptions"].as_u64()? as usize)
    }

    /// Waits until the publisher routes to `count` webhooks (change notices are asynchronous).
    pub async fn wait_routed(&self, count: usize) {
        let seen = eventually(Duration::from_secs(10), || async {
            (self.routed().await? >= count).then_some(())
        })
        .await;
        assert!(
            seen.is_some(),
            "the publisher did not see {count} subscriptions within 10 s"
        );
    }

    /// Polls `GET /v1/deliveries/{id}`-style queries until `check` accepts the answer.
    pub async fn wait_for(&self, path: &str, key: &str, check: impl Fn(&Value) -> bool) -> Value {
        let found = eventually(Duration::from_secs(20), || async {
            let r = self.api("GET", path, key, None).await;
            (r.status == 200 && check(&r.body)).then_some(r.body)
        })
        .await;
        match found {
            Some(v) => v,
            None => {
                let last = self.api("GET", path, key, None).await;
                panic!("{path} did not reach the expected state within 20 s; last answer: {last:?}")
            }
        }
    }

    /// The value of one series of the service at `base` (`name{labels}` exactly as its
    /// `/metrics` prints it), or `None` when the series is not there or the service not answering.
    pub async fn metric(&self, base: &str, series: &str) -> Option<f64> {
        let m = self.http.get(&format!("{base}/metrics"), &[]).await.ok()?;
        m.body
            .as_str()?
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }
}
