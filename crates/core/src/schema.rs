//! Event payloads against their type's JSON Schema: how a violation reads, the same for a
//! producer's event (publisher) and an operator's example (registry).

/// The violations of `data` (at most `max`), each with the path it is at; empty when it conforms.
pub fn violations(validator: &jsonschema::Validator, data: &serde_json::Value, max: usize) -> Vec<String> {
    validator
        .iter_errors(data)
        .take(max)
        .map(|e| {
            let path = e.instance_path().to_string();
            if path.is_empty() {
                e.to_string()
            } else {
                format!("{path}: {e}")
            }
        })
        .collect()
}

/// The violations of `data` against `schema` (at most `max`); a schema that is not valid is one.
pub fn check(schema: &serde_json::Value, data: &serde_json::Value, max: usize) -> Vec<String> {
    match jsonschema::validator_for(schema) {
        Ok(validator) => violations(&validator, data, max),
        Err(e) => vec![format!("the schema is not valid: {e}")],
    }
}
