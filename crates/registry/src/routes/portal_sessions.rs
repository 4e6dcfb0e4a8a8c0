//! Portal sessions: links that open one tenant's console. The admin opens one for any tenant
//! (`/v1/admin/portal-sessions`), a tenant's key for its own (`/v1/portal-sessions`); the
//! console spends the link's token for a cookie (`/v1/portal-sessions/open`) and reads or ends
//! the session it holds (`/v1/portal-sessions/current`).

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use uuid::Uuid;

use super::admin::{path_id, AdminErrors};
use crate::auth::{hash_key, Admin, Caller};
use crate::console::session::{self, TOKEN_PREFIX};
use crate::db::models::{ApiKey, PortalSession, Tenant};
use crate::pagination::base_url;
use crate::AppState;
use hookwire_api::portal as api;
use hookwire_http::error::ApiError;
use hookwire_http::typed;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/admin/portal-sessions").route(web::post().to(create_for_tenant)))
        .service(web::resource("/admin/portal-sessions/{id}").route(web::delete().to(revoke)))
        .service(web::resource("/portal-sessions").route(web::post().to(create)))
        .service(web::resource("/portal-sessions/open").route(web::post().to(open)))
        .service(
            web::resource("/portal-sessions/current")
                .route(web::get().to(current))
                .route(web::delete().to(end)),
        );
}

const DEFAULT_LIFETIME: u32 = 3600;

/// Stores a new session and answers with its link.
async fn start(
    state: &AppState,
    req: &HttpRequest,
    by: &crate::audit::By,
    tenant_id: Uuid,
    api_key_id: Option<Uuid>,
    read_only: bool,
    lifetime: u32,
) -> Result<HttpResponse, ApiError> {
    let token = crate::auth::new_secret(TOKEN_PREFIX);
    let now = crate::db::now();
    let s = PortalSession {
        id: hookwire_core::id::v7(),
        tenant_id,
        api_key_id,
        read_only,
        token_hash: hash_key(&token),
        session_hash: None,
        csrf_token: crate::auth::new_secret(""),
        created_at: now,
        expires_at: now + chrono::Duration::seconds(i64::from(lifetime)),
        opened_at: None,
        revoked_at: None,
    };
    let mut conn = state.pool.get().await?;
    PortalSession::insert(&mut conn, &s).await?;
    tracing::info!(session = %s.id, %tenant_id, read_only, "portal session created");
    let after = serde_json::json!({ "read_only": read_only, "expires_at": s.expires_at, "api_key_id": api_key_id });
    let change = session_change(tenant_id, s.id, "portal_session.created", crate::audit::created(&after));
    crate::audit::record(&mut conn, by, change).await;
    Ok(HttpResponse::Created().json(api::PortalSession {
        id: s.id,
        url: format!(
            "{}/console/#session={token}",
            base_url(req, &state.config.http.public_url)
        ),
        expires_at: s.expires_at,
        tenant_id,
        read_only,
        api_key_id,
    }))
}

fn session_change(
    tenant_id: Uuid,
    id: Uuid,
    action: &'static str,
    changes: serde_json::Value,
) -> crate::audit::Change<'static> {
    crate::audit::Change {
        tenant_id: Some(tenant_id),
        action,
        resource_type: "portal_session",
        resource_id: id.to_string(),
        changes,
    }
}

#[utoipa::path(
    post,
    path = "/v1/admin/portal-sessions",
    tag = "portal",
    summary = "Open a tenant's portal: a one-time link to its console",
    request_body = hookwire_api::portal::AdminPortalSessionIn,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "The session and its link", body = hookwire_api::portal::PortalSession),
        (status = 400, description = "Invalid fields, or a key not of this tenant", body = hookwire_api::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant", body = hookwire_api::Problem, content_type = "application/problem+json"),
        AdminErrors,
    )
)]
pub(crate) async fn create_for_tenant(
    state: web::Data<AppState>,
    _: Admin,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: api::AdminPortalSessionIn = typed::body(payload, state.config.http.max_body_bytes).await?;
    let mut conn = state.pool.get().await?;
    if !Tenant::exists(&mut conn, body.tenant_id).await? {
        return Err(ApiError::NotFound("tenant"));
    }
    let key = match body.api_key_id {
        Some(id) => {
            let key = ApiKey::find(&mut conn, id).await?;
            if !key.is_some_and(|(k, _)| k.tenant_id == body.tenant_id && k.revoked_at.is_none()) {
                return Err(ApiError::bad_request(
                    "invalid_api_key_id",
                    "api_key_id must name a live API key of this tenant",
                ));
            }
            Some(id)
        }
        None => PortalSession::writing_key(&mut conn, body.tenant_id).await?,
    };
    drop(conn);
    let lifetime = body.expires_in_seconds.unwrap_or(DEFAULT_LIFETIME);
    let by = crate::audit::By::admin(&req);
    start(
        &state,
        &req,
        &by,
        body.tenant_id,
        key,
        body.read_only.unwrap_or(false),
        lifetime,
    )
    .await
}

#[utoipa::path(
    post,
    path = "/v1/portal-sessions",
    tag = "portal",
    summary = "Open this tenant's portal: a one-time link to its console",
    description = "The session acts with the calling key: its scopes, its webhook limit. A key without `webhooks:write` opens a read-only session.",
    request_body(content = Option<hookwire_api::portal::PortalSessionIn>),
    responses(
        (status = 201, description = "The session and its link", body = hookwire_api::portal::PortalSession),
        (status = 400, description = "Invalid fields", body = hookwire_api::Problem, content_type = "application/problem+json"),
        (status = 403, description = "Called from a portal session", body = hookwire_api::Problem, content_type = "application/problem+json"),
        crate::routes::KeyErrors,
    )
)]
pub(crate) async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    if caller.session.is_some() {
        return Err(ApiError::forbidden(
            "session_cannot_open_sessions",
            "a portal session cannot open another: use an API key",
        ));
    }
    let body: api::PortalSessionIn = typed::optional_body(payload, state.config.http.max_body_bytes).await?;
    let (key, writes) = match &caller.key {
        Some(key) => (Some(key.id), key.scopes.iter().any(|s| s == "webhooks:write")),
        None => {
            let mut conn = state.pool.get().await?;
            (PortalSession::writing_key(&mut conn, caller.tenant_id()).await?, true)
        }
    };
    let read_only = body.read_only.unwrap_or(false) || !writes;
    let lifetime = body.expires_in_seconds.unwrap_or(DEFAULT_LIFETIME);
    let by = crate::audit::By::caller(&caller, &req);
    start(&state, &req, &by, caller.tenant_id(), key, read_only, lifetime).await
}

#[utoipa::path(
    delete,
    path = "/v1/admin/portal-sessions/{id}",
    tag = "portal",
    summary = "Revoke a portal session",
    description = "Its link no longer opens, and the browser holding it is refused from its next request.",
    params(("id" = Uuid, Path, description = "Session id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such live session", body = hookwire_api::Problem, content_type = "application/problem+json"),
        AdminErrors,
    )
)]
pub(crate) async fn revoke(
    state: web::Data<AppState>,
    _: Admin,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id(&id, "portal session")?;
    let mut conn = state.pool.get().await?;
    let tenant_id = PortalSession::find(&mut conn, id).await?.map(|s| s.tenant_id);
    if !PortalSession::revoke(&mut conn, id, None).await? {
        return Err(ApiError::NotFound("portal session"));
    }
    if let Some(tenant_id) = tenant_id {
        let changes = serde_json::json!({ "revoked": { "before": false, "after": true } });
        let change = session_change(tenant_id, id, "portal_session.revoked", changes);
        crate::audit::record(&mut conn, &crate::audit::By::admin(&req), change).await;
    }
    tracing::info!(session = %id, "portal session revoked");
    Ok(HttpResponse::NoContent().finish())
}

/// What the console is told about the session it holds.
async fn describe(state: &AppState, s: &PortalSession, key: Option<&ApiKey>) -> Result<api::CurrentSession, ApiError> {
    let mut conn = state.pool.get().await?;
    let tenant = Tenant::find(&mut conn, s.tenant_id)
        .await?
        .ok_or(ApiError::NotFound("tenant"))?;
    let scopes = match (s.read_only, key) {
        (true, _) => vec!["webhooks:read".to_owned()],
        (false, Some(key)) => key.scopes.clone(),
        (false, None) => vec!["webhooks:read".to_owned(), "webhooks:write".to_owned()],
    };
    let config = &state.config.console;
    Ok(api::CurrentSession {
        id: s.id,
        tenant_id: s.tenant_id,
        tenant_name: tenant.name,
        read_only: s.read_only,
        expires_at: s.expires_at,
        scopes,
        csrf_token: s.csrf_token.clone(),
        brand: api::Brand {
            name: config.name.clone(),
            color: config.color.clone(),
            logo_url: state.console.logo_url(),
        },
    })
}

#[utoipa::path(
    post,
    path = "/v1/portal-sessions/open",
    tag = "portal",
    summary = "Spend a portal link's token for the session's cookie",
    description = "The console calls this with the token after `#session=` in the link. A link opens once: the answer sets an HttpOnly cookie that holds the session until it ends.",
    request_body = hookwire_api::portal::OpenIn,
    security(()),
    responses(
        (status = 200, description = "The session, with the cookie set", body = hookwire_api::portal::CurrentSession),
        (status = 400, description = "Invalid fields", body = hookwire_api::Problem, content_type = "application/problem+json"),
        (status = 401, description = "The link was already opened, has expired or was revoked", body = hookwire_api::Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn open(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: api::OpenIn = typed::body(payload, state.config.http.max_body_bytes).await?;
    let cookie = crate::auth::new_secret("");
    let mut conn = state.pool.get().await?;
    let Some(s) = PortalSession::open(&mut conn, &hash_key(&body.token), &hash_key(&cookie)).await? else {
        return Err(ApiError::Unauthorized(
            "this portal link was already opened, has expired or was revoked: ask for a new one",
        ));
    };
    let key = match s.api_key_id {
        Some(id) => ApiKey::find(&mut conn, id).await?.map(|(k, _)| k),
        None => None,
    };
    drop(conn);
    let view = describe(&state, &s, key.as_ref()).await?;
    let https = session::https(&req, &state.config.http.public_url);
    let cookie = session::cookie(&cookie, s.expires_at - Utc::now(), &state.config.console, https);
    tracing::info!(session = %s.id, tenant_id = %s.tenant_id, "portal session opened");
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::SET_COOKIE, cookie))
        .json(view))
}

/// The session a request came with; 404 when it came with a key or the admin token.
async fn own_session(state: &AppState, caller: &Caller) -> Result<PortalSession, ApiError> {
    let id = caller.session.ok_or(ApiError::NotFound("portal session"))?;
    let mut conn = state.pool.get().await?;
    PortalSession::find(&mut conn, id)
        .await?
        .ok_or(ApiError::NotFound("portal session"))
}

#[utoipa::path(
    get,
    path = "/v1/portal-sessions/current",
    tag = "portal",
    summary = "The portal session this browser holds",
    security(("portal_session" = [])),
    responses(
        (status = 200, description = "The session", body = hookwire_api::portal::CurrentSession),
        (status = 401, description = "No live session", body = hookwire_api::Problem, content_type = "application/problem+json"),
        (status = 404, description = "Called with a key, not a session", body = hookwire_api::Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn current(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let s = own_session(&state, &caller).await?;
    Ok(HttpResponse::Ok().json(describe(&state, &s, caller.key.as_ref()).await?))
}

#[utoipa::path(
    delete,
    path = "/v1/portal-sessions/current",
    tag = "portal",
    summary = "Sign out: end the portal session this browser holds",
    security(("portal_session" = [])),
    responses(
        (status = 204, description = "Ended, and the cookie removed"),
        (status = 401, description = "No live session", body = hookwire_api::Problem, content_type = "application/problem+json"),
        (status = 403, description = "No CSRF token", body = hookwire_api::Problem, content_type = "application/problem+json"),
        (status = 404, description = "Called with a key, not a session", body = hookwire_api::Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn end(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let s = own_session(&state, &caller).await?;
    let mut conn = state.pool.get().await?;
    PortalSession::revoke(&mut conn, s.id, Some(s.tenant_id)).await?;
    let https = session::https(&req, &state.config.http.public_url);
    Ok(HttpResponse::NoContent()
        .insert_header((
            actix_web::http::header::SET_COOKIE,
            session::removal(&state.config.console, https),
        ))
        .finish())
}
