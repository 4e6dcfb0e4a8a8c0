#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod error;
pub mod input;
pub mod openapi;
pub mod registry_client;
pub mod typed;

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tracing::Instrument as _;

pub use error::{ApiError, FieldError};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    /// The matched route pattern (`/v1/webhooks/{id}`), never the raw path: bounded cardinality.
    pub route: String,
    pub status: u16,
}

/// Request counters and latency by route and status, registered in a service's registry.
#[derive(Clone)]
pub struct HttpMetrics {
    pub requests: Family<RouteLabels, Counter>,
    pub latency: Family<RouteLabels, Histogram>,
}

impl HttpMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let requests = Family::<RouteLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0002, 2.0, 16))
        });
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_seconds",
            "HTTP request latency, by method, route and status",
            latency.clone(),
        );
        Self { requests, latency }
    }
}

/// The request's id (`X-Request-Id`), in the request's extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Middleware: takes the caller's `X-Request-Id` (or makes one), runs the request inside a span
/// that carries it, echoes it on the response, and records the request's metrics when the app
/// has `web::Data<HttpMetrics>`.
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.path());
    actix_web::HttpMessage::extensions_mut(&req).insert(RequestId(id.clone()));
    hookwire_core::trace::continue_from(&span, req.headers().get("traceparent").and_then(|v| v.to_str().ok()));
    let metrics = req.app_data::<web::Data<HttpMetrics>>().cloned();
    let method = req.method().to_string();
    let started = Instant::now();
    async move {
        let mut res = next.call(req).await?;
        let status = res.status().as_u16();
        if let Ok(v) = HeaderValue::from_str(&id) {
            res.headers_mut().insert(REQUEST_ID, v);
        }
        let elapsed = started.elapsed();
        if let Some(m) = metrics {
            let labels = RouteLabels {
                method,
                route: res.request().match_pattern().unwrap_or_else(|| "unmatched".into()),
                status,
            };
            m.requests.get_or_create(&labels).inc();
            m.latency.get_or_create(&labels).observe(elapsed.as_secs_f64());
        }
        tracing::debug!(status, elapsed_us = elapsed.as_micros() as u64, "request answered");
        Ok(res)
    }
    .instrument(span)
    .await
}

/// Renders a registry in the Prometheus text format.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry).expect("writing to a String cannot fail");
    out
}

/// A 200 with a registry's metrics.
pub fn metrics_response(registry: &Registry) -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(render(registry))
}

/// Error handler (`actix_web::middleware::ErrorHandlers`) for the empty 405 a resource answers
/// to a method it has no route for: the same answer as problem+json, its `Allow` header kept.
pub fn method_not_allowed<B>(
    res: actix_web::dev::ServiceResponse<B>,
) -> actix_web::Result<actix_web::middleware::ErrorHandlerResponse<B>> {
    use actix_web::ResponseError as _;
    let allow = res.headers().get(actix_web::http::header::ALLOW).cloned();
    let (req, _) = res.into_parts();
    let mut answer = ApiError::MethodNotAllowed.error_response();
    if let Some(allow) = allow {
        answer.headers_mut().insert(actix_web::http::header::ALLOW, allow);
    }
    Ok(actix_web::middleware::ErrorHandlerResponse::Response(
        actix_web::dev::ServiceResponse::new(req, answer).map_into_right_body(),
    ))
}

/// The handler for every path a service does not serve.
pub async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::NotFound("route"))
}
