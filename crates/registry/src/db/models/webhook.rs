//! Webhooks: a tenant's subscriptions.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};
use hookwire_core::retry::RESENDS_KEPT;
use uuid::Uuid;

use super::*;
use crate::db::schema::{api_keys, webhooks};

/// Why a webhook was not created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The key has created its `max_webhooks` (the limit it has now).
    LimitReached(i32),
    /// The key was revoked after the request was authenticated.
    KeyRevoked,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhooks)]
pub struct Webhook {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub api_key_id: Option<Uuid>,
    pub name: String,
    pub description: String,
    pub url: String,
    pub events: Vec<String>,
    pub channels: Vec<String>,
    pub is_active: bool,
    pub is_test: bool,
    pub header_name: Option<String>,
    pub prefix: Option<String>,
    pub auth_secret_sealed: Option<String>,
    pub auth_secret_last4: Option<String>,
    pub secret_sealed: String,
    pub previous_secret_sealed: Option<String>,
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub headers: serde_json::Value,
    pub timeout_seconds: i32,
    pub retry_policy: serde_json::Value,
    pub rate_limit_per_second: Option<i32>,
    pub failure_count: i32,
    pub last_triggered_at: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_failure_at: Option<DateTime<Utc>>,
    pub disabled_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub modified_at: DateTime<Utc>,
    pub failing_since: Option<DateTime<Utc>>,
    /// `none` or `subject` (`hookwire_api::webhooks::DeliveryOrder`).
    pub ordering: String,
}

impl Webhook {
    /// Whether its deliveries go through the lines (`ordering: "subject"`).
    pub fn ordered(&self) -> bool {
        self.ordering == "subject"
    }
}

/// The columns the API writes (PATCH, rotate-secret), a `None` as NULL (a field set to null
/// is removed). Not the ids, the creation time nor the delivery statistics the ledger keeps, so
/// a PATCH never writes back statistics it read a moment before.
#[derive(AsChangeset)]
#[diesel(table_name = webhooks, treat_none_as_null = true)]
struct Changes<'a> {
    name: &'a str,
    description: &'a str,
    url: &'a str,
    events: &'a [String],
    channels: &'a [String],
    is_active: bool,
    is_test: bool,
    header_name: Option<&'a str>,
    prefix: Option<&'a str>,
    auth_secret_sealed: Option<&'a str>,
    auth_secret_last4: Option<&'a str>,
    secret_sealed: &'a str,
    previous_secret_sealed: Option<&'a str>,
    previous_secret_expires_at: Option<DateTime<Utc>>,
    headers: &'a serde_json::Value,
    timeout_seconds: i32,
    retry_policy: &'a serde_json::Value,
    rate_limit_per_second: Option<i32>,
    ordering: &'a str,
    disabled_reason: Option<&'a str>,
    modified_at: DateTime<Utc>,
}

impl<'a> From<&'a Webhook> for Changes<'a> {
    fn from(w: &'a Webhook) -> Self {
        Self {
            name: &w.name,
            description: &w.description,
            url: &w.url,
            events: &w.events,
            channels: &w.channels,
            is_active: w.is_active,
            is_test: w.is_test,
            header_name: w.header_name.as_deref(),
            prefix: w.prefix.as_deref(),
            auth_secret_sealed: w.auth_secret_sealed.as_deref(),
            auth_secret_last4: w.auth_secret_last4.as_deref(),
            secret_sealed: &w.secret_sealed,
            previous_secret_sealed: w.previous_secret_sealed.as_deref(),
            previous_secret_expires_at: w.previous_secret_expires_at,
            headers: &w.headers,
            timeout_seconds: w.timeout_seconds,
            retry_policy: &w.retry_policy,
            rate_limit_per_second: w.rate_limit_per_second,
            ordering: &w.ordering,
            disabled_reason: w.disabled_reason.as_deref(),
            modified_at: w.modified_at,
        }
    }
}

/// Filters of `GET /v1/webhooks`.
#[derive(Debug, Default)]
pub struct WebhookFilter {
    /// Patterns that match the requested event type (see `patterns_matching`).
    pub patterns: Option<Vec<String>>,
    pub is_test: Option<bool>,
    pub is_active: Option<bool>,
    pub channel: Option<String>,
}

/// Sort orders of `GET /v1/webhooks`.
#[derive(Debug, Clone, Copy)]
pub enum WebhookOrder {
    Created,
    CreatedDesc,
    Modified,
    ModifiedDesc,
    Name,
    NameDesc,
}

impl Webhook {
    pub async fn insert(conn: &mut AsyncPgConnection, w: &Webhook) -> QueryResult<()> {
        diesel::insert_into(webhooks::table)
            .values(w)
            .execute(conn)
            .await
            .map(drop)
    }

    /// Writes back what the API changes ([`Changes`]) if the row is still as read at `read_at`
    /// (its `modified_at`); `false` when another write came in between, and nothing was written.
    /// `restart_failing` also forgets when its current run of failures began (a webhook turned
    /// back on gets the whole `webhooks.auto_disable_after` again).
    pub async fn update(
        conn: &mut AsyncPgConnection,
        w: &Webhook,
        read_at: DateTime<Utc>,
        restart_failing: bool,
    ) -> QueryResult<bool> {
        let row = diesel::update(
            webhooks::table
                .find(w.id)
                .filter(webhooks::tenant_id.eq(w.tenant_id))
                .filter(webhooks::modified_at.eq(read_at)),
        );
        let changes = Changes::from(w);
        if restart_failing {
            row.set((changes, webhooks::failing_since.eq(None::<DateTime<Utc>>)))
                .execute(conn)
                .await
        } else {
            row.set(changes).execute(conn).await
        }
        .map(|rows| rows == 1)
    }

    pub async fn delete(conn: &mut AsyncPgConnection, tenant_id: Uuid, id: Uuid) -> QueryResult<bool> {
        let n = diesel::delete(webhooks::table.find(id).filter(webhooks::tenant_id.eq(tenant_id)))
            .execute(conn)
            .await?;
        Ok(n == 1)
    }

    /// The tenant's webhook, or `None` (another tenant's is just as absent).
    pub async fn find(conn: &mut AsyncPgConnection, tenant_id: Uuid, id: Uuid) -> QueryResult<Option<Webhook>> {
        webhooks::table
            .find(id)
            .filter(webhooks::tenant_id.eq(tenant_id))
            .select(Webhook::as_select())
            .first(conn)
            .await
            .optional()
    }

    /// Inserts `w`, created with key `api_key_id`, unless the key has created `max` webhooks
    /// already (`false`). The key's row is locked while it counts, so requests at once with one
    /// key cannot together pass its limit.
    pub async fn insert_within_limit(
        conn: &mut AsyncPgConnection,
        w: &Webhook,
        api_key_id: Uuid,
    ) -> QueryResult<Result<(), Refused>> {
        conn.transaction::<_, diesel::result::Error, _>(async |conn| {
            // The key's row, locked: its limit as it is now (an admin may have changed it since
            // the request was authenticated), and creates with one key counted one at a time.
            let Some(max) = api_keys::table
                .find(api_key_id)
                .filter(api_keys::revoked_at.is_null())
                .select(api_keys::max_webhooks)
                .for_update()
                .first::<i32>(conn)
                .await
                .optional()?
            else {
                return Ok(Err(Refused::KeyRevoked));
            };
            let used: i64 = webhooks::table
                .filter(webhooks::api_key_id.eq(api_key_id))
                .count()
                .get_result(conn)
                .await?;
            if used >= i64::from(max) {
                return Ok(Err(Refused::LimitReached(max)));
            }
            Webhook::insert(conn, w).await?;
            Ok(Ok(()))
        })
        .await
    }

    pub async fn list(
        conn: &mut AsyncPgConnection,
        tenant_id: Uuid,
        filter: &WebhookFilter,
        order: WebhookOrder,
        page: Page,
    ) -> QueryResult<(i64, Vec<Webhook>)> {
        let scoped = || {
            let mut q = webhooks::table.filter(webhooks::tenant_id.eq(tenant_id)).into_boxed();
            if let Some(patterns) = &filter.patterns {
                q = q.filter(webhooks::events.overlaps_with(patterns.clone()));
            }
            if let Some(v) = filter.is_test {
                q = q.filter(webhooks::is_test.eq(v));
            }
            if let Some(v) = filter.is_active {
                q = q.filter(webhooks::is_active.eq(v));
            }
            if let Some(c) = &filter.channel {
                q = q.filter(webhooks::channels.contains(vec![c.clone()]));
            }
            q
        };
        let count = scoped().count().get_result(conn).await?;
        let q = scoped();
        // The id breaks ties, so pages never overlap or skip.
        let q = match order {
            WebhookOrder::Created => q.order((webhooks::created_at.asc(), webhooks::id.asc())),
            WebhookOrder::CreatedDesc => q.order((webhooks::created_at.desc(), webhooks::id.desc())),
            WebhookOrder::Modified => q.order((webhooks::modified_at.asc(), webhooks::id.asc())),
            WebhookOrder::ModifiedDesc => q.order((webhooks::modified_at.desc(), webhooks::id.desc())),
            WebhookOrder::Name => q.order((webhooks::name.asc(), webhooks::id.asc())),
            WebhookOrder::NameDesc => q.order((webhooks::name.desc(), webhooks::id.desc())),
        };
        let rows = q
            .limit(page.limit)
            .offset(page.offset)
            .select(Webhook::as_select())
            .load(conn)
            .await?;
        Ok((count, rows))
    }

    /// Every webhook of every tenant: the publisher's routing snapshot.
    pub async fn all(conn: &mut AsyncPgConnection) -> QueryResult<Vec<Webhook>> {
        webhooks::table.select(Webhook::as_select()).load(conn).await
    }

    /// A version of what `/v1/internal/routing` answers, changed by every change to it: each
    /// webhook counts with its id and `modified_at` (which every change sets), each catalog type
    /// with its value and schema, and a deletion changes the count; so does each erased event
    /// listed (`expunged_recently`), and so does each resend listed (`resent_recently`). One
    /// scan of webhooks and catalog, nothing sent.
    pub async fn routing_version(conn: &mut AsyncPgConnection) -> QueryResult<String> {
        #[derive(QueryableByName)]
        struct Version {
            #[diesel(sql_type = diesel::sql_types::Text)]
            version: String,
        }
        let row: Version = crate::db::prepared::Prepared::new(
            "SELECT (SELECT count(*) || '.' || coalesce(sum(hashtextextended(id::text || modified_at::text, 0)), 0) \
                     FROM webhooks) \
                 || '-' || \
                    (SELECT count(*) || '.' || coalesce(sum(hashtextextended(value || ' ' || coalesce(schema::text, ''), 0)), 0) \
                     FROM event_types) \
                 || '-' || \
                    (SELECT count(*) || '.' || coalesce(sum(hashtextextended(id::text, 0)), 0) \
                     FROM events WHERE expunged_at IS NOT NULL AND created_at > $1) \
                 || '-' || \
                    (SELECT count(*) || '.' || coalesce(sum(hashtextextended(delivery_id::text || resent_at::text, 0)), 0) \
                     FROM delivery_resends WHERE resent_at > $2) \
                 || '-' || \
                    (SELECT count(*) || '.' || coalesce(sum(hashtextextended(id::text, 0)), 0) \
                     FROM producer_tokens WHERE revoked_at IS NULL) \
                 || '-' || \
                    (SELECT count(*) || '.' || coalesce(sum(hashtextextended(id::text || max_deliveries_per_second::text, 0)), 0) \
                     FROM tenants WHERE max_deliveries_per_second IS NOT NULL) AS version",
        )
        .bind::<diesel::sql_types::Timestamptz, _>(Utc::now() - EXPUNGED_LISTED_FOR)
        .bind::<diesel::sql_types::Timestamptz, _>(Utc::now() - RESENDS_KEPT)
        .get_result(conn)
        .await?;
        Ok(row.version)
    }
}
