//! Rows and the queries over them. Tenant-owned rows are only ever read through functions that
//! take the tenant id, so an unscoped query is the hard one to write.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};
use hookwire_core::messages::Resent;
use hookwire_core::retry::RESENDS_KEPT;
use uuid::Uuid;

use crate::pagination::Cursor;

use super::schema::{
    api_keys, deleted_tenants, deliveries, delivery_attempts, event_erasures, event_types, events, tenants, webhooks,
};

/// `limit` and `offset` of a page, already validated.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub limit: i64,
    pub offset: i64,
}

/// How many rows a filter matches: exact, or, past a bound, at least `value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    pub value: i64,
    pub exact: bool,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = tenants)]
pub struct Tenant {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

impl Tenant {
    pub async fn create(conn: &mut AsyncPgConnection, name: &str) -> QueryResult<Tenant> {
        diesel::insert_into(tenants::table)
            .values(&Tenant {
                id: hookwire_core::id::v7(),
                name: name.to_owned(),
                created_at: Utc::now(),
            })
            .returning(Tenant::as_returning())
            .get_result(conn)
            .await
    }

    pub async fn exists(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<bool> {
        diesel::select(diesel::dsl::exists(tenants::table.find(id)))
            .get_result(conn)
            .await
    }

    pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<Tenant>> {
        tenants::table
            .find(id)
            .select(Tenant::as_select())
            .first(conn)
            .await
            .optional()
    }

    /// Renames a tenant; `None` when there is no such tenant.
    pub async fn rename(conn: &mut AsyncPgConnection, id: Uuid, name: &str) -> QueryResult<Option<Tenant>> {
        diesel::update(tenants::table.find(id))
            .set(tenants::name.eq(name))
            .returning(Tenant::as_returning())
            .get_result(conn)
            .await
            .optional()
    }

    /// Deletes a tenant with its keys and webhooks, and lists it for retention to delete its
    /// delivery log. Says which webhooks went; `None` when there is no such tenant.
    pub async fn delete(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<Vec<Uuid>>> {
        conn.transaction::<_, diesel::result::Error, _>(async |conn| {
            // Keys first: a webhook create holds its key's row until it commits, so this waits
            // for creates under way (and the next statement sees their webhooks); a create after
            // it finds no key (401). Keys are refused from their next request.
            diesel::delete(api_keys::table.filter(api_keys::tenant_id.eq(id)))
                .execute(conn)
                .await?;
            let hooks = diesel::delete(webhooks::table.filter(webhooks::tenant_id.eq(id)))
                .returning(webhooks::id)
                .get_results(conn)
                .await?;
            if diesel::delete(tenants::table.find(id)).execute(conn).await? == 0 {
                return Ok(None);
            }
            diesel::insert_into(deleted_tenants::table)
                .values(deleted_tenants::tenant_id.eq(id))
                .on_conflict_do_nothing()
                .execute(conn)
                .await?;
            Ok(Some(hooks))
        })
        .await
    }

    /// A page of tenants, oldest first.
    pub async fn list(conn: &mut AsyncPgConnection, page: Page) -> QueryResult<(i64, Vec<Tenant>)> {
        let count = tenants::table.count().get_result(conn).await?;
        let rows = tenants::table
            .order((tenants::created_at.asc(), tenants::id.asc()))
            .limit(page.limit)
            .offset(page.offset)
            .select(Tenant::as_select())
            .load(conn)
            .await?;
        Ok((count, rows))
    }
}

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Insertable)]
#[diesel(table_name = api_keys)]
pub struct ApiKey {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub key_hash: Vec<u8>,
    pub key_prefix: String,
    pub scopes: Vec<String>,
    pub webhooks_enabled: bool,
    pub max_webhooks: i32,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// When the key last authenticated a request, to the minute.
    pub last_used_at: Option<DateTime<Utc>>,
}

/// The common table expressions that find the API key whose hash is `$1`, not revoked, as `k`,
/// and write its `last_used_at` (to the minute: at most one write a minute per key). Its columns
/// are named: the statements built on it are prepared once per connection (`db::prepared`), and
/// PostgreSQL refuses to run a prepared `SELECT *` whose columns changed ("cached plan must not
/// change result type"), so a column added by a migration would fail every request of the
/// registries still running until they restart.
macro_rules! key_by_hash {
    () => {
        "k AS (SELECT id, tenant_id, key_hash, key_prefix, scopes, webhooks_enabled, max_webhooks,
                      created_at, revoked_at, last_used_at
               FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL),
         used AS (UPDATE api_keys SET last_used_at = now() FROM k
                  WHERE api_keys.id = k.id
                    AND (k.last_used_at IS NULL OR k.last_used_at < now() - interval '1 minute'))"
    };
}
pub(crate) use key_by_hash;

impl ApiKey {
    pub async fn insert(conn: &mut AsyncPgConnection, key: &ApiKey) -> QueryResult<()> {
        diesel::insert_into(api_keys::table)
            .values(key)
            .execute(conn)
            .await
            .map(drop)
    }

    /// A page of keys, oldest first, each with the number of webhooks it created (what its
    /// `max_webhooks` counts); revoked keys only when asked for.
    pub async fn list(
        conn: &mut AsyncPgConnection,
        tenant_id: Option<Uuid>,
        with_revoked: bool,
        page: Page,
    ) -> QueryResult<(i64, Vec<(ApiKey, i64)>)> {
        let filtered = || {
            let mut q = api_keys::table.into_boxed();
            if let Some(t) = tenant_id {
                q = q.filter(api_keys::tenant_id.eq(t));
            }
            if !with_revoked {
                q = q.filter(api_keys::revoked_at.is_null());
            }
            q
        };
        let count = filtered().count().get_result(conn).await?;
        let keys: Vec<ApiKey> = filtered()
            .order((api_keys::created_at.asc(), api_keys::id.asc()))
            .limit(page.limit)
            .offset(page.offset)
            .select(ApiKey::as_select())
            .load(conn)
            .await?;
        let used = Self::webhook_counts(conn, keys.iter().map(|k| k.id).collect()).await?;
        Ok((
            count,
            keys.into_iter()
                .map(|k| {
                    let n = used.get(&k.id).copied().unwrap_or(0);
                    (k, n)
                })
                .collect(),
        ))
    }

    /// One key (revoked or not) with the number of webhooks it created.
    pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<(ApiKey, i64)>> {
        let Some(key) = api_keys::table
            .find(id)
            .select(ApiKey::as_select())
            .first(conn)
            .await
            .optional()?
        else {
            return Ok(None);
        };
        let n = Self::webhook_counts(conn, vec![id])
            .await?
            .get(&id)
            .copied()
            .unwrap_or(0);
        Ok(Some((key, n)))
    }

    async fn webhook_counts(
        conn: &mut AsyncPgConnection,
        ids: Vec<Uuid>,
    ) -> QueryResult<std::collections::HashMap<Uuid, i64>> {
        if ids.is_empty() {
            return Ok(Default::default());
        }
        let rows: Vec<(Option<Uuid>, i64)> = webhooks::table
            .filter(webhooks::api_key_id.eq_any(ids))
            .group_by(webhooks::api_key_id)
            .select((webhooks::api_key_id, diesel::dsl::count_star()))
            .load(conn)
            .await?;
        Ok(rows.into_iter().filter_map(|(id, n)| Some((id?, n))).collect())
    }

    /// Changes a live key's settings; `None` when no live key has this id.
    pub async fn update(
        conn: &mut AsyncPgConnection,
        id: Uuid,
        changes: &ApiKeyChanges,
    ) -> QueryResult<Option<ApiKey>> {
        diesel::update(api_keys::table.find(id).filter(api_keys::revoked_at.is_null()))
            .set(changes)
            .returning(ApiKey::as_returning())
            .get_result(conn)
            .await
            .optional()
    }

    /// Revokes a key from now on; a key revoked already keeps its first `revoked_at`. `None`
    /// when no key has this id.
    pub async fn revoke(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<ApiKey>> {
        diesel::update(api_keys::table.find(id))
            .set(api_keys::revoked_at.eq(diesel::dsl::sql::<
                diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>,
            >("coalesce(revoked_at, now())")))
            .returning(ApiKey::as_returning())
            .get_result(conn)
            .await
            .optional()
    }

    /// The live key with this hash, as it was before this use. Notes the use in `last_used_at`
    /// when the last one noted is a minute old or more: one statement either way, and a write
    /// at most once a minute per key.
    pub async fn find_by_hash(conn: &mut AsyncPgConnection, hash: &[u8]) -> QueryResult<Option<ApiKey>> {
        super::prepared::Prepared::new(concat!("WITH ", key_by_hash!(), " SELECT * FROM k"))
            .bind::<diesel::sql_types::Bytea, _>(hash)
            .get_result(conn)
            .await
            .optional()
    }
}

/// What an admin may change on a key; `None` leaves a setting as it is.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = api_keys)]
pub struct ApiKeyChanges {
    pub scopes: Option<Vec<String>>,
    pub webhooks_enabled: Option<bool>,
    pub max_webhooks: Option<i32>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = event_types)]
pub struct EventType {
    pub value: String,
    pub label: String,
    pub description: String,
    pub schema: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
    /// Out of the catalog customers see and subscribe from; still published and delivered.
    pub archived: bool,
    /// An example `data`, valid against `schema`: shown in the catalog, sent by webhook tests.
    pub example: Option<serde_json::Value>,
}

impl EventType {
    /// Inserts a type; `false` when one with that value exists already.
    pub async fn insert(conn: &mut AsyncPgConnection, t: &EventType) -> QueryResult<bool> {
        let n = diesel::insert_into(event_types::table)
            .values(t)
            .on_conflict_do_nothing()
            .execute(conn)
            .await?;
        Ok(n == 1)
    }

    pub async fn find(conn: &mut AsyncPgConnection, value: &str) -> QueryResult<Option<EventType>> {
        event_types::table
            .find(value)
            .select(EventType::as_select())
            .first(conn)
            .await
            .optional()
    }

    /// Changes a type; `None` when the catalog has no such type.
    pub async fn update(
        conn: &mut AsyncPgConnection,
        value: &str,
        changes: &EventTypeChanges,
    ) -> QueryResult<Option<EventType>> {
        diesel::update(event_types::table.find(value))
            .set(changes)
            .returning(EventType::as_returning())
            .get_result(conn)
            .await
            .optional()
    }

    /// A page of the catalog, archived types only when `include_archived`.
    pub async fn list(
        conn: &mut AsyncPgConnection,
        page: Page,
        include_archived: bool,
    ) -> QueryResult<(i64, Vec<EventType>)> {
        let shown = || {
            let q = event_types::table.into_boxed();
            if include_archived {
                q
            } else {
                q.filter(event_types::archived.eq(false))
            }
        };
        let count = shown().count().get_result(conn).await?;
        let rows = shown()
            .order(event_types::value.asc())
            .limit(page.limit)
            .offset(page.offset)
            .select(EventType::as_select())
            .load(conn)
            .await?;
        Ok((count, rows))
    }

    /// The type as publishers check events with it.
    pub fn catalog_entry(&self) -> hookwire_core::messages::CatalogType {
        hookwire_core::messages::CatalogType {
            value: self.value.clone(),
            schema: self.schema.clone(),
        }
    }

    /// Every type with its schema, for publishers.
    pub async fn catalog(conn: &mut AsyncPgConnection) -> QueryResult<Vec<hookwire_core::messages::CatalogType>> {
        let rows: Vec<(String, Option<serde_json::Value>)> = event_types::table
            .select((event_types::value, event_types::schema))
            .load(conn)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(value, schema)| hookwire_core::messages::CatalogType { value, schema })
            .collect())
    }

    /// Every type's value and whether it is archived.
    pub async fn all_values(conn: &mut AsyncPgConnection) -> QueryResult<Vec<(String, bool)>> {
        event_types::table
            .select((event_types::value, event_types::archived))
            .load(conn)
            .await
    }
}

/// What an admin may change on a catalog type; `None` leaves a field as it is,
/// `schema: Some(None)` lifts the schema, `example: Some(None)` removes the example.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = event_types)]
pub struct EventTypeChanges {
    pub label: Option<String>,
    pub description: Option<String>,
    pub schema: Option<Option<serde_json::Value>>,
    pub archived: Option<bool>,
    pub example: Option<Option<serde_json::Value>>,
}

/// Why a webhook was not created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The key has created its `max_webhooks` (the limit it has now).
    LimitReached(i32),
    /// The key was revoked after the request was authenticated.
    KeyRevoked,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhooks)]
pub struct Webhook {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub api_key_id: Option<Uuid>,
    pub name: String,
    pub description: String,
    pub url: String,
    pub events: Vec<String>,
    pub channels: Vec<String>,
    pub is_active: bool,
    pub is_test: bool,
    pub header_name: Option<String>,
    pub prefix: Option<String>,
    pub auth_secret_sealed: Option<String>,
    pub auth_secret_last4: Option<String>,
    pub secret_sealed: String,
    pub previous_secret_sealed: Option<String>,
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub headers: serde_json::Value,
    pub timeout_seconds: i32,
    pub retry_policy: serde_json::Value,
    pub rate_limit_per_second: Option<i32>,
    pub failure_count: i32,
    pub last_triggered_at: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_failure_at: Option<DateTime<Utc>>,
    pub disabled_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub modified_at: DateTime<Utc>,
    pub failing_since: Option<DateTime<Utc>>,
}

/// The columns the API writes (PATCH, rotate-secret), a `None` as NULL (a field set to null
/// is removed). Not the ids, the creation time nor the delivery statistics the ledger keeps, so
/// a PATCH never writes back statistics it read a moment before.
#[derive(AsChangeset)]
#[diesel(table_name = webhooks, treat_none_as_null = true)]
struct Changes<'a> {
    name: &'a str,
    description: &'a str,
    url: &'a str,
    events: &'a [String],
    channels: &'a [String],
    is_active: bool,
    is_test: bool,
    header_name: Option<&'a str>,
    prefix: Option<&'a str>,
    auth_secret_sealed: Option<&'a str>,
    auth_secret_last4: Option<&'a str>,
    secret_sealed: &'a str,
    previous_secret_sealed: Option<&'a str>,
    previous_secret_expires_at: Option<DateTime<Utc>>,
    headers: &'a serde_json::Value,
    timeout_seconds: i32,
    retry_policy: &'a serde_json::Value,
    rate_limit_per_second: Option<i32>,
    disabled_reason: Option<&'a str>,
    modified_at: DateTime<Utc>,
}

impl<'a> From<&'a Webhook> for Changes<'a> {
    fn from(w: &'a Webhook) -> Self {
        Self {
            name: &w.name,
            description: &w.description,
            url: &w.url,
            events: &w.events,
            channels: &w.channels,
            is_active: w.is_active,
            is_test: w.is_test,
            header_name: w.header_name.as_deref(),
            prefix: w.prefix.as_deref(),
            auth_secret_sealed: w.auth_secret_sealed.as_deref(),
            auth_secret_last4: w.auth_secret_last4.as_deref(),
            secret_sealed: &w.secret_sealed,
            previous_secret_sealed: w.previous_secret_sealed.as_deref(),
            previous_secret_expires_at: w.previous_secret_expires_at,
            headers: &w.headers,
            timeout_seconds: w.timeout_seconds,
            retry_policy: &w.retry_policy,
            rate_limit_per_second: w.rate_limit_per_second,
            disabled_reason: w.disabled_reason.as_deref(),
            modified_at: w.modified_at,
        }
    }
}

/// Filters of `GET /v1/webhooks`.
#[derive(Debug, Default)]
pub struct WebhookFilter {
    /// Patterns that match the requested event type (see `patterns_matching`).
    pub patterns: Option<Vec<String>>,
    pub is_test: Option<bool>,
    pub is_active: Option<bool>,
    pub channel: Option<String>,
}

/// Sort orders of `GET /v1/webhooks`.
#[derive(Debug, Clone, Copy)]
pub enum WebhookOrder {
    Created,
    CreatedDesc,
    Modified,
    ModifiedDesc,
    Name,
    NameDesc,
}

impl Webhook {
    pub async fn insert(conn: &mut AsyncPgConnection, w: &Webhook) -> QueryResult<()> {
        diesel::insert_into(webhooks::table)
            .values(w)
            .execute(conn)
            .await
            .map(drop)
    }

    /// Writes back what the API changes ([`Changes`]) if the row is still as read at `read_at`
    /// (its `modified_at`); `false` when another write came in between, and nothing was written.
    /// `restart_failing` also forgets when its current run of failures began (a webhook turned
    /// back on gets the whole `webhooks.auto_disable_after` again).
    pub async fn update(
        conn: &mut AsyncPgConnection,
        w: &Webhook,
        read_at: DateTime<Utc>,
        restart_failing: bool,
    ) -> QueryResult<bool> {
        let row = diesel::update(
            webhooks::table
                .find(w.id)
                .filter(webhooks::tenant_id.eq(w.tenant_id))
                .filter(webhooks::modified_at.eq(read_at)),
        );
        let changes = Changes::from(w);
        if restart_failing {
            row.set((changes, webhooks::failing_since.eq(None::<DateTime<Utc>>)))
                .execute(conn)
                .await
        } else {
            row.set(changes).execute(conn).await
        }
        .map(|rows| rows == 1)
    }

    pub async fn delete(conn: &mut AsyncPgConnection, tenant_id: Uuid, id: Uuid) -> QueryResult<bool> {
        let n = diesel::delete(webhooks::table.find(id).filter(webhooks::tenant_id.eq(tenant_id)))
            .execute(conn)
            .await?;
        Ok(n == 1)
    }

    /// The tenant's webhook, or `None` (another tenant's is just as absent).
    pub async fn find(conn: &mut AsyncPgConnection, tenant_id: Uuid, id: Uuid) -> QueryResult<Option<Webhook>> {
        webhooks::table
            .find(id)
            .filter(webhooks::tenant_id.eq(tenant_id))
            .select(Webhook::as_select())
            .first(conn)
            .await
            .optional()
    }

    /// Inserts `w`, created with key `api_key_id`, unless the key has created `max` webhooks
    /// already (`false`). The key's row is locked while it counts, so requests at once with one
    /// key cannot together pass its limit.
    pub async fn insert_within_limit(
        conn: &mut AsyncPgConnection,
        w: &Webhook,
        api_key_id: Uuid,
    ) -> QueryResult<Result<(), Refused>> {
        conn.transaction::<_, diesel::result::Error, _>(async |conn| {
            // The key's row, locked: its limit as it is now (an admin may have changed it since
            // the request was authenticated), and creates with one key counted one at a time.
            let Some(max) = api_keys::table
                .find(api_key_id)
                .filter(api_keys::revoked_at.is_null())
                .select(api_keys::max_webhooks)
                .for_update()
                .first::<i32>(conn)
                .await
                .optional()?
            else {
                return Ok(Err(Refused::KeyRevoked));
            };
            let used: i64 = webhooks::table
                .filter(webhooks::api_key_id.eq(api_key_id))
                .count()
                .get_result(conn)
                .await?;
            if used >= i64::from(max) {
                return Ok(Err(Refused::LimitReached(max)));
            }
            Webhook::insert(conn, w).await?;
            Ok(Ok(()))
        })
        .await
    }

    pub async fn list(
        conn: &mut AsyncPgConnection,
        tenant_id: Uuid,
        filter: &WebhookFilter,
        order: WebhookOrder,
        page: Page,
    ) -> QueryResult<(i64, Vec<Webhook>)> {
        let scoped = || {
            let mut q = webhooks::table.filter(webhooks::tenant_id.eq(tenant_id)).into_boxed();
            if let Some(patterns) = &filter.patterns {
                q = q.filter(webhooks::events.overlaps_with(patterns.clone()));
            }
            if let Some(v) = filter.is_test {
                q = q.filter(webhooks::is_test.eq(v));
            }
            if let Some(v) = filter.is_active {
                q = q.filter(webhooks::is_active.eq(v));
            }
            if let Some(c) = &filter.channel {
                q = q.filter(webhooks::channels.contains(vec![c.clone()]));
            }
            q
        };
        let count = scoped().count().get_result(conn).await?;
        let q = scoped();
        // The id breaks ties, so pages never overlap or skip.
        let q = match order {
            WebhookOrder::Created => q.order((webhooks::created_at.asc(), webhooks::id.asc())),
            WebhookOrder::CreatedDesc => q.order((webhooks::created_at.desc(), webhooks::id.desc())),
            WebhookOrder::Modified => q.order((webhooks::modified_at.asc(), webhooks::id.asc())),
            WebhookOrder::ModifiedDesc => q.order((webhooks::modified_at.desc(), webhooks::id.desc())),
            WebhookOrder::Name => q.order((webhooks::name.asc(), webhooks::id.asc())),
            WebhookOrder::NameDesc => q.order((webhooks::name.desc(), webhooks::id.desc())),
        };
        let rows = q
            .limit(page.limit)
            .offset(page.offset)
            .select(Webhook::as_select())
            .load(conn)
            .await?;
        Ok((count, rows))
    }

    /// Every webhook of every tenant: the publisher's routing snapshot.
    pub async fn all(conn: &mut AsyncPgConnection) -> QueryResult<Vec<Webhook>> {
        webhooks::table.select(Webhook::as_select()).load(conn).await
    }

    /// A version of what `/v1/internal/routing` answers, changed by every change to it: each
    /// webhook counts with its id and `modified_at` (which every change sets), each catalog type
    /// with its value and schema, and a deletion changes the count; so does each erased event
    /// listed (`expunged_recently`), and so does each resend listed (`resent_recently`). One
    /// scan of webhooks and catalog, nothing sent.
    pub async fn routing_version(conn: &mut AsyncPgConnection) -> QueryResult<String> {
        #[derive(QueryableByName)]
        struct Version {
            #[diesel(sql_type = diesel::sql_types::Text)]
            version: String,
        }
        let row: Version = super::prepared::Prepared::new(
            "SELECT (SELECT count(*) || '.' || coalesce(sum(hashtextextended(id::text || modified_at::text, 0)), 0) \
                     FROM webhooks) \
                 || '-' || \
                    (SELECT count(*) || '.' || coalesce(sum(hashtextextended(value || ' ' || coalesce(schema::text, ''), 0)), 0) \
                     FROM event_types) \
                 || '-' || \
                    (SELECT count(*) || '.' || coalesce(sum(hashtextextended(id::text, 0)), 0) \
                     FROM events WHERE expunged_at IS NOT NULL AND created_at > $1) \
                 || '-' || \
                    (SELECT count(*) || '.' || coalesce(sum(hashtextextended(delivery_id::text || resent_at::text, 0)), 0) \
                     FROM delivery_resends WHERE resent_at > $2) AS version",
        )
        .bind::<diesel::sql_types::Timestamptz, _>(Utc::now() - EXPUNGED_LISTED_FOR)
        .bind::<diesel::sql_types::Timestamptz, _>(Utc::now() - RESENDS_KEPT)
        .get_result(conn)
        .await?;
        Ok(row.version)
    }
}

/// Which events an erasure names.
#[derive(Debug, Clone, Copy)]
pub enum Erase<'a> {
    Event(Uuid),
    /// Every event with this `subject`.
    Subject(&'a str),
}

/// What an erasure did.
#[derive(Debug, Default)]
pub struct Expunged {
    /// The events whose payloads it erased.
    pub events: Vec<Uuid>,
    /// Their deliveries (response bodies erased).
    pub deliveries: usize,
    /// Of those, the ones still to be attempted: dispatchers end them unsent.
    pub in_flight: usize,
}

/// How long an erased event is listed to dispatchers: the longest a delivery can be retried
/// (`max_age_seconds` is at most 30 days), and a day for parking.
pub const EXPUNGED_LISTED_FOR: chrono::TimeDelta = chrono::TimeDelta::days(31);

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = events)]
pub struct EventRow {
    pub id: Uuid,
    pub tenant_id: Option<Uuid>,
    pub event_type: String,
    pub subject: Option<String>,
    pub channels: Vec<String>,
    pub payload: serde_json::Value,
    pub is_test: bool,
    pub created_at: DateTime<Utc>,
    /// When the payload was erased (it is JSON `null` since).
    pub expunged_at: Option<DateTime<Utc>>,
}

impl EventRow {
    pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<EventRow>> {
        events::table
            .find(id)
            .select(EventRow::as_select())
            .first(conn)
            .await
            .optional()
    }

    /// The events of `ids` that the log still holds with their payloads, by id: one statement
    /// however many.
    pub async fn find_many(
        conn: &mut AsyncPgConnection,
        ids: &[Uuid],
    ) -> QueryResult<std::collections::HashMap<Uuid, hookwire_core::messages::Event>> {
        let rows: Vec<EventRow> = events::table
            .filter(events::id.eq_any(ids))
            .filter(events::expunged_at.is_null())
            .select(EventRow::as_select())
            .load(conn)
            .await?;
        Ok(rows.into_iter().map(|r| (r.id, r.into_event())).collect())
    }

    /// The events created in `[since, until)` that webhook `w` takes as it is now (its tenant's
    /// and feed events of `types`, its test mode, its channels), whose payloads were not erased,
    /// and that it was never sent: no delivery
    /// of them to it. Oldest first, at most `limit`. Found by primary key (UUIDv7 ids sort by
    /// creation time), and each delivery looked up on the webhook's index at the event's time.
    pub async fn missed_by(
        conn: &mut AsyncPgConnection,
        w: &Webhook,
        types: &[String],
        (since, until): (DateTime<Utc>, DateTime<Utc>),
        limit: i64,
    ) -> QueryResult<Vec<hookwire_core::messages::Event>> {
        // An id is made when the event is accepted, next to its `created_at`: a second either
        // side covers the difference, and `created_at` says exactly.
        let slack = chrono::Duration::seconds(1);
        let mut q = events::table
            .filter(events::id.ge(crate::retention::v7_floor(since - slack)))
            .filter(events::id.lt(crate::retention::v7_floor(until + slack)))
            .filter(events::created_at.ge(since))
            .filter(events::created_at.lt(until))
            .filter(events::tenant_id.eq(w.tenant_id).or(events::tenant_id.is_null()))
            .filter(events::event_type.eq_any(types))
            .filter(events::is_test.eq(w.is_test))
            .filter(events::expunged_at.is_null())
            .filter(diesel::dsl::not(diesel::dsl::exists(
                deliveries::table
                    .filter(deliveries::webhook_id.eq(w.id))
                    .filter(deliveries::created_at.eq(events::created_at))
                    .filter(deliveries::event_id.eq(events::id)),
            )))
            .into_boxed();
        if !w.channels.is_empty() {
            q = q.filter(events::channels.overlaps_with(w.channels.clone()));
        }
        let rows: Vec<EventRow> = q
            .order(events::id.asc())
            .limit(limit)
            .select(EventRow::as_select())
            .load(conn)
            .await?;
        Ok(rows.into_iter().map(EventRow::into_event).collect())
    }

    /// Erases the payloads of the events `which` names (of tenant `tenant` only, when given):
    /// `data` becomes JSON `null`, `expunged_at` is set, and the receivers' response bodies
    /// recorded for their deliveries go too. Events erased before are left as they are. One
    /// transaction, which also records the request in `event_erasures`, so that the ledger
    /// writes erased the events it names that are not in the log yet (see
    /// `db::ledger::write_events`).
    ///
    /// It locks the log's `events` and `deliveries` against writes (SHARE ROW EXCLUSIVE, which
    /// readers pass and other erasures wait for) until it commits. A ledger batch written before
    /// has committed when the lock is granted, so the updates below see its rows; one written
    /// after takes its statements' snapshots once the lock is released, so it sees the request.
    /// Without the lock, a batch under way would write an event, or a response body, the
    /// erasure did not see and the batch did not know to erase. Events first, then deliveries:
    /// the order a ledger batch takes them in.
    pub async fn expunge(
        conn: &mut AsyncPgConnection,
        which: Erase<'_>,
        tenant: Option<Uuid>,
    ) -> QueryResult<Expunged> {
        use diesel::sql_types::{Array, Nullable, Timestamptz, Uuid as SqlUuid};
        #[derive(QueryableByName)]
        struct Cleared {
            #[diesel(sql_type = diesel::sql_types::Text)]
            status: String,
        }
        conn.transaction::<_, diesel::result::Error, _>(async |conn| {
            diesel::sql_query("LOCK TABLE events, deliveries IN SHARE ROW EXCLUSIVE MODE")
                .execute(conn)
                .await?;
            let now = Utc::now();
            let (event_id, subject) = match which {
                Erase::Event(id) => (Some(id), None),
                Erase::Subject(subject) => (None, Some(subject.to_owned())),
            };
            diesel::insert_into(event_erasures::table)
                .values((
                    event_erasures::id.eq(hookwire_core::id::v7()),
                    event_erasures::tenant_id.eq(tenant),
                    event_erasures::event_id.eq(event_id),
                    event_erasures::subject.eq(subject),
                    event_erasures::requested_at.eq(now),
                ))
                .execute(conn)
                .await?;
            let mut erase = diesel::update(events::table)
                .filter(events::expunged_at.is_null())
                .into_boxed();
            erase = match which {
                Erase::Event(id) => erase.filter(events::id.eq(id)),
                Erase::Subject(subject) => erase.filter(events::subject.eq(subject.to_owned())),
            };
            if let Some(t) = tenant {
                erase = erase.filter(events::tenant_id.eq(t));
            }
            let found: Vec<(Uuid, Option<Uuid>, DateTime<Utc>)> = erase
                .set((
                    events::payload.eq(serde_json::Value::Null),
                    events::expunged_at.eq(Some(now)),
                ))
                .returning((events::id, events::tenant_id, events::created_at))
                .get_results(conn)
                .await?;
            if found.is_empty() {
                return Ok(Expunged::default());
            }
            let ids: Vec<Uuid> = found.iter().map(|e| e.0).collect();
            // A delivery is made at its event's time, so the log's (tenant, created_at) index
            // finds them; a feed event's deliveries are looked for in every tenant. The pairs are
            // made first, so each is one index probe.
            let cleared: Vec<Cleared> = diesel::sql_query(
                "WITH x AS MATERIALIZED (
                     SELECT e.id, e.created_at, t.id AS tenant_id
                     FROM UNNEST($1, $2, $3) AS e(id, tenant_id, created_at)
                     JOIN tenants t ON t.id = e.tenant_id
                     UNION ALL
                     SELECT e.id, e.created_at, t.id
                     FROM UNNEST($1, $2, $3) AS e(id, tenant_id, created_at)
                     CROSS JOIN tenants t
                     WHERE e.tenant_id IS NULL)
                 UPDATE deliveries d SET response_body = NULL FROM x
                 WHERE d.tenant_id = x.tenant_id AND d.created_at = x.created_at AND d.event_id = x.id
                 RETURNING d.status",
            )
            .bind::<Array<SqlUuid>, _>(&ids)
            .bind::<Array<Nullable<SqlUuid>>, _>(found.iter().map(|e| e.1).collect::<Vec<_>>())
            .bind::<Array<Timestamptz>, _>(found.iter().map(|e| e.2).collect::<Vec<_>>())
            .load(conn)
            .await?;
            let in_flight = cleared
                .iter()
                .filter(|c| matches!(c.status.as_str(), "pending" | "retrying"))
                .count();
            Ok(Expunged {
                deliveries: cleared.len(),
                in_flight,
                events: ids,
            })
        })
        .await
    }

    /// The events erased that may still have deliveries to attempt: those made within the
    /// longest retry span (`max_age_seconds` is at most 30 days), for dispatchers to end unsent.
    pub async fn expunged_recently(conn: &mut AsyncPgConnection) -> QueryResult<Vec<Uuid>> {
        events::table
            .filter(events::expunged_at.is_not_null())
            .filter(events::created_at.gt(Utc::now() - EXPUNGED_LISTED_FOR))
            .select(events::id)
            .load(conn)
            .await
    }

    pub fn into_event(self) -> hookwire_core::messages::Event {
        hookwire_core::messages::Event {
            id: self.id,
            event_type: self.event_type,
            tenant_id: self.tenant_id,
            subject: self.subject,
            channels: self.channels,
            data: self.payload,
            is_test: self.is_test,
            created_at: self.created_at,
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = deliveries)]
pub struct Delivery {
    pub id: Uuid,
    pub webhook_id: Uuid,
    pub tenant_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub subject: Option<String>,
    pub status: String,
    pub attempts: i32,
    pub response_status: Option<i32>,
    pub response_body: Option<String>,
    pub error: Option<String>,
    pub duration_ms: Option<i32>,
    pub is_test: bool,
    pub created_at: DateTime<Utc>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub next_retry_at: Option<DateTime<Utc>>,
    /// The latest attempt's signature header. Null before the first attempt, and in rows written
    /// before the latest attempt moved into the row (migration 5).
    pub signature: Option<String>,
}

/// Filters of `GET /v1/deliveries`.
#[derive(Debug, Default)]
pub struct DeliveryFilter {
    pub webhook_id: Option<Uuid>,
    /// The deliveries of one event (the `webhook-id` its receivers got).
    pub event_id: Option<Uuid>,
    pub event_type: Option<String>,
    pub status: Option<String>,
    pub is_test: Option<bool>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = delivery_attempts)]
pub struct Attempt {
    pub delivery_id: Uuid,
    pub attempt: i32,
    pub attempted_at: DateTime<Utc>,
    pub response_status: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: i32,
    pub signature: String,
}

impl Delivery {
    /// A page of the tenant's log, newest first, read from `page`'s offset or from `cursor`;
    /// whether more rows follow it the way it was read; and how many deliveries match: exact
    /// up to `count_limit`, past it a lower bound, so a page of a log of millions does not count
    /// them all. Read from an offset, the last page
    /// counts by where it ends, and past the bound the count exceeds the page's end while more
    /// follow.
    pub async fn list(
        conn: &mut AsyncPgConnection,
        tenant_id: Uuid,
        filter: &DeliveryFilter,
        (page, cursor): (Page, Option<Cursor>),
        count_limit: i64,
    ) -> QueryResult<(Count, bool, Vec<Delivery>)> {
        let scoped = || {
            let mut q = deliveries::table
                .filter(deliveries::tenant_id.eq(tenant_id))
                .into_boxed();
            if let Some(v) = filter.webhook_id {
                q = q.filter(deliveries::webhook_id.eq(v));
            }
            if let Some(v) = filter.event_id {
                // A delivery carries its event's `created_at`: with it, the tenant's index finds
                // the event's deliveries at one point instead of walking the tenant's whole log
                // (and no index on `event_id` slows the ledger's writes).
                let at = events::table.find(v).select(events::created_at).single_value();
                q = q
                    .filter(deliveries::event_id.eq(v))
                    .filter(deliveries::created_at.nullable().eq(at));
            }
            if let Some(v) = &filter.event_type {
                q = q.filter(deliveries::event_type.eq(v.clone()));
            }
            if let Some(v) = &filter.status {
                q = q.filter(deliveries::status.eq(v.clone()));
            }
            if let Some(v) = filter.is_test {
                q = q.filter(deliveries::is_test.eq(v));
            }
            if let Some(v) = filter.since {
                q = q.filter(deliveries::created_at.ge(v));
            }
            if let Some(v) = filter.until {
                q = q.filter(deliveries::created_at.lt(v));
            }
            q
        };
        let read = scoped().limit(page.limit + 1).select(Delivery::as_select());
        let (created_at, id) = (deliveries::created_at, deliveries::id);
        let mut rows = match cursor {
            None => read.order((created_at.desc(), id.desc())).offset(page.offset),
            // (created_at, id) past the cursor's; `created_at` alone bounds the index's range.
            Some(c) if c.older => read
                .filter(created_at.le(c.at))
                .filter(created_at.lt(c.at).or(id.lt(c.id)))
                .order((created_at.desc(), id.desc())),
            Some(c) => read
                .filter(created_at.ge(c.at))
                .filter(created_at.gt(c.at).or(id.gt(c.id)))
                .order((created_at.asc(), id.asc())),
        }
        .load(conn)
        .await?;
        let more = rows.len() as i64 > page.limit;
        rows.truncate(page.limit as usize);
        if cursor.is_some_and(|c| !c.older) {
            rows.reverse();
        }
        let seen = page.offset.saturating_add(rows.len() as i64);
        let count = if cursor.is_none() && !more && (!rows.is_empty() || page.offset == 0) {
            // The last page: where it ends is the count.
            Count {
                value: seen,
                exact: true,
            }
        } else if !diesel::select(diesel::dsl::exists(
            scoped().select(deliveries::id).offset(count_limit.max(0)),
        ))
        .get_result::<bool>(conn)
        .await?
        {
            Count {
                value: scoped().count().get_result(conn).await?,
                exact: true,
            }
        } else {
            Count {
                value: count_limit.max(if more && cursor.is_none() {
                    seen.saturating_add(1)
                } else {
                    0
                }),
                exact: false,
            }
        };
        Ok((count, more, rows))
    }

    pub async fn find(conn: &mut AsyncPgConnection, tenant_id: Uuid, id: Uuid) -> QueryResult<Option<Delivery>> {
        deliveries::table
            .find(id)
            .filter(deliveries::tenant_id.eq(tenant_id))
            .select(Delivery::as_select())
            .first(conn)
            .await
            .optional()
    }

    /// How many of the webhook's deliveries created in `[since, until)` are in each status (the
    /// statuses with none are left out), read over the window's deliveries.
    pub async fn count_by_status(
        conn: &mut AsyncPgConnection,
        tenant_id: Uuid,
        webhook_id: Uuid,
        (since, until): (DateTime<Utc>, DateTime<Utc>),
    ) -> QueryResult<Vec<(String, i64)>> {
        deliveries::table
            .filter(deliveries::tenant_id.eq(tenant_id))
            .filter(deliveries::webhook_id.eq(webhook_id))
            .filter(deliveries::created_at.ge(since))
            .filter(deliveries::created_at.lt(until))
            .group_by(deliveries::status)
            .select((deliveries::status, diesel::dsl::count_star()))
            .load(conn)
            .await
    }

    /// The webhook's failed and exhausted deliveries created since `since` (at most `limit`).
    pub async fn failed_since(
        conn: &mut AsyncPgConnection,
        tenant_id: Uuid,
        webhook_id: Uuid,
        since: DateTime<Utc>,
        limit: i64,
    ) -> QueryResult<Vec<Delivery>> {
        deliveries::table
            .filter(deliveries::tenant_id.eq(tenant_id))
            .filter(deliveries::webhook_id.eq(webhook_id))
            .filter(deliveries::status.eq_any(["failed", "exhausted"]))
            .filter(deliveries::created_at.ge(since))
            // Not those of erased events, which cannot be sent again (and would otherwise come
            // back at every call).
            .filter(diesel::dsl::not(diesel::dsl::exists(
                events::table
                    .filter(events::id.eq(deliveries::event_id))
                    .filter(events::expunged_at.is_not_null()),
            )))
            .order(deliveries::created_at.asc())
            .limit(limit)
            .select(Delivery::as_select())
            .load(conn)
            .await
    }

    /// Marks deliveries `ids` `retrying` (a new attempt now) where they are still failed or
    /// exhausted at the attempt read: a recover whose tasks the broker has confirmed, so a second
    /// recover does not send them again. A delivery whose new attempt the log has already
    /// recorded keeps that outcome. Says how many it marked.
    pub async fn mark_retrying(
        conn: &mut AsyncPgConnection,
        ids: &[Uuid],
        attempts: &[i32],
        at: DateTime<Utc>,
    ) -> QueryResult<usize> {
        use diesel::sql_types::{Array, Int4, Timestamptz, Uuid as SqlUuid};
        super::prepared::Prepared::new(
            "UPDATE deliveries AS d SET status = 'retrying', next_retry_at = $3
             FROM UNNEST($1, $2) AS t(id, attempts)
             WHERE d.id = t.id AND d.attempts = t.attempts AND d.status IN ('failed', 'exhausted')",
        )
        .bind::<Array<SqlUuid>, _>(ids)
        .bind::<Array<Int4>, _>(attempts)
        .bind::<Timestamptz, _>(at)
        .execute(conn)
        .await
    }

    /// Notes that delivery `id` was sent again by request at `at` while its chain of retries
    /// was under way, for the routing snapshot's `resent` (see migration 18).
    pub async fn record_resend(conn: &mut AsyncPgConnection, id: Uuid, at: DateTime<Utc>) -> QueryResult<()> {
        super::prepared::Prepared::new(
            "INSERT INTO delivery_resends (delivery_id, resent_at) VALUES ($1, $2)
             ON CONFLICT (delivery_id) DO UPDATE
                 SET resent_at = GREATEST(delivery_resends.resent_at, excluded.resent_at)",
        )
        .bind::<diesel::sql_types::Uuid, _>(id)
        .bind::<diesel::sql_types::Timestamptz, _>(at)
        .execute(conn)
        .await
        .map(drop)
    }

    /// The deliveries sent again by request within `retry::RESENDS_KEPT`.
    pub async fn resent_recently(conn: &mut AsyncPgConnection) -> QueryResult<Vec<Resent>> {
        use super::schema::delivery_resends::dsl as r;
        let rows: Vec<(Uuid, DateTime<Utc>)> = r::delivery_resends
            .filter(r::resent_at.gt(Utc::now() - RESENDS_KEPT))
            .select((r::delivery_id, r::resent_at))
            .load(conn)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(delivery_id, at)| Resent { delivery_id, at })
            .collect())
    }

    /// Every attempt, oldest first: the superseded ones from `delivery_attempts`, and the latest
    /// from the delivery's own row (see migration 5).
    pub async fn load_attempts(&self, conn: &mut AsyncPgConnection) -> QueryResult<Vec<Attempt>> {
        let mut attempts: Vec<Attempt> = delivery_attempts::table
            .filter(delivery_attempts::delivery_id.eq(self.id))
            .order(delivery_attempts::attempt.asc())
            .select(Attempt::as_select())
            .load(conn)
            .await?;
        if let Some(latest) = self.latest_attempt() {
            if !attempts.iter().any(|a| a.attempt == latest.attempt) {
                attempts.push(latest);
                attempts.sort_by_key(|a| a.attempt);
            }
        }
        Ok(attempts)
    }

    /// The attempt the row itself records, if it records one.
    fn latest_attempt(&self) -> Option<Attempt> {
        Some(Attempt {
            delivery_id: self.id,
            attempt: Some(self.attempts).filter(|n| *n > 0)?,
            attempted_at: self.last_attempt_at?,
            response_status: self.response_status,
            error: self.error.clone(),
            duration_ms: self.duration_ms.unwrap_or(0),
            signature: self.signature.clone()?,
        })
    }
}
