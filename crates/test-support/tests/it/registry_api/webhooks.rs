//! Webhooks as a customer writes them: validation field by field, partial updates, pages and filters, and the statuses of requests the API cannot take.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhooks_are_validated_field_by_field_and_updated_partially() {
    let env = TestEnv::start().await;
    let (_, key) = env.tenant("acme").await;
    let r = env
        .api(
            "POST",
            "/v1/webhooks",
            &key,
            Some(json!({"url": "ftp://x", "events": ["nope.*"], "timeout_seconds": 99, "is_test": "yes", "colour": 1})),
        )
        .await;
    assert_eq!(r.status, 400);
    let fields = r.error_fields();
    for f in ["url", "events", "timeout_seconds", "is_test", "colour"] {
        assert!(fields.contains(&f), "no error for {f}: {fields:?}");
    }
    let r = env
        .http
        .raw(
            "POST",
            &format!("{}/v1/webhooks", env.registry),
            &[("x-api-key", &key)],
            b"{not json".to_vec(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert!(r.body["detail"].as_str().unwrap().contains("not valid JSON"));
    let r = env
        .api(
            "POST",
            "/v1/webhooks",
            &key,
            Some(json!({"events": ["person.created"]})),
        )
        .await;
    assert_eq!(r.body["errors"][0], json!({"field": "url", "message": "is required"}));

    let created = env
        .api(
            "POST",
            "/v1/webhooks",
            &key,
            Some(
                json!({"url": "http://127.0.0.1:1/a", "events": ["person.*", "*.created"], "name": "crm",
                        "header_name": "X-Auth", "auth_secret": "abcdef123456"}),
            ),
        )
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(created.body["masked_auth_secret"], "****3456");
    assert!(
        !created.body.to_string().contains("abcdef123456"),
        "the auth secret is never returned"
    );
    let id = created.body["id"].as_str().unwrap();
    // Secrets appear on retrieve, never in lists.
    assert!(env.api("GET", &format!("/v1/webhooks/{id}"), &key, None).await.body["secret"].is_string());
    let list = env.api("GET", "/v1/webhooks", &key, None).await;
    assert!(list.body["results"][0].get("secret").is_none());

    assert_eq!(env.patch_webhook(&key, id, json!({})).await.status, 400);
    let r = env
        .patch_webhook(&key, id, json!({"is_active": false, "timeout_seconds": 5}))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["is_active"], false);
    assert_eq!(r.body["timeout_seconds"], 5);
    assert_eq!(r.body["name"], "crm", "fields not sent are kept");
    // Setting a field to null is kept too: the auth header and the rate limit removed, as the
    // answer and every later read say.
    let r = env.patch_webhook(&key, id, json!({"rate_limit_per_second": 5})).await;
    assert_eq!(r.body["rate_limit_per_second"], 5, "{r:?}");
    let r = env
        .patch_webhook(
            &key,
            id,
            json!({"rate_limit_per_second": null, "header_name": null, "auth_secret": null}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let read = env.api("GET", &format!("/v1/webhooks/{id}"), &key, None).await;
    for answer in [&r.body, &read.body] {
        assert_eq!(
            (
                &answer["rate_limit_per_second"],
                &answer["header_name"],
                &answer["masked_auth_secret"]
            ),
            (&Value::Null, &Value::Null, &Value::Null),
            "{answer}"
        );
    }
    assert_eq!(
        env.api("DELETE", &format!("/v1/webhooks/{id}"), &key, None)
            .await
            .status,
        204
    );
    assert_eq!(
        env.api("GET", &format!("/v1/webhooks/{id}"), &key, None).await.status,
        404
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn collections_page_both_ways_and_filter() {
    let env = TestEnv::start().await;
    let (_, key) = env.tenant("acme").await;
    for (i, events) in [["person.created"], ["company.*"], ["*"]].iter().enumerate() {
        let r = env
            .api(
                "POST",
                "/v1/webhooks",
                &key,
                Some(
                    json!({"url": "http://127.0.0.1:1/", "events": events, "name": format!("w{i}"), "is_test": i == 2}),
                ),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    let page = env.api("GET", "/v1/webhooks?limit=2&ordering=name", &key, None).await;
    assert_eq!(page.body["count"], 3);
    assert_eq!(page.body["results"].as_array().unwrap().len(), 2);
    assert_eq!(page.body["results"][0]["name"], "w0");
    assert!(page.body["next"].as_str().unwrap().contains("offset=2"));
    assert!(page.body["previous"].is_null());
    let page = env
        .api("GET", "/v1/webhooks?page=2&page_size=2&ordering=name", &key, None)
        .await;
    assert_eq!(page.body["results"][0]["name"], "w2");
    assert_eq!(page.body["count"], 3);
    assert!(page.body["next"].is_null());
    assert!(page.body["previous"].as_str().unwrap().contains("page=1"));
    // Past the end: no results, and still the count.
    let past = env.api("GET", "/v1/webhooks?offset=10", &key, None).await;
    assert_eq!(
        (&past.body["count"], past.body["results"].as_array().map(Vec::len)),
        (&json!(3), Some(0)),
        "{past:?}"
    );
    let matching = env
        .api("GET", "/v1/webhooks?event_type=company.updated", &key, None)
        .await;
    assert_eq!(matching.body["count"], 2, "company.* and *");
    assert_eq!(
        env.api("GET", "/v1/webhooks?is_test=true", &key, None).await.body["count"],
        1
    );
    let r = env.api("GET", "/v1/webhooks?limit=501", &key, None).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["errors"][0]["field"], "limit");
    assert_eq!(env.api("GET", "/v1/webhooks?bogus=1", &key, None).await.status, 400);
    // Found by the fuzzer: U+0000 cannot be stored by PostgreSQL; refused, not a 500.
    let r = env.api("GET", "/v1/webhooks?channel=%00e", &key, None).await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.body["errors"][0]["field"], "channel");
    let r = env
        .api(
            "POST",
            "/v1/webhooks",
            &key,
            Some(json!({"url": "http://127.0.0.1:1/", "events": ["*"], "name": "a\u{0}b"})),
        )
        .await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.body["errors"][0]["field"], "name");
    // Found by the fuzzer: an offset near i64::MAX overflowed the next-link arithmetic.
    let far = env
        .api("GET", "/v1/webhooks?offset=9223372036854775807", &key, None)
        .await;
    assert_eq!(far.status, 200, "{far:?}");
    assert_eq!(far.body["results"], json!([]));
    let far = env
        .api(
            "GET",
            "/v1/deliveries?page=9223372036854775807&page_size=500",
            &key,
            None,
        )
        .await;
    assert_eq!(far.status, 200, "{far:?}");
    let types = env.api("GET", "/v1/event-types?limit=500", &key, None).await;
    // The development catalog and Hookwire's two operational types.
    assert_eq!(types.body["count"], 17, "the development catalog");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conflicts_and_oversized_bodies_have_their_own_status() {
    let env = TestEnv::start().await;
    let t = json!({"value": "invoice.paid", "label": "Invoice paid"});
    assert_eq!(env.admin_post("/v1/admin/event-types", t.clone()).await.status, 201);
    let again = env.admin_post("/v1/admin/event-types", t).await;
    assert_eq!(again.status, 409);
    assert_eq!(again.body["type"], "https://hookwire.dev/problems/event_type_exists");
    let (_, key) = env.tenant("acme").await;
    let huge = format!(
        r#"{{"url": "http://127.0.0.1:1/", "events": ["*"], "description": "{}"}}"#,
        "x".repeat(300_000)
    );
    let r = env
        .http
        .raw(
            "POST",
            &format!("{}/v1/webhooks", env.registry),
            &[("x-api-key", &key)],
            huge.into_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 413);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_method_a_resource_does_not_answer_is_405_with_allow() {
    let env = TestEnv::start().await;
    let (_, key) = env.tenant("acme").await;
    let id = env.webhook(&key, webhook("http://127.0.0.1:9/hook")).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (method, path, allow) in [
        ("TRACE", "/v1/admin/event-types".to_owned(), "GET, POST"),
        ("DELETE", "/v1/deliveries".to_owned(), "GET"),
        ("PUT", format!("/v1/webhooks/{id}"), "DELETE, GET, PATCH"),
        ("GET", format!("/v1/webhooks/{id}/rotate-secret"), "POST"),
    ] {
        let r = env.api(method, &path, &key, None).await;
        assert_eq!(r.status, 405, "{method} {path}: {r:?}");
        assert_eq!(r.header("content-type"), Some("application/problem+json"), "{r:?}");
        assert_eq!(
            r.body["type"], "https://hookwire.dev/problems/method_not_allowed",
            "{r:?}"
        );
        let mut allowed: Vec<&str> = r.header("allow").unwrap_or_default().split(", ").collect();
        allowed.sort_unstable();
        assert_eq!(allowed.join(", "), allow, "{method} {path}");
    }
    // A path that does not exist is still 404.
    assert_eq!(env.api("GET", "/v1/nothing-here", &key, None).await.status, 404);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_openapi_document_is_served_as_committed() {
    let env = TestEnv::start().await;
    let r = env
        .http
        .get(&format!("{}/v1/openapi.json", env.registry), &[])
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    let committed: Value = serde_json::from_str(include_str!("../../../../../docs/openapi.json")).unwrap();
    assert_eq!(r.body, committed);
    env.stop().await;
}
