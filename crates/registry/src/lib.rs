#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod audit;
pub mod auth;
pub mod batches;
pub mod config;
pub mod console;
pub mod db;
pub mod delivery_tasks;
pub mod idempotent_requests;
pub mod ledger;
pub mod lines;
pub mod metrics;
pub mod notices;
pub mod openapi;
pub mod operational;
pub mod pagination;
pub mod ratelimit;
pub mod retention;
pub mod routes;

use actix_web::{web, App, HttpServer};
use anyhow::Context as _;
use chrono::Utc;
use hookwire_broker::Link;
use hookwire_core::config::{Profile, Secrets};
use hookwire_core::topology::Topology;
use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub use crate::config::Config;
use crate::db::models::EventType;
use crate::db::DbPool;
use crate::metrics::Metrics;
use crate::notices::Notices;

/// What every handler can reach.
pub struct AppState {
    pub config: Config,
    pub secrets: Secrets,
    pub pool: DbPool,
    pub link: Link,
    pub notices: Notices,
    pub metrics: Arc<Metrics>,
    /// Exchange and queue names of this installation.
    pub topology: Topology,
    pub console: console::Console,
}

/// A built registry: listening, consuming, not yet serving until `run_until_stopped`.
pub struct Application {
    server: actix_web::dev::Server,
    port: u16,
    cancel: CancellationToken,
    ledger: tokio::task::JoinHandle<()>,
    /// The consumers of the lines queue and of the line ends queue.
    lines: [tokio::task::JoinHandle<()>; 2],
    retention: tokio::task::JoinHandle<()>,
    listen_sweep: tokio::task::JoinHandle<()>,
}

/// Seeds the development catalog (contract §3 Event types). Existing types are left alone.
pub async fn seed_event_types(pool: &DbPool) -> anyhow::Result<()> {
    let mut conn = pool.get().await.context("connecting to seed event types")?;
    for (value, label) in routes::event_types::development_seed() {
        let t = EventType {
            value,
            label,
            description: String::new(),
            schema: None,
            created_at: Utc::now(),
            archived: false,
            example: None,
        };
        EventType::insert(&mut conn, &t).await?;
    }
    Ok(())
}

impl Application {
    pub async fn build(config: Config, secrets: Secrets) -> anyhow::Result<Self> {
        config.broker.check(config.profile)?;
        config.database.check(config.profile)?;
        let pool = db::pool(&config.database)?;
        if config.profile == Profile::Development {
            db::migrate(&config.database.url).await?;
            seed_event_types(&pool).await?;
        }
        let cancel = CancellationToken::new();
        let topology = config.broker.topology();
        let link = Link::start(
            config.broker.clone(),
            "hookwire-registry notices".into(),
            topology.clone(),
            cancel.clone(),
        );
        let mut metrics = Metrics::default();
        let http_metrics = web::Data::new(hookwire_http::HttpMetrics::register(&mut metrics.registry));
        let metrics = Arc::new(metrics);
        let notices = Notices::new(link.clone(), &topology, config.webhooks.default_retry_policy);
        let ledger = tokio::spawn(ledger::run(
            config.clone(),
            pool.clone(),
            metrics.clone(),
            notices.clone(),
            operational::Operational::new(link.clone(), &topology),
            cancel.clone(),
        ));
        let release = lines::Release::new(link.clone(), &topology, config.lines.bulk_lane_after);
        let lines = [lines::Queue::Lines, lines::Queue::Ends].map(|queue| {
            tokio::spawn(lines::run(
                queue,
                config.clone(),
                pool.clone(),
                metrics.clone(),
                release.clone(),
                cancel.clone(),
            ))
        });
        let retention = tokio::spawn(retention::run(
            config.retention.clone(),
            pool.clone(),
            metrics.clone(),
            cancel.clone(),
        ));
        let listen_sweep = tokio::spawn(routes::listen::sweep(pool.clone(), notices.clone(), cancel.clone()));
        let listener =
            TcpListener::bind(&config.http.listen).with_context(|| format!("binding {}", config.http.listen))?;
        let port = listener.local_addr()?.port();
        let workers = config.http.workers;
        let console = console::Console::new(&config.console)?;
        let state = web::Data::new(AppState {
            console,
            notices,
            config,
            secrets,
            pool,
            link,
            metrics,
            topology,
        });
        let mut server =
            HttpServer::new(move || {
                App::new()
                    .app_data(state.clone())
                    .app_data(http_metrics.clone())
                    .app_data(web::JsonConfig::default().error_handler(|e, _| {
                        hookwire_http::ApiError::bad_request("malformed_json", e.to_string()).into()
                    }))
                    .wrap(actix_web::middleware::ErrorHandlers::new().handler(
                        actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
                        hookwire_http::method_not_allowed,
                    ))
                    .wrap(actix_web::middleware::from_fn(idempotent_requests::middleware))
                    .wrap(actix_web::middleware::from_fn(ratelimit_headers))
                    .wrap(actix_web::middleware::from_fn(hookwire_http::request_context))
                    // Before the routes' `/v1` scope, which would take its path.
                    .configure(openapi::configure)
                    .configure(console::configure)
                    .configure(routes::configure)
                    .default_service(web::to(hookwire_http::not_found))
            })
            // Answers leave at once, never held back by Nagle for an earlier segment's ACK.
            .tcp_nodelay(true)
            .disable_signals()
            .listen(listener)?;
        if workers > 0 {
            server = server.workers(workers);
        }
        Ok(Self {
            server: server.run(),
            port,
            cancel,
            ledger,
            lines,
            retention,
            listen_sweep,
        })
    }

    /// The port the API listens on (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown` completes, then stops taking requests, finishes those in flight,
    /// and stops the ledger consumer (its unacknowledged messages return to the queue).
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let server = tokio::spawn(self.server);
        shutdown.await;
        handle.stop(true).await;
        self.cancel.cancel();
        let _ = self.ledger.await;
        for consumer in self.lines {
            let _ = consumer.await;
        }
        let _ = self.retention.await;
        let _ = self.listen_sweep.await;
        server.await.context("server task")?.context("server")?;
        Ok(())
    }
}

/// Puts the caller's `RateLimit-*` headers on every response to an API-key request.
async fn ratelimit_headers(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    use actix_web::http::header::{HeaderName, HeaderValue};
    use actix_web::HttpMessage as _;
    let mut res = next.call(req).await?;
    let decision = res.request().extensions().get::<ratelimit::Decision>().copied();
    if let Some(d) = decision {
        let headers = res.headers_mut();
        for (name, value) in [
            ("ratelimit-limit", d.limit as u64),
            ("ratelimit-remaining", u64::from(d.remaining)),
            ("ratelimit-reset", d.reset),
        ] {
            headers.insert(HeaderName::from_static(name), HeaderValue::from(value));
        }
    }
    Ok(res)
}
