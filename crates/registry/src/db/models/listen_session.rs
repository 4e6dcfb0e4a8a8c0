//! Listen sessions of `hookwire listen`: a temporary webhook relayed to the CLI that holds it.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::db::schema::{listen_sessions, webhooks};

/// How long a session lives without its stream; the stream renews it well within this.
pub const LISTEN_LEASE: chrono::TimeDelta = chrono::TimeDelta::seconds(120);

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = listen_sessions)]
pub struct ListenSession {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub webhook_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl ListenSession {
    pub async fn insert(conn: &mut AsyncPgConnection, s: &ListenSession) -> QueryResult<()> {
        diesel::insert_into(listen_sessions::table)
            .values(s)
            .execute(conn)
            .await
            .map(drop)
    }

    /// The live session `id` of `tenant_id`.
    pub async fn find(conn: &mut AsyncPgConnection, tenant_id: Uuid, id: Uuid) -> QueryResult<Option<ListenSession>> {
        listen_sessions::table
            .filter(listen_sessions::id.eq(id))
            .filter(listen_sessions::tenant_id.eq(tenant_id))
            .filter(listen_sessions::expires_at.gt(diesel::dsl::now))
            .select(ListenSession::as_select())
            .first(conn)
            .await
            .optional()
    }

    /// Pushes the session's end `LISTEN_LEASE` from now; false when it has ended.
    pub async fn renew(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<bool> {
        let until = Utc::now() + LISTEN_LEASE;
        Ok(diesel::update(
            listen_sessions::table
                .filter(listen_sessions::id.eq(id))
                .filter(listen_sessions::expires_at.gt(diesel::dsl::now)),
        )
        .set(listen_sessions::expires_at.eq(until))
        .execute(conn)
        .await?
            > 0)
    }

    /// Deletes the webhooks of the sessions that expired (the sessions go with them); says which,
    /// with their tenants.
    pub async fn delete_expired(conn: &mut AsyncPgConnection) -> QueryResult<Vec<(Uuid, Uuid)>> {
        let expired = listen_sessions::table
            .filter(listen_sessions::expires_at.le(diesel::dsl::now))
            .select(listen_sessions::webhook_id);
        diesel::delete(webhooks::table.filter(webhooks::id.eq_any(expired)))
            .returning((webhooks::id, webhooks::tenant_id))
            .get_results(conn)
            .await
    }
}
