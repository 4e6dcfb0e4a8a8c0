//! The event-type catalog: `GET /v1/event-types` (the catalog webhooks subscribe from) and
//! `/v1/admin/event-types` (the operator adds, changes and archives types; the same operations
//! back `hookwire-registry admin`).

use actix_web::{web, HttpRequest, HttpResponse};
use diesel_async::AsyncPgConnection;
use hookwire_api as api;
use serde_json::Value;

use super::admin::{every_page, AdminErrors};
use crate::auth::{Admin, Caller};
use crate::db::models::{EventType, EventTypeChanges};
use crate::pagination::{Collection, Paging};
use crate::AppState;
use hookwire_api::page::Paged as _;
use hookwire_http::error::{ApiError, FieldError};
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
        crate::routes::KeyErrors,
    )
)]
pub(crate) async fn list(
    state: web::Data<AppState>,
    _caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    catalog_page(&state, &req).await
}

#[utoipa::path(
    get,
    path = "/v1/admin/event-types",
    tag = "admin",
    summary = "The event-type catalog, for the operator",
    description = "Archived types are listed only with `include_archived=true`.",
    params(hookwire_api::event_types::EventTypeQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of types", body = hookwire_api::Page<hookwire_api::event_types::EventType>),
        super::admin::AdminErrors,
    )
)]
pub(crate) async fn list_for_admin(
    state: web::Data<AppState>,
    _: crate::auth::Admin,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    catalog_page(&state, &req).await
}

/// A page of the catalog, as the query asks.
async fn catalog_page(state: &AppState, req: &HttpRequest) -> Result<HttpResponse, ApiError> {
    let query: hookwire_api::event_types::EventTypeQuery = typed::query(req.query_string())?;
    let paging = Paging::new(query.paging(), 100);
    let include_archived = query.include_archived.unwrap_or(false);
    let mut conn = state.pool.get().await?;
    let (count, rows) = EventType::list(&mut conn, paging.page, include_archived).await?;
    let results = rows.iter().map(event_type_view).collect();
    Ok(HttpResponse::Ok().json(Collection::page(
        req,
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
        crate::routes::KeyErrors,
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

/// The whole catalog (archived types too, when asked), for the CLI.
pub async fn all_event_types(
    conn: &mut AsyncPgConnection,
    include_archived: bool,
) -> Result<Vec<api::event_types::EventType>, ApiError> {
    let rows = every_page(async |page| EventType::list(conn, page, include_archived).await).await?;
    Ok(rows.iter().map(event_type_view).collect())
}

/// A type's JSON Schema must be one (the document says "an object"; this checks it compiles).
fn check_schema(errors: &mut Vec<FieldError>, schema: Option<&Value>) {
    if let Some(Err(e)) = schema.map(jsonschema::validator_for) {
        errors.push(FieldError::new("schema", format!("is not a valid JSON Schema: {e}")));
    }
}

/// Reports on `field` an example that the type's schema refuses (a schema that is not valid is
/// reported by itself).
fn check_example(errors: &mut Vec<FieldError>, field: &str, schema: Option<&Value>, example: Option<&Value>) {
    let (Some(schema), Some(example)) = (schema, example) else {
        return;
    };
    let Ok(validator) = jsonschema::validator_for(schema) else {
        return;
    };
    let violations = hookwire_core::schema::violations(&validator, example, 5);
    if !violations.is_empty() {
        let message = if field == "example" {
            "does not match the type's schema"
        } else {
            "refuses the type's example; send a new `example` with it, or `example: null`"
        };
        errors.push(FieldError::new(field, format!("{message}: {}", violations.join("; "))));
    }
}

/// A type's body read as `T`, or refused with every bad field: what the schema names, and a
/// `schema` that is no JSON Schema where the document's schema took it.
async fn type_body<T>(payload: web::Payload, limit: usize) -> Result<T, ApiError>
where
    T: serde::de::DeserializeOwned + utoipa::ToSchema + 'static,
{
    let body = Value::Object(hookwire_http::input::json_object(payload, limit).await?);
    let mut errors = typed::errors::<T>(&body);
    if errors.is_empty() {
        return typed::read(body);
    }
    if !typed::names(&errors, "schema") {
        check_schema(&mut errors, body.get("schema").filter(|s| !s.is_null()));
    }
    Err(ApiError::Validation(errors))
}

fn reserved(value: &str) -> ApiError {
    ApiError::bad_request(
        "reserved_event_type",
        format!("`{value}` is one of Hookwire's own events; the `hookwire` namespace is reserved"),
    )
}

fn valid(errors: Vec<FieldError>) -> Result<(), ApiError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// Adds a catalog type.
pub async fn event_type(
    conn: &mut AsyncPgConnection,
    by: &crate::audit::By,
    body: api::event_types::EventTypeIn,
) -> Result<EventType, ApiError> {
    let mut errors = Vec::new();
    check_schema(&mut errors, body.schema.as_ref());
    check_example(&mut errors, "example", body.schema.as_ref(), body.example.as_ref());
    valid(errors)?;
    let t = EventType {
        value: body.value,
        label: body.label,
        description: body.description.unwrap_or_default(),
        schema: body.schema,
        created_at: crate::db::now(),
        archived: false,
        example: body.example,
    };
    if !EventType::insert(conn, &t).await? {
        return Err(ApiError::Conflict {
            code: "event_type_exists",
            detail: format!("the event type `{}` exists already", t.value),
        });
    }
    let changes = crate::audit::created(&crate::audit::json(&event_type_view(&t)));
    crate::audit::record(conn, by, type_change(&t, "event_type.created", changes)).await;
    Ok(t)
}

fn type_change(t: &EventType, action: &'static str, changes: serde_json::Value) -> crate::audit::Change<'static> {
    crate::audit::Change {
        tenant_id: None,
        action,
        resource_type: "event_type",
        resource_id: t.value.clone(),
        changes,
    }
}

/// Changes a catalog type (a null `description` empties it, a null `schema` lifts it, a null
/// `example` removes it; the example and schema it ends with must agree). A new schema holds for
/// events published from then on; events accepted before are sent as they are. An archived type
/// leaves the catalog customers see and subscribe from; producers still publish it and the
/// webhooks subscribed to it still get it.
pub async fn update_event_type(
    conn: &mut AsyncPgConnection,
    by: &crate::audit::By,
    value: &str,
    patch: api::event_types::EventTypePatch,
) -> Result<EventType, ApiError> {
    if hookwire_core::patterns::is_reserved(value) {
        return Err(reserved(value));
    }
    let changes = EventTypeChanges {
        archived: patch.archived,
        label: patch.label,
        description: patch.description.map(Option::unwrap_or_default),
        schema: patch.schema,
        example: patch.example,
    };
    let mut errors = Vec::new();
    if let Some(schema) = &changes.schema {
        check_schema(&mut errors, schema.as_ref());
    }
    // The example and the schema the type will have must agree.
    if changes.schema.is_some() || changes.example.is_some() {
        let current = EventType::find(conn, value).await?;
        let schema = changes
            .schema
            .clone()
            .unwrap_or_else(|| current.as_ref().and_then(|t| t.schema.clone()));
        let example = changes
            .example
            .clone()
            .unwrap_or_else(|| current.and_then(|t| t.example));
        let field = if changes.example.is_some() { "example" } else { "schema" };
        check_example(&mut errors, field, schema.as_ref(), example.as_ref());
    }
    valid(errors)?;
    let before = EventType::find(conn, value)
        .await?
        .ok_or(ApiError::NotFound("event type"))?;
    let after = EventType::update(conn, value, &changes)
        .await?
        .ok_or(ApiError::NotFound("event type"))?;
    let action = match (before.archived, after.archived) {
        (false, true) => "event_type.archived",
        (true, false) => "event_type.restored",
        _ => "event_type.updated",
    };
    let changes = crate::audit::diff(
        &crate::audit::json(&event_type_view(&before)),
        &crate::audit::json(&event_type_view(&after)),
    );
    if changes.as_object().is_some_and(|c| !c.is_empty()) {
        crate::audit::record(conn, by, type_change(&after, action, changes)).await;
    }
    Ok(after)
}

#[utoipa::path(
    post,
    path = "/v1/admin/event-types",
    tag = "admin",
    summary = "Add an event type to the catalog",
    request_body = hookwire_api::event_types::EventTypeIn,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = hookwire_api::event_types::EventType),
        (status = 400, description = "Invalid", body = hookwire_api::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not the admin token", body = hookwire_api::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Exists already", body = hookwire_api::Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn create_event_type(
    state: web::Data<AppState>,
    _: Admin,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = type_body(payload, state.config.http.max_body_bytes).await?;
    let mut conn = state.pool.get().await?;
    let created = event_type(&mut conn, &crate::audit::By::admin(&req), body).await?;
    state.notices.event_type(created.catalog_entry()).await;
    Ok(HttpResponse::Created().json(event_type_view(&created)))
}

#[utoipa::path(
    patch,
    path = "/v1/admin/event-types/{value}",
    tag = "admin",
    summary = "Change a catalog type's label, description or schema",
    description = "A new schema (or none, with `schema: null`) holds for events published from then on; events accepted before are sent as they are. Hookwire's own types cannot be changed.",
    params(("value" = String, Path, description = "The type, e.g. `invoice.paid`")),
    request_body = hookwire_api::event_types::EventTypePatch,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The type as changed", body = hookwire_api::event_types::EventType),
        (status = 400, description = "Invalid, empty, or one of Hookwire's own types", body = hookwire_api::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such type", body = hookwire_api::Problem, content_type = "application/problem+json"),
        AdminErrors,
    )
)]
pub(crate) async fn change_event_type(
    state: web::Data<AppState>,
    _: Admin,
    req: HttpRequest,
    value: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = type_body(payload, state.config.http.max_body_bytes).await?;
    let mut conn = state.pool.get().await?;
    let t = update_event_type(&mut conn, &crate::audit::By::admin(&req), &value, body).await?;
    state.notices.event_type(t.catalog_entry()).await;
    Ok(HttpResponse::Ok().json(event_type_view(&t)))
}

#[utoipa::path(
    delete,
    path = "/v1/admin/event-types/{value}",
    tag = "admin",
    summary = "Archive a catalog type",
    description = "The type leaves the catalog customers see (`GET /v1/event-types` lists it only with `include_archived=true`) and no new pattern may rest on it alone; producers still publish it and the webhooks subscribed to it still get it. `PATCH` with `archived: false` brings it back. Archiving again changes nothing.",
    params(("value" = String, Path, description = "The type, e.g. `invoice.paid`")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Archived"),
        (status = 400, description = "One of Hookwire's own types", body = hookwire_api::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such type", body = hookwire_api::Problem, content_type = "application/problem+json"),
        AdminErrors,
    )
)]
pub(crate) async fn archive_event_type(
    state: web::Data<AppState>,
    _: Admin,
    req: HttpRequest,
    value: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = state.pool.get().await?;
    let archive = api::event_types::EventTypePatch {
        archived: Some(true),
        ..Default::default()
    };
    update_event_type(&mut conn, &crate::audit::By::admin(&req), &value, archive).await?;
    Ok(HttpResponse::NoContent().finish())
}
