//! The HTTP routes, one module per resource.

pub mod admin;
pub mod admin_tokens;
pub mod api_keys;
pub mod audit;
pub mod deliveries;
pub mod erasure;
pub mod event_types;
pub mod health;
pub mod internal;
pub mod listen;
pub mod overview;
pub mod portal_sessions;
pub mod producer_tokens;
pub mod tenants;
pub mod webhooks;

use actix_web::web;

/// Mounts every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(health::configure).service(
        web::scope("/v1")
            .configure(admin::configure)
            .configure(event_types::configure)
            .configure(webhooks::configure)
            .configure(deliveries::configure)
            .configure(overview::configure)
            .configure(audit::configure)
            .configure(admin_tokens::configure)
            .configure(producer_tokens::configure)
            .configure(listen::configure)
            .configure(portal_sessions::configure)
            .configure(internal::configure),
    );
}

/// The failures every API-key call can meet.
#[derive(utoipa::IntoResponses)]
pub enum KeyErrors {
    /// No or unknown API key
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(hookwire_api::Problem),
    /// Rate limit exceeded (see `Retry-After`)
    #[response(status = 429, content_type = "application/problem+json")]
    RateLimited(hookwire_api::Problem),
}
