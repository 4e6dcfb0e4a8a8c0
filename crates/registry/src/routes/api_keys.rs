//! API keys (`/v1/admin/api-keys`): how a tenant's customers call the API, behind the admin
//! token. The same operations back `hookwire-registry admin`.

use actix_web::{web, HttpRequest, HttpResponse};
use diesel_async::AsyncPgConnection;
use hookwire_api as api;
use uuid::Uuid;

use super::admin::{every_page, path_id, AdminErrors};
use crate::audit::{self, By, Change};
use crate::auth::{new_api_key, Admin};
use crate::db::models::{ApiKey, ApiKeyChanges, Tenant};
use crate::pagination::{Collection, Paging};
use crate::AppState;
use hookwire_api::page::Paged as _;
use hookwire_http::error::{ApiError, FieldError};
use hookwire_http::typed;

/// A key as the admin API shows it: never its hash, and its plaintext only on creation.
/// `webhook_count` is what `max_webhooks` counts: the webhooks created with it.
pub fn api_key_view(key: &ApiKey, webhook_count: i64) -> api::api_keys::ApiKey {
    api::api_keys::ApiKey {
        id: key.id,
        tenant_id: key.tenant_id,
        key: None,
        key_prefix: key.key_prefix.clone(),
        scopes: key.scopes.clone(),
        webhooks_enabled: key.webhooks_enabled,
        max_webhooks: key.max_webhooks.max(0) as u32,
        webhook_count: webhook_count.max(0) as u32,
        created_at: key.created_at,
        revoked_at: key.revoked_at,
        last_used_at: key.last_used_at,
    }
}

/// The scopes as the database keeps them.
fn scope_names(scopes: &[api::api_keys::Scope]) -> Vec<String> {
    scopes.iter().map(|s| s.as_str().to_owned()).collect()
}

/// Changes a live key from `{"scopes"?, "webhooks_enabled"?, "max_webhooks"?}` (at least one).
/// Takes effect on the key's next request; a lower `max_webhooks` keeps the webhooks it has.
pub async fn update_key(
    conn: &mut AsyncPgConnection,
    by: &By,
    id: &str,
    patch: api::api_keys::ApiKeyPatch,
) -> Result<api::api_keys::ApiKey, ApiError> {
    let id = path_id(id, "API key")?;
    let before = key_view(conn, id).await?;
    let changes = ApiKeyChanges {
        scopes: patch.scopes.as_deref().map(scope_names),
        webhooks_enabled: patch.webhooks_enabled,
        max_webhooks: patch.max_webhooks.map(|m| m as i32),
    };
    match ApiKey::update(conn, id, &changes).await? {
        Some(_) => {
            let after = key_view(conn, id).await?;
            let changes = audit::diff(&audit::json(&before), &audit::json(&after));
            audit::record(conn, by, key_change(&after, "api_key.updated", changes)).await;
            Ok(after)
        }
        None => match ApiKey::find(conn, id).await? {
            Some(_) => Err(ApiError::Conflict {
                code: "api_key_revoked",
                detail: "this API key is revoked; create a new one".into(),
            }),
            None => Err(ApiError::NotFound("API key")),
        },
    }
}

/// Every key (of one tenant, when given), for the CLI.
pub async fn all_api_keys(
    conn: &mut AsyncPgConnection,
    tenant_id: Option<&str>,
    with_revoked: bool,
) -> Result<Vec<api::api_keys::ApiKey>, ApiError> {
    let tenant_id = tenant_id
        .map(str::parse::<Uuid>)
        .transpose()
        .map_err(|_| ApiError::Validation(vec![FieldError::new("tenant_id", "must be a UUID")]))?;
    let rows = every_page(async |page| ApiKey::list(conn, tenant_id, with_revoked, page).await).await?;
    Ok(rows.iter().map(|(k, n)| api_key_view(k, *n)).collect())
}

/// Revokes a key: from now on it is refused (401) on every registry replica, and a webhook
/// create it had started is refused too. Its webhooks stay, and keep receiving deliveries.
/// Revoking a revoked key changes nothing.
pub async fn revoke_key(conn: &mut AsyncPgConnection, by: &By, id: &str) -> Result<api::api_keys::ApiKey, ApiError> {
    let id = path_id(id, "API key")?;
    let before = key_view(conn, id).await?;
    let key = ApiKey::revoke(conn, id).await?.ok_or(ApiError::NotFound("API key"))?;
    let after = key_view(conn, key.id).await?;
    if before.revoked_at.is_none() {
        let changes = audit::diff(&audit::json(&before), &audit::json(&after));
        audit::record(conn, by, key_change(&after, "api_key.revoked", changes)).await;
    }
    Ok(after)
}

fn key_change(k: &api::api_keys::ApiKey, action: &'static str, changes: serde_json::Value) -> Change<'static> {
    Change {
        tenant_id: Some(k.tenant_id),
        action,
        resource_type: "api_key",
        resource_id: k.id.to_string(),
        changes,
    }
}

/// A key as the admin API shows it, read now with its webhook count.
async fn key_view(conn: &mut AsyncPgConnection, id: Uuid) -> Result<api::api_keys::ApiKey, ApiError> {
    let (key, n) = ApiKey::find(conn, id).await?.ok_or(ApiError::NotFound("API key"))?;
    Ok(api_key_view(&key, n))
}

/// Creates an API key; it is shown in this answer only.
pub async fn api_key(
    conn: &mut AsyncPgConnection,
    by: &By,
    body: api::api_keys::ApiKeyIn,
    default_max: i32,
) -> Result<api::api_keys::ApiKey, ApiError> {
    let tenant_id = body.tenant_id;
    let scopes = scope_names(body.scopes.as_deref().unwrap_or(&api::api_keys::Scope::ALL));
    let enabled = body.webhooks_enabled.unwrap_or(true);
    let max = body.max_webhooks.map_or(default_max, |m| m as i32);
    if !Tenant::exists(conn, tenant_id).await? {
        return Err(ApiError::Validation(vec![FieldError::new(
            "tenant_id",
            "no tenant has this id",
        )]));
    }
    let (plaintext, key) = new_api_key(tenant_id, scopes, enabled, max);
    ApiKey::insert(conn, &key).await?;
    let view = api_key_view(&key, 0);
    let changes = audit::created(&audit::json(&view));
    audit::record(conn, by, key_change(&view, "api_key.created", changes)).await;
    Ok(api::api_keys::ApiKey {
        key: Some(plaintext),
        ..view
    })
}

#[utoipa::path(
    post,
    path = "/v1/admin/api-keys",
    tag = "admin",
    summary = "Create an API key",
    request_body = hookwire_api::api_keys::ApiKeyIn,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created; the key is shown once", body = hookwire_api::api_keys::ApiKey),
        (status = 400, description = "Invalid", body = hookwire_api::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not the admin token", body = hookwire_api::Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn create_api_key(
    state: web::Data<AppState>,
    _: Admin,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = typed::body(payload, state.config.http.max_body_bytes).await?;
    let mut conn = state.pool.get().await?;
    let key = api_key(
        &mut conn,
        &By::admin(&req),
        body,
        state.config.webhooks.default_max_webhooks,
    )
    .await?;
    Ok(HttpResponse::Created().json(key))
}

#[utoipa::path(
    get,
    path = "/v1/admin/api-keys",
    tag = "admin",
    summary = "List API keys, oldest first",
    params(hookwire_api::api_keys::ApiKeyQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of keys (never the keys themselves)", body = hookwire_api::Page<hookwire_api::api_keys::ApiKey>),
        (status = 400, description = "Invalid filter or paging", body = hookwire_api::Problem, content_type = "application/problem+json"),
        AdminErrors,
    )
)]
pub(crate) async fn list_api_keys(
    state: web::Data<AppState>,
    _: Admin,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let query: api::api_keys::ApiKeyQuery = typed::query(req.query_string())?;
    let (tenant_id, with_revoked) = (query.tenant_id, query.include_revoked.unwrap_or(false));
    let paging = Paging::new(query.paging(), 100);
    let mut conn = state.pool.get().await?;
    let (count, rows) = ApiKey::list(&mut conn, tenant_id, with_revoked, paging.page).await?;
    let results = rows.iter().map(|(k, n)| api_key_view(k, *n)).collect();
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
    path = "/v1/admin/api-keys/{id}",
    tag = "admin",
    summary = "Retrieve an API key (never the key itself)",
    params(("id" = String, Path, description = "API key id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The key", body = hookwire_api::api_keys::ApiKey),
        (status = 404, description = "No such key", body = hookwire_api::Problem, content_type = "application/problem+json"),
        AdminErrors,
    )
)]
pub(crate) async fn retrieve_api_key(
    state: web::Data<AppState>,
    _: Admin,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = state.pool.get().await?;
    Ok(HttpResponse::Ok().json(key_view(&mut conn, path_id(&id, "API key")?).await?))
}

#[utoipa::path(
    patch,
    path = "/v1/admin/api-keys/{id}",
    tag = "admin",
    summary = "Change an API key's scopes, webhooks flag or webhook limit",
    params(("id" = String, Path, description = "API key id")),
    request_body = hookwire_api::api_keys::ApiKeyPatch,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The key as changed; its next request sees the change", body = hookwire_api::api_keys::ApiKey),
        (status = 400, description = "Invalid or empty", body = hookwire_api::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such key", body = hookwire_api::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The key is revoked", body = hookwire_api::Problem, content_type = "application/problem+json"),
        AdminErrors,
    )
)]
pub(crate) async fn update_api_key(
    state: web::Data<AppState>,
    _: Admin,
    req: HttpRequest,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = typed::body(payload, state.config.http.max_body_bytes).await?;
    let mut conn = state.pool.get().await?;
    Ok(HttpResponse::Ok().json(update_key(&mut conn, &By::admin(&req), &id, body).await?))
}

#[utoipa::path(
    delete,
    path = "/v1/admin/api-keys/{id}",
    tag = "admin",
    summary = "Revoke an API key",
    description = "From now on the key is refused (401) by every registry replica. Its webhooks stay and keep receiving deliveries. Revoking a revoked key changes nothing.",
    params(("id" = String, Path, description = "API key id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such key", body = hookwire_api::Problem, content_type = "application/problem+json"),
        AdminErrors,
    )
)]
pub(crate) async fn revoke_api_key(
    state: web::Data<AppState>,
    _: Admin,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = state.pool.get().await?;
    revoke_key(&mut conn, &By::admin(&req), &id).await?;
    Ok(HttpResponse::NoContent().finish())
}
