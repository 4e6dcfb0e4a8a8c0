//! Reading requests: JSON bodies with a size limit, field-by-field validation that reports every
//! bad field at once, and query strings with unknown parameters refused. One place, so every
//! endpoint answers bad input the same way (problem+json, `errors: [{field, message}]`).

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
    let body = bytes(payload, limit).await?;
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "empty_body",
            "the request body is empty; send a JSON object",
        ));
    }
    parse_object(&body)
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

/// A field that may be absent, explicitly null, or set.
#[derive(Debug, Clone, PartialEq)]
pub enum Field<T> {
    Absent,
    Null,
    Set(T),
}

impl<T> Field<T> {
    pub fn set(self) -> Option<T> {
        match self {
            Field::Set(v) => Some(v),
            _ => None,
        }
    }
}

/// Takes typed fields out of a JSON object, collecting one error per bad field.
pub struct Fields {
    map: Map<String, Value>,
    errors: Vec<FieldError>,
}

impl Fields {
    pub fn new(map: Map<String, Value>) -> Self {
        Self {
            map,
            errors: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Records an error found by a check outside this helper.
    pub fn error(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError::new(field, message));
    }

    fn take<T>(&mut self, name: &str, what: &str, convert: impl FnOnce(&Value) -> Option<T>) -> Field<T> {
        match self.map.remove(name) {
            None => Field::Absent,
            Some(Value::Null) => Field::Null,
            Some(v) => match convert(&v) {
                Some(t) => Field::Set(t),
                None => {
                    self.error(name, format!("must be {what}"));
                    Field::Absent
                }
            },
        }
    }

    pub fn string(&mut self, name: &str, max_len: usize) -> Field<String> {
        let f = self.take(name, "a string", |v| v.as_str().map(str::to_owned));
        match f {
            Field::Set(s) if s.chars().count() > max_len => {
                self.error(name, format!("must be at most {max_len} characters"));
                Field::Absent
            }
            other => other,
        }
    }

    pub fn bool(&mut self, name: &str) -> Field<bool> {
        self.take(name, "true or false", Value::as_bool)
    }

    pub fn string_list(&mut self, name: &str, max_items: usize, max_len: usize) -> Field<Vec<String>> {
        let f = self.take(name, "a list of strings", |v| {
            v.as_array()?
                .iter()
                .map(|x| x.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
        });
        match f {
            Field::Set(list) if list.len() > max_items => {
                self.error(name, format!("must have at most {max_items} items"));
                Field::Absent
            }
            Field::Set(list) if list.iter().any(|s| s.is_empty() || s.chars().count() > max_len) => {
                self.error(name, format!("items must be between 1 and {max_len} characters"));
                Field::Absent
            }
            other => other,
        }
    }

    pub fn any(&mut self, name: &str) -> Field<Value> {
        self.take(name, "a value", |v| Some(v.clone()))
    }

    /// A field that must be sent: its value, else "is required" (unless the value sent was of
    /// the wrong kind, which has its own error).
    pub fn required<T>(&mut self, name: &str, field: Field<T>) -> Option<T> {
        match field {
            Field::Set(v) => Some(v),
            _ => {
                if !self.errors.iter().any(|e| e.field == name) {
                    self.error(name, "is required");
                }
                None
            }
        }
    }

    /// Ends reading: unknown fields are errors, and so is any error recorded before.
    pub fn finish(mut self) -> Result<(), ApiError> {
        for unknown in self.map.keys() {
            self.errors
                .push(FieldError::new(unknown.clone(), "is not a known field"));
        }
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.errors))
        }
    }
}
