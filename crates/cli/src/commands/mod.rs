//! One module per resource the CLI manages, plus `listen`.

pub mod admin;
pub mod deliveries;
pub mod event_types;
pub mod events;
pub mod listen;
pub mod webhooks;

/// A value the API serializes as a string (an enum such as a delivery's status), as text.
pub fn text(value: &impl serde::Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(v) => v.to_string(),
        Err(_) => "?".into(),
    }
}

/// Parses a JSON argument, saying which one was not JSON.
pub fn json_arg(name: &str, text: &str) -> anyhow::Result<serde_json::Value> {
    serde_json::from_str(text).map_err(|e| anyhow::anyhow!("{name} is not JSON: {e}"))
}
