//! Who is calling: the admin (by `HOOKWIRE_ADMIN_TOKEN`), a tenant's API key (hashed at rest,
//! presented as `Authorization: Bearer <key>` or `X-API-Key: <key>`), or a browser holding a
//! portal session's cookie (`console::session`).

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::db::models::{AdminToken, ApiKey, PortalSession};
use crate::AppState;
use hookwire_http::error::ApiError;

/// Prefix of every API key, so leaked keys are easy to recognise (and to scan for).
pub const KEY_PREFIX: &str = "hwk_";

/// The scopes a key may carry.
pub const SCOPES: [&str; 2] = ["webhooks:read", "webhooks:write"];

/// A new secret credential: `prefix` and the base64 of 256 random bits (a key, a token, a link).
pub fn new_secret(prefix: &str) -> String {
    let random: [u8; 32] = hookwire_core::crypto::random();
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(random))
}

/// The start of a credential kept to recognise it: its prefix and six characters.
pub fn recognisable(secret: &str, prefix: &str) -> String {
    secret[..prefix.len() + 6].to_owned()
}

/// A new key: its plaintext (shown once) and the row to store.
pub fn new_api_key(
    tenant_id: Uuid,
    scopes: Vec<String>,
    webhooks_enabled: bool,
    max_webhooks: i32,
) -> (String, ApiKey) {
    let plaintext = new_secret(KEY_PREFIX);
    let key = ApiKey {
        id: hookwire_core::id::v7(),
        tenant_id,
        key_hash: hash_key(&plaintext),
        key_prefix: recognisable(&plaintext, KEY_PREFIX),
        scopes,
        webhooks_enabled,
        max_webhooks,
        created_at: crate::db::now(),
        revoked_at: None,
        last_used_at: None,
    };
    (plaintext, key)
}

/// SHA-256 of a key: keys carry 256 random bits, so a slow hash would add nothing.
pub fn hash_key(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

fn bearer(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
}

/// The header with which the admin acts for one tenant on the customer API.
pub const ACT_FOR: &str = "hookwire-tenant-id";

/// What a request presents to be let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential<'a> {
    /// The admin token, on `/v1/admin/`.
    Admin(&'a str),
    /// The admin token and a tenant (`Hookwire-Tenant-Id`), on the customer API.
    AdminFor { token: &'a str, tenant: &'a str },
    /// An API key: `X-API-Key` first (a caller may send both, e.g. an admin token as the
    /// bearer), else the bearer.
    Key(&'a str),
    /// A portal session's cookie, when the request carries no other credential.
    Session(&'a str),
}

impl Credential<'_> {
    /// Who the credential is, for keying what a caller leaves behind (idempotency keys): the
    /// SHA-256 of the credential, and of the tenant the admin acts for.
    pub fn scope(&self) -> Vec<u8> {
        let mut hash = Sha256::new();
        match self {
            Self::Admin(token) => hash.update(token),
            Self::AdminFor { token, tenant } => {
                hash.update(token);
                hash.update("\n");
                hash.update(tenant);
            }
            Self::Key(key) => hash.update(key),
            Self::Session(cookie) => {
                hash.update("session\n");
                hash.update(cookie);
            }
        }
        hash.finalize().to_vec()
    }
}

/// The credential a request to this path is authenticated by.
pub fn credential(req: &HttpRequest) -> Option<Credential<'_>> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    let bearer = bearer(req).filter(|b| !b.is_empty());
    if req.path().starts_with("/v1/admin/") {
        return bearer.map(Credential::Admin);
    }
    // Present, even empty, the header asks to act for a tenant: an empty one is refused as
    // malformed, not ignored.
    let act_for = req
        .headers()
        .get(ACT_FOR)
        .map(|v| v.to_str().map(str::trim).unwrap_or("?"));
    if let Some(tenant) = act_for {
        return bearer.map(|token| Credential::AdminFor { token, tenant });
    }
    header("x-api-key")
        .or(bearer)
        .map(Credential::Key)
        .or_else(|| session_cookie(req).map(Credential::Session))
}

/// The portal session's cookie, read from the header itself so the credential can borrow it.
fn session_cookie(req: &HttpRequest) -> Option<&str> {
    let name = crate::console::session::COOKIE;
    req.headers()
        .get_all(actix_web::http::header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(name)?.strip_prefix('='))
        .filter(|v| !v.is_empty())
}

/// The tenant the admin acts for, when `token` is the admin token and `tenant` one that exists.
async fn acting_for(
    state: &AppState,
    conn: &mut diesel_async::AsyncPgConnection,
    token: &str,
    tenant: &str,
) -> Result<Uuid, ApiError> {
    if admin_identity(state, token).await?.is_none() {
        return Err(ApiError::Unauthorized(
            "Hookwire-Tenant-Id is for the admin: send the admin token as `Authorization: Bearer <token>`",
        ));
    }
    let id = Uuid::try_parse(tenant)
        .map_err(|_| ApiError::bad_request("invalid_tenant_id", "Hookwire-Tenant-Id must be a tenant's id (a UUID)"))?;
    if !crate::db::models::Tenant::exists(conn, id).await? {
        return Err(ApiError::NotFound("tenant"));
    }
    Ok(id)
}

/// Whether `credential(req)` is valid now: the admin token (acting for a tenant that exists),
/// or an API key not revoked (without counting the request against the key's rate limit).
pub async fn credential_is_valid(
    req: &HttpRequest,
    conn: &mut diesel_async::AsyncPgConnection,
) -> Result<bool, ApiError> {
    let state = state(req);
    Ok(match credential(req) {
        None => false,
        Some(Credential::Admin(token)) => admin_identity(&state, token).await?.is_some(),
        Some(Credential::AdminFor { token, tenant }) => acting_for(&state, conn, token, tenant).await.is_ok(),
        Some(Credential::Key(key)) => ApiKey::find_by_hash(conn, &hash_key(key)).await?.is_some(),
        Some(Credential::Session(cookie)) => PortalSession::live(conn, &hash_key(cookie)).await?.is_some(),
    })
}

pub(crate) fn state(req: &HttpRequest) -> web::Data<AppState> {
    req.app_data::<web::Data<AppState>>()
        .expect("AppState is registered on the app")
        .clone()
}

/// Which admin token a request came with: the bootstrap one (`HOOKWIRE_ADMIN_TOKEN`) or a
/// named one (`/v1/admin/admin-tokens`). Kept in the request's extensions for the audit log.
#[derive(Debug, Clone)]
pub enum AdminIdentity {
    Bootstrap,
    Named { id: Uuid, name: String },
}

/// Who holds `token`, if it is an admin token now.
async fn admin_identity(state: &AppState, token: &str) -> Result<Option<AdminIdentity>, ApiError> {
    if hookwire_core::config::token_matches(&state.secrets.admin_token, token) {
        return Ok(Some(AdminIdentity::Bootstrap));
    }
    if !token.starts_with(crate::routes::admin_tokens::TOKEN_PREFIX) {
        return Ok(None);
    }
    let mut conn = state.pool.get().await?;
    Ok(AdminToken::live(&mut conn, &hash_key(token))
        .await?
        .map(|t| AdminIdentity::Named { id: t.id, name: t.name }))
}

/// The admin, proven by an admin token.
pub struct Admin;

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = state(req);
        let request = req.clone();
        Box::pin(async move {
            use actix_web::HttpMessage as _;
            let Some(token) = bearer(&request) else {
                return Err(ApiError::Unauthorized(
                    "send the admin token as `Authorization: Bearer <token>`",
                ));
            };
            match admin_identity(&state, token).await? {
                Some(identity) => {
                    request.extensions_mut().insert(identity);
                    Ok(Admin)
                }
                None => Err(ApiError::Unauthorized("the admin token is not valid")),
            }
        })
    }
}

/// A service (a publisher, a dispatcher) on the internal API, by `HOOKWIRE_INTERNAL_TOKEN`; the
/// admin token is taken too. The internal token opens nothing else.
pub struct Internal;

impl FromRequest for Internal {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = state(req);
        let matches = |t: &str| {
            hookwire_core::config::token_matches(&state.secrets.internal_token, t)
                || hookwire_core::config::token_matches(&state.secrets.admin_token, t)
        };
        std::future::ready(match bearer(req) {
            Some(token) if matches(token) => Ok(Internal),
            Some(_) => Err(ApiError::Unauthorized("the internal token is not valid")),
            None => Err(ApiError::Unauthorized(
                "send the internal token as `Authorization: Bearer <token>`",
            )),
        })
    }
}

/// Who calls the customer API: a tenant's API key, or the admin acting for a tenant.
#[derive(Debug, Clone)]
pub struct Caller {
    tenant_id: Uuid,
    /// The key; `None` when the admin acts for the tenant (every scope, no rate limit, no
    /// webhook created: a webhook belongs to a key, whose limit it counts against).
    pub key: Option<ApiKey>,
    /// The portal session the call came with, if it came from the console.
    pub session: Option<Uuid>,
}

impl Caller {
    /// A caller with a session's authority.
    pub(crate) fn of_session(tenant_id: Uuid, key: Option<ApiKey>, session: Uuid) -> Self {
        Caller {
            tenant_id,
            key,
            session: Some(session),
        }
    }

    pub fn tenant_id(&self) -> Uuid {
        self.tenant_id
    }

    /// 403 unless the key carries `scope`.
    pub fn require(&self, scope: &'static str) -> Result<(), ApiError> {
        let Some(key) = &self.key else {
            return Ok(());
        };
        if key.scopes.iter().any(|s| s == scope) {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "missing_scope",
                format!("this API key lacks the `{scope}` scope"),
            ))
        }
    }

    /// 403 unless webhooks are enabled for the account.
    pub fn require_webhooks_enabled(&self) -> Result<(), ApiError> {
        if self.key.as_ref().is_none_or(|k| k.webhooks_enabled) {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "webhooks_disabled",
                "webhooks are not enabled for this account",
            ))
        }
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = state(req);
        let request = req.clone();
        Box::pin(async move {
            use actix_web::HttpMessage as _;
            let presented = match credential(&request) {
                Some(Credential::Key(key)) => key,
                Some(Credential::AdminFor { token, tenant }) => {
                    let mut conn = state.pool.get().await?;
                    let tenant_id = acting_for(&state, &mut conn, token, tenant).await?;
                    tracing::info!(%tenant_id, method = %request.method(), path = %request.path(), "the admin acts for a tenant");
                    return Ok(Caller {
                        tenant_id,
                        key: None,
                        session: None,
                    });
                }
                Some(Credential::Session(cookie)) => {
                    let mut conn = state.pool.get().await?;
                    return crate::console::session::caller(&request, &mut conn, cookie).await;
                }
                Some(Credential::Admin(_)) | None => {
                    return Err(ApiError::Unauthorized(
                        "send an API key as `Authorization: Bearer <key>` or `X-API-Key: <key>`",
                    ))
                }
            };
            let creating_webhook =
                request.method() == actix_web::http::Method::POST && request.path() == "/v1/webhooks";
            // Creating a webhook has its own, tighter limit.
            let (kind, limit) = if creating_webhook {
                ("create", state.config.rate_limits.create_webhook)
            } else {
                ("default", state.config.rate_limits.default)
            };
            let mut conn = state.pool.get().await?;
            // `hookwire listen` answers once per relayed delivery: not a call the limit is for.
            let relaying = request.method() == actix_web::http::Method::POST
                && request.path().starts_with("/v1/listen/")
                && request.path().ends_with("/responses");
            if relaying {
                let key = ApiKey::find_by_hash(&mut conn, &hash_key(presented))
                    .await?
                    .ok_or(ApiError::Unauthorized("the API key is not valid"))?;
                return Ok(Caller {
                    tenant_id: key.tenant_id,
                    key: Some(key),
                    session: None,
                });
            }
            let Some((key, decision)) = crate::ratelimit::admit(&mut conn, &hash_key(presented), kind, limit).await?
            else {
                return Err(ApiError::Unauthorized("the API key is not valid"));
            };
            request.extensions_mut().insert(decision);
            if !decision.allowed {
                return Err(ApiError::TooManyRequests {
                    retry_after: decision.retry_after,
                });
            }
            Ok(Caller {
                tenant_id: key.tenant_id,
                key: Some(key),
                session: None,
            })
        })
    }
}
