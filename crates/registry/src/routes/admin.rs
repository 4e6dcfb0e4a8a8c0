//! `/v1/admin/…`: the routes behind the admin token, and what their resources' modules share.
//! Each resource's handlers and operations (which `hookwire-registry admin …` calls too) live in
//! its module: `tenants`, `api_keys`, `event_types`, `erasure`.

use actix_web::web;
use uuid::Uuid;

use super::{api_keys, erasure, event_types, tenants};
use crate::pagination::Page;
use hookwire_http::error::ApiError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/admin/tenants")
            .route(web::get().to(tenants::list_tenants))
            .route(web::post().to(tenants::create_tenant)),
    )
    .service(
        web::resource("/admin/tenants/{id}")
            .route(web::get().to(tenants::retrieve_tenant))
            .route(web::patch().to(tenants::update_tenant))
            .route(web::delete().to(tenants::remove_tenant)),
    )
    .service(
        web::resource("/admin/api-keys")
            .route(web::get().to(api_keys::list_api_keys))
            .route(web::post().to(api_keys::create_api_key)),
    )
    .service(
        web::resource("/admin/api-keys/{id}")
            .route(web::get().to(api_keys::retrieve_api_key))
            .route(web::patch().to(api_keys::update_api_key))
            .route(web::delete().to(api_keys::revoke_api_key)),
    )
    .service(
        web::resource("/admin/event-types")
            .route(web::get().to(event_types::list_for_admin))
            .route(web::post().to(event_types::create_event_type)),
    )
    .service(
        web::resource("/admin/event-types/{value}")
            .route(web::patch().to(event_types::change_event_type))
            .route(web::delete().to(event_types::archive_event_type)),
    )
    .service(web::resource("/admin/events/expunge").route(web::post().to(erasure::expunge_events)));
}

/// The id in an admin path. A malformed id cannot name anything: the same 404 as a missing one.
pub(crate) fn path_id(id: &str, what: &'static str) -> Result<Uuid, ApiError> {
    id.parse().map_err(|_| ApiError::NotFound(what))
}

/// Every row of a listing, page after page, for the CLI.
pub(crate) async fn every_page<T>(
    mut page_of: impl AsyncFnMut(Page) -> diesel::QueryResult<(i64, Vec<T>)>,
) -> Result<Vec<T>, ApiError> {
    let mut all = Vec::new();
    loop {
        let page = Page {
            limit: 500,
            offset: all.len() as i64,
        };
        let (count, rows) = page_of(page).await?;
        let last = rows.is_empty();
        all.extend(rows);
        if last || all.len() as i64 >= count {
            return Ok(all);
        }
    }
}

/// The failures every admin call can meet.
#[derive(utoipa::IntoResponses)]
pub enum AdminErrors {
    /// Not the admin token
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(hookwire_api::Problem),
}
