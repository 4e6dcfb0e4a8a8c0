//! The management API as a customer meets it: authentication, scopes, limits, isolation,
//! validation errors and pagination.

use hookwire_test_support::{Response, TestEnv, ADMIN_TOKEN};
use serde_json::{json, Value};

mod access;
mod admin_keys;
mod concurrency;
mod idempotency;
mod routing;
mod webhooks;

fn webhook(url: &str) -> serde_json::Value {
    json!({"url": url, "events": ["person.created"]})
}
