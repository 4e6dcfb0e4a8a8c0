//! Producer tokens: who may publish, stored hashed.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::*;
use crate::db::schema::producer_tokens;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = producer_tokens)]
pub struct ProducerToken {
    pub id: Uuid,
    pub name: String,
    pub token_hash: Vec<u8>,
    /// The token's first characters, to recognise it.
    pub token_prefix: String,
    pub event_types: Option<Vec<String>>,
    pub tenant_ids: Option<Vec<Uuid>>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ProducerToken {
    pub async fn insert(conn: &mut AsyncPgConnection, t: &ProducerToken) -> QueryResult<()> {
        diesel::insert_into(producer_tokens::table)
            .values(t)
            .execute(conn)
            .await
            .map(drop)
    }

    pub async fn find(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<ProducerToken>> {
        producer_tokens::table
            .find(id)
            .select(ProducerToken::as_select())
            .first(conn)
            .await
            .optional()
    }

    /// A page of tokens, oldest first; revoked ones only when asked for.
    pub async fn list(
        conn: &mut AsyncPgConnection,
        with_revoked: bool,
        page: Page,
    ) -> QueryResult<(i64, Vec<ProducerToken>)> {
        let scoped = || {
            let mut q = producer_tokens::table.into_boxed();
            if !with_revoked {
                q = q.filter(producer_tokens::revoked_at.is_null());
            }
            q
        };
        let count = scoped().count().get_result(conn).await?;
        let rows = scoped()
            .order((producer_tokens::created_at.asc(), producer_tokens::id.asc()))
            .limit(page.limit)
            .offset(page.offset)
            .select(ProducerToken::as_select())
            .load(conn)
            .await?;
        Ok((count, rows))
    }

    /// Every live token, for the routing snapshot.
    pub async fn live(conn: &mut AsyncPgConnection) -> QueryResult<Vec<ProducerToken>> {
        producer_tokens::table
            .filter(producer_tokens::revoked_at.is_null())
            .select(ProducerToken::as_select())
            .load(conn)
            .await
    }

    /// Revokes a live token; `None` when there is no such token, the token as it is otherwise.
    pub async fn revoke(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<ProducerToken>> {
        let revoked = diesel::update(
            producer_tokens::table
                .filter(producer_tokens::id.eq(id))
                .filter(producer_tokens::revoked_at.is_null()),
        )
        .set(producer_tokens::revoked_at.eq(diesel::dsl::now))
        .returning(ProducerToken::as_returning())
        .get_result(conn)
        .await
        .optional()?;
        match revoked {
            Some(t) => Ok(Some(t)),
            None => Self::find(conn, id).await,
        }
    }

    /// What publishers check.
    pub fn grant(&self) -> hookwire_core::messages::ProducerGrant {
        hookwire_core::messages::ProducerGrant {
            id: self.id,
            name: self.name.clone(),
            token_hash: self.token_hash.iter().map(|b| format!("{b:02x}")).collect(),
            event_types: self.event_types.clone(),
            tenant_ids: self.tenant_ids.clone(),
        }
    }
}
