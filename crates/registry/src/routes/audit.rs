//! The audit log: `/v1/admin/audit-log` (every change) and `/v1/audit-log` (a tenant's own).

use actix_web::{web, HttpRequest, HttpResponse};
use hookwire_api::audit as api;

use super::admin::AdminErrors;
use crate::auth::{Admin, Caller};
use crate::db::models::{AuditEntry, AuditFilter};
use crate::pagination::{Collection, Paging};
use crate::AppState;
use hookwire_api::page::Paged as _;
use hookwire_http::error::ApiError;
use hookwire_http::typed;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/admin/audit-log").route(web::get().to(list_for_admin)))
        .service(web::resource("/audit-log").route(web::get().to(list)));
}

fn view(e: AuditEntry) -> api::AuditEntry {
    api::AuditEntry {
        id: e.id,
        at: e.at,
        tenant_id: e.tenant_id,
        actor: api::Actor {
            kind: e.actor_kind,
            id: e.actor_id,
            name: e.actor_name,
        },
        action: e.action,
        resource_type: e.resource_type,
        resource_id: e.resource_id,
        changes: e.changes,
        request_id: e.request_id,
    }
}

async fn page(
    state: &AppState,
    req: &HttpRequest,
    query: api::AuditQuery,
    tenant: Option<uuid::Uuid>,
) -> Result<HttpResponse, ApiError> {
    let paging = Paging::new(query.paging(), 100);
    let filter = AuditFilter {
        tenant_id: tenant.or(query.tenant_id),
        resource_id: query.resource_id,
        action: query.action,
        actor_id: query.actor_id,
        since: query.since,
        until: query.until,
    };
    let mut conn = state.pool.get().await?;
    let (count, rows) = AuditEntry::list(&mut conn, &filter, paging.page).await?;
    let results: Vec<api::AuditEntry> = rows.into_iter().map(view).collect();
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
    path = "/v1/admin/audit-log",
    tag = "admin",
    summary = "Every change, newest first: who, what, before and after",
    params(hookwire_api::audit::AuditQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of entries", body = hookwire_api::Page<hookwire_api::audit::AuditEntry>),
        (status = 400, description = "Invalid filters or paging", body = hookwire_api::Problem, content_type = "application/problem+json"),
        AdminErrors,
    )
)]
pub(crate) async fn list_for_admin(
    state: web::Data<AppState>,
    _: Admin,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let query: api::AuditQuery = typed::query(req.query_string())?;
    page(&state, &req, query, None).await
}

#[utoipa::path(
    get,
    path = "/v1/audit-log",
    tag = "audit",
    summary = "This tenant's changes, newest first: who, what, before and after",
    description = "Every change to the tenant's webhooks, keys, portal sessions and the tenant itself, by its keys, its portal sessions, the operator or Hookwire (an automatic deactivation). `tenant_id` is ignored: it is the caller's.",
    params(hookwire_api::audit::AuditQuery),
    responses(
        (status = 200, description = "A page of entries", body = hookwire_api::Page<hookwire_api::audit::AuditEntry>),
        (status = 400, description = "Invalid filters or paging", body = hookwire_api::Problem, content_type = "application/problem+json"),
        crate::routes::KeyErrors,
    )
)]
pub(crate) async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    caller.require("webhooks:read")?;
    let query: api::AuditQuery = typed::query(req.query_string())?;
    page(&state, &req, query, Some(caller.tenant_id())).await
}
