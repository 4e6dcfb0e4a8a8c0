//! `/v1/admin/…`: tenants, API keys and the event-type catalog, behind the admin token. The same
//! operations back the `hookwire-registry admin …` commands.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use diesel_async::AsyncPgConnection;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::auth::{new_api_key, Admin, SCOPES};
use crate::db::models::{ApiKey, ApiKeyChanges, Erase, EventRow, EventType, EventTypeChanges, Expunged, Page, Tenant};
use crate::pagination::{Collection, Paging, PARAMS};
use crate::routes::event_types::event_type_view;
use crate::AppState;
use hookwire_http::error::{ApiError, FieldError};
use hookwire_http::input::{self, Field, Fields};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/admin/tenants")
            .route(web::get().to(list_tenants))
            .route(web::post().to(create_tenant)),
    )
    .service(
        web::resource("/admin/tenants/{id}")
            .route(web::get().to(retrieve_tenant))
            .route(web::patch().to(update_tenant))
            .route(web::delete().to(remove_tenant)),
    )
    .service(
        web::resource("/admin/api-keys")
            .route(web::get().to(list_api_keys))
            .route(web::post().to(create_api_key)),
    )
    .service(
        web::resource("/admin/api-keys/{id}")
            .route(web::get().to(retrieve_api_key))
            .route(web::patch().to(update_api_key))
            .route(web::delete().to(revoke_api_key)),
    )
    .route("/admin/event-types", web::post().to(create_event_type))
    .route("/admin/event-types/{value}", web::patch().to(change_event_type))
    .route("/admin/event-types/{value}", web::delete().to(archive_event_type))
    .route("/admin/events/expunge", web::post().to(expunge_events));
}

/// A tenant as the admin API shows it.
pub fn tenant_view(t: &Tenant) -> Value {
    json!({"id": t.id, "name": t.name, "created_at": t.created_at})
}

/// A key as the admin API shows it: never its hash, and its plaintext only on creation.
/// `webhook_count` is what `max_webhooks` counts: the webhooks created with it.
pub fn api_key_view(key: &ApiKey, webhook_count: i64) -> Value {
    json!({
        "id": key.id,
        "tenant_id": key.tenant_id,
        "key_prefix": key.key_prefix,
        "scopes": key.scopes,
        "webhooks_enabled": key.webhooks_enabled,
        "max_webhooks": key.max_webhooks,
        "webhook_count": webhook_count,
        "created_at": key.created_at,
        "revoked_at": key.revoked_at,
        "last_used_at": key.last_used_at,
    })
}

/// `scopes`, each checked against [`SCOPES`].
fn scopes(f: &mut Fields) -> Field<Vec<String>> {
    let field = f.string_list("scopes", 10, 64);
    if let Field::Set(list) = &field {
        if let Some(bad) = list.iter().find(|s| !SCOPES.contains(&s.as_str())) {
            f.error(
                "scopes",
                format!("`{bad}` is not a scope; use webhooks:read and/or webhooks:write"),
            );
        }
    }
    field
}

/// `max_webhooks`: 0 (no webhooks) to 100,000.
fn max_webhooks(f: &mut Fields) -> Field<i32> {
    match f.int("max_webhooks", 0, 100_000) {
        Field::Set(n) => Field::Set(i32::try_from(n).expect("checked to be at most 100,000")),
        Field::Null => Field::Null,
        Field::Absent => Field::Absent,
    }
}

/// The id in an admin path. A malformed id cannot name anything: the same 404 as a missing one.
fn path_id(id: &str, what: &'static str) -> Result<Uuid, ApiError> {
    id.parse().map_err(|_| ApiError::NotFound(what))
}

/// Changes a live key from `{"scopes"?, "webhooks_enabled"?, "max_webhooks"?}` (at least one).
/// Takes effect on the key's next request; a lower `max_webhooks` keeps the webhooks it has.
pub async fn update_key(conn: &mut AsyncPgConnection, id: &str, body: Map<String, Value>) -> Result<Value, ApiError> {
    let id = path_id(id, "API key")?;
    let empty = body.is_empty();
    let mut f = Fields::new(body);
    let scopes = scopes(&mut f);
    let enabled = f.bool("webhooks_enabled");
    let max = max_webhooks(&mut f);
    let changes = ApiKeyChanges {
        scopes: f.not_null("scopes", scopes),
        webhooks_enabled: f.not_null("webhooks_enabled", enabled),
        max_webhooks: f.not_null("max_webhooks", max),
    };
    if empty {
        f.error("body", "send at least one of scopes, webhooks_enabled, max_webhooks");
    }
    f.finish()?;
    match ApiKey::update(conn, id, &changes).await? {
        Some(_) => key_view(conn, id).await,
        None => match ApiKey::find(conn, id).await? {
            Some(_) => Err(ApiError::Conflict {
                code: "api_key_revoked",
                detail: "this API key is revoked; create a new one".into(),
            }),
            None => Err(ApiError::NotFound("API key")),
        },
    }
}

/// Every row of a listing, page after page, for the CLI.
async fn every_page<T>(
    mut page_of: impl AsyncFnMut(Page) -> diesel::QueryResult<(i64, Vec<T>)>,
) -> Result<Vec<T>, ApiError> {
    let mut all = Vec::new();
    loop {
        let page = Page {
            limit: 500,
            offset: all.len() as i64,
        };
        let (count, rows) = page_of(page).await?;
        let last = rows.is_empty();
        all.extend(rows);
        if last || all.len() as i64 >= count {
            return Ok(all);
        }
    }
}

/// Every tenant, for the CLI.
pub async fn all_tenants(conn: &mut AsyncPgConnection) -> Result<Value, ApiError> {
    let rows = every_page(async |page| Tenant::list(conn, page).await).await?;
    Ok(rows.iter().map(tenant_view).collect())
}

/// The whole catalog (archived types too, when asked), for the CLI.
pub async fn all_event_types(conn: &mut AsyncPgConnection, include_archived: bool) -> Result<Value, ApiError> {
    let rows = every_page(async |page| EventType::list(conn, page, include_archived).await).await?;
    Ok(rows.iter().map(event_type_view).collect())
}

/// Every key (of one tenant, when given), for the CLI.
pub async fn all_api_keys(
    conn: &mut AsyncPgConnection,
    tenant_id: Option<&str>,
    with_revoked: bool,
) -> Result<Value, ApiError> {
    let tenant_id = tenant_id
        .map(str::parse::<Uuid>)
        .transpose()
        .map_err(|_| ApiError::Validation(vec![FieldError::new("tenant_id", "must be a UUID")]))?;
    let rows = every_page(async |page| ApiKey::list(conn, tenant_id, with_revoked, page).await).await?;
    Ok(rows.iter().map(|(k, n)| api_key_view(k, *n)).collect())
}

/// Revokes a key: from now on it is refused (401) on every registry replica, and a webhook
/// create it had started is refused too. Its webhooks stay, and keep receiving deliveries.
/// Revoking a revoked key changes nothing.
pub async fn revoke_key(conn: &mut AsyncPgConnection, id: &str) -> Result<Value, ApiError> {
    let key = ApiKey::revoke(conn, path_id(id, "API key")?)
        .await?
        .ok_or(ApiError::NotFound("API key"))?;
    key_view(conn, key.id).await
}

/// A key as the admin API shows it, read now with its webhook count.
async fn key_view(conn: &mut AsyncPgConnection, id: Uuid) -> Result<Value, ApiError> {
    let (key, n) = ApiKey::find(conn, id).await?.ok_or(ApiError::NotFound("API key"))?;
    Ok(api_key_view(&key, n))
}

/// The `name` of a tenant, required and not blank.
fn tenant_name(body: Map<String, Value>) -> Result<String, ApiError> {
    let mut f = Fields::new(body);
    let name = match f.string("name", 200) {
        Field::Set(n) if !n.trim().is_empty() => Some(n),
        _ => {
            f.error("name", "is required");
            None
        }
    };
    f.finish()?;
    Ok(name.unwrap_or_default())
}

/// Creates a tenant from a request body `{"name"}`.
pub async fn tenant(conn: &mut AsyncPgConnection, body: Map<String, Value>) -> Result<Value, ApiError> {
    let t = Tenant::create(conn, &tenant_name(body)?).await?;
    Ok(tenant_view(&t))
}

/// Renames a tenant from `{"name"}`.
pub async fn rename_tenant(
    conn: &mut AsyncPgConnection,
    id: &str,
    body: Map<String, Value>,
) -> Result<Value, ApiError> {
    let id = path_id(id, "tenant")?;
    let t = Tenant::rename(conn, id, &tenant_name(body)?)
        .await?
        .ok_or(ApiError::NotFound("tenant"))?;
    Ok(tenant_view(&t))
}

/// Deletes a tenant: its keys are refused from the next request, its webhooks go, and the
/// retention task deletes its delivery log. Says which webhooks went, for change notices.
pub async fn delete_tenant(conn: &mut AsyncPgConnection, id: &str) -> Result<Vec<Uuid>, ApiError> {
    Tenant::delete(conn, path_id(id, "tenant")?)
        .await?
        .ok_or(ApiError::NotFound("tenant"))
}

/// Erases event payloads from `{"event_id"}` or `{"subject"}` (one of them), with
/// `"tenant_id"?` to keep to one tenant's events: see `EventRow::expunge`. Dispatchers are to
/// be told of the events it names (`Notices::expunged`).
pub async fn expunge(conn: &mut AsyncPgConnection, body: Map<String, Value>) -> Result<Expunged, ApiError> {
    let mut f = Fields::new(body);
    let event_id = f.uuid("event_id").set();
    let subject = f.string("subject", 256).set();
    let tenant_id = f.uuid("tenant_id").set();
    let which = match (&event_id, &subject) {
        (Some(id), None) => Some(Erase::Event(*id)),
        (None, Some(s)) if !s.is_empty() => Some(Erase::Subject(s)),
        _ => {
            f.error("event_id", "send one of event_id and subject (not empty)");
            None
        }
    };
    f.finish()?;
    let which = which.expect("finish() failed without one of event_id and subject");
    Ok(EventRow::expunge(conn, which, tenant_id).await?)
}

/// The answer to an erasure.
pub fn expunged_view(e: &Expunged) -> Value {
    json!({
        "events_expunged": e.events.len(),
        "deliveries_cleared": e.deliveries,
        "deliveries_stopped": e.in_flight,
    })
}

/// Creates an API key from `{"tenant_id", "scopes"?, "webhooks_enabled"?, "max_webhooks"?}`.
pub async fn api_key(
    conn: &mut AsyncPgConnection,
    body: Map<String, Value>,
    default_max: i32,
) -> Result<Value, ApiError> {
    let mut f = Fields::new(body);
    let tenant_id = f.uuid("tenant_id");
    let tenant_id = f.required("tenant_id", tenant_id);
    let scopes = scopes(&mut f)
        .set()
        .unwrap_or_else(|| SCOPES.iter().map(|s| s.to_string()).collect());
    let enabled = f.bool("webhooks_enabled").set().unwrap_or(true);
    let max = max_webhooks(&mut f).set().unwrap_or(default_max);
    f.finish()?;
    let tenant_id = tenant_id.expect("finish() failed if tenant_id was missing");
    if !Tenant::exists(conn, tenant_id).await? {
        return Err(ApiError::Validation(vec![FieldError::new(
            "tenant_id",
            "no tenant has this id",
        )]));
    }
    let (plaintext, key) = new_api_key(tenant_id, scopes, enabled, max);
    ApiKey::insert(conn, &key).await?;
    let mut view = api_key_view(&key, 0);
    view["key"] = json!(plaintext);
    Ok(view)
}

/// The fields of a type a request may set, each checked by itself.
struct TypeDetails {
    label: Field<String>,
    description: Field<String>,
    schema: Field<Value>,
    example: Field<Value>,
}

fn type_details(f: &mut Fields) -> TypeDetails {
    let label = f.string("label", 200);
    if matches!(&label, Field::Set(l) if l.trim().is_empty()) {
        f.error("label", "must not be empty");
    }
    let description = f.string("description", 2000);
    let schema = f.any("schema");
    if let Field::Set(s) = &schema {
        if !s.is_object() && !s.is_boolean() {
            f.error("schema", "must be a JSON Schema (an object)");
        } else if let Err(e) = jsonschema::validator_for(s) {
            f.error("schema", format!("is not a valid JSON Schema: {e}"));
        }
    }
    let example = f.any("example");
    TypeDetails {
        label,
        description,
        schema,
        example,
    }
}

/// Reports on `field` an example that the type's schema refuses (a schema that is not valid is
/// reported by itself).
fn check_example(f: &mut Fields, field: &str, schema: Option<&Value>, example: Option<&Value>) {
    let (Some(schema), Some(example)) = (schema, example) else {
        return;
    };
    let Ok(validator) = jsonschema::validator_for(schema) else {
        return;
    };
    let violations = hookwire_core::schema::violations(&validator, example, 5);
    if !violations.is_empty() {
        let message = if field == "example" {
            "does not match the type's schema"
        } else {
            "refuses the type's example; send a new `example` with it, or `example: null`"
        };
        f.error(field, format!("{message}: {}", violations.join("; ")));
    }
}

/// A field that null clears: absent leaves it, null empties it, a value sets it.
fn nullable<T>(field: Field<T>) -> Option<Option<T>> {
    match field {
        Field::Absent => None,
        Field::Null => Some(None),
        Field::Set(v) => Some(Some(v)),
    }
}

fn reserved(value: &str) -> ApiError {
    ApiError::bad_request(
        "reserved_event_type",
        format!("`{value}` is one of Hookwire's own events; the `hookwire` namespace is reserved"),
    )
}

/// Adds a catalog type from `{"value", "label", "description"?, "schema"?, "example"?}`.
pub async fn event_type(conn: &mut AsyncPgConnection, body: Map<String, Value>) -> Result<EventType, ApiError> {
    let mut f = Fields::new(body);
    let value = f.string("value", 128).set();
    let TypeDetails {
        label,
        description,
        schema,
        example,
    } = type_details(&mut f);
    let (schema, example) = (schema.set(), example.set());
    check_example(&mut f, "example", schema.as_ref(), example.as_ref());
    match &value {
        None => f.error("value", "is required"),
        Some(v) => {
            if let Err(e) = hookwire_core::patterns::validate_type(v) {
                f.error("value", e.to_string());
            } else if hookwire_core::patterns::is_reserved(v) {
                f.error(
                    "value",
                    "the `hookwire` namespace is reserved for Hookwire's own events",
                );
            }
        }
    }
    if matches!(label, Field::Absent | Field::Null) {
        f.error("label", "is required");
    }
    f.finish()?;
    let t = EventType {
        value: value.expect("checked above"),
        label: label.set().expect("checked above"),
        description: description.set().unwrap_or_default(),
        schema,
        created_at: Utc::now(),
        archived: false,
        example,
    };
    if !EventType::insert(conn, &t).await? {
        return Err(ApiError::Conflict {
            code: "event_type_exists",
            detail: format!("the event type `{}` exists already", t.value),
        });
    }
    Ok(t)
}

/// Changes a catalog type from `{"label"?, "description"?, "schema"?, "example"?, "archived"?}`
/// (at least one; a null `description` empties it, a null `schema` lifts it, a null `example`
/// removes it; the example and schema it ends with must agree). A new schema holds for events
/// published from then on; events accepted before are sent as they are. An archived type leaves
/// the catalog customers see and subscribe from; producers still publish it and the webhooks
/// subscribed to it still get it.
pub async fn update_event_type(
    conn: &mut AsyncPgConnection,
    value: &str,
    body: Map<String, Value>,
) -> Result<EventType, ApiError> {
    if hookwire_core::patterns::is_reserved(value) {
        return Err(reserved(value));
    }
    let empty = body.is_empty();
    let mut f = Fields::new(body);
    let TypeDetails {
        label,
        description,
        schema,
        example,
    } = type_details(&mut f);
    let archived = f.bool("archived");
    let changes = EventTypeChanges {
        archived: f.not_null("archived", archived),
        label: f.not_null("label", label),
        description: match description {
            Field::Absent => None,
            Field::Null => Some(String::new()),
            Field::Set(d) => Some(d),
        },
        schema: nullable(schema),
        example: nullable(example),
    };
    if empty {
        f.error(
            "body",
            "send at least one of label, description, schema, example, archived",
        );
    }
    // The example and the schema the type will have must agree.
    if changes.schema.is_some() || changes.example.is_some() {
        let current = EventType::find(conn, value).await?;
        let schema = changes
            .schema
            .clone()
            .unwrap_or_else(|| current.as_ref().and_then(|t| t.schema.clone()));
        let example = changes
            .example
            .clone()
            .unwrap_or_else(|| current.and_then(|t| t.example));
        let field = if changes.example.is_some() { "example" } else { "schema" };
        check_example(&mut f, field, schema.as_ref(), example.as_ref());
    }
    f.finish()?;
    EventType::update(conn, value, &changes)
        .await?
        .ok_or(ApiError::NotFound("event type"))
}

#[utoipa::path(
    post,
    path = "/v1/admin/tenants",
    tag = "admin",
    summary = "Create a tenant",
    request_body = crate::openapi::TenantInput,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = crate::openapi::Tenant),
        (status = 400, description = "Invalid", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not the admin token", body = crate::openapi::Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn create_tenant(
    state: web::Data<AppState>,
    _: Admin,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = input::json_object(payload, state.config.http.max_body_bytes).await?;
    let mut conn = state.pool.get().await?;
    Ok(HttpResponse::Created().json(tenant(&mut conn, body).await?))
}

#[utoipa::path(
    post,
    path = "/v1/admin/api-keys",
    tag = "admin",
    summary = "Create an API key",
    request_body = crate::openapi::ApiKeyInput,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created; the key is shown once", body = crate::openapi::ApiKeyCreated),
        (status = 400, description = "Invalid", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not the admin token", body = crate::openapi::Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn create_api_key(
    state: web::Data<AppState>,
    _: Admin,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = input::json_object(payload, state.config.http.max_body_bytes).await?;
    let mut conn = state.pool.get().await?;
    let key = api_key(&mut conn, body, state.config.webhooks.default_max_webhooks).await?;
    Ok(HttpResponse::Created().json(key))
}

#[utoipa::path(
    post,
    path = "/v1/admin/event-types",
    tag = "admin",
    summary = "Add an event type to the catalog",
    request_body = crate::openapi::EventTypeInput,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = crate::openapi::EventType),
        (status = 400, description = "Invalid", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not the admin token", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Exists already", body = crate::openapi::Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn create_event_type(
    state: web::Data<AppState>,
    _: Admin,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = input::json_object(payload, state.config.http.max_body_bytes).await?;
    let mut conn = state.pool.get().await?;
    let created = event_type(&mut conn, body).await?;
    state.notices.event_type(created.catalog_entry()).await;
    Ok(HttpResponse::Created().json(event_type_view(&created)))
}

#[utoipa::path(
    patch,
    path = "/v1/admin/event-types/{value}",
    tag = "admin",
    summary = "Change a catalog type's label, description or schema",
    description = "A new schema (or none, with `schema: null`) holds for events published from then on; events accepted before are sent as they are. Hookwire's own types cannot be changed.",
    params(("value" = String, Path, description = "The type, e.g. `invoice.paid`")),
    request_body = crate::openapi::EventTypeChangesInput,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The type as changed", body = crate::openapi::EventType),
        (status = 400, description = "Invalid, empty, or one of Hookwire's own types", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such type", body = crate::openapi::Problem, content_type = "application/problem+json"),
        AdminErrors,
    )
)]
pub(crate) async fn change_event_type(
    state: web::Data<AppState>,
    _: Admin,
    value: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = input::json_object(payload, state.config.http.max_body_bytes).await?;
    let mut conn = state.pool.get().await?;
    let t = update_event_type(&mut conn, &value, body).await?;
    state.notices.event_type(t.catalog_entry()).await;
    Ok(HttpResponse::Ok().json(event_type_view(&t)))
}

#[utoipa::path(
    delete,
    path = "/v1/admin/event-types/{value}",
    tag = "admin",
    summary = "Archive a catalog type",
    description = "The type leaves the catalog customers see (`GET /v1/event-types` lists it only with `include_archived=true`) and no new pattern may rest on it alone; producers still publish it and the webhooks subscribed to it still get it. `PATCH` with `archived: false` brings it back. Archiving again changes nothing.",
    params(("value" = String, Path, description = "The type, e.g. `invoice.paid`")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Archived"),
        (status = 400, description = "One of Hookwire's own types", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such type", body = crate::openapi::Problem, content_type = "application/problem+json"),
        AdminErrors,
    )
)]
pub(crate) async fn archive_event_type(
    state: web::Data<AppState>,
    _: Admin,
    value: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = state.pool.get().await?;
    let body = Map::from_iter([("archived".to_owned(), Value::Bool(true))]);
    update_event_type(&mut conn, &value, body).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The failures every admin call can meet.
#[derive(utoipa::IntoResponses)]
pub enum AdminErrors {
    /// Not the admin token
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(crate::openapi::Problem),
}

#[utoipa::path(
    get,
    path = "/v1/admin/tenants",
    tag = "admin",
    summary = "List tenants, oldest first",
    params(("limit" = Option<i64>, Query,), ("offset" = Option<i64>, Query,), ("page" = Option<i64>, Query,), ("page_size" = Option<i64>, Query,)),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of tenants", body = crate::openapi::TenantList),
        (status = 400, description = "Invalid paging", body = crate::openapi::Problem, content_type = "application/problem+json"),
        AdminErrors,
    )
)]
pub(crate) async fn list_tenants(
    state: web::Data<AppState>,
    _: Admin,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let params = input::query(req.query_string(), &PARAMS)?;
    let paging = Paging::from_params(&params, 100, 500)?;
    let mut conn = state.pool.get().await?;
    let (count, rows) = Tenant::list(&mut conn, paging.page).await?;
    let results = rows.iter().map(tenant_view).collect();
    Ok(HttpResponse::Ok().json(Collection::new(
        &req,
        &state.config.http.public_url,
        paging,
        count,
        results,
    )))
}

#[utoipa::path(
    get,
    path = "/v1/admin/tenants/{id}",
    tag = "admin",
    summary = "A tenant",
    params(("id" = Uuid, Path, description = "Tenant id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The tenant", body = crate::openapi::Tenant),
        (status = 404, description = "No such tenant", body = crate::openapi::Problem, content_type = "application/problem+json"),
        AdminErrors,
    )
)]
pub(crate) async fn retrieve_tenant(
    state: web::Data<AppState>,
    _: Admin,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = state.pool.get().await?;
    let t = Tenant::find(&mut conn, path_id(&id, "tenant")?)
        .await?
        .ok_or(ApiError::NotFound("tenant"))?;
    Ok(HttpResponse::Ok().json(tenant_view(&t)))
}

#[utoipa::path(
    patch,
    path = "/v1/admin/tenants/{id}",
    tag = "admin",
    summary = "Rename a tenant",
    params(("id" = Uuid, Path, description = "Tenant id")),
    request_body = crate::openapi::TenantInput,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The tenant as renamed", body = crate::openapi::Tenant),
        (status = 400, description = "Invalid", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant", body = crate::openapi::Problem, content_type = "application/problem+json"),
        AdminErrors,
    )
)]
pub(crate) async fn update_tenant(
    state: web::Data<AppState>,
    _: Admin,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = input::json_object(payload, state.config.http.max_body_bytes).await?;
    let mut conn = state.pool.get().await?;
    Ok(HttpResponse::Ok().json(rename_tenant(&mut conn, &id, body).await?))
}

#[utoipa::path(
    delete,
    path = "/v1/admin/tenants/{id}",
    tag = "admin",
    summary = "Delete a tenant, its keys, its webhooks and its delivery log",
    description = "Its keys are refused from the next request and its webhooks stop at once (publishers and dispatchers are told). Its delivery log (deliveries, attempts, events' payloads) is deleted by the retention task at its next pass, in chunks; results still in flight when the tenant went are deleted at the passes after, for `retention.deliveries`.",
    params(("id" = Uuid, Path, description = "Tenant id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such tenant", body = crate::openapi::Problem, content_type = "application/problem+json"),
        AdminErrors,
    )
)]
pub(crate) async fn remove_tenant(
    state: web::Data<AppState>,
    _: Admin,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = state.pool.get().await?;
    let webhooks = delete_tenant(&mut conn, &id).await?;
    state.notices.deleted(&webhooks).await;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    post,
    path = "/v1/admin/events/expunge",
    tag = "admin",
    summary = "Erase event payloads (a data-protection request)",
    description = "Names events by `event_id`, or by `subject` (every event with it), optionally of one tenant (`tenant_id`). Each event's `data` becomes `null` in the log (`payload_expunged_at` in a delivery's detail), the receivers' response bodies recorded for its deliveries are erased, and dispatchers end its deliveries not yet attempted without sending them (status `failed`, error `payload_expunged`); it can no longer be retried, recovered or replayed. A request already under way completes (its response body is not kept). Events not in the log yet (a ledger backlog) are written erased when they arrive: by subject, those accepted until this request; the request is kept 31 days for that. Events erased before are counted once. Answers how many events and deliveries it erased in the log.",
    request_body = crate::openapi::ExpungeInput,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Erased", body = crate::openapi::ExpungeResult),
        (status = 400, description = "Neither or both of event_id and subject, or a malformed one", body = crate::openapi::Problem, content_type = "application/problem+json"),
        AdminErrors,
    )
)]
pub(crate) async fn expunge_events(
    state: web::Data<AppState>,
    _: Admin,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = input::json_object(payload, state.config.http.max_body_bytes).await?;
    let mut conn = state.pool.get().await?;
    let erased = expunge(&mut conn, body).await?;
    state.notices.expunged(&erased.events).await;
    tracing::info!(
        events = erased.events.len(),
        deliveries = erased.deliveries,
        "event payloads erased"
    );
    Ok(HttpResponse::Ok().json(expunged_view(&erased)))
}

#[utoipa::path(
    get,
    path = "/v1/admin/api-keys",
    tag = "admin",
    summary = "List API keys, oldest first",
    params(
        ("tenant_id" = Option<Uuid>, Query, description = "Only this tenant's keys"),
        ("include_revoked" = Option<bool>, Query, description = "Also list revoked keys (default false)"),
        ("limit" = Option<i64>, Query,), ("offset" = Option<i64>, Query,), ("page" = Option<i64>, Query,), ("page_size" = Option<i64>, Query,),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of keys (never the keys themselves)", body = crate::openapi::ApiKeyList),
        (status = 400, description = "Invalid filter or paging", body = crate::openapi::Problem, content_type = "application/problem+json"),
        AdminErrors,
    )
)]
pub(crate) async fn list_api_keys(
    state: web::Data<AppState>,
    _: Admin,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let mut allowed = vec!["tenant_id", "include_revoked"];
    allowed.extend(PARAMS);
    let params = input::query(req.query_string(), &allowed)?;
    let tenant_id = input::parse_param::<Uuid>(&params, "tenant_id", "a UUID")?;
    let with_revoked = input::parse_param::<bool>(&params, "include_revoked", "true or false")?.unwrap_or(false);
    let paging = Paging::from_params(&params, 100, 500)?;
    let mut conn = state.pool.get().await?;
    let (count, rows) = ApiKey::list(&mut conn, tenant_id, with_revoked, paging.page).await?;
    let results = rows.iter().map(|(k, n)| api_key_view(k, *n)).collect();
    Ok(HttpResponse::Ok().json(Collection::new(
        &req,
        &state.config.http.public_url,
        paging,
        count,
        results,
    )))
}

#[utoipa::path(
    get,
    path = "/v1/admin/api-keys/{id}",
    tag = "admin",
    summary = "Retrieve an API key (never the key itself)",
    params(("id" = String, Path, description = "API key id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The key", body = crate::openapi::ApiKeyInfo),
        (status = 404, description = "No such key", body = crate::openapi::Problem, content_type = "application/problem+json"),
        AdminErrors,
    )
)]
pub(crate) async fn retrieve_api_key(
    state: web::Data<AppState>,
    _: Admin,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = state.pool.get().await?;
    Ok(HttpResponse::Ok().json(key_view(&mut conn, path_id(&id, "API key")?).await?))
}

#[utoipa::path(
    patch,
    path = "/v1/admin/api-keys/{id}",
    tag = "admin",
    summary = "Change an API key's scopes, webhooks flag or webhook limit",
    params(("id" = String, Path, description = "API key id")),
    request_body = crate::openapi::ApiKeyChangesInput,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The key as changed; its next request sees the change", body = crate::openapi::ApiKeyInfo),
        (status = 400, description = "Invalid or empty", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such key", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The key is revoked", body = crate::openapi::Problem, content_type = "application/problem+json"),
        AdminErrors,
    )
)]
pub(crate) async fn update_api_key(
    state: web::Data<AppState>,
    _: Admin,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = input::json_object(payload, state.config.http.max_body_bytes).await?;
    let mut conn = state.pool.get().await?;
    Ok(HttpResponse::Ok().json(update_key(&mut conn, &id, body).await?))
}

#[utoipa::path(
    delete,
    path = "/v1/admin/api-keys/{id}",
    tag = "admin",
    summary = "Revoke an API key",
    description = "From now on the key is refused (401) by every registry replica. Its webhooks stay and keep receiving deliveries. Revoking a revoked key changes nothing.",
    params(("id" = String, Path, description = "API key id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such key", body = crate::openapi::Problem, content_type = "application/problem+json"),
        AdminErrors,
    )
)]
pub(crate) async fn revoke_api_key(
    state: web::Data<AppState>,
    _: Admin,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = state.pool.get().await?;
    revoke_key(&mut conn, &id).await?;
    Ok(HttpResponse::NoContent().finish())
}
