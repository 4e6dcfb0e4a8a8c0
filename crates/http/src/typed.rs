//! Request bodies and query strings read as the API's types (`hookwire_api`). Each input is first
//! checked against the JSON Schema its type derives, the very schema the OpenAPI document
//! publishes, so the server refuses exactly what the document refuses and reports every bad
//! field at once; then it is deserialized into the type.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, RwLock};

use actix_web::web;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::openapi::schema::{Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, FieldError};

/// Compiled validators, one per type, built on first use.
static VALIDATORS: LazyLock<RwLock<HashMap<TypeId, Arc<Compiled>>>> = LazyLock::new(Default::default);

/// A type's validator, and for query types the JSON type of each parameter.
struct Compiled {
    validator: jsonschema::Validator,
    /// The schema the validator was built from (bodies only; `Null` for queries).
    root: Value,
    params: HashMap<String, Option<Type>>,
}

/// The component schemas `T` refers to, with `T`'s own, as a JSON object of name → schema.
fn components<T: ToSchema>() -> Map<String, Value> {
    let mut schemas = Vec::new();
    T::schemas(&mut schemas);
    let mut out: Map<String, Value> = schemas
        .into_iter()
        .map(|(name, s)| (name, serde_json::to_value(s).expect("a schema serializes")))
        .collect();
    out.insert(
        T::name().into_owned(),
        serde_json::to_value(T::schema()).expect("a schema serializes"),
    );
    out
}

fn compile(root: &Value) -> jsonschema::Validator {
    jsonschema::options()
        .should_validate_formats(true)
        .build(root)
        .expect("the API's schemas are valid JSON Schema")
}

fn cached(id: TypeId, build: impl FnOnce() -> Compiled) -> Arc<Compiled> {
    if let Some(compiled) = VALIDATORS
        .read()
        .expect("the validator cache is never poisoned")
        .get(&id)
    {
        return compiled.clone();
    }
    let mut all = VALIDATORS.write().expect("the validator cache is never poisoned");
    all.entry(id).or_insert_with(|| Arc::new(build())).clone()
}

/// The validator of a body type.
fn body_validator<T: ToSchema + 'static>() -> Arc<Compiled> {
    cached(TypeId::of::<T>(), || {
        let root = serde_json::json!({
            "$ref": format!("#/components/schemas/{}", T::name()),
            "components": {"schemas": components::<T>()},
        });
        Compiled {
            validator: compile(&root),
            root,
            params: HashMap::new(),
        }
    })
}

/// The JSON type a parameter's schema names, when it names one.
fn json_type(schema: Option<&RefOr<Schema>>) -> Option<Type> {
    match schema? {
        RefOr::T(Schema::Object(o)) => match &o.schema_type {
            utoipa::openapi::schema::SchemaType::Type(t) => Some(t.clone()),
            utoipa::openapi::schema::SchemaType::Array(ts) => ts.iter().find(|t| **t != Type::Null).cloned(),
            utoipa::openapi::schema::SchemaType::AnyValue => None,
        },
        _ => None,
    }
}

/// The validator of a query type: an object of its parameters, none other allowed.
fn query_validator<T: IntoParams + 'static>() -> Arc<Compiled> {
    cached(TypeId::of::<T>(), || {
        let params: Vec<Parameter> = T::into_params(|| Some(ParameterIn::Query));
        let mut properties = Map::new();
        let mut required = Vec::new();
        let mut types = HashMap::new();
        for p in &params {
            let schema = p
                .schema
                .as_ref()
                .map(|s| serde_json::to_value(s).expect("a schema serializes"));
            properties.insert(p.name.clone(), schema.unwrap_or(Value::Bool(true)));
            if matches!(p.required, utoipa::openapi::Required::True) {
                required.push(Value::String(p.name.clone()));
            }
            types.insert(p.name.clone(), json_type(p.schema.as_ref()));
        }
        let root = serde_json::json!({
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": false,
        });
        Compiled {
            validator: compile(&root),
            root: Value::Null,
            params: types,
        }
    })
}

/// `a.b` for the JSON pointer `/a/b`; items as `a[0]`.
fn field_of(pointer: &str) -> String {
    let mut out = String::new();
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        if segment.parse::<usize>().is_ok() && !out.is_empty() {
            out.push_str(&format!("[{segment}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&segment);
        }
    }
    out
}

fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_owned()
    } else {
        format!("{parent}.{child}")
    }
}

/// What a schema violation says to the caller, per field.
fn field_errors(validator: &jsonschema::Validator, value: &Value) -> Vec<FieldError> {
    use jsonschema::error::ValidationErrorKind as Kind;
    // Most requests are valid: the yes-or-no check is much cheaper than collecting errors.
    if validator.is_valid(value) {
        return Vec::new();
    }
    let mut errors = Vec::new();
    for e in validator.iter_errors(value) {
        let at = field_of(e.instance_path().as_str());
        let message = match e.kind() {
            Kind::Required { property } => {
                let name = property.as_str().unwrap_or_default();
                errors.push(FieldError::new(join(&at, name), "is required"));
                continue;
            }
            Kind::AdditionalProperties { unexpected } => {
                for name in unexpected {
                    errors.push(FieldError::new(join(&at, name), "is not a known field"));
                }
                continue;
            }
            Kind::Type { kind } => format!("must be of type {}", type_names(kind)),
            Kind::Minimum { limit } => format!("must be at least {limit}"),
            Kind::Maximum { limit } => format!("must be at most {limit}"),
            Kind::MinLength { limit: 1 } => "must not be empty".to_owned(),
            Kind::MinLength { limit } => format!("must be at least {limit} characters long"),
            Kind::MaxLength { limit } => format!("must be at most {limit} characters long"),
            Kind::MinItems { limit } => format!("must hold at least {limit} items"),
            Kind::MaxItems { limit } => format!("must hold at most {limit} items"),
            Kind::MinProperties { limit: 1 } => "must set at least one field".to_owned(),
            Kind::MinProperties { limit } => format!("must hold at least {limit} entries"),
            Kind::MaxProperties { limit } => format!("must hold at most {limit} entries"),
            Kind::Format { format } => format!("must be {}", format_name(format)),
            Kind::Enum { options } => format!("must be one of {}", enum_names(options)),
            Kind::Pattern { .. } => "has characters that are not allowed here".to_owned(),
            _ => e.to_string(),
        };
        errors.push(FieldError::new(if at.is_empty() { "body".into() } else { at }, message));
    }
    // One message a field: the first the schema gives (an empty label breaks two rules).
    let mut seen = std::collections::HashSet::new();
    errors.retain(|e| seen.insert(e.field.clone()));
    errors
}

/// Whether `errors` name `field` or anything inside it (`events`, `events[0]`).
pub fn names(errors: &[FieldError], field: &str) -> bool {
    errors.iter().any(|e| {
        e.field == field
            || e.field
                .strip_prefix(field)
                .is_some_and(|rest| rest.starts_with(['.', '[']))
    })
}

fn type_names(kind: &jsonschema::error::TypeKind) -> String {
    match kind {
        jsonschema::error::TypeKind::Single(t) => t.to_string(),
        jsonschema::error::TypeKind::Multiple(ts) => ts
            .iter()
            .filter(|t| *t != jsonschema::JsonType::Null)
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(" or "),
    }
}

fn format_name(format: &str) -> &str {
    match format {
        "uuid" => "a UUID",
        "date-time" => "an RFC 3339 time",
        other => other,
    }
}

fn enum_names(options: &Value) -> String {
    options
        .as_array()
        .map(|o| {
            o.iter()
                .map(|v| v.as_str().map_or(v.to_string(), str::to_owned))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .join(", ")
}

/// Writes `497.0` as `497` where the schema asks for an integer: JSON Schema counts a number
/// with no fraction as an integer, serde does not. Data the schema leaves open is untouched.
fn whole_numbers(value: &mut Value, schema: &Value, root: &Value, depth: u8) {
    if depth > 32 {
        return;
    }
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        if let Some(target) = reference.strip_prefix('#').and_then(|p| root.pointer(p)) {
            whole_numbers(value, target, root, depth + 1);
        }
        return;
    }
    for combined in ["oneOf", "anyOf", "allOf"] {
        for branch in schema.get(combined).and_then(Value::as_array).into_iter().flatten() {
            whole_numbers(value, branch, root, depth + 1);
        }
    }
    let integer = match schema.get("type") {
        Some(Value::String(t)) => t == "integer",
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "integer"),
        _ => false,
    };
    match value {
        Value::Number(n) if integer && n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 {
                *value = Value::from(f as i64);
            }
        }
        Value::Object(map) => {
            if let Some(properties) = schema.get("properties") {
                for (k, v) in map.iter_mut() {
                    if let Some(s) = properties.get(k) {
                        whole_numbers(v, s, root, depth + 1);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for v in items {
                    whole_numbers(v, s, root, depth + 1);
                }
            }
        }
        _ => {}
    }
}

/// Checks `value` against `T`'s schema, then reads it as `T`.
pub fn from_value<T: DeserializeOwned + ToSchema + 'static>(value: Value) -> Result<T, ApiError> {
    let errors = errors::<T>(&value);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    read(value)
}

/// What `T`'s schema refuses in `value`, per field: empty when it passes.
pub fn errors<T: ToSchema + 'static>(value: &Value) -> Vec<FieldError> {
    field_errors(&body_validator::<T>().validator, value)
}

/// Reads a `value` that passed `T`'s schema ([`errors`]) as `T`.
pub fn read<T: DeserializeOwned + ToSchema + 'static>(mut value: Value) -> Result<T, ApiError> {
    let compiled = body_validator::<T>();
    whole_numbers(&mut value, &compiled.root, &compiled.root, 0);
    // The schema is derived from `T`: what passes it deserializes, but say so if not.
    serde_json::from_value(value).map_err(|e| ApiError::Validation(vec![FieldError::new("body", e.to_string())]))
}

/// `value` as it is, once its JSON passes `T`'s schema: for inputs built in code (the admin
/// command), which the schema binds as much as a request.
pub fn checked<T: serde::Serialize + DeserializeOwned + ToSchema + 'static>(value: T) -> Result<T, ApiError> {
    from_value(serde_json::to_value(&value).expect("an API type serializes"))
}

/// Reads a JSON object request body of at most `limit` bytes as `T`.
pub async fn body<T: DeserializeOwned + ToSchema + 'static>(
    payload: web::Payload,
    limit: usize,
) -> Result<T, ApiError> {
    from_value(Value::Object(crate::input::json_object(payload, limit).await?))
}

/// Reads an optional JSON object request body as `T`: no body reads as `{}`.
pub async fn optional_body<T: DeserializeOwned + ToSchema + 'static>(
    payload: web::Payload,
    limit: usize,
) -> Result<T, ApiError> {
    from_value(Value::Object(crate::input::optional_json_object(payload, limit).await?))
}

/// Reads a query string as `T`: each parameter converted to the JSON type its schema names,
/// checked against the parameters' schemas (an unknown parameter is refused), then read as `T`.
pub fn query<T: DeserializeOwned + IntoParams + 'static>(query_string: &str) -> Result<T, ApiError> {
    let compiled = query_validator::<T>();
    let mut object = Map::new();
    let mut errors = Vec::new();
    for (name, raw) in url::form_urlencoded::parse(query_string.as_bytes()) {
        let value = match compiled.params.get(name.as_ref()) {
            None => {
                errors.push(FieldError::new(name.to_string(), "is not a known query parameter"));
                continue;
            }
            // A value of the wrong kind stays a string, for the schema to report.
            Some(Some(Type::Integer)) => raw
                .parse::<i64>()
                .map_or_else(|_| Value::String(raw.to_string()), Value::from),
            Some(Some(Type::Number)) => raw
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map_or_else(|| Value::String(raw.to_string()), Value::Number),
            Some(Some(Type::Boolean)) => match raw.as_ref() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => Value::String(raw.to_string()),
            },
            Some(_) if raw.contains('\0') => {
                // PostgreSQL cannot store it in text: refused, never a 500.
                errors.push(FieldError::new(
                    name.to_string(),
                    "must not contain the character U+0000",
                ));
                continue;
            }
            Some(_) => Value::String(raw.to_string()),
        };
        if object.insert(name.to_string(), value).is_some() {
            errors.push(FieldError::new(name.to_string(), "is given more than once"));
        }
    }
    let object = Value::Object(object);
    errors.extend(field_errors(&compiled.validator, &object));
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    serde_json::from_value(object).map_err(|e| ApiError::Validation(vec![FieldError::new("query", e.to_string())]))
}
