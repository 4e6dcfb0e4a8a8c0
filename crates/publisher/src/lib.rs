#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod amqp_ingest;
pub mod cache;
pub mod config;
pub mod event_keys;
pub mod ingest;
pub mod producers;

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use anyhow::Context as _;
use hookwire_api::events::{Accepted, BatchAccepted};
use hookwire_broker::Link;
use hookwire_core::config::Secrets;
use hookwire_core::topology::Topology;
use hookwire_http::input;
use hookwire_http::registry_client::RegistryClient;
use hookwire_http::{ApiError, FieldError, HttpMetrics};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use secrecy::SecretString;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::cache::Cache;
pub use crate::config::Config;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabels {
    pub event_type: String,
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
        Self {
            registry,
            events_accepted,
            events_rejected,
            events_by_producer,
            tasks_published,
            publish_failures,
            idempotency_claim_seconds,
        }
    }
}

pub struct AppState {
    pub config: Config,
    pub producer_token: SecretString,
    pub cache: Arc<Cache>,
    pub link: Link,
    pub topology: Topology,
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
        let topology = Topology::new(&config.broker.prefix);
        let link = Link::start(
            config.broker.clone(),
            "hookwire-publisher".into(),
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
        let state = web::Data::new(AppState {
            config,
            producer_token: secrets.producer_token,
            cache,
            link,
            topology,
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
                .service(web::resource("/v1/events").route(web::post().to(publish_one)))
                .service(web::resource("/v1/events:batch").route(web::post().to(publish_batch)))
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
    let broker = state.link.is_connected();
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

/// The span of one ingest request, continuing the producer's `traceparent`; every event of the
/// request carries the trace on (its tasks name this span as their parent).
fn ingest_span(
    req: &HttpRequest,
    producer: &producers::Producer,
    maps: &mut [serde_json::Map<String, Value>],
) -> tracing::Span {
    let header = req.headers().get("traceparent").and_then(|v| v.to_str().ok());
    let span = tracing::info_span!("ingest", events = maps.len(), producer = producer.name());
    hookwire_core::trace::continue_from(&span, header);
    let hop = hookwire_core::trace::next_hop(
        &span,
        header.and_then(hookwire_core::trace::TraceParent::parse).as_ref(),
    );
    for map in maps {
        map.entry("traceparent").or_insert_with(|| Value::String(hop.header()));
    }
    span
}

/// Who publishes: the configuration's bootstrap token, or a producer token the registry issued.
fn authorize(state: &AppState, req: &HttpRequest) -> Result<producers::Producer, ApiError> {
    let token = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match token {
        Some(t) if hookwire_core::config::token_matches(&state.producer_token, t) => Ok(producers::Producer::Bootstrap),
        Some(t) => match state.cache.producers.find(t) {
            Some(grant) => Ok(producers::Producer::Token(grant)),
            // Producer tokens come with the routing data: until it is loaded, none is known.
            None if !state.cache.is_loaded() => {
                Err(ApiError::Unavailable("routing data is not loaded yet; retry shortly"))
            }
            None => Err(ApiError::Unauthorized("the producer token is not valid")),
        },
        None => Err(ApiError::Unauthorized(
            "send the producer token as `Authorization: Bearer <token>`",
        )),
    }
}

/// Validates, routes and publishes `events`; the answer of each, in order.
async fn accept(
    state: &AppState,
    producer: &producers::Producer,
    maps: Vec<serde_json::Map<String, Value>>,
    batch: bool,
) -> Result<Vec<Accepted>, ApiError> {
    if !state.cache.is_loaded() {
        return Err(ApiError::Unavailable("routing data is not loaded yet; retry shortly"));
    }
    let routes = state.cache.routes();
    let mut events = Vec::with_capacity(maps.len());
    let mut errors = Vec::new();
    for (i, map) in maps.into_iter().enumerate() {
        let prefix = if batch { format!("events[{i}].") } else { String::new() };
        match ingest::parse(map, &routes, &prefix, ingest::Source::Producer) {
            Ok(accepted) => events.push(accepted),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if !errors.is_empty() {
        state.metrics.events_rejected.inc();
        return Err(ApiError::Validation(errors));
    }
    for (i, a) in events.iter().enumerate() {
        if let Some(why) = producer.refusal(&a.event.event_type, a.event.tenant_id) {
            state.metrics.events_rejected.inc();
            let at = if batch { format!("events[{i}]: ") } else { String::new() };
            return Err(ApiError::forbidden("producer_not_allowed", format!("{at}{why}")));
        }
    }
    let count = events.len() as u64;
    let answers = deliver(state, &routes, events).await?;
    state
        .metrics
        .events_by_producer
        .get_or_create(&ProducerLabels {
            producer: producer.name().to_owned(),
        })
        .inc_by(count);
    Ok(answers)
}

/// Publishes validated events (claiming their idempotency keys first); the answer of each.
pub async fn deliver(
    state: &AppState,
    routes: &cache::Routes,
    events: Vec<ingest::Accepted>,
) -> Result<Vec<Accepted>, ApiError> {
    // Idempotency: claim every key first; duplicates are answered with the first event id and
    // not sent again; keys are settled once the broker has confirmed (or released if not).
    let mut claims = event_keys::claims(&events);
    let started = std::time::Instant::now();
    let outcomes = event_keys::claim(&state.registry, &mut claims).await;
    if !claims.is_empty() {
        state
            .metrics
            .idempotency_claim_seconds
            .observe(started.elapsed().as_secs_f64());
    }
    let outcomes = outcomes?;
    let mut to_send = Vec::with_capacity(events.len());
    let mut answers: Vec<Option<Accepted>> = vec![None; events.len()];
    for (i, mut event) in events.into_iter().enumerate() {
        match outcomes.get(&i) {
            Some(event_keys::Outcome::Duplicate(first)) => {
                answers[i] = Some(Accepted {
                    event_id: *first,
                    matched: 0,
                    duplicate: true,
                });
            }
            Some(event_keys::Outcome::Resume(id)) => {
                event.event.id = *id;
                to_send.push((i, event));
            }
            _ => to_send.push((i, event)),
        }
    }
    let sending: Vec<_> = to_send.iter().map(|(_, a)| (a.event.clone(), a.trace)).collect();
    let prepared = ingest::prepare(&sending, routes, &state.topology, state.config.ingest.task_group_size);
    let published = prepared.publish(&state.link).await;
    let held: Vec<_> = claims
        .iter()
        .filter(|(i, _)| {
            matches!(
                outcomes.get(i),
                Some(event_keys::Outcome::New | event_keys::Outcome::Resume(_))
            )
        })
        .map(|(_, c)| c.clone())
        .collect();
    let settlement = match &published {
        Ok(()) => event_keys::Settlement::Done,
        Err(e) if e.nothing_sent() => event_keys::Settlement::Released,
        Err(_) => event_keys::Settlement::Unconfirmed,
    };
    event_keys::settle(&state.registry, held, settlement).await;
    if let Err(e) = published {
        state.metrics.publish_failures.inc();
        tracing::warn!(error = %e, events = sending.len(), "publish not confirmed; answering 503");
        return Err(ApiError::Unavailable(match e {
            hookwire_broker::PublishError::Blocked => {
                "the message broker is refusing new messages for now (a resource alarm); nothing was accepted, send it again later"
            }
            e if e.nothing_sent() => "the message broker is unavailable; nothing was accepted, send it again",
            _ => "the message broker did not confirm the event; it was not accepted, send it again (it may still be delivered, so it can arrive twice)",
        }));
    }
    for ((i, accepted), matched) in to_send.iter().zip(&prepared.matched) {
        let event = &accepted.event;
        state
            .metrics
            .events_accepted
            .get_or_create(&TypeLabels {
                event_type: event.event_type.clone(),
            })
            .inc();
        state.metrics.tasks_published.inc_by(*matched as u64);
        answers[*i] = Some(Accepted {
            event_id: event.id,
            matched: *matched as u32,
            duplicate: false,
        });
    }
    Ok(answers
        .into_iter()
        .map(|a| a.expect("every event has an answer"))
        .collect())
}

async fn publish_one(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let producer = authorize(&state, &req)?;
    let mut map = input::json_object(payload, state.config.http.max_body_bytes).await?;
    let span = ingest_span(&req, &producer, std::slice::from_mut(&mut map));
    let mut answers = accept(&state, &producer, vec![map], false).instrument(span).await?;
    Ok(HttpResponse::Accepted().json(answers.remove(0)))
}

async fn publish_batch(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let producer = authorize(&state, &req)?;
    let mut map = input::json_object(payload, state.config.http.max_body_bytes).await?;
    let events = map.remove("events");
    if let Some(extra) = map.keys().next() {
        return Err(ApiError::Validation(vec![FieldError::new(
            extra.clone(),
            "is not a known field",
        )]));
    }
    let Some(Value::Array(events)) = events else {
        return Err(ApiError::Validation(vec![FieldError::new(
            "events",
            "is required: a list of events",
        )]));
    };
    let max = state.config.ingest.max_batch;
    if events.is_empty() || events.len() > max {
        return Err(ApiError::Validation(vec![FieldError::new(
            "events",
            format!("must hold between 1 and {max} events"),
        )]));
    }
    let mut maps = Vec::with_capacity(events.len());
    let mut errors = Vec::new();
    for (i, e) in events.into_iter().enumerate() {
        match e {
            Value::Object(m) => maps.push(m),
            _ => errors.push(FieldError::new(format!("events[{i}]"), "must be an object")),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let span = ingest_span(&req, &producer, &mut maps);
    let answers = accept(&state, &producer, maps, true).instrument(span).await?;
    Ok(HttpResponse::Accepted().json(BatchAccepted { results: answers }))
}
