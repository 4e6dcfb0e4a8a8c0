#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod amqp_ingest;
pub mod cache;
pub mod config;
pub mod event_keys;
pub mod ingest;
pub mod openapi;
pub mod producers;
mod routes;

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;

use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::Context as _;
use hookwire_broker::Link;
use hookwire_core::config::Secrets;
use hookwire_core::lanes::Lanes;
use hookwire_core::topology::Topology;
use hookwire_http::registry_client::RegistryClient;
use hookwire_http::HttpMetrics;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use secrecy::SecretString;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::cache::Cache;
pub use crate::config::Config;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabels {
    pub event_type: String,
}

/// The link a request was published on: `standard` (single events in the standard lane) or
/// `bulk` (batches, and requests with deliveries in the bulk lane).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LinkLabels {
    pub link: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProducerLabels {
    pub producer: String,
}

pub struct Metrics {
    pub registry: Registry,
    /// By event type: bounded by the catalog.
    pub events_accepted: Family<TypeLabels, Counter>,
    pub events_rejected: Counter,
    /// By producer token (its name; `bootstrap` for the configuration's token).
    pub events_by_producer: Family<ProducerLabels, Counter>,
    pub tasks_published: Counter,
    pub publish_failures: Counter,
    /// Claiming a request's idempotency keys: the round trip to the registry and its database,
    /// which a request with keys waits for before it publishes.
    pub idempotency_claim_seconds: Histogram,
    /// From handing a request's messages to the broker to its last confirm, by link: the
    /// broker's part of a producer's wait.
    pub publish_confirm_seconds: Family<LinkLabels, Histogram>,
    /// Publishers running, this one included, as last counted (`lanes`).
    pub replicas: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("hookwire_publisher");
        let events_accepted = Family::<TypeLabels, Counter>::default();
        let (events_rejected, tasks_published, publish_failures) =
            (Counter::default(), Counter::default(), Counter::default());
        registry.register(
            "events_accepted",
            "Events accepted (answered 202), by type",
            events_accepted.clone(),
        );
        registry.register("events_rejected", "Events refused as invalid", events_rejected.clone());
        let events_by_producer = Family::<ProducerLabels, Counter>::default();
        registry.register(
            "events_by_producer",
            "Events accepted, by producer token",
            events_by_producer.clone(),
        );
        registry.register(
            "tasks_published",
            "Delivery tasks published and confirmed",
            tasks_published.clone(),
        );
        registry.register(
            "publish_failures",
            "Requests answered 503 because the broker did not confirm",
            publish_failures.clone(),
        );
        let idempotency_claim_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        registry.register(
            "idempotency_claim_seconds",
            "Claiming a request's idempotency keys in the registry (requests with keys only)",
            idempotency_claim_seconds.clone(),
        );
        let publish_confirm_seconds = Family::<LinkLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 14))
        });
        registry.register(
            "publish_confirm_seconds",
            "From publishing a request's messages to the broker's last confirm, by link",
            publish_confirm_seconds.clone(),
        );
        let replicas = Gauge::default();
        registry.register(
            "replicas",
            "Publishers consuming the ingest queue, this one included, as last counted: each takes this share of ingest.bulk_lane_after",
            replicas.clone(),
        );
        Self {
            registry,
            replicas,
            events_accepted,
            events_rejected,
            events_by_producer,
            tasks_published,
            publish_failures,
            idempotency_claim_seconds,
            publish_confirm_seconds,
        }
    }
}

pub struct AppState {
    pub config: Config,
    pub producer_token: SecretString,
    pub cache: Arc<Cache>,
    pub link: Link,
    /// A link of its own for batches and requests with deliveries in the bulk lane, so that a
    /// flood's publishes and confirms do not queue ahead of single events' on one channel.
    pub bulk_link: Link,
    pub topology: Topology,
    /// Which lane each tenant's deliveries take.
    pub lanes: Arc<Lanes>,
    pub metrics: Metrics,
    pub registry: RegistryClient,
}

pub struct Application {
    server: actix_web::dev::Server,
    port: u16,
    cancel: CancellationToken,
    sync: tokio::task::JoinHandle<()>,
    ingest: tokio::task::JoinHandle<()>,
}

impl Application {
    pub async fn build(config: Config, secrets: Secrets) -> anyhow::Result<Self> {
        config.broker.check(config.profile)?;
        let cancel = CancellationToken::new();
        let topology = config.broker.topology();
        let link = Link::start(
            config.broker.clone(),
            "hookwire-publisher".into(),
            topology.clone(),
            cancel.clone(),
        );
        let bulk_link = Link::start(
            config.broker.clone(),
            "hookwire-publisher bulk".into(),
            topology.clone(),
            cancel.clone(),
        );
        let cache = Arc::new(Cache::default());
        let registry = RegistryClient::new(
            &config.registry.url,
            secrets.internal_token,
            config.registry.request_timeout,
        );
        let sync = tokio::spawn(cache::sync(
            cache.clone(),
            config.clone(),
            registry.clone(),
            cancel.clone(),
        ));
        let listener =
            TcpListener::bind(&config.http.listen).with_context(|| format!("binding {}", config.http.listen))?;
        let port = listener.local_addr()?.port();
        let workers = config.http.workers;
        let mut metrics = Metrics::default();
        let http_metrics = web::Data::new(HttpMetrics::register(&mut metrics.registry));
        let lanes = Arc::new(Lanes::new(config.ingest.bulk_lane_after));
        let state = web::Data::new(AppState {
            config,
            producer_token: secrets.producer_token,
            cache,
            link,
            bulk_link,
            topology,
            lanes,
            metrics,
            registry,
        });
        let ingest = tokio::spawn(amqp_ingest::run(state.clone(), cancel.clone()));
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(http_metrics.clone())
                .wrap(actix_web::middleware::ErrorHandlers::new().handler(
                    actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
                    hookwire_http::method_not_allowed,
                ))
                .wrap(actix_web::middleware::from_fn(hookwire_http::request_context))
                .service(web::resource("/healthz").route(web::get().to(healthz)))
                .service(web::resource("/readyz").route(web::get().to(readyz)))
                .service(web::resource("/metrics").route(web::get().to(metrics_endpoint)))
                .configure(routes::configure)
                .configure(openapi::configure)
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
            sync,
            ingest,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown`; requests in flight finish (and get their confirms) first.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let server = tokio::spawn(self.server);
        shutdown.await;
        handle.stop(true).await;
        self.cancel.cancel();
        let _ = self.sync.await;
        let _ = self.ingest.await;
        server.await.context("server task")?.context("server")?;
        Ok(())
    }
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let broker = state.link.is_connected() && state.bulk_link.is_connected();
    let routing = state.cache.is_loaded();
    let body = json!({"broker": broker, "routing_loaded": routing, "subscriptions": state.cache.routes().len()});
    if broker && routing {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

async fn metrics_endpoint(state: web::Data<AppState>) -> HttpResponse {
    hookwire_http::metrics_response(&state.metrics.registry)
}
