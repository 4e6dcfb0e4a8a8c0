//! The `hookwire` CLI against the real stack: its commands, its exit codes, its profiles, and
//! `listen` relaying signed deliveries to a local receiver through a second registry.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Output, Stdio};
use std::time::Duration;

use hookwire_test_support::{eventually, verify_with_reference_library, Receiver, TestEnv};
use serde_json::{json, Value};

/// Runs the CLI with `args`; its output.
async fn run(env: &TestEnv, key: &str, args: &[&str]) -> Output {
    let mut cmd = env.cli(key);
    cmd.args(args);
    tokio::task::spawn_blocking(move || cmd.output().expect("the CLI runs"))
        .await
        .unwrap()
}

/// The CLI's `--json` answer, asserting it succeeded.
async fn json_of(env: &TestEnv, key: &str, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = run(env, key, &all).await;
    assert!(
        out.status.success(),
        "hookwire {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("hookwire {args:?} printed no JSON ({e})"))
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cli_manages_webhooks_deliveries_events_and_tenants() {
    let env = TestEnv::start().await;
    let mut receiver = Receiver::start(200).await;
    // Operator: a tenant and a key.
    let tenant = json_of(&env, "", &["admin", "tenants", "create", "Acme"]).await;
    let tenant_id = tenant["id"].as_str().unwrap().to_owned();
    let key = json_of(&env, "", &["admin", "api-keys", "create", "--tenant", &tenant_id]).await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let listed = stdout(&run(&env, "", &["admin", "tenants", "list"]).await);
    assert!(listed.contains("Acme") && listed.starts_with("ID"), "{listed}");

    // Customer: a webhook through its life.
    let url = receiver.url();
    let w = json_of(
        &env,
        &key,
        &[
            "webhooks",
            "create",
            "--url",
            &url,
            "--events",
            "person.created,person.updated",
            "--name",
            "CRM",
        ],
    )
    .await;
    let id = w["id"].as_str().unwrap().to_owned();
    assert!(w["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(w["events"], json!(["person.created", "person.updated"]));
    let table = stdout(&run(&env, &key, &["webhooks", "list"]).await);
    assert!(table.contains(&id) && table.contains("active"), "{table}");
    let updated = json_of(
        &env,
        &key,
        &["webhooks", "update", &id, "--name", "CRM sync", "--ordering", "subject"],
    )
    .await;
    assert_eq!(
        (&updated["name"], &updated["ordering"]),
        (&json!("CRM sync"), &json!("subject"))
    );
    assert_eq!(
        json_of(&env, &key, &["webhooks", "disable", &id]).await["is_active"],
        false
    );
    assert_eq!(
        json_of(&env, &key, &["webhooks", "enable", &id]).await["is_active"],
        true
    );
    let rotated = json_of(&env, &key, &["webhooks", "rotate-secret", &id]).await;
    assert_ne!(rotated["secret"], w["secret"]);

    // Events: one, then a file through the batch endpoint.
    let one = json_of(
        &env,
        &key,
        &[
            "events",
            "publish",
            "--type",
            "person.created",
            "--tenant",
            &tenant_id,
            "--data",
            r#"{"name":"Ada"}"#,
        ],
    )
    .await;
    assert_eq!(one["matched"], 1, "{one}");
    receiver.next(Duration::from_secs(20)).await.expect("the event arrives");
    let file = std::env::temp_dir().join(format!("hookwire-events-{}.jsonl", uuid::Uuid::new_v4().simple()));
    let lines: Vec<String> = (0..3)
        .map(|n| json!({"type": "person.updated", "tenant_id": tenant_id, "data": {"n": n}}).to_string())
        .collect();
    std::fs::write(&file, lines.join("\n")).unwrap();
    let out = run(&env, &key, &["events", "publish", "--file", file.to_str().unwrap()]).await;
    assert!(
        stdout(&out).contains("Published 3 events; 3 deliveries started."),
        "{}",
        stdout(&out)
    );
    for _ in 0..3 {
        receiver
            .next(Duration::from_secs(20))
            .await
            .expect("each event of the file arrives");
    }

    // The delivery log: list, get, retry; a test event.
    let page = eventually(Duration::from_secs(20), || async {
        let page = json_of(&env, &key, &["deliveries", "list", "--status", "success"]).await;
        (page["count"] == 4).then_some(page)
    })
    .await
    .expect("four deliveries logged as success");
    let delivery = page["results"][0]["id"].as_str().unwrap().to_owned();
    let detail = json_of(&env, &key, &["deliveries", "get", &delivery]).await;
    assert_eq!(detail["attempts"].as_array().unwrap().len(), 1, "{detail}");
    let retried = json_of(&env, &key, &["deliveries", "retry", &delivery]).await;
    assert_eq!(retried["delivery_id"], json!(delivery));
    receiver.next(Duration::from_secs(20)).await.expect("the retry arrives");
    let sent = json_of(&env, &key, &["webhooks", "test", &id]).await;
    assert!(sent["delivery_id"].is_string(), "{sent}");
    let types = stdout(&run(&env, &key, &["event-types", "list"]).await);
    assert!(types.contains("person.created"), "{types}");
    let portal = stdout(&run(&env, &key, &["portal", "--read-only"]).await);
    assert!(portal.trim().contains("/console/#session=hwp_"), "{portal}");

    // Exit codes that mean something.
    let missing = run(&env, &key, &["webhooks", "get", &uuid::Uuid::new_v4().to_string()]).await;
    assert_eq!(
        missing.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
    let refused = run(&env, "hwk_not_a_key", &["webhooks", "list"]).await;
    assert_eq!(refused.status.code(), Some(4));
    let invalid = run(&env, &key, &["webhooks", "create", "--url", "ftp://x", "--events", "*"]).await;
    assert_eq!(invalid.status.code(), Some(5));
    assert!(
        String::from_utf8_lossy(&invalid.stderr).contains("url"),
        "the field is named"
    );
    let usage = run(&env, &key, &["webhooks", "frobnicate"]).await;
    assert_eq!(usage.status.code(), Some(2));

    // A saved profile: owner-only, and enough on its own.
    let mut login = env.cli(&key);
    login.args(["login", "--profile", "work"]);
    let config = login
        .get_envs()
        .find(|(k, _)| *k == "HOOKWIRE_CONFIG")
        .and_then(|(_, v)| v.map(std::path::PathBuf::from))
        .unwrap();
    let out = tokio::task::spawn_blocking(move || login.output().unwrap())
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&config).unwrap().permissions().mode() & 0o777, 0o600);
    let mut from_profile = std::process::Command::new(env.cli(&key).get_program());
    from_profile
        .env_clear()
        .env("HOOKWIRE_CONFIG", &config)
        .args(["--profile", "work", "--json", "webhooks", "list"]);
    let out = tokio::task::spawn_blocking(move || from_profile.output().unwrap())
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).unwrap()["count"], 1);

    // Producer tokens and the audit log.
    let pt = json_of(
        &env,
        "",
        &[
            "admin",
            "producer-tokens",
            "create",
            "billing",
            "--event-types",
            "person.*",
        ],
    )
    .await;
    assert!(pt["token"].as_str().unwrap().starts_with("hwpt_"), "{pt}");
    let revoked = run(
        &env,
        "",
        &["admin", "producer-tokens", "revoke", pt["id"].as_str().unwrap()],
    )
    .await;
    assert!(revoked.status.success());
    let audit = stdout(&run(&env, &key, &["audit-log"]).await);
    for action in [
        "webhook.updated",
        "webhook.secret_rotated",
        "delivery.retried",
        "webhook.test_sent",
    ] {
        assert!(audit.contains(action), "{action} missing from:\n{audit}");
    }
    let admin_audit = stdout(&run(&env, "", &["admin", "audit-log", "--action", "producer_token.revoked"]).await);
    assert!(admin_audit.contains(pt["id"].as_str().unwrap()), "{admin_audit}");

    let deleted = run(&env, &key, &["webhooks", "delete", &id]).await;
    assert!(deleted.status.success() && stdout(&deleted).contains("Deleted webhook"));
    assert_eq!(run(&env, &key, &["webhooks", "get", &id]).await.status.code(), Some(3));
    let completions = stdout(&run(&env, &key, &["completions", "bash"]).await);
    assert!(completions.contains("hookwire"), "a bash completion script");
    env.stop().await;
}

/// Starts `hookwire listen` and reads its start-up lines; the process and the signing secret.
fn start_listen(
    env: &TestEnv,
    key: &str,
    registry: &str,
    forward_to: &str,
) -> (Child, String, std::sync::mpsc::Receiver<String>) {
    let mut cmd = env.cli(key);
    cmd.env("HOOKWIRE_URL", registry)
        .args(["listen", "--events", "person.*", "--forward-to", forward_to])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("the CLI starts");
    let (tx, lines) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // The deliveries' lines; the start-up lines go to `secret` below.
            let _ = tx.send(line);
        }
    });
    let secret = loop {
        let line = lines
            .recv_timeout(Duration::from_secs(20))
            .expect("listen prints its secret");
        if let Some(s) = line.strip_prefix("Signing secret: ") {
            break s.to_owned();
        }
    };
    let webhook_line = lines
        .recv_timeout(Duration::from_secs(5))
        .expect("listen names its webhook");
    assert!(webhook_line.starts_with("Webhook: "), "{webhook_line}");
    (child, secret, lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn listen_relays_signed_deliveries_through_another_registry_and_cleans_up_on_ctrl_c() {
    let mut env = TestEnv::start().await;
    let (tenant, key) = env.tenant("Acme").await;
    // The CLI talks to a second registry; the dispatcher to the first: the relay crosses the broker.
    let second = env.add_registry().await;
    let mut receiver = Receiver::scripted(vec![(500, Duration::ZERO), (200, Duration::ZERO)]).await;
    receiver.answer_body("local answer");
    let (mut child, secret, lines) = start_listen(&env, &key, &second, &receiver.url());
    assert!(secret.starts_with("whsec_"), "{secret}");
    let hooks = env.api("GET", "/v1/webhooks", &key, None).await;
    assert_eq!(hooks.body["count"], 1, "the temporary webhook: {hooks:?}");
    let webhook_id = hooks.body["results"][0]["id"].as_str().unwrap().to_owned();

    let r = env
        .publish(json!({"type": "person.created", "tenant_id": tenant, "data": {"name": "Ada"}}))
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    // The same signed request a receiver gets, checked by the reference library; a 500 first.
    let first = receiver
        .next(Duration::from_secs(20))
        .await
        .expect("the relayed request arrives");
    verify_with_reference_library(&secret, &first).expect("a valid Standard Webhooks signature");
    assert_eq!(first.header("content-type"), Some("application/json"));
    let body: Value = serde_json::from_slice(&first.body).unwrap();
    assert_eq!(body["type"], "person.created");
    // Retried by the usual policy, and 200 the second time.
    let second_try = receiver.next(Duration::from_secs(30)).await.expect("the retry arrives");
    verify_with_reference_library(&secret, &second_try).expect("signed again");
    let delivery = env.delivery_in(&key, &webhook_id, "success").await;
    assert_eq!(delivery["attempts"], 2, "{delivery}");
    assert_eq!(delivery["response_body"], "local answer");
    // One line per delivery: time, type, event id, the local status, duration.
    let printed: Vec<String> = (0..2)
        .map(|_| {
            lines
                .recv_timeout(Duration::from_secs(10))
                .expect("a line per delivery")
        })
        .collect();
    assert!(
        printed[0].contains("person.created") && printed[0].contains("-> 500"),
        "{printed:?}"
    );
    assert!(
        printed[1].contains(&body["id"].as_str().unwrap().to_string()) && printed[1].contains("-> 200"),
        "{printed:?}"
    );

    // Ctrl-C removes the temporary webhook.
    let pid = child.id().to_string();
    std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "listen exits cleanly on Ctrl-C: {status:?}");
    let hooks = env.api("GET", "/v1/webhooks", &key, None).await;
    assert_eq!(hooks.body["count"], 0, "{hooks:?}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_local_server_that_is_down_is_a_failed_attempt_and_a_dead_listen_expires() {
    let env = TestEnv::start().await;
    let (tenant, key) = env.tenant("Acme").await;
    let closed = format!("http://127.0.0.1:{}/hook", hookwire_test_support::free_port());
    let registry = env.registry.clone();
    let (mut child, _, lines) = start_listen(&env, &key, &registry, &closed);
    let webhook_id = env.api("GET", "/v1/webhooks", &key, None).await.body["results"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    env.publish(json!({"type": "person.created", "tenant_id": tenant, "data": {}}))
        .await;
    let failed = env.delivery_in(&key, &webhook_id, "retrying").await;
    assert!(failed["error"].as_str().unwrap().starts_with("connect:"), "{failed}");
    let line = lines
        .recv_timeout(Duration::from_secs(10))
        .expect("a line for the failed delivery");
    assert!(line.contains("connect:"), "{line}");
    assert!(child.try_wait().unwrap().is_none(), "listen keeps running");

    // Killed outright, it leaves its webhook, which expires with its lease.
    child.kill().unwrap();
    child.wait().unwrap();
    env.psql("UPDATE listen_sessions SET expires_at = now() - interval '1 second'");
    let gone = eventually(Duration::from_secs(45), || async {
        let r = env.api("GET", "/v1/webhooks", &key, None).await;
        (r.body["count"] == 0).then_some(())
    })
    .await;
    assert!(gone.is_some(), "the expired listen's webhook is deleted");
    env.stop().await;
}
