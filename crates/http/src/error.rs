//! Errors of the HTTP API, rendered as RFC 9457 problem details.
//!
//! Policy: handlers return `ApiError`. Client mistakes carry a stable `code` (the last segment of
//! `type`), a status and a message meant for the caller. Anything unexpected becomes `Internal`:
//! its cause chain is logged with the request id and the caller sees a generic 500. Database
//! errors are mapped on purpose in `From<diesel::result::Error>`: not found is 404, a pool timeout
//! is 503, the rest 500.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};

/// Base of every problem `type` URI.
pub const PROBLEM_BASE: &str = "https://hookwire.dev/problems/";

pub use hookwire_api::{FieldError, Problem};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the request has invalid fields")]
    Validation(Vec<FieldError>),
    #[error("{detail}")]
    BadRequest { code: &'static str, detail: String },
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{detail}")]
    Forbidden { code: &'static str, detail: String },
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("this resource does not answer this method; the Allow header lists those it does")]
    MethodNotAllowed,
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    /// Well-formed, but cannot be done as asked (e.g. an idempotency key reused for another request).
    #[error("{detail}")]
    Unprocessable { code: &'static str, detail: String },
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("rate limit exceeded; retry in {retry_after} s")]
    TooManyRequests { retry_after: u64 },
    #[error("{0}")]
    Unavailable(&'static str),
    /// The database cancelled the query at its `statement_timeout`: the same request would take
    /// as long again, so no `Retry-After`.
    #[error("the query took longer than the database allows; narrow the request (a shorter time window, a filter)")]
    QueryTimeout,
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Validation(_) => "validation_failed",
            Self::BadRequest { code, .. }
            | Self::Forbidden { code, .. }
            | Self::Conflict { code, .. }
            | Self::Unprocessable { code, .. } => code,
            Self::Unauthorized(_) => "unauthorized",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::TooManyRequests { .. } => "rate_limited",
            Self::Unavailable(_) => "service_unavailable",
            Self::QueryTimeout => "query_timeout",
            Self::Internal(_) => "internal_error",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            Self::Validation(_) => "Your request has invalid fields",
            Self::BadRequest { .. } => "Bad request",
            Self::Unauthorized(_) => "Authentication required",
            Self::Forbidden { .. } => "Forbidden",
            Self::NotFound(_) => "Not found",
            Self::MethodNotAllowed => "Method not allowed",
            Self::Conflict { .. } => "Conflict",
            Self::Unprocessable { .. } => "Unprocessable request",
            Self::PayloadTooLarge { .. } => "Payload too large",
            Self::TooManyRequests { .. } => "Too many requests",
            Self::Unavailable(_) => "Service unavailable",
            Self::QueryTimeout => "Query too long",
            Self::Internal(_) => "Internal server error",
        }
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            detail: detail.into(),
        }
    }

    pub fn forbidden(code: &'static str, detail: impl Into<String>) -> Self {
        Self::Forbidden {
            code,
            detail: detail.into(),
        }
    }

    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        Self::Internal(e.into())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Validation(_) | Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) | Self::QueryTimeout => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::Internal(e) = self {
            tracing::error!(error = format!("{e:#}"), "request failed");
        }
        let status = self.status_code();
        let detail = match self {
            Self::Internal(_) => "an unexpected error occurred; it has been logged".to_owned(),
            other => other.to_string(),
        };
        let problem = Problem {
            kind: format!("{PROBLEM_BASE}{}", self.code()),
            title: self.title().to_owned(),
            status: status.as_u16(),
            detail,
            errors: match self {
                Self::Validation(errors) => Some(errors.clone()),
                _ => None,
            },
        };
        let mut response = HttpResponse::build(status);
        response.insert_header((header::CONTENT_TYPE, "application/problem+json"));
        if let Self::Unauthorized(_) = self {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        match self {
            Self::Unavailable(_) => {
                response.insert_header((header::RETRY_AFTER, "5"));
            }
            Self::TooManyRequests { retry_after } => {
                response.insert_header((header::RETRY_AFTER, retry_after.to_string()));
            }
            _ => {}
        }
        response.body(serde_json::to_string(&problem).expect("a problem always serializes"))
    }
}

#[cfg(feature = "diesel")]
impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> Self {
        match e {
            diesel::result::Error::NotFound => Self::NotFound("resource"),
            // PostgreSQL's message for SQLSTATE 57014 at `statement_timeout` (set by the operator
            // in `database.url`). diesel keeps the message, not this code; the registry's
            // connections ask for English messages (`db::connect`).
            diesel::result::Error::DatabaseError(_, ref info)
                if info.message().contains("canceling statement due to statement timeout") =>
            {
                tracing::warn!(error = %e, "a query reached the database's statement_timeout");
                Self::QueryTimeout
            }
            // SQLSTATE 40P01 and 40001: PostgreSQL undid the transaction to let a concurrent one
            // through (an erasure's lock met a retention chunk, say). Nothing of it stayed: the
            // caller sends it again.
            diesel::result::Error::DatabaseError(kind, ref info)
                if matches!(kind, diesel::result::DatabaseErrorKind::SerializationFailure)
                    || info.message().starts_with("deadlock detected") =>
            {
                tracing::warn!(error = %e, "a transaction lost to a concurrent one");
                Self::Unavailable("a concurrent change got in the way and this request was undone; send it again")
            }
            other => Self::Internal(other.into()),
        }
    }
}

#[cfg(feature = "diesel")]
impl From<diesel_async::pooled_connection::deadpool::PoolError> for ApiError {
    fn from(e: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        tracing::warn!(error = %e, "no database connection available");
        Self::Unavailable("the database is unavailable; retry shortly")
    }
}

#[cfg(all(test, feature = "diesel"))]
mod tests {
    use super::*;

    struct Info(&'static str);

    impl diesel::result::DatabaseErrorInformation for Info {
        fn message(&self) -> &str {
            self.0
        }
        fn details(&self) -> Option<&str> {
            None
        }
        fn hint(&self) -> Option<&str> {
            None
        }
        fn table_name(&self) -> Option<&str> {
            None
        }
        fn column_name(&self) -> Option<&str> {
            None
        }
        fn constraint_name(&self) -> Option<&str> {
            None
        }
        fn statement_position(&self) -> Option<i32> {
            None
        }
    }

    fn database_error(message: &'static str) -> ApiError {
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::Unknown, Box::new(Info(message))).into()
    }

    #[test]
    fn a_query_cancelled_at_the_statement_timeout_says_to_narrow_the_request() {
        let e = database_error("canceling statement due to statement timeout");
        let response = e.error_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            response.headers().get(header::RETRY_AFTER).is_none(),
            "the same request would time out again"
        );
        assert_eq!(e.code(), "query_timeout");
        assert!(e.to_string().contains("narrow the request"));
        // Any other database error stays an internal one.
        let other = database_error("relation \"webhooks\" does not exist");
        assert_eq!(other.error_response().status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn a_transaction_undone_for_a_concurrent_one_says_to_send_again() {
        let serialization = diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::SerializationFailure,
            Box::new(Info("could not serialize access due to concurrent update")),
        );
        for e in [database_error("deadlock detected"), ApiError::from(serialization)] {
            let response = e.error_response();
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert!(response.headers().get(header::RETRY_AFTER).is_some());
            assert!(e.to_string().contains("send it again"), "{e}");
        }
    }
}
