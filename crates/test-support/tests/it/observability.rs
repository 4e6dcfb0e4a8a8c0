//! What an operator sees: no secret in any log line, request ids in logs, metrics after a delivery.

use std::time::Duration;

use hookwire_test_support::{logs, Receiver, TestEnv};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_secret_reaches_a_log_line_and_metrics_count_the_delivery() {
    let env = TestEnv::start().await;
    let mut rx = Receiver::start(200).await;
    let (tenant, key) = env.tenant("acme").await;
    let auth_secret = "log-canary-auth-secret-91c2";
    let w = env
        .webhook(
            &key,
            json!({"url": rx.url(), "events": ["*"], "header_name": "Authorization", "prefix": "Bearer",
                   "auth_secret": auth_secret}),
        )
        .await;
    let id = w["id"].as_str().unwrap();
    let signing = w["secret"].as_str().unwrap().to_owned();
    env.wait_routed(1).await;
    let r = env
        .publish(json!({"type": "task.created", "tenant_id": tenant, "data": {}}))
        .await;
    assert_eq!(r.status, 202);
    assert!(rx.next(Duration::from_secs(10)).await.is_some());
    env.delivery_in(&key, id, "success").await;
    // A failing request too, so error paths are logged.
    let _ = env.api("GET", "/v1/webhooks", "hwk_wrong-key", None).await;

    let logged = logs::captured();
    assert!(logged.contains("request_id"), "request lines carry their request id");
    for (what, secret) in [
        ("auth secret", auth_secret),
        ("signing secret", signing.trim_start_matches("whsec_")),
        ("API key", key.as_str()),
        ("admin token", hookwire_test_support::ADMIN_TOKEN),
        ("producer token", hookwire_test_support::PRODUCER_TOKEN),
    ] {
        assert!(!logged.contains(secret), "the {what} appears in a log line");
    }

    let scrape = |url: String| {
        let http = env.http.clone();
        async move {
            http.get(&url, &[])
                .await
                .unwrap()
                .body
                .as_str()
                .unwrap_or_default()
                .to_owned()
        }
    };
    let publisher = scrape(format!("{}/metrics", env.publisher)).await;
    assert!(
        publisher.contains(r#"hookwire_publisher_events_accepted_total{event_type="task.created"} 1"#),
        "{publisher}"
    );
    assert!(publisher.contains("hookwire_publisher_tasks_published_total 1"));
    let dispatcher = scrape(format!("{}/metrics", env.dispatcher)).await;
    assert!(
        dispatcher.contains(r#"hookwire_dispatcher_attempts_total{outcome="success"} 1"#),
        "{dispatcher}"
    );
    assert!(dispatcher.contains("hookwire_dispatcher_end_to_end_seconds_count 1"));
    let registry = scrape(format!("{}/metrics", env.registry)).await;
    assert!(registry.contains("hookwire_registry_ledger_messages_written_total"));
    assert!(registry.contains(r#"route="/v1/webhooks",status="401""#), "{registry}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_producers_trace_continues_through_the_publisher_and_dispatcher_to_the_receiver() {
    let env = TestEnv::start().await;
    let mut rx = Receiver::start(200).await;
    let (tenant, key) = env.tenant("acme").await;
    env.webhook(&key, json!({"url": rx.url(), "events": ["*"]})).await;
    env.wait_routed(1).await;
    let trace_id = "5af7183fb1d4cf5f0123456789abcdef";
    let producer = format!("00-{trace_id}-00f067aa0ba902b7-01");
    let r = env
        .http
        .post(
            &format!("{}/v1/events", env.publisher),
            &[
                (
                    "authorization",
                    &format!("Bearer {}", hookwire_test_support::PRODUCER_TOKEN),
                ),
                ("traceparent", &producer),
            ],
            Some(&json!({"type": "task.created", "tenant_id": tenant, "data": {}})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 202);
    let got = rx.next(Duration::from_secs(10)).await.expect("delivered");
    let sent = got.header("traceparent").unwrap().to_owned();
    assert!(sent.starts_with(&format!("00-{trace_id}-")), "{sent}");

    // The spans of this trace: the publisher's ingest span is a child of the producer's span,
    // the dispatcher's deliver span a child of the ingest span, and the receiver's traceparent
    // names the deliver span.
    let spans = hookwire_test_support::eventually(Duration::from_secs(5), || async {
        let mine: Vec<_> = logs::spans()
            .into_iter()
            .filter(|s| s.span_context.trace_id().to_string() == trace_id)
            .collect();
        (mine.iter().any(|s| s.name == "deliver")).then_some(mine)
    })
    .await
    .expect("the deliver span was exported");
    let ingest = spans.iter().find(|s| s.name == "ingest").expect("an ingest span");
    assert_eq!(ingest.parent_span_id.to_string(), "00f067aa0ba902b7");
    let deliver = spans.iter().find(|s| s.name == "deliver").unwrap();
    assert_eq!(deliver.parent_span_id, ingest.span_context.span_id());
    assert!(
        sent.contains(&format!("-{}-", deliver.span_context.span_id())),
        "{sent} names the deliver span"
    );
    env.stop().await;
}
