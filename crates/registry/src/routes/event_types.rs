//! `GET /v1/event-types`: the catalog webhooks subscribe from.

use actix_web::{web, HttpRequest, HttpResponse};

use crate::auth::Caller;
use crate::db::models::EventType;
use crate::pagination::{Collection, Paging, PARAMS};
use crate::AppState;
use hookwire_http::error::ApiError;
use hookwire_http::input;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/event-types", web::get().to(list))
        .route("/event-types/{value}", web::get().to(retrieve));
}

/// A catalog type as the API shows it.
pub fn event_type_view(t: &EventType) -> serde_json::Value {
    serde_json::json!({
        "value": t.value,
        "label": t.label,
        "description": t.description,
        "schema": t.schema,
        "archived": t.archived,
        "example": t.example,
    })
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
    params(
        ("include_archived" = Option<bool>, Query, description = "List archived types too"),
        ("limit" = Option<i64>, Query,), ("offset" = Option<i64>, Query,), ("page" = Option<i64>, Query,), ("page_size" = Option<i64>, Query,)),
    responses(
        (status = 200, description = "A page of types", body = crate::openapi::EventTypeList),
        crate::openapi::KeyErrors,
    )
)]
pub(crate) async fn list(
    state: web::Data<AppState>,
    _caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let mut allowed = vec!["include_archived"];
    allowed.extend(PARAMS);
    let params = input::query(req.query_string(), &allowed)?;
    let paging = Paging::from_params(&params, 100, 500)?;
    let include_archived = input::parse_param::<bool>(&params, "include_archived", "true or false")?.unwrap_or(false);
    let mut conn = state.pool.get().await?;
    let (count, rows) = EventType::list(&mut conn, paging.page, include_archived).await?;
    let results = rows.iter().map(event_type_view).collect();
    Ok(HttpResponse::Ok().json(Collection::new(
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
        (status = 200, description = "The type", body = crate::openapi::EventType),
        (status = 404, description = "No such type", body = crate::openapi::Problem, content_type = "application/problem+json"),
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
