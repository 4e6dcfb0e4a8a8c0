//! Named admin tokens (`/v1/admin/admin-tokens`): one per operator or automation, each revocable
//! on its own and named in the audit log. `HOOKWIRE_ADMIN_TOKEN` stays the bootstrap credential;
//! `hookwire-registry admin create-admin-token` makes the first named one.

use actix_web::{web, HttpRequest, HttpResponse};
use diesel_async::AsyncPgConnection;
use hookwire_api::admin_tokens as api;

use super::admin::{path_id, AdminErrors};
use crate::audit::{self, By, Change};
use crate::auth::{hash_key, Admin};
use crate::db::models::AdminToken;
use crate::pagination::{Collection, Paging};
use crate::AppState;
use hookwire_api::page::Paged as _;
use hookwire_http::error::ApiError;
use hookwire_http::typed;

/// Prefix of every named admin token.
pub const TOKEN_PREFIX: &str = "hwat_";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/admin/admin-tokens")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(web::resource("/admin/admin-tokens/{id}").route(web::delete().to(revoke)));
}

fn view(t: &AdminToken) -> api::AdminToken {
    api::AdminToken {
        id: t.id,
        name: t.name.clone(),
        token: None,
        token_prefix: t.token_prefix.clone(),
        created_at: t.created_at,
        revoked_at: t.revoked_at,
    }
}

fn change(t: &AdminToken, action: &'static str, changes: serde_json::Value) -> Change<'static> {
    Change {
        tenant_id: None,
        action,
        resource_type: "admin_token",
        resource_id: t.id.to_string(),
        changes,
    }
}

/// Creates a named admin token; it is shown in this answer only.
pub async fn admin_token(
    conn: &mut AsyncPgConnection,
    by: &By,
    body: api::AdminTokenIn,
) -> Result<api::AdminToken, ApiError> {
    let plaintext = crate::auth::new_secret(TOKEN_PREFIX);
    let t = AdminToken {
        id: hookwire_core::id::v7(),
        name: body.name,
        token_hash: hash_key(&plaintext),
        token_prefix: crate::auth::recognisable(&plaintext, TOKEN_PREFIX),
        created_at: crate::db::now(),
        revoked_at: None,
    };
    AdminToken::insert(conn, &t).await?;
    let changes = audit::created(&audit::json(&view(&t)));
    audit::record(conn, by, change(&t, "admin_token.created", changes)).await;
    Ok(api::AdminToken {
        token: Some(plaintext),
        ..view(&t)
    })
}

#[utoipa::path(
    post,
    path = "/v1/admin/admin-tokens",
    tag = "admin",
    summary = "Create a named admin token",
    description = "It opens the whole admin API, like `HOOKWIRE_ADMIN_TOKEN`, and is named in the audit log of every change it makes. Shown in this answer only.",
    request_body = hookwire_api::admin_tokens::AdminTokenIn,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created; the token is shown once", body = hookwire_api::admin_tokens::AdminToken),
        (status = 400, description = "Invalid", body = hookwire_api::Problem, content_type = "application/problem+json"),
        AdminErrors,
    )
)]
pub(crate) async fn create(
    state: web::Data<AppState>,
    _: Admin,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = typed::body(payload, state.config.http.max_body_bytes).await?;
    let mut conn = state.pool.get().await?;
    Ok(HttpResponse::Created().json(admin_token(&mut conn, &By::admin(&req), body).await?))
}

#[utoipa::path(
    get,
    path = "/v1/admin/admin-tokens",
    tag = "admin",
    summary = "List named admin tokens, oldest first (never the tokens)",
    params(hookwire_api::page::PageQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of tokens", body = hookwire_api::Page<hookwire_api::admin_tokens::AdminToken>),
        (status = 400, description = "Invalid paging", body = hookwire_api::Problem, content_type = "application/problem+json"),
        AdminErrors,
    )
)]
pub(crate) async fn list(state: web::Data<AppState>, _: Admin, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let query: hookwire_api::page::PageQuery = typed::query(req.query_string())?;
    let paging = Paging::new(query.paging(), 100);
    let mut conn = state.pool.get().await?;
    let (count, rows) = AdminToken::list(&mut conn, paging.page).await?;
    let results: Vec<api::AdminToken> = rows.iter().map(view).collect();
    Ok(HttpResponse::Ok().json(Collection::page(
        &req,
        &state.config.http.public_url,
        paging,
        count,
        results,
    )))
}

#[utoipa::path(
    delete,
    path = "/v1/admin/admin-tokens/{id}",
    tag = "admin",
    summary = "Revoke a named admin token",
    description = "Refused (401) from its next request on every registry replica.",
    params(("id" = uuid::Uuid, Path, description = "Admin token id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such live token", body = hookwire_api::Problem, content_type = "application/problem+json"),
        AdminErrors,
    )
)]
pub(crate) async fn revoke(
    state: web::Data<AppState>,
    _: Admin,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&id, "admin token")?;
    let mut conn = state.pool.get().await?;
    let token = AdminToken::find(&mut conn, id).await?;
    match token {
        Some(t) if AdminToken::revoke(&mut conn, id).await? => {
            let changes = serde_json::json!({ "revoked": { "before": false, "after": true } });
            audit::record(&mut conn, &By::admin(&req), change(&t, "admin_token.revoked", changes)).await;
            Ok(HttpResponse::NoContent().finish())
        }
        _ => Err(ApiError::NotFound("admin token")),
    }
}
