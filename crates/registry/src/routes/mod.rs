//! The HTTP routes, one module per resource.

pub mod admin;
pub mod deliveries;
pub mod event_types;
pub mod health;
pub mod internal;
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
            .configure(internal::configure),
    );
}
