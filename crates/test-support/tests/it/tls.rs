//! TLS to RabbitMQ and PostgreSQL, against the AMQPS-only node and the TLS-only cluster that
//! `scripts/tls-up.sh` starts with certificates from its own authority (names: `localhost` only).

use std::path::PathBuf;
use std::time::Duration;

use diesel_async::RunQueryDsl as _;
use hookwire_core::config::BrokerConfig;
use hookwire_registry::db::connect::connect;
use hookwire_test_support::{delete_topology, service_binary, Receiver, TestEnv};
use serde_json::json;

fn tls_file(name: &str) -> PathBuf {
    let dir = std::env::var("HOOKWIRE_TEST_TLS_DIR").unwrap_or_else(|_| "/var/lib/hookwire-tls".into());
    PathBuf::from(dir).join(name)
}

/// A PostgreSQL URL to the TLS-only cluster, `query` appended.
fn database_url(host: &str, database: &str, query: &str) -> String {
    format!("postgres://hookwire:hookwire@{host}:5433/{database}?{query}")
}

fn verify_full(database: &str) -> String {
    let ca = tls_file("ca.pem");
    database_url(
        "localhost",
        database,
        &format!("sslmode=verify-full&sslrootcert={}", ca.display()),
    )
}

/// The AMQPS node, with the test authority and the client certificate it requires.
fn amqps(prefix: &str) -> BrokerConfig {
    BrokerConfig {
        ca_file: Some(tls_file("ca.pem")),
        client_cert_file: Some(tls_file("client.pem")),
        client_key_file: Some(tls_file("client.key")),
        ..BrokerConfig::new("amqps://guest:guest@localhost:5771/%2f", prefix)
    }
}

async fn connect_error(url: &str) -> String {
    match connect(url).await {
        Ok(_) => panic!("{url} connected"),
        Err(e) => e.to_string(),
    }
}

async fn broker_error(config: &BrokerConfig) -> String {
    match hookwire_broker::connect(config, "hookwire tls test").await {
        Ok(_) => panic!("{} connected with {config:?}", config.url),
        Err(e) => e.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_services_deliver_over_tls_to_the_broker_and_the_database() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let database = format!("hookwire_tls_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let mut admin = connect(&verify_full("postgres"))
        .await
        .expect("the TLS cluster answers (scripts/tls-up.sh)");
    diesel::sql_query(format!("CREATE DATABASE {database}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let prefix = format!("hwtls.{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);

    let env = TestEnv::start_with(|o| {
        o.registry.database.url = verify_full(&database);
        o.registry.broker = amqps(&prefix);
        o.publisher.broker = amqps(&prefix);
        o.dispatcher.broker = amqps(&prefix);
    })
    .await;
    let mut receiver = Receiver::start(200).await;
    let (tenant, key) = env.tenant("tls").await;
    let webhook = env
        .webhook(&key, json!({"url": receiver.url(), "events": ["person.created"]}))
        .await;
    env.wait_routed(1).await;
    let accepted = env
        .publish(json!({"type": "person.created", "tenant_id": tenant, "data": {"over": "tls"}}))
        .await;
    assert_eq!(accepted.status, 202, "{accepted:?}");
    let got = receiver.next(Duration::from_secs(15)).await.expect("delivered");
    let body: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(body["data"], json!({"over": "tls"}));
    // The ledger reached the database through the TLS broker and the TLS pool.
    env.delivery_in(&key, webhook["id"].as_str().unwrap(), "success").await;
    // Every connection the registry holds to this database is encrypted (the cluster's
    // pg_hba.conf has only `hostssl` lines, so a plain one could not exist; this shows it).
    let mut ssl = diesel::sql_query(format!(
        "SELECT bool_and(s.ssl) AS all_tls, count(*) AS connections FROM pg_stat_ssl s \
         JOIN pg_stat_activity a USING (pid) WHERE a.datname = '{database}'"
    ))
    .load::<TlsCount>(&mut admin)
    .await
    .unwrap();
    let TlsCount { all_tls, connections } = ssl.remove(0);
    assert!(
        connections > 0 && all_tls == Some(true),
        "{connections} connections, all TLS: {all_tls:?}"
    );

    env.stop().await;
    delete_topology(&amqps(&prefix)).await;
    diesel::sql_query(format!("DROP DATABASE {database} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
}

#[derive(diesel::QueryableByName)]
struct TlsCount {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Bool>)]
    all_tls: Option<bool>,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    connections: i64,
}

#[tokio::test]
async fn a_database_that_cannot_be_verified_or_would_be_plain_is_refused() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = tls_file("ca.pem").display().to_string();
    let other = tls_file("other-ca.pem").display().to_string();
    // The certificate names `localhost`: verify-full to 127.0.0.1 fails on the name, verify-ca
    // (the authority only) passes.
    let e = connect_error(&database_url(
        "127.0.0.1",
        "postgres",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    ))
    .await;
    assert!(e.contains("not valid for name"), "{e}");
    connect(&database_url(
        "127.0.0.1",
        "postgres",
        &format!("sslmode=verify-ca&sslrootcert={ca}"),
    ))
    .await
    .expect("verify-ca does not check the name");
    // Another authority: refused in both verifying modes.
    for mode in ["verify-ca", "verify-full"] {
        let e = connect_error(&database_url(
            "localhost",
            "postgres",
            &format!("sslmode={mode}&sslrootcert={other}"),
        ))
        .await;
        assert!(e.contains("UnknownIssuer"), "{mode}: {e}");
    }
    // The system's authorities do not know the test one.
    let e = connect_error(&database_url("localhost", "postgres", "sslmode=verify-full")).await;
    assert!(e.contains("UnknownIssuer"), "{e}");
    // `require` encrypts without verifying; plain is refused by this server.
    connect(&database_url("localhost", "postgres", "sslmode=require"))
        .await
        .expect("require connects");
    let e = connect_error(&database_url("localhost", "postgres", "sslmode=disable")).await;
    assert!(e.contains("no encryption"), "{e}");
}

#[tokio::test]
async fn a_broker_that_cannot_be_verified_or_without_our_certificate_is_refused() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let good = amqps("hwtls.refusals");
    let conn = hookwire_broker::connect(&good, "hookwire tls test")
        .await
        .expect("AMQPS connects");
    conn.close(200, "done".into()).await.unwrap();

    let e = broker_error(&BrokerConfig {
        ca_file: Some(tls_file("other-ca.pem")),
        ..good.clone()
    })
    .await;
    assert!(e.contains("UnknownIssuer"), "{e}");
    let e = broker_error(&BrokerConfig {
        ca_file: None,
        ..good.clone()
    })
    .await;
    assert!(e.contains("UnknownIssuer"), "{e}");
    // The node requires a client certificate. Under TLS 1.3 it says so after the handshake, so
    // the refusal arrives as its alert or, when the socket closes first, as a reset.
    let e = broker_error(&BrokerConfig {
        client_cert_file: None,
        client_key_file: None,
        ..good.clone()
    })
    .await;
    assert!(e.contains("CertificateRequired") || e.contains("reset by peer"), "{e}");
    // By address the name does not match the certificate's `localhost`.
    let e = broker_error(&BrokerConfig {
        url: "amqps://guest:guest@127.0.0.1:5771/%2f".into(),
        ..good.clone()
    })
    .await;
    assert!(e.contains("not valid for name"), "{e}");
}

/// What an operator sees starting the registry in production with connections that could be plain.
#[test]
fn production_refuses_to_start_with_plain_connections_unless_allowed() {
    let serve = |vars: &[(&str, &str)]| {
        // Under `timeout`: a registry that wrongly starts is stopped, and the test fails.
        let out = std::process::Command::new("timeout")
            .arg("30")
            .arg(service_binary("hookwire-registry"))
            .arg("serve")
            .env("HOOKWIRE__PROFILE", "production")
            .env("HOOKWIRE_ADMIN_TOKEN", "an-admin-token-for-this-test")
            .env("HOOKWIRE_INTERNAL_TOKEN", "an-internal-token-for-this-test")
            .env(
                "HOOKWIRE_ENCRYPTION_KEY",
                "dGxzLXRlc3Qta2V5LW9mLTMyLWJ5dGVzLWxvbmchISE=",
            )
            .env("HOOKWIRE__HTTP__LISTEN", "127.0.0.1:0")
            .envs(vars.iter().copied())
            .output()
            .expect("the registry binary runs");
        assert!(!out.status.success(), "{vars:?} started");
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout)
    };
    let tls_db = verify_full("postgres");
    let out = serve(&[
        ("HOOKWIRE__BROKER__URL", "amqp://guest:guest@localhost:5672/%2f"),
        ("HOOKWIRE__DATABASE__URL", &tls_db),
    ]);
    assert!(out.contains("broker.url is plain amqp://"), "{out}");
    let out = serve(&[
        ("HOOKWIRE__BROKER__URL", "amqps://guest:guest@localhost:5771/%2f"),
        (
            "HOOKWIRE__DATABASE__URL",
            "postgres://hookwire:hookwire@localhost:5432/hookwire",
        ),
    ]);
    assert!(out.contains("database.url does not require TLS"), "{out}");
}
