//! `/v1/admin/…`: tenants, API keys and the event-type catalog, behind the admin token. The same
//! operations back the `hookwire-registry admin …` commands.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use diesel_async::AsyncPgConnection;
use hookwire_api as api;
use serde_json::Value;
use uuid::Uuid;

use crate::auth::{new_api_key, Admin};
use crate::db::models::{ApiKey, ApiKeyChanges, Erase, EventRow, EventType, EventTypeChanges, Expunged, Page, Tenant};
use crate::pagination::{Collection, Paging};
use crate::routes::event_types::event_type_view;
use crate::AppState;
use hookwire_api::page::Paged as _;
use hookwire_http::error::{ApiError, FieldError};
use hookwire_http::typed;

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
    .service(web::resource("/admin/event-types").route(web::post().to(create_event_type)))
    .service(
        web::resource("/admin/event-types/{value}")
            .route(web::patch().to(change_event_type))
            .route(web::delete().to(archive_event_type)),
    )
    .service(web::resource("/admin/events/expunge").route(web::post().to(expunge_events)));
}

/// A tenant as the admin API shows it.
pub fn tenant_view(t: &Tenant) -> api::tenants::Tenant {
    api::tenants::Tenant {
        id: t.id,
        name: t.name.clone(),
        created_at: t.created_at,
    }
}

/// A key as the admin API shows it: never its hash, and its plaintext only on creation.
/// `webhook_count` is what `max_webhooks` counts: the webhooks created with it.
pub fn api_key_view(key: &ApiKey, webhook_count: i64) -> api::api_keys::ApiKey {
    api::api_keys::ApiKey {
        id: key.id,
        tenant_id: key.tenant_id,
        key: None,
        key_prefix: key.key_prefix.clone(),
        scopes: key.scopes.clone(),
        webhooks_enabled: key.webhooks_enabled,
        max_webhooks: key.max_webhooks.max(0) as u32,
        webhook_count: webhook_count.max(0) as u32,
        created_at: key.created_at,
        revoked_at: key.revoked_at,
        last_used_at: key.last_used_at,
    }
}

/// The scopes as the database keeps them.
fn scope_names(scopes: &[api::api_keys::Scope]) -> Vec<String> {
    scopes.iter().map(|s| s.as_str().to_owned()).collect()
}

/// The id in an admin path. A malformed id cannot name anything: the same 404 as a missing one.
fn path_id(id: &str, what: &'static str) -> Result<Uuid, ApiError> {
    id.parse().map_err(|_| ApiError::NotFound(what))
}

/// Changes a live key from `{"scopes"?, "webhooks_enabled"?, "max_webhooks"?}` (at least one).
/// Takes effect on the key's next request; a lower `max_webhooks` keeps the webhooks it has.
pub async fn update_key(
    conn: &mut AsyncPgConnection,
    id: &str,
    patch: api::api_keys::ApiKeyPatch,
) -> Result<api::api_keys::ApiKey, ApiError> {
    let id = path_id(id, "API key")?;
    let patch = typed::checked(patch)?;
    let changes = ApiKeyChanges {
        scopes: patch.scopes.as_deref().map(scope_names),
        webhooks_enabled: patch.webhooks_enabled,
        max_webhooks: patch.max_webhooks.map(|m| m as i32),
    };
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
pub async fn all_tenants(conn: &mut AsyncPgConnection) -> Result<Vec<api::tenants::Tenant>, ApiError> {
    let rows = every_page(async |page| Tenant::list(conn, page).await).await?;
    Ok(rows.iter().map(tenant_view).collect())
}

/// The whole catalog (archived types too, when asked), for the CLI.
pub async fn all_event_types(
    conn: &mut AsyncPgConnection,
    include_archived: bool,
) -> Result<Vec<api::event_types::EventType>, ApiError> {
    let rows = every_page(async |page| EventType::list(conn, page, include_archived).await).await?;
    Ok(rows.iter().map(event_type_view).collect())
}

/// Every key (of one tenant, when given), for the CLI.
pub async fn all_api_keys(
    conn: &mut AsyncPgConnection,
    tenant_id: Option<&str>,
    with_revoked: bool,
) -> Result<Vec<api::api_keys::ApiKey>, ApiError> {
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
pub async fn revoke_key(conn: &mut AsyncPgConnection, id: &str) -> Result<api::api_keys::ApiKey, ApiError> {
    let key = ApiKey::revoke(conn, path_id(id, "API key")?)
        .await?
        .ok_or(ApiError::NotFound("API key"))?;
    key_view(conn, key.id).await
}

/// A key as the admin API shows it, read now with its webhook count.
async fn key_view(conn: &mut AsyncPgConnection, id: Uuid) -> Result<api::api_keys::ApiKey, ApiError> {
    let (key, n) = ApiKey::find(conn, id).await?.ok_or(ApiError::NotFound("API key"))?;
    Ok(api_key_view(&key, n))
}

/// Creates a tenant.
pub async fn tenant(
    conn: &mut AsyncPgConnection,
    body: api::tenants::TenantIn,
) -> Result<api::tenants::Tenant, ApiError> {
    let body = typed::checked(body)?;
    let t = Tenant::create(conn, &body.name).await?;
    Ok(tenant_view(&t))
}

/// Renames a tenant.
pub async fn rename_tenant(
    conn: &mut AsyncPgConnection,
    id: &str,
    body: api::tenants::TenantIn,
) -> Result<api::tenants::Tenant, ApiError> {
    let id = path_id(id, "tenant")?;
    let body = typed::checked(body)?;
    let t = Tenant::rename(conn, id, &body.name)
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

/// Erases event payloads: one event, or every event with a subject, optionally only one
/// tenant's: see `EventRow::expunge`. Dispatchers are to be told of the events it names
/// (`Notices::expunged`).
pub async fn expunge(conn: &mut AsyncPgConnection, body: api::erasure::ExpungeIn) -> Result<Expunged, ApiError> {
    let (which, tenant_id) = match typed::checked(body)? {
        api::erasure::ExpungeIn::Event(e) => (Erase::Event(e.event_id), e.tenant_id),
        api::erasure::ExpungeIn::Subject(s) => {
            let tenant_id = s.tenant_id;
            return Ok(EventRow::expunge(conn, Erase::Subject(&s.subject), tenant_id).await?);
        }
    };
    Ok(EventRow::expunge(conn, which, tenant_id).await?)
}

/// The answer to an erasure.
pub fn expunged_view(e: &Expunged) -> api::erasure::Expunged {
    api::erasure::Expunged {
        events_expunged: e.events.len() as u64,
        deliveries_cleared: e.deliveries as u64,
        deliveries_stopped: e.in_flight as u64,
    }
}

/// Creates an API key; it is shown in this answer only.
pub async fn api_key(
    conn: &mut AsyncPgConnection,
    body: api::api_keys::ApiKeyIn,
    default_max: i32,
) -> Result<api::api_keys::ApiKey, ApiError> {
    let body = typed::checked(body)?;
    let tenant_id = body.tenant_id;
    let scopes = scope_names(body.scopes.as_deref().unwrap_or(&api::api_keys::Scope::ALL));
    let enabled = body.webhooks_enabled.unwrap_or(true);
    let max = body.max_webhooks.map_or(default_max, |m| m as i32);
    if !Tenant::exists(conn, tenant_id).await? {
        return Err(ApiError::Validation(vec![FieldError::new(
            "tenant_id",
            "no tenant has this id",
        )]));
    }
    let (plaintext, key) = new_api_key(tenant_id, scopes, enabled, max);
    ApiKey::insert(conn, &key).await?;
    Ok(api::api_keys::ApiKey {
        key: Some(plaintext),
        ..api_key_view(&key, 0)
    })
}

/// A type's JSON Schema must be one (the document says "an object"; this checks it compiles).
fn check_schema(errors: &mut Vec<FieldError>, schema: Option<&Value>) {
    if let Some(Err(e)) = schema.map(jsonschema::validator_for) {
        errors.push(FieldError::new("schema", format!("is not a valid JSON Schema: {e}")));
    }
}

/// Reports on `field` an example that the type's schema refuses (a schema that is not valid is
/// reported by itself).
fn check_example(errors: &mut Vec<FieldError>, field: &str, schema: Option<&Value>, example: Option<&Value>) {
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
        errors.push(FieldError::new(field, format!("{message}: {}", violations.join("; "))));
    }
}

/// A type's body read as `T`, or refused with every bad field: what the schema names, and a
/// `schema` that is no JSON Schema where the document's schema took it.
async fn type_body<T>(payload: web::Payload, limit: usize) -> Result<T, ApiError>
where
    T: serde::de::DeserializeOwned + utoipa::ToSchema + 'static,
{
    let body = Value::Object(hookwire_http::input::json_object(payload, limit).await?);
    let mut errors = match typed::from_value::<T>(body.clone()) {
        Err(ApiError::Validation(errors)) => errors,
        other => return other,
    };
    if !typed::names(&errors, "schema") {
        check_schema(&mut errors, body.get("schema").filter(|s| !s.is_null()));
    }
    Err(ApiError::Validation(errors))
}

fn reserved(value: &str) -> ApiError {
    ApiError::bad_request(
        "reserved_event_type",
        format!("`{value}` is one of Hookwire's own events; the `hookwire` namespace is reserved"),
    )
}

fn valid(errors: Vec<FieldError>) -> Result<(), ApiError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// Adds a catalog type.
pub async fn event_type(
    conn: &mut AsyncPgConnection,
    body: api::event_types::EventTypeIn,
) -> Result<EventType, ApiError> {
    let body = typed::checked(body)?;
    let mut errors = Vec::new();
    check_schema(&mut errors, body.schema.as_ref());
    check_example(&mut errors, "example", body.schema.as_ref(), body.example.as_ref());
    valid(errors)?;
    let t = EventType {
        value: body.value,
        label: body.label,
        description: body.description.unwrap_or_default(),
        schema: body.schema,
        created_at: Utc::now(),
        archived: false,
        example: body.example,
    };
    if !EventType::insert(conn, &t).await? {
        return Err(ApiError::Conflict {
            code: "event_type_exists",
            detail: format!("the event type `{}` exists already", t.value),
        });
    }
    Ok(t)
}

/// Changes a catalog type (a null `description` empties it, a null `schema` lifts it, a null
/// `example` removes it; the example and schema it ends with must agree). A new schema holds for
/// events published from then on; events accepted before are sent as they are. An archived type
/// leaves the catalog customers see and subscribe from; producers still publish it and the
/// webhooks subscribed to it still get it.
pub async fn update_event_type(
    conn: &mut AsyncPgConnection,
    value: &str,
    patch: api::event_types::EventTypePatch,
) -> Result<EventType, ApiError> {
    if hookwire_core::patterns::is_reserved(value) {
        return Err(reserved(value));
    }
    let patch = typed::checked(patch)?;
    let changes = EventTypeChanges {
        archived: patch.archived,
        label: patch.label,
        description: patch.description.map(Option::unwrap_or_default),
        schema: patch.schema,
        example: patch.example,
    };
    let mut errors = Vec::new();
    if let Some(schema) = &changes.schema {
        check_schema(&mut errors, schema.as_ref());
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
        check_example(&mut errors, field, schema.as_ref(), example.as_ref());
    }
    valid(errors)?;
    EventType::update(conn, value, &changes)
        .await?
        .ok_or(ApiError::NotFound("event type"))
}

#[utoipa::path(
    post,
    path = "/v1/admin/tenants",
    tag = "admin",
    summary = "Create a tenant",
    request_body = hookwire_api::tenants::TenantIn,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = hookwire_api::tenants::Tenant),
        (status = 400, description = "Invalid", body = hookwire_api::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not the admin token", body = hookwire_api::Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn create_tenant(
    state: web::Data<AppState>,
    _: Admin,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = typed::body(payload, state.config.http.max_body_bytes).await?;
    let mut conn = state.pool.get().await?;
    Ok(HttpResponse::Created().json(tenant(&mut conn, body).await?))
}

#[utoipa::path(
    post,
    path = "/v1/admin/api-keys",
    tag = "admin",
    summary = "Create an API key",
    request_body = hookwire_api::api_keys::ApiKeyIn,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created; the key is shown once", body = hookwire_api::api_keys::ApiKey),
        (status = 400, description = "Invalid", body = hookwire_api::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not the admin token", body = hookwire_api::Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn create_api_key(
    state: web::Data<AppState>,
    _: Admin,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = typed::body(payload, state.config.http.max_body_bytes).await?;
    let mut conn = state.pool.get().await?;
    let key = api_key(&mut conn, body, state.config.webhooks.default_max_webhooks).await?;
    Ok(HttpResponse::Created().json(key))
}

#[utoipa::path(
    post,
    path = "/v1/admin/event-types",
    tag = "admin",
    summary = "Add an event type to the catalog",
    request_body = hookwire_api::event_types::EventTypeIn,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = hookwire_api::event_types::EventType),
        (status = 400, description = "Invalid", body = hookwire_api::Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not the admin token", body = hookwire_api::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Exists already", body = hookwire_api::Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn create_event_type(
    state: web::Data<AppState>,
    _: Admin,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = type_body(payload, state.config.http.max_body_bytes).await?;
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
    request_body = hookwire_api::event_types::EventTypePatch,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The type as changed", body = hookwire_api::event_types::EventType),
        (status = 400, description = "Invalid, empty, or one of Hookwire's own types", body = hookwire_api::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such type", body = hookwire_api::Problem, content_type = "application/problem+json"),
        AdminErrors,
    )
)]
pub(crate) async fn change_event_type(
    state: web::Data<AppState>,
    _: Admin,
    value: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = type_body(payload, state.config.http.max_body_bytes).await?;
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
        (status = 400, description = "One of Hookwire's own types", body = hookwire_api::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such type", body = hookwire_api::Problem, content_type = "application/problem+json"),
        AdminErrors,
    )
)]
pub(crate) async fn archive_event_type(
    state: web::Data<AppState>,
    _: Admin,
    value: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let mut conn = state.pool.get().await?;
    let archive = api::event_types::EventTypePatch {
        archived: Some(true),
        ..Default::default()
    };
    update_event_type(&mut conn, &value, archive).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The failures every admin call can meet.
#[derive(utoipa::IntoResponses)]
pub enum AdminErrors {
    /// Not the admin token
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(hookwire_api::Problem),
}

#[utoipa::path(
    get,
    path = "/v1/admin/tenants",
    tag = "admin",
    summary = "List tenants, oldest first",
    params(hookwire_api::page::PageQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of tenants", body = hookwire_api::Page<hookwire_api::tenants::Tenant>),
        (status = 400, description = "Invalid paging", body = hookwire_api::Problem, content_type = "application/problem+json"),
        AdminErrors,
    )
)]
pub(crate) async fn list_tenants(
    state: web::Data<AppState>,
    _: Admin,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let query: api::page::PageQuery = typed::query(req.query_string())?;
    let paging = Paging::new(query.paging(), 100);
    let mut conn = state.pool.get().await?;
    let (count, rows) = Tenant::list(&mut conn, paging.page).await?;
    let results = rows.iter().map(tenant_view).collect();
    Ok(HttpResponse::Ok().json(Collection::page(
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
        (status = 200, description = "The tenant", body = hookwire_api::tenants::Tenant),
        (status = 404, description = "No such tenant", body = hookwire_api::Problem, content_type = "application/problem+json"),
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
    request_body = hookwire_api::tenants::TenantIn,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The tenant as renamed", body = hookwire_api::tenants::Tenant),
        (status = 400, description = "Invalid", body = hookwire_api::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant", body = hookwire_api::Problem, content_type = "application/problem+json"),
        AdminErrors,
    )
)]
pub(crate) async fn update_tenant(
    state: web::Data<AppState>,
    _: Admin,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = typed::body(payload, state.config.http.max_body_bytes).await?;
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
        (status = 404, description = "No such tenant", body = hookwire_api::Problem, content_type = "application/problem+json"),
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
    request_body = hookwire_api::erasure::ExpungeIn,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Erased", body = hookwire_api::erasure::Expunged),
        (status = 400, description = "Neither or both of event_id and subject, or a malformed one", body = hookwire_api::Problem, content_type = "application/problem+json"),
        AdminErrors,
    )
)]
pub(crate) async fn expunge_events(
    state: web::Data<AppState>,
    _: Admin,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = typed::body(payload, state.config.http.max_body_bytes).await?;
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
    params(hookwire_api::api_keys::ApiKeyQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of keys (never the keys themselves)", body = hookwire_api::Page<hookwire_api::api_keys::ApiKey>),
        (status = 400, description = "Invalid filter or paging", body = hookwire_api::Problem, content_type = "application/problem+json"),
        AdminErrors,
    )
)]
pub(crate) async fn list_api_keys(
    state: web::Data<AppState>,
    _: Admin,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let query: api::api_keys::ApiKeyQuery = typed::query(req.query_string())?;
    let (tenant_id, with_revoked) = (query.tenant_id, query.include_revoked.unwrap_or(false));
    let paging = Paging::new(query.paging(), 100);
    let mut conn = state.pool.get().await?;
    let (count, rows) = ApiKey::list(&mut conn, tenant_id, with_revoked, paging.page).await?;
    let results = rows.iter().map(|(k, n)| api_key_view(k, *n)).collect();
    Ok(HttpResponse::Ok().json(Collection::page(
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
        (status = 200, description = "The key", body = hookwire_api::api_keys::ApiKey),
        (status = 404, description = "No such key", body = hookwire_api::Problem, content_type = "application/problem+json"),
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
    request_body = hookwire_api::api_keys::ApiKeyPatch,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The key as changed; its next request sees the change", body = hookwire_api::api_keys::ApiKey),
        (status = 400, description = "Invalid or empty", body = hookwire_api::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such key", body = hookwire_api::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The key is revoked", body = hookwire_api::Problem, content_type = "application/problem+json"),
        AdminErrors,
    )
)]
pub(crate) async fn update_api_key(
    state: web::Data<AppState>,
    _: Admin,
    id: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = typed::body(payload, state.config.http.max_body_bytes).await?;
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
        (status = 404, description = "No such key", body = hookwire_api::Problem, content_type = "application/problem+json"),
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
