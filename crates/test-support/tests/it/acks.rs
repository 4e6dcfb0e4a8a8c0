//! Every finished task is acknowledged, exactly once: the dispatcher acknowledges in runs, and a
//! task that finished above an older one still in flight (to a slow receiver) is acknowledged on
//! its own, so it never comes back.

use std::time::Duration;

use hookwire_test_support::{eventually, free_port, terminate, Receiver, TestEnv};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn finished_tasks_are_acknowledged_even_behind_a_slow_one() {
    let env = TestEnv::start_with(|o| o.in_process_dispatcher = false).await;
    let mut dispatcher = env.spawn_dispatcher_process(free_port()).await;
    let mut slow = Receiver::scripted(vec![(200, Duration::from_secs(15))]).await;
    let mut fast = Receiver::start(200).await;
    // Two tenants, one webhook each, events alternating between them: in the queue each fast
    // task sits next to a slow one (one event for both webhooks would be one group message).
    let (slow_tenant, slow_key) = env.tenant("slow").await;
    let (fast_tenant, fast_key) = env.tenant("fast").await;
    env.webhook(
        &slow_key,
        json!({"url": slow.url(), "events": ["*"], "timeout_seconds": 30}),
    )
    .await;
    env.webhook(&fast_key, json!({"url": fast.url(), "events": ["*"]}))
        .await;
    env.wait_routed(2).await;
    const N: usize = 30;
    for n in 0..N {
        for tenant in [&slow_tenant, &fast_tenant] {
            let r = env
                .publish(json!({"type": "task.created", "tenant_id": tenant, "data": {"n": n}}))
                .await;
            assert_eq!(r.status, 202);
        }
    }
    for _ in 0..N {
        assert!(
            fast.next(Duration::from_secs(10)).await.is_some(),
            "the fast receiver got every event"
        );
    }
    for _ in 0..N {
        assert!(
            slow.next(Duration::from_secs(10)).await.is_some(),
            "the slow attempts started"
        );
    }
    // The fast tasks finished while every slow one is still open (15 s, so even a loaded machine
    // starts the last before the first ends). Once the broker counts only the slow ones
    // unacknowledged, kill the dispatcher: what it had not acknowledged goes back to the queue,
    // and that must be exactly the slow tasks.
    let acked = eventually(Duration::from_secs(10), || async {
        (env.unacknowledged_tasks() == N as u32).then_some(())
    });
    assert!(
        acked.await.is_some(),
        "the fast tasks were acknowledged: {} unacknowledged",
        env.unacknowledged_tasks()
    );
    dispatcher.kill().expect("SIGKILL the dispatcher");
    let _ = dispatcher.wait();
    let back = eventually(Duration::from_secs(10), || async {
        let depth = env.delivery_depth(false).await;
        (depth >= N as u32).then_some(depth)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        back,
        Some(N as u32),
        "only the unfinished (slow) tasks return to the queue"
    );
    assert_eq!(env.delivery_depth(false).await, N as u32);

    // A new dispatcher delivers those again; stopped gracefully, it leaves nothing behind.
    slow.answer(vec![(200, Duration::ZERO)]);
    let port = free_port();
    let dispatcher = env.spawn_dispatcher_process(port).await;
    for _ in 0..N {
        assert!(
            slow.next(Duration::from_secs(10)).await.is_some(),
            "redelivered to the slow receiver"
        );
    }
    fast.expect_nothing(Duration::from_millis(500)).await;
    terminate(dispatcher);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        env.delivery_depth(false).await,
        0,
        "every finished task was acknowledged"
    );
    env.stop().await;
}

/// On SIGTERM a dispatcher stops taking tasks but finishes the attempts it has started: each is
/// answered, recorded and acknowledged before the process exits, so none comes back to another
/// dispatcher as a second delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dispatcher_stopped_with_sigterm_finishes_its_attempts_and_none_comes_back() {
    let env = TestEnv::start_with(|o| o.in_process_dispatcher = false).await;
    let dispatcher = env.spawn_dispatcher_process(free_port()).await;
    let answer_after = Duration::from_millis(1500);
    let mut rx = Receiver::scripted(vec![(200, answer_after)]).await;
    let (tenant, key) = env.tenant("acme").await;
    env.webhook(&key, json!({"url": rx.url(), "events": ["*"], "timeout_seconds": 30}))
        .await;
    env.wait_routed(1).await;
    const N: usize = 10;
    for n in 0..N {
        let r = env
            .publish(json!({"type": "task.created", "tenant_id": tenant, "data": {"n": n}}))
            .await;
        assert_eq!(r.status, 202);
    }
    let mut ids = std::collections::HashSet::new();
    for _ in 0..N {
        let got = rx.next(Duration::from_secs(10)).await.expect("every attempt started");
        ids.insert(got.header("webhook-id").unwrap().to_owned());
    }
    assert_eq!(ids.len(), N);
    // Every attempt is waiting for its answer now.
    let asked = std::time::Instant::now();
    let status = terminate(dispatcher);
    assert!(status.success(), "the dispatcher exits cleanly: {status}");
    assert!(
        asked.elapsed() >= answer_after / 2,
        "the dispatcher waited for its attempts' answers (exited after {:?})",
        asked.elapsed()
    );
    assert_eq!(
        env.delivery_depth(false).await,
        0,
        "every started task was acknowledged"
    );
    // Another dispatcher finds nothing to deliver again.
    let mut next = env.spawn_dispatcher_process(free_port()).await;
    rx.expect_nothing(Duration::from_secs(2)).await;
    next.kill().expect("SIGKILL the second dispatcher");
    let _ = next.wait();
    env.stop().await;
}
