//! The OpenAPI 3.1 document of the management API, generated from the handlers' annotations and
//! the types of `hookwire-api`, served at `/v1/openapi.json`. `docs/openapi.json` is a copy checked
//! for drift by a test (`UPDATE_OPENAPI=1 cargo test -p hookwire-registry` rewrites it).
//!
//! Every body is a type of `hookwire_api`, used both to answer and to document.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        // The console's: set by `POST /v1/portal-sessions/open`; changes also need `X-CSRF-Token`.
        components.add_security_scheme(
            "portal_session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(crate::console::session::COOKIE))),
        );
    }
}

/// The request headers every operation of a kind takes: `Idempotency-Key` on every POST
/// (`crate::idempotent_requests`), with the two answers it adds, and `Hookwire-Tenant-Id` on the
/// customer API (`crate::auth::Credential::AdminFor`).
struct Headers;

impl Modify for Headers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        use utoipa::openapi::{ObjectBuilder, Required, ResponseBuilder, Type};
        let parameter = ParameterBuilder::new()
            .name("Idempotency-Key")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some(
                "Makes a retry safe: the first 2xx answer to a key (per credential, for 24 h) is given \
                 again, with `Idempotent-Replayed: true`, to the same request sent with it.",
            ))
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1))
                    .max_length(Some(255))
                    // Printable ASCII, neither blank nor `""` once trimmed and unquoted.
                    .pattern(Some(r#"^(?!""$)[\x21-\x7e]([\x20-\x7e]{0,253}[\x21-\x7e])?$"#)),
            ))
            .build();
        let problem = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/problem+json",
                    utoipa::openapi::ContentBuilder::new()
                        .schema(Some(utoipa::openapi::Ref::from_schema_name("Problem")))
                        .build(),
                )
                .build()
        };
        let act_for = ParameterBuilder::new()
            .name("Hookwire-Tenant-Id")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some(
                "With the admin token as the bearer: the admin acts for this tenant \
                 (every scope, no rate limit; creating a webhook is left to the tenant's keys).",
            ))
            .schema(Some(ObjectBuilder::new().schema_type(Type::String).format(Some(
                utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Uuid),
            ))))
            .build();
        for (path, item) in openapi.paths.paths.iter_mut() {
            let customer = !path.starts_with("/v1/admin/");
            for op in [&mut item.get, &mut item.post, &mut item.patch, &mut item.delete]
                .into_iter()
                .flatten()
            {
                let responses = &mut op.responses.responses;
                // Every operation reads headers (and most a body or a query) it may refuse.
                responses
                    .entry("400".into())
                    .or_insert_with(|| problem("A header, the query or the body is invalid").into());
                responses.entry("503".into()).or_insert_with(|| {
                    problem("The database or the broker is unavailable, or a concurrent transaction won; retry after `Retry-After`").into()
                });
                if customer {
                    op.parameters.get_or_insert_with(Vec::new).push(act_for.clone().into());
                    responses
                        .entry("404".into())
                        .or_insert_with(|| problem("Hookwire-Tenant-Id names no tenant").into());
                }
            }
            if let Some(post) = item.post.as_mut() {
                post.parameters
                    .get_or_insert_with(Vec::new)
                    .push(parameter.clone().into());
                let responses = &mut post.responses.responses;
                responses
                    .entry("409".into())
                    .or_insert_with(|| problem("A request with the same Idempotency-Key is being answered").into());
                responses
                    .entry("422".into())
                    .or_insert_with(|| problem("The Idempotency-Key was used for a different request").into());
            }
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Hookwire management API", description = "Webhooks, event types and the delivery log (contract §3)."),
    paths(
        crate::routes::webhooks::list,
        crate::routes::webhooks::create,
        crate::routes::webhooks::retrieve,
        crate::routes::webhooks::update,
        crate::routes::webhooks::delete,
        crate::routes::webhooks::rotate_secret,
        crate::routes::webhooks::send_test,
        crate::routes::webhooks::recover,
        crate::routes::webhooks::replay,
        crate::routes::webhooks::stats,
        crate::routes::deliveries::list,
        crate::routes::deliveries::retrieve,
        crate::routes::deliveries::retry,
        crate::routes::event_types::list,
        crate::routes::event_types::retrieve,
        crate::routes::tenants::list_tenants,
        crate::routes::tenants::retrieve_tenant,
        crate::routes::tenants::update_tenant,
        crate::routes::tenants::remove_tenant,
        crate::routes::erasure::expunge_events,
        crate::routes::tenants::create_tenant,
        crate::routes::api_keys::list_api_keys,
        crate::routes::api_keys::create_api_key,
        crate::routes::api_keys::retrieve_api_key,
        crate::routes::api_keys::update_api_key,
        crate::routes::api_keys::revoke_api_key,
        crate::routes::event_types::list_for_admin,
        crate::routes::event_types::create_event_type,
        crate::routes::event_types::change_event_type,
        crate::routes::event_types::archive_event_type,
        crate::routes::overview::show,
        crate::routes::admin_tokens::create,
        crate::routes::admin_tokens::list,
        crate::routes::admin_tokens::revoke,
        crate::routes::producer_tokens::create,
        crate::routes::producer_tokens::list,
        crate::routes::producer_tokens::retrieve,
        crate::routes::producer_tokens::revoke,
        crate::routes::audit::list_for_admin,
        crate::routes::audit::list,
        crate::routes::listen::start,
        crate::routes::listen::stop,
        crate::routes::listen::requests,
        crate::routes::listen::respond,
        crate::routes::portal_sessions::create_for_tenant,
        crate::routes::portal_sessions::revoke,
        crate::routes::portal_sessions::create,
        crate::routes::portal_sessions::open,
        crate::routes::portal_sessions::current,
        crate::routes::portal_sessions::end,
    ),
    modifiers(&Security, &Headers),
    security(("api_key" = []), ("bearer" = []), ("portal_session" = [])),
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
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json"),
            "UPDATE_OPENAPI=1 cargo test -p hookwire-registry --lib openapi",
        );
    }
}
