//! A retry by hand: it replaces the retries under way, and is answered 202 once the broker has it.

use super::*;

/// A retry by hand while the delivery's retries are under way replaces them: the receiver gets
/// one chain of attempts (the one by hand, then its retries), each recorded once under its own
/// number. Before, the chain waiting in the broker went on beside it: two requests per turn, and
/// attempts of the same number of which the log kept one.
#[tokio::test]
async fn a_retry_by_hand_replaces_the_retries_under_way() {
    let env = TestEnv::start().await;
    let z = Duration::ZERO;
    let mut receiver = Receiver::scripted(vec![(500, z), (500, z), (500, z), (200, z)]).await;
    let (key, id) = retry_by_hand_under_way(&env, &mut receiver, 2).await;
    // The attempt by hand (500), its retry 2 s later (500), the next (200); then nothing.
    let mut received = 1;
    while receiver.next(Duration::from_secs(5)).await.is_some() {
        received += 1;
    }
    let d = env
        .wait_for(&format!("/v1/deliveries/{id}"), &key, |b| b["status"] == "success")
        .await;
    let numbers: Vec<&Value> = d["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["attempt"])
        .collect();
    assert_eq!(
        (received, &d["attempt_count"], numbers),
        (4, &json!(4), vec![&json!(1), &json!(2), &json!(3), &json!(4)]),
        "{d}"
    );
    let dropped = env
        .metric(&env.dispatcher, "hookwire_dispatcher_superseded_total")
        .await;
    assert_eq!(dropped, Some(1.0), "the replaced chain's task was dropped once");
    env.stop().await;
}

/// A dispatcher that starts after a retry by hand (a new replica, or every one after a rollout)
/// did not hear the notice that replaced the delivery's chain; it learns it from the registry's
/// routing snapshot, and drops the old chain's task all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dispatcher_started_after_a_retry_by_hand_drops_the_chain_it_replaced() {
    let env = TestEnv::start_with(|o| o.in_process_dispatcher = false).await;
    let first = env.spawn_dispatcher_process(free_port()).await;
    let z = Duration::ZERO;
    let mut receiver = Receiver::scripted(vec![(500, z), (200, z)]).await;
    let (key, id) = retry_by_hand_under_way(&env, &mut receiver, 12).await;
    receiver
        .next(Duration::from_secs(10))
        .await
        .expect("the attempt by hand");
    // The only dispatcher that heard the notice goes; the chain's retry is still up to 12 s
    // away (a margin for a loaded machine: the retry must reach the second dispatcher).
    assert!(terminate(first).success());
    let port = free_port();
    let _second = env.spawn_dispatcher_process(port).await;
    env.wait_for(&format!("/v1/deliveries/{id}"), &key, |b| b["status"] == "success")
        .await;
    // The old chain's retry reaches the new dispatcher, which drops it: counted, never sent.
    let metrics = format!("http://127.0.0.1:{port}");
    let dropped = eventually(Duration::from_secs(40), || async {
        env.metric(&metrics, "hookwire_dispatcher_superseded_total")
            .await
            .filter(|n| *n >= 1.0)
    })
    .await;
    assert_eq!(dropped, Some(1.0), "the replaced chain's task was dropped");
    receiver.expect_nothing(Duration::from_secs(1)).await;
    env.stop().await;
}

/// A webhook retrying every `interval` seconds, an event whose first attempt `receiver` fails,
/// and a retry by hand of its delivery while the retry waits: the tenant's key and the
/// delivery's id.
async fn retry_by_hand_under_way(env: &TestEnv, receiver: &mut Receiver, interval: u32) -> (String, String) {
    let (tenant, key) = env.tenant("acme").await;
    env.webhook(
        &key,
        json!({"url": receiver.url(), "events": ["person.*"],
               "retry_policy": {"strategy": "fixed", "interval_seconds": interval, "max_retries": 10}}),
    )
    .await;
    env.wait_routed(1).await;
    let r = env
        .publish(json!({"type": "person.updated", "tenant_id": tenant, "data": {"n": 1}}))
        .await;
    let event = r.body["event_id"].as_str().unwrap().to_owned();
    receiver.next(Duration::from_secs(10)).await.expect("the first attempt");
    let page = env
        .wait_for(&format!("/v1/deliveries?event_id={event}"), &key, |b| {
            b["count"] == 1 && b["results"][0]["status"] == "retrying"
        })
        .await;
    let id = page["results"][0]["id"].as_str().unwrap().to_owned();
    let r = env.api("POST", &format!("/v1/deliveries/{id}/retry"), &key, None).await;
    assert_eq!(r.status, 202, "{r:?}");
    (key, id)
}

/// Once the broker has confirmed a retry's task, the retry went out: a database write that
/// fails after it (noting a resend for the routing snapshot, marking recovered deliveries
/// `retrying`) is logged, and the caller still gets 202, never an error that would have it send
/// the retry again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retry_the_broker_took_is_answered_202_when_the_log_write_after_it_fails() {
    let env = TestEnv::start().await;
    let z = Duration::ZERO;

    env.psql(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS
             $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$",
    )
    .expect("the function is created");

    // A retry by hand of a delivery under way, whose resend cannot be noted.
    env.psql(
        "CREATE TRIGGER refuse_resends BEFORE INSERT ON delivery_resends FOR EACH ROW
             EXECUTE FUNCTION refuse()",
    )
    .expect("the trigger is created");
    let mut under_way = Receiver::scripted(vec![(500, z), (200, z)]).await;
    let (key, id) = retry_by_hand_under_way(&env, &mut under_way, 30).await;
    under_way
        .next(Duration::from_secs(10))
        .await
        .expect("the attempt by hand went out");
    env.wait_for(&format!("/v1/deliveries/{id}"), &key, |b| b["status"] == "success")
        .await;
    env.psql("DROP TRIGGER refuse_resends ON delivery_resends")
        .expect("the trigger is dropped");
    assert_eq!(
        env.psql("SELECT count(*) FROM delivery_resends").as_deref(),
        Some("0"),
        "the resend was not noted"
    );

    // A recover whose deliveries cannot be marked `retrying`.
    let mut receiver = Receiver::scripted(vec![(500, z), (200, z)]).await;
    let (tenant, key) = env.tenant("recover").await;
    let w = env
        .webhook(
            &key,
            json!({"url": receiver.url(), "events": ["task.*"], "retry_count": 0}),
        )
        .await;
    let webhook = w["id"].as_str().unwrap().to_owned();
    env.wait_routed(2).await;
    env.publish(json!({"type": "task.updated", "tenant_id": tenant, "data": {}}))
        .await;
    receiver.next(Duration::from_secs(10)).await.expect("the first attempt");
    env.wait_for(
        &format!("/v1/deliveries?webhook_id={webhook}&status=exhausted"),
        &key,
        |b| b["count"] == 1,
    )
    .await;
    env.psql(
        "CREATE TRIGGER refuse_retrying BEFORE UPDATE ON deliveries FOR EACH ROW
             WHEN (NEW.status = 'retrying' AND OLD.status IN ('failed', 'exhausted'))
             EXECUTE FUNCTION refuse()",
    )
    .expect("the trigger is created");
    let since = (Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let r = env
        .api(
            "POST",
            &format!("/v1/webhooks/{webhook}/recover"),
            &key,
            Some(json!({"since": since})),
        )
        .await;
    env.psql("DROP TRIGGER refuse_retrying ON deliveries")
        .expect("the trigger is dropped");
    assert_eq!((r.status, &r.body["retried"]), (202, &json!(1)), "{r:?}");
    receiver
        .next(Duration::from_secs(10))
        .await
        .expect("the recovered delivery went out");
    env.wait_for(
        &format!("/v1/deliveries?webhook_id={webhook}&status=success"),
        &key,
        |b| b["count"] == 1,
    )
    .await;
    env.stop().await;
}
