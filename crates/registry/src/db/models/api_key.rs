//! API keys: stored hashed, checked on every customer request.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::*;
use crate::db::schema::{api_keys, webhooks};

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
        crate::db::prepared::Prepared::new(concat!("WITH ", key_by_hash!(), " SELECT * FROM k"))
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
