//! `/v1/admin/…`: tenants, API keys and the event-type catalog, behind the admin token. The same
//! operations back the `hookwire-registry admin …` commands.

use actix_web::{web, HttpResponse};
use chrono::Utc;
use diesel_async::AsyncPgConnection;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::auth::{new_api_key, Admin, SCOPES};
use crate::db::models::{ApiKey, EventType, Tenant};
use crate::AppState;
use hookwire_core::messages::CatalogType;
use hookwire_http::error::ApiError;
use hookwire_http::input::{self, Field, Fields};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/tenants", web::post().to(create_tenant))
        .route("/admin/api-keys", web::post().to(create_api_key))
        .route("/admin/event-types", web::post().to(create_event_type));
}

/// Creates a tenant from a request body `{"name"}`.
pub async fn tenant(conn: &mut AsyncPgConnection, body: Map<String, Value>) -> Result<Value, ApiError> {
    let mut f = Fields::new(body);
    let name = f.string("name", 200);
    let name = match name {
        Field::Set(n) if !n.trim().is_empty() => Some(n),
        _ => {
            f.error("name", "is required");
            None
        }
    };
    f.finish()?;
    let t = Tenant::create(conn, name.as_deref().unwrap_or_default()).await?;
    Ok(json!({"id": t.id, "name": t.name, "created_at": t.created_at}))
}

/// Creates an API key from `{"tenant_id", "scopes"?, "webhooks_enabled"?, "max_webhooks"?}`.
pub async fn api_key(
    conn: &mut AsyncPgConnection,
    body: Map<String, Value>,
    default_max: i32,
) -> Result<Value, ApiError> {
    let mut f = Fields::new(body);
    let tenant_id = match f.string("tenant_id", 64) {
        Field::Set(s) => match s.parse::<Uuid>() {
            Ok(id) => Some(id),
            Err(_) => {
                f.error("tenant_id", "must be a UUID");
                None
            }
        },
        _ => {
            f.error("tenant_id", "is required");
            None
        }
    };
    let scopes = match f.string_list("scopes", 10, 64) {
        Field::Set(list) => {
            if let Some(bad) = list.iter().find(|s| !SCOPES.contains(&s.as_str())) {
                f.error(
                    "scopes",
                    format!("`{bad}` is not a scope; use webhooks:read and/or webhooks:write"),
                );
            }
            list
        }
        _ => SCOPES.iter().map(|s| s.to_string()).collect(),
    };
    let enabled = f.bool("webhooks_enabled").set().unwrap_or(true);
    let max = f
        .int("max_webhooks", 0, 100_000)
        .set()
        .map_or(default_max, |n| n as i32);
    f.finish()?;
    let tenant_id = tenant_id.expect("finish() failed if tenant_id was missing");
    if !Tenant::exists(conn, tenant_id).await? {
        return Err(ApiError::Validation(vec![hookwire_http::error::FieldError::new(
            "tenant_id",
            "no tenant has this id",
        )]));
    }
    let (plaintext, key) = new_api_key(tenant_id, scopes, enabled, max);
    ApiKey::insert(conn, &key).await?;
    Ok(json!({
        "id": key.id,
        "tenant_id": key.tenant_id,
        "key": plaintext,
        "key_prefix": key.key_prefix,
        "scopes": key.scopes,
        "webhooks_enabled": key.webhooks_enabled,
        "max_webhooks": key.max_webhooks,
        "created_at": key.created_at,
    }))
}

/// Adds a catalog type from `{"value", "label", "description"?, "schema"?}`.
pub async fn event_type(conn: &mut AsyncPgConnection, body: Map<String, Value>) -> Result<Value, ApiError> {
    let mut f = Fields::new(body);
    let value = f.string("value", 128).set();
    let label = f.string("label", 200).set();
    let description = f.string("description", 2000).set().unwrap_or_default();
    let schema = f.any("schema").set();
    match &value {
        None => f.error("value", "is required"),
        Some(v) => {
            if let Err(e) = hookwire_core::patterns::validate_type(v) {
                f.error("value", e.to_string());
            } else if hookwire_core::patterns::is_reserved(v) {
                f.error(
                    "value",
                    "the `hookwire` namespace is reserved for Hookwire's own events",
                );
            }
        }
    }
    if label.as_deref().is_none_or(|l| l.trim().is_empty()) {
        f.error("label", "is required");
    }
    if let Some(s) = &schema {
        if !s.is_object() && !s.is_boolean() {
            f.error("schema", "must be a JSON Schema (an object)");
        } else if let Err(e) = jsonschema::validator_for(s) {
            f.error("schema", format!("is not a valid JSON Schema: {e}"));
        }
    }
    f.finish()?;
    let t = EventType {
        value: value.expect("checked above"),
        label: label.expect("checked above"),
        description,
        schema,
        created_at: Utc::now(),
    };
    if !EventType::insert(conn, &t).await? {
        return Err(ApiError::Conflict {
            code: "event_type_exists",
            detail: format!("the event type `{}` exists already", t.value),
        });
    }
    Ok(json!({"value": t.value, "label": t.label, "description": t.description, "schema": t.schema}))
}

#[utoipa::path(
    post,
    path = "/v1/admin/tenants",
    tag = "admin",
    summary = "Create a tenant",
    request_body = crate::openapi::TenantInput,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = crate::openapi::Tenant),
        (status = 400, description = "Invalid", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not the admin token", body = crate::openapi::Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn create_tenant(
    state: web::Data<AppState>,
    _: Admin,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = input::json_object(payload, state.config.http.max_body_bytes).await?;
    let mut conn = state.pool.get().await?;
    Ok(HttpResponse::Created().json(tenant(&mut conn, body).await?))
}

#[utoipa::path(
    post,
    path = "/v1/admin/api-keys",
    tag = "admin",
    summary = "Create an API key",
    request_body = crate::openapi::ApiKeyInput,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created; the key is shown once", body = crate::openapi::ApiKeyCreated),
        (status = 400, description = "Invalid", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not the admin token", body = crate::openapi::Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn create_api_key(
    state: web::Data<AppState>,
    _: Admin,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = input::json_object(payload, state.config.http.max_body_bytes).await?;
    let mut conn = state.pool.get().await?;
    let key = api_key(&mut conn, body, state.config.webhooks.default_max_webhooks).await?;
    Ok(HttpResponse::Created().json(key))
}

#[utoipa::path(
    post,
    path = "/v1/admin/event-types",
    tag = "admin",
    summary = "Add an event type to the catalog",
    request_body = crate::openapi::EventTypeInput,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = crate::openapi::EventType),
        (status = 400, description = "Invalid", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not the admin token", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Exists already", body = crate::openapi::Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn create_event_type(
    state: web::Data<AppState>,
    _: Admin,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = input::json_object(payload, state.config.http.max_body_bytes).await?;
    let mut conn = state.pool.get().await?;
    let created = event_type(&mut conn, body).await?;
    state
        .notices
        .event_type(CatalogType {
            value: created["value"].as_str().unwrap_or_default().to_owned(),
            schema: Some(created["schema"].clone()).filter(|s| !s.is_null()),
        })
        .await;
    Ok(HttpResponse::Created().json(created))
}
