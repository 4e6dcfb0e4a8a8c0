//! Named admin tokens: stored hashed, looked up on each admin request (so a revocation holds
//! from the next one).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::*;
use crate::db::schema::admin_tokens;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = admin_tokens)]
pub struct AdminToken {
    pub id: Uuid,
    pub name: String,
    pub token_hash: Vec<u8>,
    pub token_prefix: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl AdminToken {
    pub async fn insert(conn: &mut AsyncPgConnection, t: &AdminToken) -> QueryResult<()> {
        diesel::insert_into(admin_tokens::table)
            .values(t)
            .execute(conn)
            .await
            .map(drop)
    }

    /// The live token whose hash is `hash`.
    pub async fn live(conn: &mut AsyncPgConnection, hash: &[u8]) -> QueryResult<Option<AdminToken>> {
        admin_tokens::table
            .filter(admin_tokens::token_hash.eq(hash))
            .filter(admin_tokens::revoked_at.is_null())
            .select(AdminToken::as_select())
            .first(conn)
            .await
            .optional()
    }

    pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<AdminToken>> {
        admin_tokens::table
            .find(id)
            .select(AdminToken::as_select())
            .first(conn)
            .await
            .optional()
    }

    /// A page of tokens, oldest first; revoked ones too.
    pub async fn list(conn: &mut AsyncPgConnection, page: Page) -> QueryResult<(i64, Vec<AdminToken>)> {
        let count = admin_tokens::table.count().get_result(conn).await?;
        let rows = admin_tokens::table
            .order((admin_tokens::created_at.asc(), admin_tokens::id.asc()))
            .limit(page.limit)
            .offset(page.offset)
            .select(AdminToken::as_select())
            .load(conn)
            .await?;
        Ok((count, rows))
    }

    /// Revokes a live token; false when there is none.
    pub async fn revoke(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<bool> {
        Ok(diesel::update(
            admin_tokens::table
                .filter(admin_tokens::id.eq(id))
                .filter(admin_tokens::revoked_at.is_null()),
        )
        .set(admin_tokens::revoked_at.eq(diesel::dsl::now))
        .execute(conn)
        .await?
            > 0)
    }
}
