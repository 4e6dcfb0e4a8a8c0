//! Deliveries and their attempts: the delivery log.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use hookwire_core::messages::Resent;
use hookwire_core::retry::RESENDS_KEPT;
use uuid::Uuid;

use crate::pagination::Cursor;

use super::*;
use crate::db::schema::{deliveries, delivery_attempts, events, line_waiting};

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
            // `waiting` is no column value: a delivery waits while its line holds it (its row
            // says `pending`, or `retrying` once recovered into the line).
            let in_line =
                || diesel::dsl::exists(line_waiting::table.filter(line_waiting::delivery_id.eq(deliveries::id)));
            match filter.status.as_deref() {
                Some("waiting") => q = q.filter(in_line()),
                Some(v @ ("pending" | "retrying")) => {
                    q = q
                        .filter(deliveries::status.eq(v.to_owned()))
                        .filter(diesel::dsl::not(in_line()))
                }
                Some(v) => q = q.filter(deliveries::status.eq(v.to_owned())),
                None => {}
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
        crate::db::prepared::Prepared::new(
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
        crate::db::prepared::Prepared::new(
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
        use crate::db::schema::delivery_resends::dsl as r;
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
