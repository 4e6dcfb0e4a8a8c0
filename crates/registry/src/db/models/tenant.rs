//! Tenants: the accounts that own keys, webhooks and a delivery log.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::*;
use crate::db::schema::{api_keys, deleted_tenants, delivery_lines, line_waiting, tenants, webhooks};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = tenants)]
pub struct Tenant {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    /// Most deliveries per second across its webhooks; `None`: no ceiling.
    pub max_deliveries_per_second: Option<i32>,
}

impl Tenant {
    pub async fn create(conn: &mut AsyncPgConnection, name: &str, ceiling: Option<u32>) -> QueryResult<Tenant> {
        diesel::insert_into(tenants::table)
            .values(&Tenant {
                id: hookwire_core::id::v7(),
                name: name.to_owned(),
                created_at: Utc::now(),
                max_deliveries_per_second: ceiling.map(|c| c as i32),
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

    /// Sets a tenant's name and ceiling; `None` when there is no such tenant.
    pub async fn update(
        conn: &mut AsyncPgConnection,
        id: Uuid,
        name: &str,
        ceiling: Option<i32>,
    ) -> QueryResult<Option<Tenant>> {
        diesel::update(tenants::table.find(id))
            .set((tenants::name.eq(name), tenants::max_deliveries_per_second.eq(ceiling)))
            .returning(Tenant::as_returning())
            .get_result(conn)
            .await
            .optional()
    }

    /// The tenants with a ceiling on deliveries per second, for the routing snapshot.
    pub async fn limits(conn: &mut AsyncPgConnection) -> QueryResult<Vec<hookwire_core::messages::TenantLimit>> {
        let rows: Vec<(Uuid, Option<i32>)> = tenants::table
            .filter(tenants::max_deliveries_per_second.is_not_null())
            .select((tenants::id, tenants::max_deliveries_per_second))
            .load(conn)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(tenant_id, c)| hookwire_core::messages::TenantLimit {
                tenant_id,
                max_deliveries_per_second: c.and_then(|c| u32::try_from(c).ok()),
            })
            .collect())
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
            // Its ordered webhooks' lines, with the tasks (payloads) they held.
            diesel::delete(line_waiting::table.filter(line_waiting::tenant_id.eq(id)))
                .execute(conn)
                .await?;
            diesel::delete(delivery_lines::table.filter(delivery_lines::tenant_id.eq(id)))
                .execute(conn)
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
