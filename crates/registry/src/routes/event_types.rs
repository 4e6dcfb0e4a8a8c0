//! `GET /v1/event-types`: the catalog webhooks subscribe from.

use actix_web::{web, HttpRequest, HttpResponse};

use crate::auth::Caller;
use crate::db::models::EventType;
use crate::pagination::{Collection, Paging};
use crate::AppState;
use hookwire_api::page::Paged as _;
use hookwire_http::error::ApiError;
use hookwire_http::typed;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/event-types").route(web::get().to(list)))
        .service(web::resource("/event-types/{value}").route(web::get().to(retrieve)));
}

/// A catalog type as the API shows it.
pub fn event_type_view(t: &EventType) -> hookwire_api::event_types::EventType {
    hookwire_api::event_types::EventType {
        value: t.value.clone(),
        label: t.label.clone(),
        description: t.description.clone(),
        schema: t.schema.clone(),
        archived: t.archived,
        example: t.example.clone(),
    }
}

/// The development profile's catalog (contract §3 Event types).
pub fn development_seed() -> Vec<(String, String)> {
    let mut seed: Vec<(String, String)> = ["series_updated", "clientview_updated", "incremental_update"]
        .iter()
        .map(|v| (v.to_string(), v.replace('_', " ")))
        .collect();
    for entity in ["company", "person", "opportunity", "task"] {
        for action in ["created", "updated", "deleted"] {
            seed.push((format!("{entity}.{action}"), format!("{entity} {action}")));
        }
    }
    seed
}

#[utoipa::path(
    get,
    path = "/v1/event-types",
    tag = "event types",
    summary = "The event-type catalog",
    description = "Archived types (still delivered to the webhooks subscribed to them) are listed only with `include_archived=true`.",
    params(hookwire_api::event_types::EventTypeQuery),
    responses(
        (status = 200, description = "A page of types", body = hookwire_api::Page<hookwire_api::event_types::EventType>),
        crate::openapi::KeyErrors,
    )
)]
pub(crate) async fn list(
    state: web::Data<AppState>,
    _caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let query: hookwire_api::event_types::EventTypeQuery = typed::query(req.query_string())?;
    let paging = Paging::new(query.paging(), 100);
    let include_archived = query.include_archived.unwrap_or(false);
    let mut conn = state.pool.get().await?;
    let (count, rows) = EventType::list(&mut conn, paging.page, include_archived).await?;
    let results = rows.iter().map(event_type_view).collect();
    Ok(HttpResponse::Ok().json(Collection::page(
        &req,
        &state.config.http.public_url,
        paging,
        count,
        results,
    )))
}

#[utoipa::path(
    get,
    path = "/v1/event-types/{value}",
    tag = "event types",
    summary = "One catalog type, with the JSON Schema its events follow",
    params(("value" = String, Path, description = "The type, e.g. `person.created`")),
    responses(
        (status = 200, description = "The type", body = hookwire_api::event_types::EventType),
        (status = 404, description = "No such type", body = hookwire_api::Problem, content_type = "application/problem+json"),
        crate::openapi::KeyErrors,
    )
)]
pub(crate) async fn retrieve(
    state: web::Data<AppState>,
    _caller: Caller,
    value: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = state.pool.get().await?;
    let t = EventType::find(&mut conn, &value)
        .await?
        .ok_or(ApiError::NotFound("event type"))?;
    Ok(HttpResponse::Ok().json(event_type_view(&t)))
}
