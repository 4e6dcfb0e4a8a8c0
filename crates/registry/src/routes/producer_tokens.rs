//! Producer tokens (`/v1/admin/producer-tokens`): one per producing service, limited to the
//! types and tenants it publishes for, revocable on its own. Publishers learn them from the
//! routing snapshot and from change notices, within seconds.

use actix_web::{web, HttpRequest, HttpResponse};
use hookwire_api::producer_tokens as api;
use uuid::Uuid;

use super::admin::{path_id, AdminErrors};
use crate::audit::{self, By, Change};
use crate::auth::{hash_key, Admin};
use crate::db::models::{EventType, ProducerToken};
use crate::pagination::{Collection, Paging};
use crate::AppState;
use hookwire_api::page::Paged as _;
use hookwire_http::error::{ApiError, FieldError};
use hookwire_http::typed;

/// Prefix of every producer token, so leaked ones are easy to recognise.
pub const TOKEN_PREFIX: &str = "hwpt_";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/admin/producer-tokens")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(
        web::resource("/admin/producer-tokens/{id}")
            .route(web::get().to(retrieve))
            .route(web::delete().to(revoke)),
    );
}

fn view(t: &ProducerToken) -> api::ProducerToken {
    api::ProducerToken {
        id: t.id,
        name: t.name.clone(),
        token: None,
        token_prefix: t.token_prefix.clone(),
        event_types: t.event_types.clone(),
        tenant_ids: t.tenant_ids.clone(),
        created_at: t.created_at,
        revoked_at: t.revoked_at,
    }
}

fn change(t: &ProducerToken, action: &'static str, changes: serde_json::Value) -> Change<'static> {
    Change {
        tenant_id: None,
        action,
        resource_type: "producer_token",
        resource_id: t.id.to_string(),
        changes,
    }
}

#[utoipa::path(
    post,
    path = "/v1/admin/producer-tokens",
    tag = "admin",
    summary = "Create a producer token",
    description = "The token is shown in this answer only. Publishers accept it within seconds (a change notice; their snapshot otherwise). A publish outside its `event_types` or `tenant_ids` is refused with 403 saying which.",
    request_body = hookwire_api::producer_tokens::ProducerTokenIn,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created; the token is shown once", body = hookwire_api::producer_tokens::ProducerToken),
        (status = 400, description = "Invalid, or patterns that match no catalog type", body = hookwire_api::Problem, content_type = "application/problem+json"),
        AdminErrors,
    )
)]
pub(crate) async fn create(
    state: web::Data<AppState>,
    _: Admin,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: api::ProducerTokenIn = typed::body(payload, state.config.http.max_body_bytes).await?;
    let mut conn = state.pool.get().await?;
    if let Some(patterns) = &body.event_types {
        let catalog = EventType::all_values(&mut conn).await?;
        let unknown: Vec<&str> = patterns
            .iter()
            .filter(|p| !catalog.iter().any(|(t, _)| hookwire_core::patterns::matches(p, t)))
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            return Err(ApiError::Validation(vec![FieldError::new(
                "event_types",
                format!("{} match no event type in the catalog", unknown.join(", ")),
            )]));
        }
    }
    let plaintext = crate::auth::new_secret(TOKEN_PREFIX);
    let t = ProducerToken {
        id: hookwire_core::id::v7(),
        name: body.name,
        token_hash: hash_key(&plaintext),
        token_prefix: crate::auth::recognisable(&plaintext, TOKEN_PREFIX),
        event_types: body.event_types,
        tenant_ids: body.tenant_ids,
        created_at: crate::db::now(),
        revoked_at: None,
    };
    ProducerToken::insert(&mut conn, &t).await?;
    state.notices.producer_token(t.grant()).await;
    let changes = audit::created(&audit::json(&view(&t)));
    audit::record(
        &mut conn,
        &By::admin(&req),
        change(&t, "producer_token.created", changes),
    )
    .await;
    tracing::info!(producer_token = %t.id, name = %t.name, "producer token created");
    Ok(HttpResponse::Created().json(api::ProducerToken {
        token: Some(plaintext),
        ..view(&t)
    }))
}

#[utoipa::path(
    get,
    path = "/v1/admin/producer-tokens",
    tag = "admin",
    summary = "List producer tokens, oldest first",
    params(hookwire_api::producer_tokens::ProducerTokenQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of tokens (never the tokens themselves)", body = hookwire_api::Page<hookwire_api::producer_tokens::ProducerToken>),
        (status = 400, description = "Invalid paging", body = hookwire_api::Problem, content_type = "application/problem+json"),
        AdminErrors,
    )
)]
pub(crate) async fn list(state: web::Data<AppState>, _: Admin, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let query: api::ProducerTokenQuery = typed::query(req.query_string())?;
    let paging = Paging::new(query.paging(), 100);
    let mut conn = state.pool.get().await?;
    let (count, rows) = ProducerToken::list(&mut conn, query.include_revoked.unwrap_or(false), paging.page).await?;
    let results: Vec<api::ProducerToken> = rows.iter().map(view).collect();
    Ok(HttpResponse::Ok().json(Collection::page(
        &req,
        &state.config.http.public_url,
        paging,
        count,
        results,
    )))
}

async fn find(state: &AppState, id: &str) -> Result<ProducerToken, ApiError> {
    let id: Uuid = path_id(id, "producer token")?;
    let mut conn = state.pool.get().await?;
    ProducerToken::find(&mut conn, id)
        .await?
        .ok_or(ApiError::NotFound("producer token"))
}

#[utoipa::path(
    get,
    path = "/v1/admin/producer-tokens/{id}",
    tag = "admin",
    summary = "A producer token (never the token itself)",
    params(("id" = Uuid, Path, description = "Producer token id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The token", body = hookwire_api::producer_tokens::ProducerToken),
        (status = 404, description = "No such token", body = hookwire_api::Problem, content_type = "application/problem+json"),
        AdminErrors,
    )
)]
pub(crate) async fn retrieve(
    state: web::Data<AppState>,
    _: Admin,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(view(&find(&state, &id).await?)))
}

#[utoipa::path(
    delete,
    path = "/v1/admin/producer-tokens/{id}",
    tag = "admin",
    summary = "Revoke a producer token",
    description = "Every publisher refuses it (401) within seconds: at once on the change notice, at the latest at its next resync. Revoking a revoked token changes nothing.",
    params(("id" = Uuid, Path, description = "Producer token id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such token", body = hookwire_api::Problem, content_type = "application/problem+json"),
        AdminErrors,
    )
)]
pub(crate) async fn revoke(
    state: web::Data<AppState>,
    _: Admin,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let before = find(&state, &id).await?;
    let mut conn = state.pool.get().await?;
    let after = ProducerToken::revoke(&mut conn, before.id)
        .await?
        .ok_or(ApiError::NotFound("producer token"))?;
    state.notices.producer_token_revoked(after.id).await;
    if before.revoked_at.is_none() {
        let changes = audit::diff(&audit::json(&view(&before)), &audit::json(&view(&after)));
        audit::record(
            &mut conn,
            &By::admin(&req),
            change(&after, "producer_token.revoked", changes),
        )
        .await;
    }
    Ok(HttpResponse::NoContent().finish())
}
