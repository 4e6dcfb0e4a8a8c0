//! The event-type catalog.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::*;
use crate::db::schema::event_types;

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
