//! Portal sessions: a tenant's console, opened from a one-time link and then held by a cookie.
//! Both secrets are stored as SHA-256 hashes.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::*;
use crate::db::schema::{api_keys, portal_sessions};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = portal_sessions)]
pub struct PortalSession {
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// The key the session acts with (its scopes, its webhook limit); `None`: the tenant has no
    /// key able to create webhooks, so the portal cannot create one.
    pub api_key_id: Option<Uuid>,
    pub read_only: bool,
    pub token_hash: Vec<u8>,
    pub session_hash: Option<Vec<u8>>,
    /// Sent back in `X-CSRF-Token` by the console on every change.
    pub csrf_token: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// When the link was opened (it opens once).
    pub opened_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl PortalSession {
    pub async fn insert(conn: &mut AsyncPgConnection, s: &PortalSession) -> QueryResult<()> {
        diesel::insert_into(portal_sessions::table)
            .values(s)
            .execute(conn)
            .await
            .map(drop)
    }

    pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<PortalSession>> {
        portal_sessions::table
            .find(id)
            .select(PortalSession::as_select())
            .first(conn)
            .await
            .optional()
    }

    /// Opens the session whose link token hashes to `token_hash`, once, while it is live, and
    /// binds it to the cookie that hashes to `session_hash`.
    pub async fn open(
        conn: &mut AsyncPgConnection,
        token_hash: &[u8],
        session_hash: &[u8],
    ) -> QueryResult<Option<PortalSession>> {
        diesel::update(
            portal_sessions::table
                .filter(portal_sessions::token_hash.eq(token_hash))
                .filter(portal_sessions::opened_at.is_null())
                .filter(portal_sessions::revoked_at.is_null())
                .filter(portal_sessions::expires_at.gt(diesel::dsl::now)),
        )
        .set((
            portal_sessions::opened_at.eq(diesel::dsl::now),
            portal_sessions::session_hash.eq(session_hash),
        ))
        .returning(PortalSession::as_returning())
        .get_result(conn)
        .await
        .optional()
    }

    /// The live session the cookie hashing to `session_hash` holds, with the key it acts with
    /// (`None` when it has none). A session whose key was revoked is not live.
    pub async fn live(
        conn: &mut AsyncPgConnection,
        session_hash: &[u8],
    ) -> QueryResult<Option<(PortalSession, Option<ApiKey>)>> {
        portal_sessions::table
            .left_join(
                api_keys::table.on(portal_sessions::api_key_id
                    .eq(api_keys::id.nullable())
                    .and(api_keys::revoked_at.is_null())),
            )
            .filter(portal_sessions::session_hash.eq(session_hash))
            .filter(portal_sessions::revoked_at.is_null())
            .filter(portal_sessions::expires_at.gt(diesel::dsl::now))
            .select((PortalSession::as_select(), Option::<ApiKey>::as_select()))
            .first::<(PortalSession, Option<ApiKey>)>(conn)
            .await
            .optional()
            .map(|found| found.filter(|(s, key)| s.api_key_id.is_none() || key.is_some()))
    }

    /// Revokes a session of `tenant_id` (any tenant's when `None`); false when there is none.
    pub async fn revoke(conn: &mut AsyncPgConnection, id: Uuid, tenant_id: Option<Uuid>) -> QueryResult<bool> {
        let mut q = diesel::update(portal_sessions::table)
            .filter(portal_sessions::id.eq(id))
            .filter(portal_sessions::revoked_at.is_null())
            .into_boxed();
        if let Some(tenant_id) = tenant_id {
            q = q.filter(portal_sessions::tenant_id.eq(tenant_id));
        }
        Ok(q.set(portal_sessions::revoked_at.eq(diesel::dsl::now))
            .execute(conn)
            .await?
            > 0)
    }

    /// The newest live key of `tenant_id` that may create webhooks: what a session the admin
    /// opens acts with.
    pub async fn writing_key(conn: &mut AsyncPgConnection, tenant_id: Uuid) -> QueryResult<Option<Uuid>> {
        api_keys::table
            .filter(api_keys::tenant_id.eq(tenant_id))
            .filter(api_keys::revoked_at.is_null())
            .filter(api_keys::scopes.contains(vec!["webhooks:write".to_owned()]))
            .order((api_keys::created_at.desc(), api_keys::id.desc()))
            .select(api_keys::id)
            .first(conn)
            .await
            .optional()
    }
}
