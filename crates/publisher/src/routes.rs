//! Event ingest over HTTP: `POST /v1/events` and `POST /v1/events:batch`, with the producer's
//! token, and what both ingest paths share once events are read (`deliver`).

use actix_web::{web, HttpRequest, HttpResponse};
use hookwire_api::events::{Accepted, BatchAccepted, NewEvent, NewEventBatch};
use hookwire_http::{input, typed, ApiError, FieldError};
use serde_json::Value;
use tracing::Instrument as _;

use crate::{cache, event_keys, ingest, producers, AppState, ProducerLabels, TypeLabels};

/// What both ingest operations may answer besides 202.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // It documents; `ApiError` builds the answers.
pub enum IngestErrors {
    /// The body is not a JSON object, or an event is invalid (every bad field named)
    #[response(status = 400, content_type = "application/problem+json")]
    Invalid(hookwire_api::Problem),
    /// No or unknown producer token
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(hookwire_api::Problem),
    /// The producer token does not grant an event's type or tenant (`producer_not_allowed`)
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(hookwire_api::Problem),
    /// The body is over `http.max_body_bytes`
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(hookwire_api::Problem),
    /// Routing data not loaded yet, or the broker unavailable or not confirming: nothing was accepted; send it again
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(hookwire_api::Problem),
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/v1/events").route(web::post().to(publish_one)))
        .service(web::resource("/v1/events:batch").route(web::post().to(publish_batch)));
}

/// A batch's events: at most `max`, each as its schema says.
fn read_batch(body: &[u8], max: usize) -> Result<Vec<NewEvent>, ApiError> {
    let body = input::object_of(body)?;
    // The configured ceiling first: no schema check of a batch that is refused anyway.
    if body
        .get("events")
        .and_then(Value::as_array)
        .is_some_and(|e| e.len() > max)
    {
        return Err(ApiError::Validation(vec![FieldError::new(
            "events",
            format!("must hold at most {max} events"),
        )]));
    }
    let NewEventBatch { events } = typed::from_value(Value::Object(body))?;
    Ok(events)
}

/// Runs CPU-heavy work of a request on the blocking pool.
async fn off_worker<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("ingest work failed: {e}")))?
}

/// The span of one ingest request, continuing the producer's `traceparent`; every event of the
/// request carries the trace on (its tasks name this span as their parent).
fn ingest_span(req: &HttpRequest, producer: &producers::Producer, events: &mut [NewEvent]) -> tracing::Span {
    let header = req.headers().get("traceparent").and_then(|v| v.to_str().ok());
    let span = tracing::info_span!("ingest", events = events.len(), producer = producer.name());
    hookwire_core::trace::continue_from(&span, header);
    let hop = hookwire_core::trace::next_hop(
        &span,
        header.and_then(hookwire_core::trace::TraceParent::parse).as_ref(),
    );
    for event in events {
        event.traceparent.get_or_insert_with(|| hop.header());
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
    new_events: Vec<NewEvent>,
    batch: bool,
) -> Result<Vec<Accepted>, ApiError> {
    if !state.cache.is_loaded() {
        return Err(ApiError::Unavailable("routing data is not loaded yet; retry shortly"));
    }
    let routes = state.cache.routes();
    let check = {
        let routes = routes.clone();
        move || -> Result<Vec<ingest::Accepted>, ApiError> {
            let mut events = Vec::with_capacity(new_events.len());
            let mut errors = Vec::new();
            for (i, new) in new_events.into_iter().enumerate() {
                let prefix = if batch { format!("events[{i}].") } else { String::new() };
                match ingest::check(new, &routes, &prefix, ingest::Source::Producer) {
                    Ok(accepted) => events.push(accepted),
                    Err(mut e) => errors.append(&mut e),
                }
            }
            if errors.is_empty() {
                Ok(events)
            } else {
                Err(ApiError::Validation(errors))
            }
        }
    };
    let checked = if batch { off_worker(check).await } else { check() };
    let events = checked.inspect_err(|e| {
        if matches!(e, ApiError::Validation(_)) {
            state.metrics.events_rejected.inc();
        }
    })?;
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
    routes: &std::sync::Arc<cache::Routes>,
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
    let group_size = state.config.ingest.task_group_size;
    let (prepared, sending) = if sending.len() > 1 {
        // Routing and serializing many events is CPU work, as reading them is (`publish_batch`).
        let (routes, topology, lanes) = (routes.clone(), state.topology.clone(), state.lanes.clone());
        off_worker(move || {
            Ok((
                ingest::prepare(&sending, &routes, &topology, &lanes, group_size),
                sending,
            ))
        })
        .await?
    } else {
        (
            ingest::prepare(&sending, routes, &state.topology, &state.lanes, group_size),
            sending,
        )
    };
    // Batches and the bulk lane's requests publish on a link of their own, so their large
    // messages do not queue ahead of single events' on one channel.
    let (link, name) = if prepared.in_bulk || sending.len() > 1 {
        (&state.bulk_link, "bulk")
    } else {
        (&state.link, "standard")
    };
    let publishing = std::time::Instant::now();
    let published = prepared.publish(link).await;
    state
        .metrics
        .publish_confirm_seconds
        .get_or_create(&crate::LinkLabels { link: name })
        .observe(publishing.elapsed().as_secs_f64());
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

#[utoipa::path(
    post,
    path = "/v1/events",
    tag = "events",
    summary = "Publish an event",
    description = "Validates the event, matches it against the subscriptions and answers once the broker has confirmed a delivery task for every matching webhook. A 202 means it will be delivered.",
    request_body = NewEvent,
    responses(
        (status = 202, description = "Accepted: delivered to every matching webhook from now on", body = Accepted),
        IngestErrors,
    )
)]
pub(crate) async fn publish_one(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let producer = authorize(&state, &req)?;
    let mut event: NewEvent = typed::body(payload, state.config.http.max_body_bytes).await?;
    let span = ingest_span(&req, &producer, std::slice::from_mut(&mut event));
    let mut answers = accept(&state, &producer, vec![event], false).instrument(span).await?;
    Ok(HttpResponse::Accepted().json(answers.remove(0)))
}

#[utoipa::path(
    post,
    path = "/v1/events:batch",
    tag = "events",
    summary = "Publish events together",
    description = "All or nothing: one invalid event refuses the whole batch, naming it (`events[3].type`).",
    request_body = NewEventBatch,
    responses(
        (status = 202, description = "Every event accepted; the answers in order", body = BatchAccepted),
        IngestErrors,
    )
)]
pub(crate) async fn publish_batch(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let producer = authorize(&state, &req)?;
    let body = input::bytes(payload, state.config.http.max_body_bytes).await?;
    let max = state.config.ingest.max_batch;
    // Reading a batch takes milliseconds of CPU: off the HTTP worker thread, so the requests it
    // serves meanwhile (another tenant's single event) are not held up behind it.
    let mut events = off_worker(move || read_batch(&body, max)).await?;
    let span = ingest_span(&req, &producer, &mut events);
    let answers = accept(&state, &producer, events, true).instrument(span).await?;
    Ok(HttpResponse::Accepted().json(BatchAccepted { results: answers }))
}
