#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod broker;
pub mod browser;
mod http;
pub mod logs;
mod processes;
mod receiver;
mod requests;

use std::time::Duration;

use anyhow::Context as _;
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl as _};
use hookwire_core::config::{Profile, Role, Secrets};
use hookwire_core::topology::Topology;
use serde_json::json;
use tokio::sync::oneshot;

pub use crate::broker::{delete_topology, rabbitmqctl, RefusedTasks};
pub use crate::http::{Http, Response};
pub use crate::processes::{free_port, service_binary, terminate, ServiceProcess};
pub use crate::receiver::{Received, Receiver, FLAKY, RETRY_AFTER_SECONDS};

/// Where the development PostgreSQL and RabbitMQ are (`scripts/deps-up.sh` starts them).
/// `HOOKWIRE_TEST_DATABASE_URL` and `HOOKWIRE_TEST_BROKER_URL` override.
fn admin_database_url() -> String {
    std::env::var("HOOKWIRE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://hookwire:hookwire@127.0.0.1:5432/hookwire".into())
}

/// `url` naming `database` instead of its own, its query kept.
pub fn database_url_for(url: &str, database: &str) -> String {
    let (path, query) = url.split_once('?').unwrap_or((url, "sslmode=disable"));
    match path.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{database}?{query}"),
        None => unreachable!("a database URL has a path"),
    }
}

pub fn broker_url() -> String {
    std::env::var("HOOKWIRE_TEST_BROKER_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// The admin and producer tokens of the development profile.
pub const ADMIN_TOKEN: &str = hookwire_core::config::dev_defaults::ADMIN_TOKEN;
pub const PRODUCER_TOKEN: &str = hookwire_core::config::dev_defaults::PRODUCER_TOKEN;

struct Running {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match tokio::time::timeout(Duration::from_secs(30), self.task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => panic!("service failed: {e:#}"),
            Ok(Err(e)) => panic!("service panicked: {e}"),
            Err(_) => panic!("service did not stop within 30 s"),
        }
    }
}

fn spawn<F>(run: impl FnOnce(oneshot::Receiver<()>) -> F) -> Running
where
    F: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    Running {
        stop: Some(tx),
        task: tokio::spawn(run(rx)),
    }
}

async fn until_stopped(rx: oneshot::Receiver<()>) {
    let _ = rx.await;
}

/// Delivery shards of a test installation (`broker.delivery_shards`).
pub const TEST_SHARDS: u16 = 2;

/// One isolated installation: its own database and broker prefix, the three services running.
pub struct TestEnv {
    pub registry: String,
    pub publisher: String,
    pub dispatcher: String,
    pub http: Http,
    pub database: String,
    pub prefix: String,
    /// The registry's configuration, to start it again on the same port.
    registry_config: hookwire_registry::Config,
    /// Index 0 is the registry while it runs.
    services: Vec<Running>,
    registry_running: bool,
}

/// What a test may change before the services start.
pub struct Options {
    pub registry: hookwire_registry::Config,
    pub publisher: hookwire_publisher::Config,
    pub dispatcher: hookwire_dispatcher::Config,
    /// Start a dispatcher in-process (default). Fault tests run them as processes instead.
    pub in_process_dispatcher: bool,
}

impl TestEnv {
    /// Starts everything with the development defaults.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts everything after `customize` has adjusted the configuration.
    pub async fn start_with(customize: impl FnOnce(&mut Options)) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        logs::install();
        let suffix = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let database = format!("hookwire_test_{suffix}");
        let prefix = format!("hwtest.{suffix}");
        let admin_url = admin_database_url();
        let mut admin = AsyncPgConnection::establish(&admin_url)
            .await
            .expect("PostgreSQL is reachable (run `make deps-up`)");
        diesel::sql_query(format!("CREATE DATABASE {database}"))
            .execute(&mut admin)
            .await
            .expect("the test role may create databases");
        let db_url = database_url_for(&admin_url, &database);

        let mut options = Options {
            registry: hookwire_registry::Config::load(None).expect("registry defaults load"),
            publisher: hookwire_publisher::Config::load(None).expect("publisher defaults load"),
            dispatcher: hookwire_dispatcher::Config::load(None).expect("dispatcher defaults load"),
            in_process_dispatcher: true,
        };
        options.registry.profile = Profile::Development;
        options.registry.http.listen = "127.0.0.1:0".into();
        options.registry.http.workers = 1;
        options.registry.database.url = db_url;
        options.registry.database.max_connections = 4;
        options.registry.broker.url = broker_url();
        options.registry.broker.prefix = prefix.clone();
        options.publisher.http.listen = "127.0.0.1:0".into();
        options.publisher.http.workers = 1;
        options.publisher.broker.url = broker_url();
        options.publisher.broker.prefix = prefix.clone();
        options.publisher.registry.resync_interval = Duration::from_secs(30);
        options.dispatcher.http.listen = "127.0.0.1:0".into();
        options.dispatcher.broker.url = broker_url();
        options.dispatcher.broker.prefix = prefix.clone();
        options.dispatcher.delivery.drain_timeout = Duration::from_secs(5);
        // Two delivery shards, so every test also checks that work and retries cross shards.
        options.registry.broker.delivery_shards = TEST_SHARDS;
        options.publisher.broker.delivery_shards = TEST_SHARDS;
        options.dispatcher.broker.delivery_shards = TEST_SHARDS;
        customize(&mut options);

        let secrets = |role| Secrets::from_env(Profile::Development, role).expect("development secrets");
        let registry = hookwire_registry::Application::build(options.registry.clone(), secrets(Role::Registry))
            .await
            .expect("the registry starts");
        let registry_url = format!("http://127.0.0.1:{}", registry.port());
        let mut registry_config = options.registry.clone();
        registry_config.http.listen = format!("127.0.0.1:{}", registry.port());
        let mut services = vec![spawn(|rx| registry.run_until_stopped(until_stopped(rx)))];
        options.publisher.registry.url = registry_url.clone();
        options.dispatcher.registry.url = registry_url.clone();
        let publisher = hookwire_publisher::Application::build(options.publisher, secrets(Role::Publisher))
            .await
            .expect("the publisher starts");
        let publisher_url = format!("http://127.0.0.1:{}", publisher.port());
        services.push(spawn(|rx| publisher.run_until_stopped(until_stopped(rx))));
        let dispatcher_url = if options.in_process_dispatcher {
            let dispatcher = hookwire_dispatcher::Application::build(options.dispatcher, secrets(Role::Dispatcher))
                .await
                .expect("the dispatcher starts");
            let url = format!("http://127.0.0.1:{}", dispatcher.port());
            services.push(spawn(|rx| dispatcher.run_until_stopped(until_stopped(rx))));
            url
        } else {
            String::new()
        };

        let env = Self {
            registry: registry_url,
            publisher: publisher_url,
            dispatcher: dispatcher_url,
            http: Http::default(),
            database,
            prefix,
            registry_config,
            services,
            registry_running: true,
        };
        for url in [&env.registry, &env.publisher, &env.dispatcher] {
            if !url.is_empty() {
                env.wait_ready(url).await;
            }
        }
        env
    }

    pub async fn wait_ready(&self, base: &str) {
        let url = format!("{base}/readyz");
        let ready = eventually(Duration::from_secs(20), || async {
            self.http.get(&url, &[]).await.ok().filter(|r| r.status == 200)
        })
        .await;
        assert!(ready.is_some(), "{url} did not become ready within 20 s");
    }

    /// This installation's database, as a URL that `psql` and `pg_dump` take too (it follows
    /// `HOOKWIRE_TEST_DATABASE_URL`).
    pub fn database_url(&self) -> &str {
        &self.registry_config.database.url
    }

    /// What `query` prints in this installation's database (unaligned, no headers), or None if
    /// PostgreSQL could not be asked (a fault test restarts it).
    pub fn psql(&self, query: &str) -> Option<String> {
        let out = std::process::Command::new("psql")
            .args(["-tAc", query, self.database_url()])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Waits (10 s at most) until a database session whose SQL holds `marker` sleeps in
    /// `pg_sleep`: whatever that transaction does before its sleep (a lock, an update) is done.
    pub async fn wait_until_sleeping(&self, marker: &str) {
        let query = format!(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep' \
             AND pid <> pg_backend_pid() AND query LIKE '%{}%'",
            marker.replace('\'', "''")
        );
        let sleeping = eventually(Duration::from_secs(10), || async {
            (self.psql(&query).as_deref() == Some("1")).then_some(())
        })
        .await;
        assert!(sleeping.is_some(), "no session with `{marker}` reached its pg_sleep");
    }

    pub fn topology(&self) -> Topology {
        self.registry_config.broker.topology()
    }

    /// Stops the registry (gracefully); the other services keep running.
    pub async fn stop_registry(&mut self) {
        assert!(self.registry_running, "the registry is running");
        self.services.remove(0).stop().await;
        self.registry_running = false;
    }

    /// Starts the registry again on its old port.
    pub async fn start_registry(&mut self) {
        assert!(!self.registry_running, "the registry is stopped");
        let secrets = Secrets::from_env(Profile::Development, Role::Registry).expect("development secrets");
        let registry = hookwire_registry::Application::build(self.registry_config.clone(), secrets)
            .await
            .expect("the registry starts again");
        self.services
            .insert(0, spawn(|rx| registry.run_until_stopped(until_stopped(rx))));
        self.registry_running = true;
        let url = self.registry.clone();
        self.wait_ready(&url).await;
    }

    /// Starts another registry replica on the same database and broker; its base URL. It stops
    /// with the others.
    pub async fn add_registry(&mut self) -> String {
        let secrets = Secrets::from_env(Profile::Development, Role::Registry).expect("development secrets");
        let mut config = self.registry_config.clone();
        config.http.listen = "127.0.0.1:0".into();
        let registry = hookwire_registry::Application::build(config, secrets)
            .await
            .expect("a second registry starts");
        let url = format!("http://127.0.0.1:{}", registry.port());
        self.services
            .push(spawn(|rx| registry.run_until_stopped(until_stopped(rx))));
        self.wait_ready(&url).await;
        url
    }

    /// The `hookwire` CLI, pointed at this installation with `key` (the admin and producer
    /// tokens too), its config file in a fresh temporary directory.
    pub fn cli(&self, key: &str) -> std::process::Command {
        let mut cmd = std::process::Command::new(service_binary("hookwire"));
        let home = std::env::temp_dir().join(format!("hookwire-cli-{}", uuid::Uuid::new_v4().simple()));
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOOKWIRE_CONFIG", home.join("config.toml"))
            .env("HOOKWIRE_URL", &self.registry)
            .env("HOOKWIRE_PRODUCER_URL", &self.publisher)
            .env("HOOKWIRE_API_KEY", key)
            .env("HOOKWIRE_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("HOOKWIRE_PRODUCER_TOKEN", PRODUCER_TOKEN);
        cmd
    }

    /// Stops the services and removes the database and the queues.
    pub async fn stop(mut self) {
        for s in self.services.drain(..).rev() {
            s.stop().await;
        }
        cleanup(&self.database, &self.registry_config.broker).await;
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if self.services.is_empty() {
            return;
        }
        // The test failed before `stop`: clean up from a thread with its own runtime.
        let (database, broker) = (self.database.clone(), self.registry_config.broker.clone());
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                rt.block_on(cleanup(&database, &broker));
            }
        })
        .join();
    }
}

async fn cleanup(database: &str, broker: &hookwire_core::config::BrokerConfig) {
    if let Ok(mut admin) = AsyncPgConnection::establish(&admin_database_url()).await {
        let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
            .execute(&mut admin)
            .await;
    }
    delete_topology(broker).await;
}

/// Calls `probe` every 50 ms until it returns `Some`, or `within` passes.
pub async fn eventually<T, F, Fut>(within: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    tokio::time::timeout(within, async {
        loop {
            if let Some(v) = probe().await {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .ok()
}

/// Verifies a received request with the reference Python library (`standardwebhooks`).
pub fn verify_with_reference_library(secret: &str, received: &Received) -> anyhow::Result<()> {
    let input = json!({
        "secret": secret,
        "headers": received.headers,
        "body": String::from_utf8_lossy(&received.body),
    });
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/verify_standardwebhooks.py");
    let mut child = std::process::Command::new("python3")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("running python3")?;
    use std::io::Write as _;
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(input.to_string().as_bytes())?;
    let out = child.wait_with_output()?;
    anyhow::ensure!(
        out.status.success(),
        "the standardwebhooks library refused the signature: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}
