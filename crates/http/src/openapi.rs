//! A service's OpenAPI document: served at `/v1/openapi.json`, and its copy in `docs/` kept true
//! by a test of the service (`UPDATE_OPENAPI=1` rewrites the copy).

use actix_web::{web, HttpResponse};
use utoipa::OpenApi;

/// Serves `D`'s document at `/v1/openapi.json`.
pub fn configure<D: OpenApi + 'static>(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/v1/openapi.json").route(web::get().to(serve::<D>)));
}

async fn serve<D: OpenApi>() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(document::<D>())
}

/// `D`'s document as served.
pub fn document<D: OpenApi>() -> String {
    D::openapi().to_pretty_json().expect("the OpenAPI document serializes")
}

/// Asserts that the committed copy at `path` is `D`'s document (with a final line break), or
/// rewrites it when `UPDATE_OPENAPI` is set. `how` says how to update it.
pub fn assert_copy_matches<D: OpenApi>(path: &str, how: &str) {
    let generated = document::<D>() + "\n";
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(path, &generated).expect("the document's copy is writable");
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(committed == generated, "{path} is out of date: run `{how}`");
    let doc: serde_json::Value = serde_json::from_str(&generated).expect("the document is JSON");
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")));
}
