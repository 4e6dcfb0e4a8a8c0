//! The audit log: every change, who made it (never a secret), what it changed field by field
//! (secrets masked), and the request it came with. A webhook's changes write their entry in the
//! change's own transaction (`write`); the rarer operator changes record it right after
//! (`record`). The table is pruned with the delivery log (`retention`).

use actix_web::{HttpMessage as _, HttpRequest};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::auth::Caller;
use crate::db::schema::audit_log;

/// What a secret field holds in the log.
pub const MASKED: &str = "[masked]";

/// Fields whose values are never logged; under `headers`, every value is masked.
const SECRET_FIELDS: [&str; 5] = ["secret", "auth_secret", "key", "token", "csrf_token"];

/// Who acts, and with which request.
#[derive(Debug, Clone)]
pub struct By {
    pub kind: &'static str,
    pub id: Option<String>,
    pub name: Option<String>,
    pub request_id: Option<String>,
}

fn request_id(req: &HttpRequest) -> Option<String> {
    req.extensions().get::<hookwire_http::RequestId>().map(|r| r.0.clone())
}

impl By {
    /// An admin token, on the admin API: the bootstrap one, or a named one by its id and name.
    pub fn admin(req: &HttpRequest) -> Self {
        let (id, name) = match req.extensions().get::<crate::auth::AdminIdentity>() {
            Some(crate::auth::AdminIdentity::Named { id, name }) => (Some(id.to_string()), name.clone()),
            _ => (None, "admin token".to_owned()),
        };
        Self {
            kind: "admin",
            id,
            name: Some(name),
            request_id: request_id(req),
        }
    }

    /// The registry's `admin` subcommand.
    pub fn command() -> Self {
        Self {
            kind: "admin_command",
            id: None,
            name: Some("hookwire-registry admin".into()),
            request_id: None,
        }
    }

    /// Hookwire itself.
    pub fn system(what: &str) -> Self {
        Self {
            kind: "system",
            id: None,
            name: Some(what.into()),
            request_id: None,
        }
    }

    /// A caller of the customer API: a key, a portal session, or the admin acting for a tenant.
    pub fn caller(caller: &Caller, req: &HttpRequest) -> Self {
        let prefix = caller.key.as_ref().map(|k| format!("{}…", k.key_prefix));
        let (kind, id, name) = match (&caller.session, &caller.key) {
            (Some(session), _) => ("portal_session", Some(session.to_string()), prefix),
            (None, Some(key)) => ("api_key", Some(key.id.to_string()), prefix),
            (None, None) => ("admin", None, Some("admin token, acting for the tenant".into())),
        };
        Self {
            kind,
            id,
            name,
            request_id: request_id(req),
        }
    }
}

/// An entry to record.
pub struct Change<'a> {
    pub tenant_id: Option<Uuid>,
    /// `<resource>.<verb>`.
    pub action: &'a str,
    pub resource_type: &'a str,
    pub resource_id: String,
    pub changes: Value,
}

#[derive(Insertable)]
#[diesel(table_name = audit_log)]
struct Row<'a> {
    id: Uuid,
    at: chrono::DateTime<chrono::Utc>,
    tenant_id: Option<Uuid>,
    actor_kind: &'a str,
    actor_id: Option<&'a str>,
    actor_name: Option<&'a str>,
    action: &'a str,
    resource_type: &'a str,
    resource_id: &'a str,
    changes: &'a Value,
    request_id: Option<&'a str>,
}

/// Records `change` by `by`. A failure is logged, not returned: the change itself is made.
pub async fn record(conn: &mut AsyncPgConnection, by: &By, change: Change<'_>) {
    if let Err(e) = write(conn, by, &change).await {
        tracing::error!(error = %e, action = change.action, resource_id = %change.resource_id, "the audit log could not record a change");
    }
}

/// Writes `change` by `by`, failing with the statement: inside the change's own transaction,
/// the change and its entry are kept or undone together.
pub async fn write(conn: &mut AsyncPgConnection, by: &By, change: &Change<'_>) -> diesel::QueryResult<()> {
    let row = Row {
        id: hookwire_core::id::v7(),
        at: crate::db::now(),
        tenant_id: change.tenant_id,
        actor_kind: by.kind,
        actor_id: by.id.as_deref(),
        actor_name: by.name.as_deref(),
        action: change.action,
        resource_type: change.resource_type,
        resource_id: &change.resource_id,
        changes: &change.changes,
        request_id: by.request_id.as_deref(),
    };
    diesel::insert_into(audit_log::table)
        .values(&row)
        .execute(conn)
        .await
        .map(drop)
}

/// Records an action that sends rather than changes (a test event, a retry, a recover, a replay)
/// on `resource_id` of `tenant_id`: `{"sent": {"after": answer}}`. Best effort, as `record`.
pub async fn sent(
    state: &crate::AppState,
    by: &By,
    tenant_id: uuid::Uuid,
    (action, resource_type, resource_id): (&str, &str, String),
    answer: &impl serde::Serialize,
) {
    let change = Change {
        tenant_id: Some(tenant_id),
        action,
        resource_type,
        resource_id,
        changes: serde_json::json!({ "sent": { "after": json(answer) } }),
    };
    match state.pool.get().await {
        Ok(mut conn) => record(&mut conn, by, change).await,
        Err(e) => tracing::error!(error = %e, action, "the audit log could not record an action"),
    }
}

/// Masks secrets in a view of an object (top-level secret fields; every value under `headers`).
fn masked(view: &Value) -> Map<String, Value> {
    let mut fields = view.as_object().cloned().unwrap_or_default();
    for (name, value) in fields.iter_mut() {
        if value.is_null() {
            continue;
        }
        if SECRET_FIELDS.contains(&name.as_str()) {
            *value = Value::String(MASKED.into());
        } else if name == "headers" {
            if let Some(headers) = value.as_object_mut() {
                for v in headers.values_mut() {
                    *v = Value::String(MASKED.into());
                }
            }
        }
    }
    fields
}

/// Fields whose values tell nothing about the change itself.
const NOISE: [&str; 3] = ["modified_at", "last_used_at", "webhook_count"];

/// `{field: {"before", "after"}}` for each field that differs between two views of an object.
pub fn diff(before: &Value, after: &Value) -> Value {
    let (plain_before, plain_after) = (
        before.as_object().cloned().unwrap_or_default(),
        after.as_object().cloned().unwrap_or_default(),
    );
    let (shown_before, shown_after) = (masked(before), masked(after));
    let mut out = Map::new();
    let names: std::collections::BTreeSet<&String> = plain_before.keys().chain(plain_after.keys()).collect();
    for name in names {
        // Compared as they are (a rotated secret changed), shown masked.
        if NOISE.contains(&name.as_str()) || plain_before.get(name) == plain_after.get(name) {
            continue;
        }
        let shown = |m: &Map<String, Value>| m.get(name).cloned().unwrap_or(Value::Null);
        out.insert(
            name.clone(),
            serde_json::json!({ "before": shown(&shown_before), "after": shown(&shown_after) }),
        );
    }
    Value::Object(out)
}

/// Every field of a new object, as `{field: {"after"}}`.
pub fn created(view: &Value) -> Value {
    Value::Object(
        masked(view)
            .into_iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k, serde_json::json!({ "after": v })))
            .collect(),
    )
}

/// Every field of a deleted object, as `{field: {"before"}}`.
pub fn deleted(view: &Value) -> Value {
    Value::Object(
        masked(view)
            .into_iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k, serde_json::json!({ "before": v })))
            .collect(),
    )
}

/// A serializable view as JSON.
pub fn json(view: &impl serde::Serialize) -> Value {
    serde_json::to_value(view).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_diff_names_changed_fields_and_never_shows_a_secret() {
        let before = json!({"url": "https://a", "secret": "whsec_old", "headers": {"x-token": "t1"}, "name": "n"});
        let after = json!({"url": "https://b", "secret": "whsec_new", "headers": {"x-token": "t2"}, "name": "n"});
        let d = diff(&before, &after);
        assert_eq!(d["url"], json!({"before": "https://a", "after": "https://b"}));
        assert_eq!(
            d["secret"],
            json!({"before": MASKED, "after": MASKED}),
            "a rotation shows"
        );
        assert!(d.get("name").is_none());
        let text = d.to_string();
        assert!(
            !text.contains("whsec_") && !text.contains("t1") && !text.contains("t2"),
            "{text}"
        );
        let made = created(&json!({"key": "hwk_secret", "scopes": ["webhooks:read"]}));
        assert_eq!(made["key"]["after"], MASKED);
    }
}
