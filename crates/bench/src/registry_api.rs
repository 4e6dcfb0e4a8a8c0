//! Scenario 6: the registry's management API under concurrent clients.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{json, Value};

use crate::bench::{percentile, Bench};

/// Concurrent clients of the registry API benchmark.
pub(crate) const CLIENTS: usize = 8;

pub(crate) async fn run(b: &mut Bench, each: Duration) -> anyhow::Result<()> {
    let tenant_key = {
        let admin = format!("Bearer {}", b.admin);
        let (_, t) = b
            .api
            .call(
                "POST",
                &format!("{}/v1/admin/tenants", b.registry),
                ("authorization", &admin),
                Some(&json!({"name": "api-bench"})),
            )
            .await?;
        let (_, k) = b
            .api
            .call(
                "POST",
                &format!("{}/v1/admin/api-keys", b.registry),
                ("authorization", &admin),
                Some(&json!({"tenant_id": t["id"], "max_webhooks": 100000})),
            )
            .await?;
        k["key"].as_str().context("key")?.to_owned()
    };
    let hook = json!({"url": "http://127.0.0.1:9/none", "events": ["task.created"], "is_active": false});
    // One webhook per client, as customers change their own; the last case has all eight change
    // one webhook, where a change that keeps losing to the others answers 409.
    let mut own = Vec::new();
    for _ in 0..CLIENTS {
        let (_, w) = b
            .api
            .call(
                "POST",
                &format!("{}/v1/webhooks", b.registry),
                ("x-api-key", &tenant_key),
                Some(&hook),
            )
            .await?;
        let id = w["id"].as_str().context("webhook id")?.to_owned();
        b.created.push((tenant_key.clone(), id.clone()));
        own.push(id);
    }
    let rename = Some(json!({"name": "renamed"}));
    let cases: Vec<(&str, &str, &str, Option<Value>)> = vec![
        ("GET webhooks", "GET", "/v1/webhooks?limit=100", None),
        ("GET deliveries", "GET", "/v1/deliveries?limit=100", None),
        ("POST webhooks", "POST", "/v1/webhooks", Some(hook.clone())),
        ("PATCH webhook", "PATCH", "/v1/webhooks/{own}", rename.clone()),
        ("PATCH one webhook ×8", "PATCH", "/v1/webhooks/{first}", rename),
    ];
    for (name, method, path, body) in cases {
        let latencies = Arc::new(std::sync::Mutex::new(Vec::new()));
        let errors = Arc::new(AtomicU64::new(0));
        let conflicts = Arc::new(AtomicU64::new(0));
        let created = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let until = Instant::now() + each;
        let mut tasks = Vec::new();
        for client in 0..CLIENTS {
            let created = created.clone();
            let path = path.replace("{own}", &own[client]).replace("{first}", &own[0]);
            let (api, url, key, body, latencies, errors, conflicts) = (
                b.api.clone(),
                format!("{}{path}", b.registry),
                tenant_key.clone(),
                body.clone(),
                latencies.clone(),
                errors.clone(),
                conflicts.clone(),
            );
            tasks.push(tokio::spawn(async move {
                while Instant::now() < until {
                    let t = Instant::now();
                    match api.call(method, &url, ("x-api-key", &key), body.as_ref()).await {
                        Ok((s, v)) if s < 300 => {
                            latencies.lock().unwrap().push(t.elapsed().as_micros() as u64);
                            if let Some(id) = v["id"].as_str().filter(|_| method == "POST") {
                                created.lock().unwrap().push(id.to_owned());
                            }
                        }
                        Ok((409, _)) if method == "PATCH" => {
                            conflicts.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        b.created
            .extend(created.lock().unwrap().drain(..).map(|id| (tenant_key.clone(), id)));
        let mut l = latencies.lock().unwrap().clone();
        l.sort_unstable();
        let scenario = format!("6 API {name}");
        b.row(&scenario, "requests/s", l.len() as f64 / each.as_secs_f64(), "1/s", "");
        b.row(&scenario, "p99", percentile(&l, 0.99), "ms", "");
        b.row(
            &scenario,
            "errors (non-2xx)",
            errors.load(Ordering::Relaxed) as f64,
            "requests",
            "0",
        );
        if method == "PATCH" {
            b.row(
                &scenario,
                "409 concurrent_change (client sends again)",
                conflicts.load(Ordering::Relaxed) as f64,
                "requests",
                "",
            );
        }
    }
    Ok(())
}
