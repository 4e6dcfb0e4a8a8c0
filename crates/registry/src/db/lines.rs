//! The lines of ordered webhooks (`ordering: "subject"`): per webhook and subject, the one
//! delivery out (`delivery_lines`) and the deliveries waiting behind it (`line_waiting`, in the
//! order the lines queue gave them). The consumers of the lines queue (joining) and of the line
//! ends queue (moving on) change them, and every change locks the line's `delivery_lines` row
//! first (in one key order), so the two take turns on a line, as does a consumer taking over
//! from one that has not yet stopped.
//!
//! A task is kept with its delivery until the line moves past it: a registry that stops
//! after a commit but before the broker confirmed the tasks it released reads the same messages
//! again and sends the lines' busy tasks again (a repeat, never a reordering).

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use diesel::sql_types::{Array, BigInt, Bytea, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel::{OptionalExtension as _, QueryableByName};
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::db::prepared::Prepared;

/// One delivery for a line, as the lines queue gave it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub webhook_id: Uuid,
    /// The event's subject; `""` for events without one.
    pub line: String,
    pub tenant_id: Uuid,
    pub delivery_id: Uuid,
    /// The `delivery_task.v1` message that sends it, `in_line` set.
    pub task: Vec<u8>,
}

/// A delivery of a line that succeeded or ended (`failed`, `exhausted`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Finished {
    pub webhook_id: Uuid,
    pub line: String,
    pub delivery_id: Uuid,
}

/// A line's key and its busy delivery.
#[derive(QueryableByName)]
struct LineBusy {
    #[diesel(sql_type = SqlUuid)]
    webhook_id: Uuid,
    #[diesel(sql_type = Text)]
    line: String,
    #[diesel(sql_type = SqlUuid)]
    busy_with: Uuid,
}

#[derive(QueryableByName)]
struct Busy {
    #[diesel(sql_type = SqlUuid)]
    webhook_id: Uuid,
    #[diesel(sql_type = Text)]
    line: String,
    #[diesel(sql_type = SqlUuid)]
    tenant_id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    busy_with: Uuid,
    #[diesel(sql_type = Bytea)]
    busy_task: Vec<u8>,
}

/// A task a line sends out: its delivery, its tenant (which picks the lane) and its
/// `delivery_task.v1` message.
#[derive(Debug, Clone, QueryableByName)]
pub struct Released {
    #[diesel(sql_type = SqlUuid, column_name = busy_with)]
    pub delivery_id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    pub tenant_id: Uuid,
    #[diesel(sql_type = Bytea, column_name = busy_task)]
    pub task: Vec<u8>,
}

/// A line moved on to its next delivery.
#[derive(QueryableByName)]
struct Moved {
    #[diesel(sql_type = SqlUuid)]
    webhook_id: Uuid,
    #[diesel(sql_type = Text)]
    line: String,
    #[diesel(embed)]
    next: Released,
}

#[derive(QueryableByName)]
struct WaitingFor {
    #[diesel(sql_type = SqlUuid)]
    delivery_id: Uuid,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    busy_with: Option<Uuid>,
}

/// One batch of the lines queue in one transaction: `entries` (in the order the queue gave
/// them) join their lines, then the lines whose delivery out is among `finished` move on. Says
/// which tasks to publish.
pub async fn apply(
    conn: &mut AsyncPgConnection,
    entries: &[Entry],
    finished: &[Finished],
    again: bool,
) -> diesel::QueryResult<Vec<Released>> {
    if entries.is_empty() && finished.is_empty() {
        return Ok(Vec::new());
    }
    conn.transaction::<_, diesel::result::Error, _>(async |conn| {
        // Plans made for these tables' size now, not reused: they swing between empty and
        // tens of thousands of rows within seconds, and a plan cached while `line_waiting` was
        // empty scans it whole for each line (seconds per batch where an index takes
        // milliseconds; seen stalling the lines for minutes).
        diesel::sql_query("SET LOCAL plan_cache_mode = force_custom_plan")
            .execute(conn)
            .await?;
        let mut out = append(conn, entries).await?;
        out.extend(advance(conn, finished, again).await?);
        Ok(out)
    })
    .await
}

/// Takes `entries` into their lines: the first entry of an idle line goes out, the others wait
/// behind their line's busy delivery. Says which tasks to publish: those that went out, and any
/// entry that is its line's busy delivery already (its message read again).
async fn append(conn: &mut AsyncPgConnection, entries: &[Entry]) -> diesel::QueryResult<Vec<Released>> {
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    // Each line's first entry bids for the line; lines in key order (webhook id, then the
    // line's bytes, as `advance` sorts them), so that transactions locking several lines lock
    // them in one order.
    let mut first: BTreeMap<(Uuid, &str), &Entry> = BTreeMap::new();
    for e in entries {
        first.entry((e.webhook_id, e.line.as_str())).or_insert(e);
    }
    let bids: Vec<&Entry> = first.into_values().collect();
    // An idle line takes its bid as its busy delivery. A busy line's row is locked as it stands
    // (the update's `WHERE false` locks without writing a new row version, which had copied the
    // busy task each time), and its busy delivery read next.
    let taken: Vec<LineBusy> = Prepared::new(
        "INSERT INTO delivery_lines (webhook_id, line, tenant_id, busy_with, busy_task)
         SELECT * FROM UNNEST($1, $2, $3, $4, $5)
         ON CONFLICT (webhook_id, line) DO UPDATE SET busy_since = delivery_lines.busy_since WHERE false
         RETURNING webhook_id, line, busy_with",
    )
    .bind::<Array<SqlUuid>, _>(bids.iter().map(|e| e.webhook_id).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(bids.iter().map(|e| e.line.clone()).collect::<Vec<_>>())
    .bind::<Array<SqlUuid>, _>(bids.iter().map(|e| e.tenant_id).collect::<Vec<_>>())
    .bind::<Array<SqlUuid>, _>(bids.iter().map(|e| e.delivery_id).collect::<Vec<_>>())
    .bind::<Array<Bytea>, _>(bids.iter().map(|e| e.task.clone()).collect::<Vec<_>>())
    .load(conn)
    .await?;
    let mut busy_with: HashMap<(Uuid, &str), Uuid> = taken
        .iter()
        .map(|b| ((b.webhook_id, b.line.as_str()), b.busy_with))
        .collect();
    let held: Vec<&Entry> = bids
        .into_iter()
        .filter(|e| !busy_with.contains_key(&(e.webhook_id, e.line.as_str())))
        .collect();
    let busy: Vec<LineBusy> = if held.is_empty() {
        Vec::new()
    } else {
        Prepared::new(
            "SELECT l.webhook_id, l.line, l.busy_with
             FROM UNNEST($1, $2) AS t(webhook_id, line)
             CROSS JOIN LATERAL (
                 SELECT x.webhook_id, x.line, x.busy_with FROM delivery_lines x
                 WHERE x.webhook_id = t.webhook_id AND x.line = t.line) l",
        )
        .bind::<Array<SqlUuid>, _>(held.iter().map(|e| e.webhook_id).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(held.iter().map(|e| e.line.clone()).collect::<Vec<_>>())
        .load(conn)
        .await?
    };
    busy_with.extend(busy.iter().map(|b| ((b.webhook_id, b.line.as_str()), b.busy_with)));
    let mut out = Vec::new();
    let mut sent = HashSet::new();
    let mut waiting = Vec::new();
    for e in entries {
        if busy_with.get(&(e.webhook_id, e.line.as_str())) == Some(&e.delivery_id) {
            if sent.insert(e.delivery_id) {
                out.push(Released {
                    delivery_id: e.delivery_id,
                    tenant_id: e.tenant_id,
                    task: e.task.clone(),
                });
            }
        } else {
            waiting.push(e);
        }
    }
    if !waiting.is_empty() {
        Prepared::new(
            "INSERT INTO line_waiting (webhook_id, line, tenant_id, delivery_id, task)
             SELECT t.webhook_id, t.line, t.tenant_id, t.delivery_id, t.task
             FROM UNNEST($1, $2, $3, $4, $5) WITH ORDINALITY
                  AS t(webhook_id, line, tenant_id, delivery_id, task, n)
             ORDER BY t.n
             ON CONFLICT (delivery_id) DO NOTHING",
        )
        .bind::<Array<SqlUuid>, _>(waiting.iter().map(|e| e.webhook_id).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(waiting.iter().map(|e| e.line.clone()).collect::<Vec<_>>())
        .bind::<Array<SqlUuid>, _>(waiting.iter().map(|e| e.tenant_id).collect::<Vec<_>>())
        .bind::<Array<SqlUuid>, _>(waiting.iter().map(|e| e.delivery_id).collect::<Vec<_>>())
        .bind::<Array<Bytea>, _>(waiting.iter().map(|e| e.task.clone()).collect::<Vec<_>>())
        .execute(conn)
        .await?;
    }
    Ok(out)
}

/// Moves each line whose busy delivery is among `finished` on to its next delivery (or leaves
/// it idle); says which tasks to publish. With `again` (the messages were read before), the
/// busy tasks of the other lines named are sent again too: the first read may have moved them
/// on and stopped before the broker had the next task.
async fn advance(
    conn: &mut AsyncPgConnection,
    finished: &[Finished],
    again: bool,
) -> diesel::QueryResult<Vec<Released>> {
    if finished.is_empty() {
        return Ok(Vec::new());
    }
    let lines: Vec<(Uuid, String)> = finished
        .iter()
        .map(|f| (f.webhook_id, f.line.clone()))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let done: HashSet<(Uuid, &str, Uuid)> = finished
        .iter()
        .map(|f| (f.webhook_id, f.line.as_str(), f.delivery_id))
        .collect();
    // Each line's row looked up by its key and locked in the order of `lines` (sorted as in
    // `append`), not joined: with stale statistics the planner scanned the whole table for the
    // join.
    let locked: Vec<Busy> = Prepared::new(
        "SELECT l.webhook_id, l.line, l.tenant_id, l.busy_with, l.busy_task
         FROM UNNEST($1, $2) AS t(webhook_id, line)
         CROSS JOIN LATERAL (
             SELECT x.webhook_id, x.line, x.tenant_id, x.busy_with, x.busy_task
             FROM delivery_lines x
             WHERE x.webhook_id = t.webhook_id AND x.line = t.line
             FOR UPDATE) l",
    )
    .bind::<Array<SqlUuid>, _>(lines.iter().map(|l| l.0).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(lines.iter().map(|l| l.1.clone()).collect::<Vec<_>>())
    .load(conn)
    .await?;
    let (moving, staying): (Vec<Busy>, Vec<Busy>) = locked
        .into_iter()
        .partition(|b| done.contains(&(b.webhook_id, b.line.as_str(), b.busy_with)));
    let mut out: Vec<Released> = if again {
        staying
            .into_iter()
            .map(|b| Released {
                delivery_id: b.busy_with,
                tenant_id: b.tenant_id,
                task: b.busy_task,
            })
            .collect()
    } else {
        Vec::new()
    };
    if moving.is_empty() {
        return Ok(out);
    }
    // Each line's first waiting row is found through the line's key and deleted by its
    // row address (`ctid`, stable while the line's lock is held): no join with the whole
    // table, which the planner picked whenever stale statistics called it near-empty.
    let next: Vec<Moved> = Prepared::new(
        "WITH first AS (
             SELECT f.ctid FROM UNNEST($1, $2) AS t(webhook_id, line)
             CROSS JOIN LATERAL (
                 SELECT x.ctid FROM line_waiting x
                 WHERE x.webhook_id = t.webhook_id AND x.line = t.line
                 ORDER BY x.seq LIMIT 1) f),
         next AS (
             DELETE FROM line_waiting w WHERE w.ctid = ANY (ARRAY(SELECT ctid FROM first))
             RETURNING w.webhook_id, w.line, w.delivery_id, w.task)
         UPDATE delivery_lines l
         SET busy_with = n.delivery_id, busy_task = n.task, busy_since = now()
         FROM next n WHERE l.webhook_id = n.webhook_id AND l.line = n.line
         RETURNING l.webhook_id, l.line, l.busy_with, l.tenant_id, l.busy_task",
    )
    .bind::<Array<SqlUuid>, _>(moving.iter().map(|b| b.webhook_id).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(moving.iter().map(|b| b.line.clone()).collect::<Vec<_>>())
    .load(conn)
    .await?;
    let went_on: HashSet<(Uuid, &str)> = next.iter().map(|m| (m.webhook_id, m.line.as_str())).collect();
    let idle: Vec<&Busy> = moving
        .iter()
        .filter(|b| !went_on.contains(&(b.webhook_id, b.line.as_str())))
        .collect();
    out.extend(next.into_iter().map(|m| m.next));
    if idle.is_empty() {
        return Ok(out);
    }
    // The lines that had nothing waiting still name their finished delivery: now idle. Under a
    // backlog every line has a next delivery and this statement is not sent.
    Prepared::new(
        "DELETE FROM delivery_lines l USING UNNEST($1, $2, $3) AS t(webhook_id, line, busy_with)
         WHERE l.webhook_id = t.webhook_id AND l.line = t.line AND l.busy_with = t.busy_with",
    )
    .bind::<Array<SqlUuid>, _>(idle.iter().map(|b| b.webhook_id).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(idle.iter().map(|b| b.line.clone()).collect::<Vec<_>>())
    .bind::<Array<SqlUuid>, _>(idle.iter().map(|b| b.busy_with).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(out)
}

/// Of deliveries `ids`, those waiting in a line, each with the delivery it waits for (`None`
/// only if its line has no busy delivery, which the locking above never leaves).
pub async fn waiting_for(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
) -> diesel::QueryResult<HashMap<Uuid, Option<Uuid>>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<WaitingFor> = Prepared::new(
        "SELECT w.delivery_id, l.busy_with
         FROM line_waiting w LEFT JOIN delivery_lines l ON l.webhook_id = w.webhook_id AND l.line = w.line
         WHERE w.delivery_id = ANY($1)",
    )
    .bind::<Array<SqlUuid>, _>(ids)
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.delivery_id, r.busy_with)).collect())
}

/// Of webhook `webhook_id`'s deliveries created in `[since, until)`, how many wait in a line, by
/// the status their row shows (`pending`, or `retrying` once recovered into the line).
pub async fn waiting_by_status(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    webhook_id: Uuid,
    (since, until): (DateTime<Utc>, DateTime<Utc>),
) -> diesel::QueryResult<Vec<(String, i64)>> {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = Text)]
        status: String,
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    // Planned at each call (`sql_query`), for the line tables as they are now.
    let rows: Vec<Count> = diesel::sql_query(
        "SELECT d.status, count(*) AS n
         FROM line_waiting w JOIN deliveries d ON d.id = w.delivery_id
         WHERE w.webhook_id = $1 AND d.tenant_id = $2 AND d.created_at >= $3 AND d.created_at < $4
         GROUP BY d.status",
    )
    .bind::<SqlUuid, _>(webhook_id)
    .bind::<SqlUuid, _>(tenant_id)
    .bind::<Timestamptz, _>(since)
    .bind::<Timestamptz, _>(until)
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|c| (c.status, c.n)).collect())
}

/// Empties the request body of the tasks lines hold for deliveries `ids` (their events' payloads
/// were erased): dispatchers end such deliveries unsent, and the line moves on past them.
pub async fn erase_bodies(conn: &mut AsyncPgConnection, ids: &[Uuid]) -> diesel::QueryResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    Prepared::new(
        "UPDATE line_waiting
         SET task = convert_to(jsonb_set(convert_from(task, 'UTF8')::jsonb, '{body}', '\"\"')::text, 'UTF8')
         WHERE delivery_id = ANY($1)",
    )
    .bind::<Array<SqlUuid>, _>(ids)
    .execute(conn)
    .await?;
    Prepared::new(
        "UPDATE delivery_lines
         SET busy_task = convert_to(jsonb_set(convert_from(busy_task, 'UTF8')::jsonb, '{body}', '\"\"')::text, 'UTF8')
         WHERE busy_with = ANY($1)",
    )
    .bind::<Array<SqlUuid>, _>(ids)
    .execute(conn)
    .await
    .map(drop)
}

/// Where delivery `id` stands in its line, for a retry by hand: taken out if it was waiting
/// (the retry sends it now, out of order), or whether it is the line's busy one. Locks the
/// line's row first, as the lines consumers do, so a line moving on at the same moment cannot
/// pick the delivery that leaves; run it in the transaction that sends the retry, so that a
/// retry the broker did not take leaves the delivery in its line.
pub async fn leave(conn: &mut AsyncPgConnection, webhook_id: Uuid, line: &str, id: Uuid) -> diesel::QueryResult<Place> {
    #[derive(QueryableByName)]
    struct Line {
        #[diesel(sql_type = SqlUuid)]
        busy_with: Uuid,
    }
    let busy: Option<Line> =
        Prepared::new("SELECT busy_with FROM delivery_lines WHERE webhook_id = $1 AND line = $2 FOR UPDATE")
            .bind::<SqlUuid, _>(webhook_id)
            .bind::<Text, _>(line)
            .get_result(conn)
            .await
            .optional()?;
    let left = Prepared::new("DELETE FROM line_waiting WHERE delivery_id = $1")
        .bind::<SqlUuid, _>(id)
        .execute(conn)
        .await?;
    Ok(if left > 0 {
        Place::LeftWaiting
    } else if busy.is_some_and(|b| b.busy_with == id) {
        Place::Busy
    } else {
        Place::Outside
    })
}

/// Where a delivery stood in its line when it was retried by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// It was waiting: it left the line.
    LeftWaiting,
    /// It is the line's delivery out: its outcome still moves the line on.
    Busy,
    /// Not in a line (ended, or of an unordered webhook).
    Outside,
}
