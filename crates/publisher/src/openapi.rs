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
    cfg.service(actix_web::web::resource("/v1/openapi.json").route(actix_web::web::get().to(serve)));
}

async fn serve() -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok()
        .content_type("application/json")
        .body(document())
}

/// The document as served.
pub fn document() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .expect("the OpenAPI document serializes")
}

#[cfg(test)]
mod tests {
    /// The committed copy must match the code; `UPDATE_OPENAPI=1` rewrites it.
    #[test]
    fn docs_openapi_publisher_json_matches_the_code() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi-publisher.json");
        let current = super::document() + "\n";
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(path, &current).expect("docs/openapi-publisher.json is writable");
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == current,
            "docs/openapi-publisher.json is out of date: run `UPDATE_OPENAPI=1 cargo test -p hookwire-publisher --lib openapi`"
        );
    }
}
