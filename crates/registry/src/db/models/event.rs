//! Events in the delivery log, and their erasure.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::*;
use crate::db::schema::{deliveries, event_erasures, events};

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
            .filter(events::id.ge(hookwire_core::id::v7_floor(since - slack)))
            .filter(events::id.lt(hookwire_core::id::v7_floor(until + slack)))
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
            #[diesel(sql_type = SqlUuid)]
            id: Uuid,
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
                 RETURNING d.id, d.status",
            )
            .bind::<Array<SqlUuid>, _>(&ids)
            .bind::<Array<Nullable<SqlUuid>>, _>(found.iter().map(|e| e.1).collect::<Vec<_>>())
            .bind::<Array<Timestamptz>, _>(found.iter().map(|e| e.2).collect::<Vec<_>>())
            .load(conn)
            .await?;
            let in_flight: Vec<Uuid> = cleared
                .iter()
                .filter(|c| matches!(c.status.as_str(), "pending" | "retrying"))
                .map(|c| c.id)
                .collect();
            // Deliveries waiting in a line (or out of it) hold their task, body and all.
            crate::db::lines::erase_bodies(conn, &in_flight).await?;
            let in_flight = in_flight.len();
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
