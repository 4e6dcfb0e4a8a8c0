//! `Idempotency-Key` on the management API's POSTs (as in the IETF draft
//! `draft-ietf-httpapi-idempotency-key-header`, and as Stripe and Svix take it): a client that
//! lost an answer sends the request again with the same key and gets the first answer, not a
//! second webhook, a second rotation (which would end the secret its receiver still checks) or a
//! second API key.
//!
//! A key belongs to the credential that sent it (an API key, or the admin token) for 24 hours. The
//! first request claims it; a 2xx answer is kept (its body encrypted: it may hold a signing secret
//! or an API key) and given again, with `Idempotent-Replayed: true`, to every request with the key
//! and the same method, path and body. Any other answer releases the key, so a request that failed
//! changed nothing and may be sent again as it is. The same key with another request: 422; while
//! the first is still running: 409. A replayed answer costs no rate-limit allowance, but is only
//! given to a credential still valid. A request runs to its end even when its client goes away
//! meanwhile, so its answer is there for the retry; a claim left by a registry that died is taken
//! over after a minute by the same request sent again.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{HttpMessage as _, HttpResponse};
use diesel::sql_types::{Bytea, Nullable, SmallInt, Text, Uuid as SqlUuid};
use diesel::{OptionalExtension as _, QueryableByName};
use diesel_async::{AsyncPgConnection, RunQueryDsl as _};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use crate::db::event_keys::RETENTION_HOURS;
use crate::AppState;
use hookwire_http::error::ApiError;

pub const HEADER: &str = "idempotency-key";
/// Marks an answer given again for a key.
pub const REPLAYED: &str = "idempotent-replayed";
/// Longest key accepted.
const MAX_LEN: usize = 255;
/// A claim with no answer after this long is taken over: its registry died mid-request.
const TAKEOVER_SECONDS: i64 = 60;

/// The key of a request it applies to: a POST under `/v1/` (the services' own `/v1/internal/`
/// calls aside) with the header; a malformed key is the caller's error.
fn key_of(req: &ServiceRequest) -> Option<Result<String, ApiError>> {
    let path = req.path();
    if req.method() != Method::POST || !path.starts_with("/v1/") || path.starts_with("/v1/internal/") {
        return None;
    }
    let raw = req.headers().get(HEADER)?;
    let bad = || {
        ApiError::bad_request(
            "invalid_idempotency_key",
            format!("the Idempotency-Key header must be 1 to {MAX_LEN} printable ASCII characters"),
        )
    };
    let value = raw.to_str().map_err(|_| bad()).map(str::trim);
    // The draft sends it as a structured-field string ("…"); plain tokens are common too.
    let value = value.map(|v| v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v));
    Some(value.and_then(|v| {
        if v.is_empty() || v.len() > MAX_LEN || !v.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            Err(bad())
        } else {
            Ok(v.to_owned())
        }
    }))
}

/// What the key says about a request.
enum Claim {
    /// This request holds the key: run it.
    Run,
    /// The first request with the key was answered: give its answer again.
    Answered { status: u16, sealed: Option<String> },
    /// The first request with the key is still running (or was released a moment ago).
    Running,
    /// The key was used for a different request.
    OtherRequest,
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Bytea)]
    fingerprint: Vec<u8>,
    #[diesel(sql_type = Nullable<SmallInt>)]
    status: Option<i16>,
    #[diesel(sql_type = Nullable<Text>)]
    body_sealed: Option<String>,
}

/// Claims (scope, key) for `holder`: a new key, one expired, or a claim left unanswered for a
/// minute by the same request.
async fn claim(
    conn: &mut AsyncPgConnection,
    scope: &[u8],
    key: &str,
    fingerprint: &[u8],
    holder: Uuid,
) -> diesel::QueryResult<Claim> {
    let taken = diesel::sql_query(format!(
        "INSERT INTO api_idempotency_keys AS k (scope, key, fingerprint, holder) VALUES ($1, $2, $3, $4)
         ON CONFLICT (scope, key) DO UPDATE
             SET fingerprint = excluded.fingerprint, holder = excluded.holder,
                 status = NULL, body_sealed = NULL, created_at = now()
             WHERE k.created_at < now() - interval '{RETENTION_HOURS} hours'
                OR (k.status IS NULL AND k.fingerprint = excluded.fingerprint
                    AND k.created_at < now() - interval '{TAKEOVER_SECONDS} seconds')"
    ))
    .bind::<Bytea, _>(scope)
    .bind::<Text, _>(key)
    .bind::<Bytea, _>(fingerprint)
    .bind::<SqlUuid, _>(holder)
    .execute(conn)
    .await?;
    if taken == 1 {
        return Ok(Claim::Run);
    }
    let row: Option<Row> = diesel::sql_query(
        "SELECT fingerprint, status, body_sealed FROM api_idempotency_keys WHERE scope = $1 AND key = $2",
    )
    .bind::<Bytea, _>(scope)
    .bind::<Text, _>(key)
    .get_result(conn)
    .await
    .optional()?;
    Ok(match row {
        Some(r) if r.fingerprint != fingerprint => Claim::OtherRequest,
        Some(Row {
            status: Some(status),
            body_sealed,
            ..
        }) => Claim::Answered {
            status: status as u16,
            sealed: body_sealed,
        },
        Some(_) | None => Claim::Running,
    })
}

/// Records the answer of the request holding the key; `None` releases the key. A failure is
/// logged, not answered: the request's own answer stands (the key is then taken over in a minute).
async fn settle(state: &AppState, scope: &[u8], key: &str, holder: Uuid, answer: Option<(u16, Option<String>)>) {
    let query = match answer {
        Some((status, sealed)) => diesel::sql_query(
            "UPDATE api_idempotency_keys SET status = $4, body_sealed = $5
             WHERE scope = $1 AND key = $2 AND holder = $3",
        )
        .into_boxed()
        .bind::<Bytea, _>(scope)
        .bind::<Text, _>(key)
        .bind::<SqlUuid, _>(holder)
        .bind::<SmallInt, _>(status as i16)
        .bind::<Nullable<Text>, _>(sealed),
        None => diesel::sql_query(
            "DELETE FROM api_idempotency_keys WHERE scope = $1 AND key = $2 AND holder = $3 AND status IS NULL",
        )
        .into_boxed()
        .bind::<Bytea, _>(scope)
        .bind::<Text, _>(key)
        .bind::<SqlUuid, _>(holder),
    };
    let settled = async {
        let mut conn = state.pool.get().await.map_err(|e| e.to_string())?;
        query.execute(&mut conn).await.map_err(|e| e.to_string())
    };
    if let Err(error) = settled.await {
        tracing::warn!(%error, "could not settle an idempotency key; a retry finds it taken over in a minute");
    }
}

/// The middleware: passes requests without a key through untouched.
pub async fn middleware(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let key = match key_of(&req) {
        None => return next.call(req).await.map(ServiceResponse::map_into_boxed_body),
        Some(Err(e)) => return Ok(req.error_response(e)),
        Some(Ok(key)) => key,
    };
    // Without a credential the request is refused by its handler, key or not.
    let Some(scope) = crate::auth::credential(req.request()).map(|c| c.scope()) else {
        return next.call(req).await.map(ServiceResponse::map_into_boxed_body);
    };
    let state = crate::auth::state(req.request());
    let body = match hookwire_http::input::bytes(req.take_payload(), state.config.http.max_body_bytes).await {
        Ok(body) => body,
        Err(e) => return Ok(req.error_response(e)),
    };
    let mut hash = Sha256::new();
    hash.update(req.method().as_str());
    hash.update(b"\n");
    hash.update(req.uri().path_and_query().map_or("", |p| p.as_str()));
    hash.update(b"\n");
    hash.update(&body);
    let fingerprint = hash.finalize().to_vec();
    req.set_payload(body.into());

    let holder = Uuid::new_v4();
    let claimed = async {
        let mut conn = state.pool.get().await?;
        let claimed = claim(&mut conn, &scope, &key, &fingerprint, holder).await?;
        if let Claim::Answered { .. } = claimed {
            if !crate::auth::credential_is_valid(req.request(), &mut conn).await? {
                return Err(ApiError::Unauthorized("the credential is not valid"));
            }
        }
        Ok::<_, ApiError>(claimed)
    };
    match claimed.await {
        Err(e) => Ok(req.error_response(e)),
        Ok(Claim::OtherRequest) => Ok(req.error_response(ApiError::Unprocessable {
            code: "idempotency_key_reused",
            detail:
                "this Idempotency-Key was used for a different request (method, path or body) in the last 24 hours; \
                     use a new key for a new request"
                    .into(),
        })),
        Ok(Claim::Running) => Ok(req.error_response(ApiError::Conflict {
            code: "idempotency_in_progress",
            detail: "a request with this Idempotency-Key is being answered right now; send it again shortly".into(),
        })),
        Ok(Claim::Answered { status, sealed }) => {
            let body = match sealed.map(|s| state.secrets.keyring.open(&s)).transpose() {
                Ok(body) => body,
                Err(e) => return Ok(req.error_response(ApiError::internal(e))),
            };
            let mut answer = HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::OK));
            answer.insert_header((HeaderName::from_static(REPLAYED), HeaderValue::from_static("true")));
            let answer = match body {
                // Only a non-empty body is kept.
                Some(body) => answer.insert_header((CONTENT_TYPE, "application/json")).body(body),
                None => answer.finish(),
            };
            Ok(req.into_response(answer))
        }
        // actix-web runs a request to its end even when its client has gone away (HTTP/1 keeps
        // polling the handler after the read half closes), so the answer is kept for the retry.
        Ok(Claim::Run) => {
            let res = match next.call(req).await {
                Ok(res) if res.status().is_success() => res,
                other => {
                    settle(&state, &scope, &key, holder, None).await;
                    return other.map(ServiceResponse::map_into_boxed_body);
                }
            };
            let status = res.status().as_u16();
            let (req, res) = res.into_parts();
            let (res, body) = res.into_parts();
            let body = actix_web::body::to_bytes(body)
                .await
                .map_err(|e| ApiError::internal(anyhow::anyhow!("reading an answer: {}", e.into())))?;
            let sealed = (!body.is_empty()).then(|| state.secrets.keyring.seal(&String::from_utf8_lossy(&body)));
            settle(&state, &scope, &key, holder, Some((status, sealed))).await;
            Ok(ServiceResponse::new(req, res.set_body(body).map_into_boxed_body()))
        }
    }
}
