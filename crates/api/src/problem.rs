//! RFC 9457 problem details: the body of every error answer.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An error answer (`application/problem+json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// `https://hookwire.dev/problems/<code>`: the code is stable, meant for programs.
    #[serde(rename = "type")]
    #[schema(example = "https://hookwire.dev/problems/validation_failed")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    /// What went wrong, for people.
    pub detail: String,
    /// On validation errors: one entry per bad field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
}

impl Problem {
    /// The stable code: the last segment of `type`.
    pub fn code(&self) -> &str {
        self.kind.rsplit('/').next().unwrap_or_default()
    }
}

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    /// The field's path, dotted for nested fields (`retry_policy.max_retries`).
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}
