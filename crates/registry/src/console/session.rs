//! The portal session a browser holds: its cookie, and what a request made with it may do.
//! Changes need the session's CSRF token in `X-CSRF-Token`; a read-only session changes nothing.

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::Method;
use actix_web::HttpRequest;
use diesel_async::AsyncPgConnection;

use crate::auth::{hash_key, Caller};
use crate::config::ConsoleConfig;
use crate::db::models::PortalSession;
use hookwire_http::error::ApiError;

/// The session cookie's name.
pub const COOKIE: &str = "hookwire_portal";

/// Prefix of a portal link's one-time token.
pub const TOKEN_PREFIX: &str = "hwp_";

/// The path a session ends itself at, which a read-only session may also call.
pub const CURRENT: &str = "/v1/portal-sessions/current";

/// The `Set-Cookie` value that holds a session for `max_age`. Embedded in another site's
/// iframe, a cookie is only sent when `SameSite=None; Secure` (and `Partitioned`, which browsers
/// that block third-party cookies accept); otherwise `Strict`.
pub fn cookie(value: &str, max_age: chrono::Duration, config: &ConsoleConfig, https: bool) -> String {
    let mut c = Cookie::build(COOKIE, value)
        .path("/")
        .http_only(true)
        .max_age(actix_web::cookie::time::Duration::seconds(max_age.num_seconds().max(0)));
    let embedded = !config.frame_ancestors.is_empty();
    c = if embedded {
        c.same_site(SameSite::None).secure(true)
    } else {
        c.same_site(SameSite::Strict).secure(https)
    };
    let mut header = c.finish().to_string();
    if embedded {
        header.push_str("; Partitioned");
    }
    header
}

/// The `Set-Cookie` value that ends a session in the browser.
pub fn removal(config: &ConsoleConfig, https: bool) -> String {
    cookie("", chrono::Duration::zero(), config, https)
}

/// Who a request with the session cookie `value` is, and whether it may do what it asks.
pub async fn caller(req: &HttpRequest, conn: &mut AsyncPgConnection, value: &str) -> Result<Caller, ApiError> {
    let Some((session, key)) = PortalSession::live(conn, &hash_key(value)).await? else {
        return Err(ApiError::Unauthorized(
            "the portal session has ended (expired, revoked or signed out): open a new portal link",
        ));
    };
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        let presented = req
            .headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if presented.is_empty() || !hookwire_core::config::token_matches(&session.csrf_token.clone().into(), presented)
        {
            return Err(ApiError::forbidden(
                "csrf_token_invalid",
                "a change made with a portal session needs the session's `X-CSRF-Token` header",
            ));
        }
        if session.read_only && req.path() != CURRENT {
            return Err(ApiError::forbidden(
                "read_only_session",
                "this portal session is read-only: it cannot change anything",
            ));
        }
    }
    Ok(Caller::of_session(session.tenant_id, key, session.id))
}

/// Whether the browser reached this server over HTTPS (directly or through a proxy that says so).
pub fn https(req: &HttpRequest, public_url: &str) -> bool {
    public_url.starts_with("https://") || req.connection_info().scheme() == "https"
}
