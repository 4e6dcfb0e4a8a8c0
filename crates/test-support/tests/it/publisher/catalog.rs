//! The event-type catalog as ingest applies it: schema changes for the next events, archived types.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_types_schema_changed_by_the_admin_holds_for_the_next_events() {
    let env = TestEnv::start().await;
    let (_, key) = env.tenant("acme").await;
    let first = json!({"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}});
    let r = env
        .admin_post(
            "/v1/admin/event-types",
            json!({"value": "invoice.paid", "label": "Invoice paid", "schema": first}),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    // Whether the publisher refuses `data`, asked until it answers `refused` (a notice is on its way).
    let status_becomes = |data: Value, status: u16| {
        let env = &env;
        async move {
            eventually(Duration::from_secs(10), || {
                let data = data.clone();
                async move {
                    let r = env.publish(json!({"type": "invoice.paid", "data": data})).await;
                    (r.status == status).then_some(())
                }
            })
            .await
            .unwrap_or_else(|| panic!("the publisher never answered {status} for {data}"))
        }
    };
    status_becomes(json!({"id": "seven"}), 400).await;

    // Customers read each type's schema, in the list and alone.
    let one = env.api("GET", "/v1/event-types/invoice.paid", &key, None).await;
    assert_eq!(one.status, 200, "{one:?}");
    assert_eq!(one.body["schema"], first);
    assert_eq!(one.body["label"], "Invoice paid");
    let list = env.api("GET", "/v1/event-types?limit=500", &key, None).await;
    let listed = list.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["value"] == "invoice.paid")
        .cloned()
        .unwrap();
    assert_eq!(listed, one.body);
    assert_eq!(
        env.api("GET", "/v1/event-types/nope.created", &key, None).await.status,
        404
    );

    // A new schema: events valid before are refused, events valid now accepted.
    let second = json!({"type": "object", "required": ["amount"]});
    let r = env
        .admin(
            "PATCH",
            "/v1/admin/event-types/invoice.paid",
            Some(json!({"schema": second, "description": "An invoice was paid in full"})),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["schema"], second);
    assert_eq!(r.body["label"], "Invoice paid", "a field not sent is kept");
    status_becomes(json!({"id": 7}), 400).await;
    assert_eq!(
        env.publish(json!({"type": "invoice.paid", "data": {"amount": 5}}))
            .await
            .status,
        202
    );
    // Lifted: anything goes; a null description empties it.
    let r = env
        .admin(
            "PATCH",
            "/v1/admin/event-types/invoice.paid",
            Some(json!({"schema": null, "description": null})),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["schema"], Value::Null);
    assert_eq!(r.body["description"], "");
    status_becomes(json!({"anything": true}), 202).await;

    // Bad changes, each with its own answer.
    let patch = |path: &'static str, body: Value| env.admin("PATCH", path, Some(body));
    let r = patch(
        "/v1/admin/event-types/invoice.paid",
        json!({"label": "", "schema": {"type": 12}, "colour": 1}),
    )
    .await;
    assert_eq!(r.status, 400);
    let mut fields = r.error_fields();
    fields.sort();
    assert_eq!(fields, ["colour", "label", "schema"], "{r:?}");
    assert_eq!(patch("/v1/admin/event-types/invoice.paid", json!({})).await.status, 400);
    assert_eq!(
        patch("/v1/admin/event-types/invoice.paid", json!({"label": null}))
            .await
            .status,
        400
    );
    assert_eq!(
        patch("/v1/admin/event-types/nope.created", json!({"label": "x"}))
            .await
            .status,
        404
    );
    let r = patch(
        "/v1/admin/event-types/hookwire.delivery_exhausted",
        json!({"schema": null}),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body["type"], "https://hookwire.dev/problems/reserved_event_type",
        "{r:?}"
    );
    let r = env
        .http
        .request(
            "PATCH",
            &format!("{}/v1/admin/event-types/invoice.paid", env.registry),
            &[("x-api-key", &key)],
            Some(&json!({"label": "x"})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 401, "a tenant's key is not the admin token");

    // The same from a shell.
    let (code, out) = env.registry_admin(&["update-event-type", "invoice.paid", "--label", "Paid"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        env.api("GET", "/v1/event-types/invoice.paid", &key, None).await.body["label"],
        "Paid"
    );
    env.stop().await;
}

/// An archived type leaves the catalog customers see and subscribe from, but producers still
/// publish it and the webhooks subscribed to it still get it; unarchived, it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_archived_type_is_still_delivered_but_no_longer_subscribed_to() {
    let env = TestEnv::start().await;
    let (tenant, key) = env.tenant("acme").await;
    let mut receiver = Receiver::start(200).await;
    let hook = env
        .webhook(&key, json!({"url": receiver.url(), "events": ["person.created"]}))
        .await;
    let hook_id = hook["id"].as_str().unwrap().to_owned();
    let values = |archived: bool| {
        let (env, key) = (&env, key.clone());
        async move {
            let path = format!("/v1/event-types?limit=500&include_archived={archived}");
            let list = env.api("GET", &path, &key, None).await;
            assert_eq!(list.status, 200, "{list:?}");
            let values: Vec<String> = list.body["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["value"].as_str().unwrap().to_owned())
                .collect();
            assert_eq!(list.body["count"], values.len());
            values
        }
    };
    let before = values(false).await;
    assert!(before.contains(&"person.created".to_owned()));

    for _ in 0..2 {
        let r = env.admin("DELETE", "/v1/admin/event-types/person.created", None).await;
        assert_eq!(r.status, 204, "archiving again changes nothing: {r:?}");
    }
    let own = env
        .admin("DELETE", "/v1/admin/event-types/hookwire.webhook_disabled", None)
        .await;
    assert_eq!(
        (own.status, &own.body["type"]),
        (400, &json!("https://hookwire.dev/problems/reserved_event_type"))
    );
    assert_eq!(
        env.admin("DELETE", "/v1/admin/event-types/nope.created", None)
            .await
            .status,
        404
    );

    // Customers no longer see it, unless they ask; alone it says it is archived.
    let shown = values(false).await;
    assert_eq!(shown.len(), before.len() - 1);
    assert!(!shown.contains(&"person.created".to_owned()));
    assert!(values(true).await.contains(&"person.created".to_owned()));
    let one = env.api("GET", "/v1/event-types/person.created", &key, None).await;
    assert_eq!(one.body["archived"], true, "{one:?}");
    // The operator's shell says the same.
    let cli_values = |args: &[&str]| {
        let (code, out) = env.registry_admin(args);
        assert_eq!(code, 0, "{out}");
        let listed: Vec<Value> = serde_json::from_str(&out).unwrap();
        listed
            .iter()
            .map(|t| t["value"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(cli_values(&["list-event-types"]), shown);
    assert!(cli_values(&["list-event-types", "--include-archived"]).contains(&"person.created".to_owned()));

    // No new subscription rests on it alone; a pattern that also takes a live type is fine, and
    // the webhook that has it keeps it through a change of its events.
    let refused = env
        .api(
            "POST",
            "/v1/webhooks",
            &key,
            Some(json!({"url": receiver.url(), "events": ["person.created"]})),
        )
        .await;
    assert_eq!(refused.status, 400, "{refused:?}");
    assert!(
        refused
            .body
            .to_string()
            .contains("`person.created` matches only archived event types"),
        "{refused:?}"
    );
    env.webhook(
        &key,
        json!({"url": receiver.url(), "events": ["person.*"], "is_active": false}),
    )
    .await;
    let kept = env
        .patch_webhook(&key, &hook_id, json!({"events": ["person.created", "company.created"]}))
        .await;
    assert_eq!(kept.status, 200, "{kept:?}");

    // Producers still publish it, and the webhook subscribed to it still gets it.
    env.wait_routed(1).await;
    let r = env
        .publish(json!({"type": "person.created", "tenant_id": tenant, "data": {"id": 1}}))
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    let got = receiver
        .next(Duration::from_secs(10))
        .await
        .expect("the archived type is delivered");
    let body: Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(body["type"], "person.created");

    // Brought back, it is in the catalog again and subscribable.
    let r = env
        .admin(
            "PATCH",
            "/v1/admin/event-types/person.created",
            Some(json!({"archived": false})),
        )
        .await;
    assert_eq!((r.status, &r.body["archived"]), (200, &json!(false)), "{r:?}");
    assert_eq!(values(false).await, before);
    env.webhook(&key, json!({"url": receiver.url(), "events": ["person.created"]}))
        .await;
    env.stop().await;
}
