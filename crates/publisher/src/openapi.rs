//! The OpenAPI 3.1 document of event ingest, generated from the handlers' annotations and the
//! types of `hookwire-api`, served at `/v1/openapi.json`. `docs/openapi-publisher.json` is a copy
//! checked for drift by a test (`UPDATE_OPENAPI=1 cargo test -p hookwire-publisher` rewrites it).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "producer_token",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Hookwire event ingest",
        description = "What internal producers publish domain events with (contract §2). A bearer producer token: the bootstrap one or one from `POST /v1/admin/producer-tokens`."
    ),
    paths(crate::routes::publish_one, crate::routes::publish_batch),
    components(schemas(hookwire_api::Problem)),
    modifiers(&Security),
    security(("producer_token" = [])),
)]
pub struct ApiDoc;

/// Serves the document at `/v1/openapi.json`.
pub fn configure(cfg: &mut actix_web::web::ServiceConfig) {
    hookwire_http::openapi::configure::<ApiDoc>(cfg);
}

#[cfg(test)]
mod tests {
    /// The committed copy must match the code; `UPDATE_OPENAPI=1` rewrites it.
    #[test]
    fn the_copy_in_docs_matches_the_code() {
        hookwire_http::openapi::assert_copy_matches::<super::ApiDoc>(
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi-publisher.json"),
            "UPDATE_OPENAPI=1 cargo test -p hookwire-publisher --lib openapi",
        );
    }
}
