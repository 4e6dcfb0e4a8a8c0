//! `GET /v1/event-types`: the catalog webhooks subscribe from.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use crate::auth::Caller;
use crate::db::models::EventType;
use crate::pagination::{Collection, Paging, PARAMS};
use crate::AppState;
use hookwire_http::error::ApiError;
use hookwire_http::input;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/event-types", web::get().to(list));
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
    params(("limit" = Option<i64>, Query,), ("offset" = Option<i64>, Query,), ("page" = Option<i64>, Query,), ("page_size" = Option<i64>, Query,)),
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
    let params = input::query(req.query_string(), &PARAMS)?;
    let paging = Paging::from_params(&params, 100, 500)?;
    let mut conn = state.pool.get().await?;
    let (count, rows) = EventType::list(&mut conn, paging.page).await?;
    let results = rows
        .into_iter()
        .map(|t| json!({"value": t.value, "label": t.label, "description": t.description}))
        .collect();
    Ok(HttpResponse::Ok().json(Collection::new(
        &req,
        &state.config.http.public_url,
        paging,
        count,
        results,
    )))
}
