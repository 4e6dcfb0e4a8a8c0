//! Entries of the audit log (`crate::audit` writes them), read newest first.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::*;
use crate::db::schema::audit_log;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = audit_log)]
pub struct AuditEntry {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub tenant_id: Option<Uuid>,
    pub actor_kind: String,
    pub actor_id: Option<String>,
    pub actor_name: Option<String>,
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    pub changes: serde_json::Value,
    pub request_id: Option<String>,
}

/// Which entries a listing wants; `None` leaves a filter out.
#[derive(Debug, Default)]
pub struct AuditFilter {
    pub tenant_id: Option<Uuid>,
    pub resource_id: Option<String>,
    pub action: Option<String>,
    pub actor_id: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

impl AuditEntry {
    /// A page of the entries `filter` matches, newest first, and how many there are.
    pub async fn list(
        conn: &mut AsyncPgConnection,
        filter: &AuditFilter,
        page: Page,
    ) -> QueryResult<(i64, Vec<AuditEntry>)> {
        let matching = || {
            let mut q = audit_log::table.into_boxed();
            if let Some(t) = filter.tenant_id {
                q = q.filter(audit_log::tenant_id.eq(t));
            }
            if let Some(r) = &filter.resource_id {
                q = q.filter(audit_log::resource_id.eq(r.clone()));
            }
            if let Some(a) = &filter.action {
                q = q.filter(audit_log::action.eq(a.clone()));
            }
            if let Some(a) = &filter.actor_id {
                q = q.filter(audit_log::actor_id.eq(a.clone()));
            }
            // By the time-ordered ids, so the primary key bounds the scan.
            if let Some(since) = filter.since {
                q = q.filter(audit_log::id.ge(hookwire_core::id::v7_floor(since)));
            }
            if let Some(until) = filter.until {
                q = q.filter(audit_log::id.lt(hookwire_core::id::v7_floor(until)));
            }
            q
        };
        let count = matching().count().get_result(conn).await?;
        let rows = matching()
            .order(audit_log::id.desc())
            .limit(page.limit)
            .offset(page.offset)
            .select(AuditEntry::as_select())
            .load(conn)
            .await?;
        Ok((count, rows))
    }
}
