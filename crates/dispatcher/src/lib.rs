#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod acks;
pub mod client;
pub mod config;
pub mod metrics;
pub mod relay;
pub mod webhooks;
pub mod worker;

use std::future::Future;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::Context as _;
use hookwire_core::config::Secrets;
use serde_json::json;
use tokio_util::sync::CancellationToken;

pub use crate::config::Config;
use crate::metrics::Metrics;
use crate::webhooks::Webhooks;
use crate::worker::Worker;

struct Health {
    metrics: Arc<Metrics>,
    consuming: Arc<AtomicBool>,
}

/// Holds a flag up while it lives: `consuming` is true exactly while a task session runs.
struct Flag(Arc<AtomicBool>);

impl Flag {
    fn raise(flag: Arc<AtomicBool>) -> Self {
        flag.store(true, Ordering::Release);
        Self(flag)
    }
}

impl Drop for Flag {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

pub struct Application {
    server: actix_web::dev::Server,
    port: u16,
    cancel: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Application {
    pub async fn build(config: Config, secrets: Secrets) -> anyhow::Result<Self> {
        config.broker.check(config.profile)?;
        let cancel = CancellationToken::new();
        let metrics = Arc::new(Metrics::default());
        let webhooks = Arc::new(Webhooks::default());
        let consuming = Arc::new(AtomicBool::new(false));
        let worker = Arc::new(Worker::new(
            config.clone(),
            secrets.keyring,
            metrics.clone(),
            webhooks.clone(),
        ));
        let registry = hookwire_http::registry_client::RegistryClient::new(
            &config.registry.url,
            secrets.internal_token,
            config.registry.request_timeout,
        );
        let follow = tokio::spawn(hookwire_broker::follow::follow(
            config.broker.clone(),
            "hookwire-dispatcher",
            config.registry.resync_interval,
            webhooks.clone(),
            registry.routing_reader(),
            cancel.clone(),
        ));

        let work = {
            let (worker, consuming) = (worker.clone(), consuming.clone());
            tokio::spawn(hookwire_broker::supervise(
                config.broker.clone(),
                "hookwire-dispatcher tasks".into(),
                cancel.clone(),
                move |conn, cancel| {
                    let (worker, consuming) = (worker.clone(), consuming.clone());
                    async move {
                        // Not ready from the moment the session ends, or is dropped with its connection.
                        let _consuming = Flag::raise(consuming);
                        worker.session(conn, cancel).await
                    }
                },
            ))
        };
        let listener =
            TcpListener::bind(&config.http.listen).with_context(|| format!("binding {}", config.http.listen))?;
        let port = listener.local_addr()?.port();
        let health = web::Data::new(Health { metrics, consuming });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(health.clone())
                .route(
                    "/healthz",
                    web::get().to(|| async { HttpResponse::Ok().json(json!({"status": "ok"})) }),
                )
                .route("/readyz", web::get().to(readyz))
                .route("/metrics", web::get().to(metrics_endpoint))
                .default_service(web::to(hookwire_http::not_found))
        })
        .workers(1)
        // Answers leave at once, never held back by Nagle for an earlier segment's ACK.
        .tcp_nodelay(true)
        .disable_signals()
        .listen(listener)?
        .run();
        Ok(Self {
            server,
            port,
            cancel,
            tasks: vec![work, follow],
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs until `shutdown`: then stops consuming, lets in-flight attempts finish (up to
    /// `delivery.drain_timeout`), and exits; anything unfinished returns to the queue.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let server = tokio::spawn(self.server);
        shutdown.await;
        self.cancel.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
        handle.stop(true).await;
        server.await.context("server task")?.context("server")?;
        Ok(())
    }
}

async fn readyz(health: web::Data<Health>) -> HttpResponse {
    let consuming = health.consuming.load(Ordering::Acquire);
    let body = json!({"broker": consuming});
    if consuming {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

async fn metrics_endpoint(health: web::Data<Health>) -> HttpResponse {
    hookwire_http::metrics_response(&health.metrics.registry)
}
