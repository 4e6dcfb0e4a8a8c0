//! Reading request bodies: JSON objects with a size limit and no U+0000 anywhere, before
//! `typed` checks them against their type's schema. One place, so every endpoint answers bad
//! input the same way (problem+json, `errors: [{field, message}]`).

use actix_web::web;
use futures_util::StreamExt as _;
use serde_json::{Map, Value};

use crate::error::{ApiError, FieldError};

/// Reads a body of at most `limit` bytes.
pub async fn bytes<E: std::fmt::Display>(
    payload: impl futures_util::Stream<Item = Result<web::Bytes, E>>,
    limit: usize,
) -> Result<web::Bytes, ApiError> {
    let mut payload = std::pin::pin!(payload);
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request("unreadable_body", e.to_string()))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Reads a JSON object body of at most `limit` bytes.
pub async fn json_object(payload: web::Payload, limit: usize) -> Result<Map<String, Value>, ApiError> {
    object_of(&bytes(payload, limit).await?)
}

/// The JSON object a request body holds (what [`json_object`] reads, for a body already read).
pub fn object_of(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "empty_body",
            "the request body is empty; send a JSON object",
        ));
    }
    parse_object(body)
}

/// Reads a JSON object body of at most `limit` bytes, or none (or `null`): an empty map.
pub async fn optional_json_object(payload: web::Payload, limit: usize) -> Result<Map<String, Value>, ApiError> {
    let body = bytes(payload, limit).await?;
    // No body, or a JSON null: nothing given.
    if body.is_empty() || body.trim_ascii() == b"null" {
        Ok(Map::new())
    } else {
        parse_object(&body)
    }
}

fn parse_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let parsed = serde_json::from_slice::<Value>(body);
    if let Some(field) = parsed.as_ref().ok().and_then(|v| nul_field(v, "")) {
        return Err(nul_error(field));
    }
    match parsed {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::bad_request(
            "malformed_json",
            "the request body must be a JSON object",
        )),
        Err(e) => Err(ApiError::bad_request(
            "malformed_json",
            format!("the request body is not valid JSON: {e}"),
        )),
    }
}

/// The path of the first string or key in `v` holding U+0000, which PostgreSQL cannot store in
/// text or jsonb (accepting one would mean a 500, or a delivery-log batch that never commits).
pub fn nul_field(v: &Value, path: &str) -> Option<String> {
    let join = |k: &str| {
        if path.is_empty() {
            k.to_owned()
        } else {
            format!("{path}.{k}")
        }
    };
    match v {
        Value::String(s) if s.contains('\0') => Some(if path.is_empty() {
            "body".into()
        } else {
            path.to_owned()
        }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, x)| nul_field(x, &format!("{}[{i}]", if path.is_empty() { "body" } else { path }))),
        Value::Object(map) => map.iter().find_map(|(k, x)| {
            if k.contains('\0') {
                Some(join(&k.replace('\0', "\\u0000")))
            } else {
                nul_field(x, &join(k))
            }
        }),
        _ => None,
    }
}

/// The error for [`nul_field`].
pub fn nul_error(field: String) -> ApiError {
    ApiError::Validation(vec![FieldError::new(field, "must not contain the character U+0000")])
}
