//! The delivery log: every attempt once and in order, retention, counting and paging a long log, a webhook's stats, and queries too slow for the database.

use super::*;

/// `(attempt, response_status, signature)` of each attempt in a delivery's detail.
fn attempts_of(d: &Value) -> Vec<(u64, u64, String)> {
    d["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["attempt"].as_u64().unwrap(),
                a["response_status"].as_u64().unwrap(),
                a["signature"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// A delivery's latest attempt lives in its own row and earlier ones move out when a later one
/// supersedes them. Whatever order the attempt records reach the registry in, and however often,
/// the log shows each attempt once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_log_keeps_every_attempt_whatever_order_the_records_arrive_in() {
    let env = TestEnv::start().await;
    let (tenant, key) = env.tenant("acme").await;
    let ids = Ids::new(&tenant);
    let now = Utc::now();
    let record = |delivery, attempt, status| attempt_record(ids, delivery, attempt, status, now);
    let (late, superseded, twice) = (
        hookwire_core::id::v7(),
        hookwire_core::id::v7(),
        hookwire_core::id::v7(),
    );

    // `late`'s second attempt arrives before its first; `superseded` and `twice` succeed at once.
    send_to_ledger(
        &env,
        vec![record(late, 2, 200), record(superseded, 1, 200), record(twice, 1, 200)],
    )
    .await;
    env.wait_for(&format!("/v1/deliveries/{twice}"), &key, |b| b["status"] == "success")
        .await;
    // Then: `late`'s first attempt, a second attempt of `superseded` (a retry by hand), and
    // `twice`'s first attempt again (a redelivered batch).
    send_to_ledger(
        &env,
        vec![record(late, 1, 500), record(superseded, 2, 503), record(twice, 1, 200)],
    )
    .await;
    env.wait_for(&format!("/v1/deliveries/{superseded}"), &key, |b| {
        b["attempt_count"] == 2
    })
    .await;

    let get = |id: Uuid| {
        let (env, key) = (&env, key.clone());
        async move { env.api("GET", &format!("/v1/deliveries/{id}"), &key, None).await.body }
    };
    // Each delivery's status, and its attempts' response codes in order, each with its signature.
    for (id, status, codes) in [
        (late, "success", vec![500u64, 200]),
        (superseded, "retrying", vec![200, 503]),
        (twice, "success", vec![200]),
    ] {
        let d = get(id).await;
        assert_eq!(
            (&d["status"], &d["response_status"]),
            (&json!(status), &json!(codes.last()))
        );
        assert_eq!(d["attempt_count"], codes.len());
        let expected: Vec<(u64, u64, String)> = (1..)
            .zip(codes)
            .map(|(n, code)| (n, code, format!("v1,attempt-{n}")))
            .collect();
        assert_eq!(attempts_of(&d), expected, "{d}");
    }
    env.stop().await;
}

/// Deliveries, their attempts and their events' payloads older than `retention.deliveries` are
/// deleted, unless the delivery is still being retried; younger ones stay whole. Passes run back to
/// back, so the ledger writes these deliveries during one: a pass that read which deliveries are
/// under way only at its start deleted the retrying one's attempt and event in about half the runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_log_forgets_finished_deliveries_older_than_its_retention() {
    let env = TestEnv::start_with(|o| {
        o.registry.retention.deliveries = Duration::from_secs(3600);
        o.registry.retention.interval = Duration::from_millis(2);
    })
    .await;
    let (tenant, key) = env.tenant("acme").await;
    let tenant_id: Uuid = tenant.parse().unwrap();
    // Ids as the publisher makes them (UUIDv7), from two hours ago and from now.
    let v7_at = |at: DateTime<Utc>| {
        let ms = u64::try_from(at.timestamp_millis()).unwrap();
        Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, ms / 1000, 0))
    };
    let old_at = Utc::now() - chrono::Duration::hours(2);
    let mut ids = Vec::new();
    let mut entries = Vec::new();
    // Each delivery has two attempts, so one has a row of its own (the other is in the delivery's
    // row): old and finished, old and still being retried, young and finished.
    for (at, last_status) in [(old_at, 200), (old_at, 500), (Utc::now(), 200)] {
        let (event_id, delivery_id, webhook_id) = (v7_at(at), v7_at(at), hookwire_core::id::v7());
        entries.push(LedgerMessage::EventRouted {
            event: hookwire_core::messages::Event {
                id: event_id,
                event_type: "task.created".into(),
                tenant_id: Some(tenant_id),
                subject: None,
                channels: vec![],
                data: json!({"at": at}),
                is_test: false,
                created_at: at,
            },
            deliveries: vec![hookwire_core::messages::RoutedDelivery {
                delivery_id,
                webhook_id,
                tenant_id,
            }],
        });
        let who = Ids {
            webhook_id,
            tenant_id,
            event_id,
        };
        entries.push(attempt_record(who, delivery_id, 1, 500, at));
        entries.push(attempt_record(who, delivery_id, 2, last_status, at));
        ids.push(delivery_id);
    }
    // API idempotency keys hold for 24 hours.
    env.psql(
        "INSERT INTO api_idempotency_keys (scope, key, fingerprint, holder, created_at)
         VALUES ('\\x00', 'expired', '\\x00', gen_random_uuid(), now() - interval '25 hours'),
                ('\\x00', 'fresh', '\\x00', gen_random_uuid(), now() - interval '23 hours')",
    )
    .expect("the keys are inserted");
    // Erasure requests are looked for by the ledger for 31 days.
    env.psql(
        "INSERT INTO event_erasures (id, subject, requested_at)
         VALUES (gen_random_uuid(), 'expired', now() - interval '32 days'),
                (gen_random_uuid(), 'fresh', now() - interval '30 days')",
    )
    .expect("the requests are inserted");
    // Resends by hand are listed for dispatchers for 25 hours.
    env.psql(
        "INSERT INTO delivery_resends (delivery_id, resent_at)
         VALUES ('00000000-0000-0000-0000-000000000001', now() - interval '26 hours'),
                ('00000000-0000-0000-0000-000000000002', now() - interval '24 hours')",
    )
    .expect("the resends are inserted");
    send_to_ledger(&env, entries).await;

    // An operator sees what went: one row of each of the log's tables.
    let one_row_each = || async {
        for t in ["deliveries", "delivery_attempts", "events"] {
            let series = format!(r#"hookwire_registry_retention_deleted_total{{table="{t}"}}"#);
            (env.metric(&env.registry, &series).await? == 1.0).then_some(())?;
        }
        Some(())
    };
    assert!(
        eventually(Duration::from_secs(15), one_row_each).await.is_some(),
        "the old finished delivery, its attempt and its event were not deleted"
    );
    // Two more passes, to see they delete nothing more.
    let passes = "hookwire_registry_retention_passes_total";
    let done = env
        .metric(&env.registry, passes)
        .await
        .expect("retention passes are counted");
    let two_more = eventually(Duration::from_secs(15), || async {
        (env.metric(&env.registry, passes).await? >= done + 2.0).then_some(())
    });
    assert!(two_more.await.is_some(), "two more retention passes ran");
    assert!(one_row_each().await.is_some(), "a later pass deleted more");
    assert_eq!(
        env.psql("SELECT string_agg(key, ',') FROM api_idempotency_keys")
            .as_deref(),
        Some("fresh")
    );
    assert_eq!(
        env.psql("SELECT string_agg(subject, ',') FROM event_erasures")
            .as_deref(),
        Some("fresh")
    );
    assert_eq!(
        env.psql("SELECT string_agg(delivery_id::text, ',') FROM delivery_resends")
            .as_deref(),
        Some("00000000-0000-0000-0000-000000000002")
    );

    let detail = |id: Uuid| {
        let (env, key) = (&env, key.clone());
        async move { env.api("GET", &format!("/v1/deliveries/{id}"), &key, None).await }
    };
    assert_eq!(detail(ids[0]).await.status, 404);
    for kept in [ids[1], ids[2]] {
        let d = detail(kept).await;
        assert_eq!(d.status, 200);
        assert_eq!(d.body["attempts"].as_array().map(Vec::len), Some(2), "{:?}", d.body);
        assert!(d.body["payload"]["data"]["at"].is_string(), "{:?}", d.body);
    }
    let listed = env.api("GET", "/v1/deliveries", &key, None).await;
    assert_eq!(listed.body["count"], 2);
    env.stop().await;
}

/// A long log is counted only up to `http.count_limit`: past it `count` is a lower bound the
/// response says is one, and the `next` links still lead through every delivery to the last
/// page, whose count is exact. A filter matching fewer is counted exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_long_log_is_counted_up_to_a_bound_and_paged_to_its_end() {
    let env = TestEnv::start_with(|o| o.registry.http.count_limit = 5).await;
    let (tenant, key) = env.tenant("acme").await;
    let ids = Ids::new(&tenant);
    let now = Utc::now();
    let written: Vec<Uuid> = (0..12).map(|_| hookwire_core::id::v7()).collect();
    let records = written
        .iter()
        .enumerate()
        .map(|(i, &d)| attempt_record(ids, d, 1, if i < 2 { 500 } else { 200 }, now))
        .collect();
    send_to_ledger(&env, records).await;
    env.wait_for(&format!("/v1/deliveries/{}", written[11]), &key, |b| {
        b["status"] == "success"
    })
    .await;

    // Pages are read by following `next`, and deliveries written meanwhile (three, newer than
    // all) shift nothing: every delivery once, newest first (the twelve share one `created_at`,
    // so their ids order them). With offsets, the three would push page 1's last rows onto page 2.
    let base = env.registry.clone();
    let get = |path: String| {
        let (env, key, base) = (&env, key.clone(), base.clone());
        async move {
            let page = env.api("GET", &path, &key, None).await;
            assert_eq!(page.status, 200, "{page:?}");
            let ids: Vec<Uuid> = page.body["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["id"].as_str().unwrap().parse().unwrap())
                .collect();
            let link = |name: &str| {
                page.body[name]
                    .as_str()
                    .map(|l| l.strip_prefix(&base).unwrap().to_owned())
            };
            let count = (
                page.body["count"].as_i64().unwrap(),
                page.body["count_exact"].as_bool().unwrap(),
            );
            (ids, count, link("next"), link("previous"))
        }
    };
    let (first, count, mut next, _) = get("/v1/deliveries?limit=4".into()).await;
    let mut newer: Vec<Uuid> = (0..3).map(|_| hookwire_core::id::v7()).collect();
    let later = Utc::now() + chrono::Duration::seconds(1);
    send_to_ledger(
        &env,
        newer.iter().map(|&d| attempt_record(ids, d, 1, 200, later)).collect(),
    )
    .await;
    env.wait_for(&format!("/v1/deliveries/{}", newer[2]), &key, |b| {
        b["status"] == "success"
    })
    .await;
    let (mut pages, mut counts, mut last) = (vec![first], vec![count], String::new());
    while let Some(path) = next {
        let (page, count, n, _) = get(path.clone()).await;
        (next, last) = (n, path);
        pages.push(page);
        counts.push(count);
    }
    let mut newest_first: Vec<Uuid> = written.iter().rev().copied().collect();
    assert_eq!(
        pages.concat(),
        newest_first,
        "every delivery once, newest first: {pages:?}"
    );
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), vec![4, 4, 4]);
    // Past the bound of 5 the count is a lower bound.
    assert_eq!(counts, vec![(5, false); 3]);
    // Back from the last page by `previous`, up to the three written meanwhile.
    let mut back = Vec::new();
    let mut previous = Some(last);
    while let Some(path) = previous {
        let (page, _, _, p) = get(path).await;
        back.push(page);
        previous = p;
    }
    back.reverse();
    newer.reverse();
    newer.append(&mut newest_first);
    assert_eq!(back.concat(), newer, "{back:?}");
    // An offset still reads from where it says, and the last page of an offset counts exactly.
    let end = env.api("GET", "/v1/deliveries?limit=4&offset=12", &key, None).await;
    assert_eq!(
        (
            &end.body["count"],
            &end.body["count_exact"],
            end.body["results"].as_array().unwrap().len()
        ),
        (&json!(15), &json!(true), 3)
    );
    for bad in ["cursor=abc", "cursor=bjEuMQ&offset=4"] {
        let r = env.api("GET", &format!("/v1/deliveries?{bad}"), &key, None).await;
        assert_eq!((r.status, r.error_fields()), (400, vec!["cursor"]), "{r:?}");
    }

    let failing = env.api("GET", "/v1/deliveries?status=retrying", &key, None).await;
    assert_eq!(
        (&failing.body["count"], &failing.body["count_exact"]),
        (&json!(2), &json!(true))
    );
    // Past the end of a long log: no rows, and the count still only a lower bound.
    let beyond = env.api("GET", "/v1/deliveries?offset=100", &key, None).await;
    assert_eq!(
        (
            &beyond.body["count"],
            &beyond.body["count_exact"],
            &beyond.body["results"]
        ),
        (&json!(5), &json!(false), &json!([]))
    );
    env.stop().await;
}

/// A webhook's stats count its deliveries of a window by status, with the success rate of those
/// that ended; another tenant cannot read them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_webhooks_stats_count_its_deliveries_of_a_window_by_status() {
    let env = TestEnv::start().await;
    let (tenant, key) = env.tenant("acme").await;
    let (_, other_key) = env.tenant("other").await;
    let hook = env
        .webhook(
            &key,
            json!({"url": "http://127.0.0.1:9/", "events": ["*"], "is_active": false}),
        )
        .await;
    let hook_id = hook["id"].as_str().unwrap().to_owned();
    let ids = Ids {
        webhook_id: hook_id.parse().unwrap(),
        ..Ids::new(&tenant)
    };
    let now = Utc::now();
    let two_days_ago = now - chrono::Duration::days(2);
    let mut records: Vec<LedgerMessage> = [200, 200, 200, 500]
        .iter()
        .map(|&status| attempt_record(ids, hookwire_core::id::v7(), 1, status, now))
        .collect();
    let old = hookwire_core::id::v7();
    records.push(attempt_record(ids, old, 1, 200, two_days_ago));
    send_to_ledger(&env, records).await;
    env.wait_for(&format!("/v1/deliveries/{old}"), &key, |b| b["status"] == "success")
        .await;

    let path = format!("/v1/webhooks/{hook_id}/stats");
    let day = env.api("GET", &path, &key, None).await;
    assert_eq!(day.status, 200, "{day:?}");
    assert_eq!(day.body["total"], 4);
    assert_eq!(
        day.body["counts"],
        json!({"waiting": 0, "pending": 0, "retrying": 1, "success": 3, "failed": 0, "exhausted": 0})
    );
    assert_eq!(day.body["success_rate"], 1.0, "the retrying one has not ended");
    let since = (now - chrono::Duration::days(3)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let longer = env.api("GET", &format!("{path}?since={since}"), &key, None).await;
    assert_eq!(
        (&longer.body["total"], &longer.body["counts"]["success"]),
        (&json!(5), &json!(4))
    );
    let until = (now - chrono::Duration::days(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let before = env
        .api("GET", &format!("{path}?since={since}&until={until}"), &key, None)
        .await;
    assert_eq!(before.body["total"], 1, "{before:?}");
    let none = env
        .api("GET", &format!("{path}?until={since}&since={until}"), &key, None)
        .await;
    // A window that ends before it starts holds nothing.
    assert_eq!((none.status, &none.body["total"]), (200, &json!(0)), "{none:?}");
    assert_eq!(env.api("GET", &path, &other_key, None).await.status, 404);
    env.stop().await;
}

/// With a `statement_timeout` in `database.url`, a request whose query runs past it answers 503
/// `query_timeout` saying to narrow it, not 500: here a replay over a window of 500,000 events
/// of another tenant (130–200 ms to read here), with a timeout of 50 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_query_past_the_databases_statement_timeout_answers_503_saying_to_narrow_it() {
    let env = TestEnv::start_with(|o| {
        o.registry.database.url = format!("{}&options=-c%20statement_timeout%3D50", o.registry.database.url);
    })
    .await;
    let (_, key) = env.tenant("acme").await;
    let hook = env
        .webhook(&key, json!({"url": "http://127.0.0.1:9/", "events": ["task.*"]}))
        .await;
    // psql reads the same URL, timeout included: this statement lifts it for itself.
    env.psql(
        "SET statement_timeout = 0; INSERT INTO events (id, tenant_id, event_type, payload, created_at)
         SELECT encode(overlay(uuid_send(gen_random_uuid()) PLACING
                substring(int8send((extract(epoch FROM at) * 1000)::bigint) FROM 3) FROM 1 FOR 6), 'hex')::uuid,
                gen_random_uuid(), 'task.created', '{}', at
         FROM (SELECT now() - i * interval '100 ms' AS at FROM generate_series(1, 500000) i) s",
    )
    .expect("events inserted");
    let since = (Utc::now() - chrono::Duration::days(1)).to_rfc3339();
    let r = env
        .api(
            "POST",
            &format!("/v1/webhooks/{}/replay", hook["id"].as_str().unwrap()),
            &key,
            Some(json!({"since": since})),
        )
        .await;
    assert_eq!(
        (r.status, &r.body["type"]),
        (503, &json!("https://hookwire.dev/problems/query_timeout")),
        "{r:?}"
    );
    assert!(
        r.body["detail"].as_str().unwrap().contains("narrow the request"),
        "{r:?}"
    );
    assert_eq!(r.header("retry-after"), None);
    env.stop().await;
}
