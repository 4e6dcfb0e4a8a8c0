//! The console at `/console/`: a customer portal (opened from a portal session's link, held by
//! a cookie) and an operator dashboard (the admin token), one page of plain JavaScript calling
//! the public API. `assets` holds its files, `session` the portal's cookie and what it may do.

pub mod assets;
pub mod session;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};

use crate::config::ConsoleConfig;
use crate::AppState;

/// What the console serves besides its files, built once at start.
pub struct Console {
    /// The `Content-Security-Policy` of every console answer.
    csp: String,
    /// The configured logo and its content type.
    logo: Option<(Vec<u8>, &'static str)>,
}

impl Console {
    pub fn new(config: &ConsoleConfig) -> anyhow::Result<Self> {
        let ancestors = if config.frame_ancestors.is_empty() {
            "'none'".to_owned()
        } else {
            config.frame_ancestors.join(" ")
        };
        let csp = format!(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors {ancestors}"
        );
        let logo = if config.logo.is_empty() {
            None
        } else {
            let kind = match config.logo.rsplit('.').next().map(str::to_ascii_lowercase).as_deref() {
                Some("png") => "image/png",
                Some("svg") => "image/svg+xml",
                Some("jpg" | "jpeg") => "image/jpeg",
                _ => anyhow::bail!("console.logo must be a .png, .svg or .jpg file: {}", config.logo),
            };
            let bytes = std::fs::read(&config.logo)
                .map_err(|e| anyhow::anyhow!("reading console.logo {}: {e}", config.logo))?;
            Some((bytes, kind))
        };
        Ok(Self { csp, logo })
    }

    /// Where the logo is served, if there is one.
    pub fn logo_url(&self) -> Option<String> {
        self.logo.as_ref().map(|_| "/console/logo".to_owned())
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/console").route(web::get().to(to_index)))
        .service(
            web::resource("/console/logo")
                .route(web::get().to(logo))
                .route(web::head().to(logo)),
        )
        .service(
            web::resource("/console/{path:.*}")
                .route(web::get().to(file))
                .route(web::head().to(file)),
        );
}

async fn to_index() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/console/"))
        .finish()
}

/// An answer with the console's safety headers.
fn answer(state: &AppState, status: actix_web::http::StatusCode) -> actix_web::HttpResponseBuilder {
    let mut b = HttpResponse::build(status);
    b.insert_header((header::CONTENT_SECURITY_POLICY, state.console.csp.as_str()))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header(("cross-origin-opener-policy", "same-origin"));
    if state.config.console.frame_ancestors.is_empty() {
        b.insert_header((header::X_FRAME_OPTIONS, "DENY"));
    }
    b
}

async fn file(state: web::Data<AppState>, req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    let path = path.into_inner();
    let path = if path.is_empty() { "index.html" } else { path.as_str() };
    let (Some((bytes, kind)), true) = (assets::find(path), state.config.console.enabled) else {
        return answer(&state, actix_web::http::StatusCode::NOT_FOUND)
            .content_type("text/plain; charset=utf-8")
            .body("not found");
    };
    let etag = format!("\"{}\"", hex(&Sha256::digest(bytes)[..12]));
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let status = if fresh {
        actix_web::http::StatusCode::NOT_MODIFIED
    } else {
        actix_web::http::StatusCode::OK
    };
    let mut b = answer(&state, status);
    b.insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .content_type(kind);
    if fresh {
        b.finish()
    } else {
        b.body(bytes)
    }
}

async fn logo(state: web::Data<AppState>) -> HttpResponse {
    match &state.console.logo {
        Some((bytes, kind)) => answer(&state, actix_web::http::StatusCode::OK)
            .insert_header((header::CACHE_CONTROL, "max-age=3600"))
            .content_type(*kind)
            .body(bytes.clone()),
        None => answer(&state, actix_web::http::StatusCode::NOT_FOUND).finish(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
