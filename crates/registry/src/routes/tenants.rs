//! Tenants (`/v1/admin/tenants`): the customer accounts, behind the admin token. The same
//! operations back `hookwire-registry admin`.

use actix_web::{web, HttpRequest, HttpResponse};
use diesel_async::AsyncPgConnection;
use hookwire_api as api;
use uuid::Uuid;

use super::admin::{every_page, path_id, AdminErrors};
use crate::audit::{self, By, Change};
use crate::auth::Admin;
use crate::db::models::Tenant;
use crate::pagination::{Collection, Paging};
use crate::AppState;
use hookwire_api::page::Paged as _;
use hookwire_http::error::ApiError;
use hookwire_http::typed;

/// A tenant as the admin API shows it.
pub fn tenant_view(t: &Tenant) -> api::tenants::Tenant {
    api::tenants::Tenant {
        id: t.id,
        name: t.name.clone(),
        max_deliveries_per_second: t.max_deliveries_per_second.and_then(|c| u32::try_from(c).ok()),
        created_at: t.created_at,
    }
}

/// Every tenant, for the CLI.
pub async fn all_tenants(conn: &mut AsyncPgConnection) -> Result<Vec<api::tenants::Tenant>, ApiError> {
    let rows = every_page(async |page| Tenant::list(conn, page).await).await?;
    Ok(rows.iter().map(tenant_view).collect())
}

/// Creates a tenant.
pub async fn tenant(
    conn: &mut AsyncPgConnection,
    by: &By,
    body: api::tenants::TenantIn,
) -> Result<api::tenants::Tenant, ApiError> {
    let t = tenant_view(&Tenant::create(conn, &body.name, body.max_deliveries_per_second).await?);
    let changes = audit::created(&audit::json(&t));
    audit::record(conn, by, tenant_change(&t, "tenant.created", changes)).await;
    Ok(t)
}

fn tenant_change(t: &api::tenants::Tenant, action: &'static str, changes: serde_json::Value) -> Change<'static> {
    Change {
        tenant_id: Some(t.id),
        action,
        resource_type: "tenant",
        resource_id: t.id.to_string(),
        changes,
    }
}

/// Renames a tenant, or sets or removes its ceiling on deliveries per second (the caller tells
/// dispatchers of a new ceiling: `Notices::tenant_limit`).
pub async fn update_tenant_fields(
    conn: &mut AsyncPgConnection,
    by: &By,
    id: &str,
    body: api::tenants::TenantPatch,
) -> Result<api::tenants::Tenant, ApiError> {
    let id = path_id(id, "tenant")?;
    let before = Tenant::find(conn, id).await?.ok_or(ApiError::NotFound("tenant"))?;
    let name = body.name.unwrap_or_else(|| before.name.clone());
    let ceiling = match body.max_deliveries_per_second {
        Some(c) => c.map(|c| c as i32),
        None => before.max_deliveries_per_second,
    };
    let t = Tenant::update(conn, id, &name, ceiling)
        .await?
        .ok_or(ApiError::NotFound("tenant"))?;
    let (before, after) = (tenant_view(&before), tenant_view(&t));
    let changes = audit::diff(&audit::json(&before), &audit::json(&after));
    audit::record(conn, by, tenant_change(&after, "tenant.updated", changes)).await;
    Ok(after)
}

/// What dispatchers are told of a tenant's ceiling.
pub fn limit_of(t: &api::tenants::Tenant) -> hookwire_core::messages::TenantLimit {
    hookwire_core::messages::TenantLimit {
        tenant_id: t.id,
        max_deliveries_per_second: t.max_deliveries_per_second,
    }
}

/// Deletes a tenant: its keys are refused from the next request, its webhooks go, and the
/// retention task deletes its delivery log. Says which webhooks went, for change notices.
pub async fn delete_tenant(conn: &mut AsyncPgConnection, by: &By, id: &str) -> Result<Vec<Uuid>, ApiError> {
    let id = path_id(id, "tenant")?;
    let before = Tenant::find(conn, id).await?.ok_or(ApiError::NotFound("tenant"))?;
    let gone = Tenant::delete(conn, id).await?.ok_or(ApiError::NotFound("tenant"))?;
    let before = tenant_view(&before);
    let mut changes = audit::deleted(&audit::json(&before));
    changes["webhooks"] = serde_json::json!({ "before": gone.len() });
    audit::record(conn, by, tenant_change(&before, "tenant.deleted", changes)).await;
    Ok(gone)
}

#[utoipa::path(
    post,
    path = "/v1/admin/tenants",
    tag = "admin",
    summary = "Create a tenant",
    request_body = hookwire_api::tenants::TenantIn,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = hookwire_api::tenants::Tenant),
        (status = 400, description = "Invalid", body = hookwire_api::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not the admin token", body = hookwire_api::Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn create_tenant(
    state: web::Data<AppState>,
    _: Admin,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = typed::body(payload, state.config.http.max_body_bytes).await?;
    let mut conn = state.pool.get().await?;
    let t = tenant(&mut conn, &By::admin(&req), body).await?;
    drop(conn);
    if t.max_deliveries_per_second.is_some() {
        state.notices.tenant_limit(limit_of(&t)).await;
    }
    Ok(HttpResponse::Created().json(t))
}

#[utoipa::path(
    get,
    path = "/v1/admin/tenants",
    tag = "admin",
    summary = "List tenants, oldest first",
    params(hookwire_api::page::PageQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of tenants", body = hookwire_api::Page<hookwire_api::tenants::Tenant>),
        (status = 400, description = "Invalid paging", body = hookwire_api::Problem, content_type = "application/problem+json"),
        AdminErrors,
    )
)]
pub(crate) async fn list_tenants(
    state: web::Data<AppState>,
    _: Admin,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let query: api::page::PageQuery = typed::query(req.query_string())?;
    let paging = Paging::new(query.paging(), 100);
    let mut conn = state.pool.get().await?;
    let (count, rows) = Tenant::list(&mut conn, paging.page).await?;
    let results = rows.iter().map(tenant_view).collect();
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
    path = "/v1/admin/tenants/{id}",
    tag = "admin",
    summary = "A tenant",
    params(("id" = Uuid, Path, description = "Tenant id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The tenant", body = hookwire_api::tenants::Tenant),
        (status = 404, description = "No such tenant", body = hookwire_api::Problem, content_type = "application/problem+json"),
        AdminErrors,
    )
)]
pub(crate) async fn retrieve_tenant(
    state: web::Data<AppState>,
    _: Admin,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = state.pool.get().await?;
    let t = Tenant::find(&mut conn, path_id(&id, "tenant")?)
        .await?
        .ok_or(ApiError::NotFound("tenant"))?;
    Ok(HttpResponse::Ok().json(tenant_view(&t)))
}

#[utoipa::path(
    patch,
    path = "/v1/admin/tenants/{id}",
    tag = "admin",
    summary = "Rename a tenant, or set its ceiling on deliveries per second",
    description = "Only the fields sent change. `max_deliveries_per_second` caps the tenant's deliveries across all its webhooks and all dispatchers (each paces at its share); null removes it. Dispatchers apply a change within a second.",
    params(("id" = Uuid, Path, description = "Tenant id")),
    request_body = hookwire_api::tenants::TenantPatch,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The tenant as changed", body = hookwire_api::tenants::Tenant),
        (status = 400, description = "Invalid", body = hookwire_api::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant", body = hookwire_api::Problem, content_type = "application/problem+json"),
        AdminErrors,
    )
)]
pub(crate) async fn update_tenant(
    state: web::Data<AppState>,
    _: Admin,
    req: HttpRequest,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = typed::body(payload, state.config.http.max_body_bytes).await?;
    let mut conn = state.pool.get().await?;
    let t = update_tenant_fields(&mut conn, &By::admin(&req), &id, body).await?;
    drop(conn);
    state.notices.tenant_limit(limit_of(&t)).await;
    Ok(HttpResponse::Ok().json(t))
}

#[utoipa::path(
    delete,
    path = "/v1/admin/tenants/{id}",
    tag = "admin",
    summary = "Delete a tenant, its keys, its webhooks and its delivery log",
    description = "Its keys are refused from the next request and its webhooks stop at once (publishers and dispatchers are told). Its delivery log (deliveries, attempts, events' payloads) is deleted by the retention task at its next pass, in chunks; results still in flight when the tenant went are deleted at the passes after, for `retention.deliveries`.",
    params(("id" = Uuid, Path, description = "Tenant id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such tenant", body = hookwire_api::Problem, content_type = "application/problem+json"),
        AdminErrors,
    )
)]
pub(crate) async fn remove_tenant(
    state: web::Data<AppState>,
    _: Admin,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = state.pool.get().await?;
    let webhooks = delete_tenant(&mut conn, &By::admin(&req), &id).await?;
    state.notices.deleted(&webhooks).await;
    Ok(HttpResponse::NoContent().finish())
}
