#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod auth;
pub mod config;
pub mod db;
pub mod error;
pub mod input;
pub mod ledger;
pub mod metrics;
pub mod notices;
pub mod pagination;
pub mod routes;

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Instant;

use actix_web::dev::Service as _;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{web, App, HttpServer};
use anyhow::Context as _;
use chrono::Utc;
use hookwire_broker::Link;
use hookwire_core::config::{Profile, Secrets};
use hookwire_core::topology::Topology;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

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
}

/// A built registry: listening, consuming, not yet serving until `run_until_stopped`.
pub struct Application {
    server: actix_web::dev::Server,
    port: u16,
    cancel: CancellationToken,
    ledger: tokio::task::JoinHandle<()>,
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
        };
        EventType::insert(&mut conn, &t).await?;
    }
    Ok(())
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

impl Application {
    pub async fn build(config: Config, secrets: Secrets) -> anyhow::Result<Self> {
        let pool = db::pool(&config.database)?;
        if config.profile == Profile::Development {
            db::migrate(&config.database.url).await?;
            seed_event_types(&pool).await?;
        }
        let cancel = CancellationToken::new();
        let topology = Topology::new(&config.broker.prefix);
        let link = Link::start(
            config.broker.clone(),
            "hookwire-registry notices".into(),
            topology.clone(),
            cancel.clone(),
        );
        let metrics = Arc::new(Metrics::default());
        let ledger = tokio::spawn(ledger::run(config.clone(), pool.clone(), metrics.clone(), cancel.clone()));
        let listener = TcpListener::bind(&config.http.listen)
            .with_context(|| format!("binding {}", config.http.listen))?;
        let port = listener.local_addr()?.port();
        let workers = config.http.workers;
        let state = web::Data::new(AppState {
            notices: Notices::new(link.clone(), &topology, config.webhooks.default_retry_policy),
            config,
            secrets,
            pool,
            link,
            metrics,
        });
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .wrap_fn(|req, srv| {
                    let id = req
                        .headers()
                        .get(&REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .filter(|v| !v.is_empty() && v.len() <= 128)
                        .map(str::to_owned)
                        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
                    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.path());
                    let metrics = req
                        .app_data::<web::Data<AppState>>()
                        .map(|s| s.metrics.clone());
                    let method = req.method().to_string();
                    let started = Instant::now();
                    let fut = srv.call(req);
                    async move {
                        let mut res = fut.await?;
                        let status = res.status().as_u16();
                        if let Ok(v) = HeaderValue::from_str(&id) {
                            res.headers_mut().insert(REQUEST_ID, v);
                        }
                        if let Some(m) = metrics {
                            m.http_requests
                                .get_or_create(&metrics::RequestLabels { method, status })
                                .inc();
                            m.http_request_seconds.observe(started.elapsed().as_secs_f64());
                        }
                        tracing::info!(status, elapsed_ms = started.elapsed().as_millis() as u64, "request answered");
                        Ok(res)
                    }
                    .instrument(span)
                })
                .configure(routes::configure)
                .default_service(web::to(routes::not_found))
        })
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
        server.await.context("server task")?.context("server")?;
        Ok(())
    }
}
