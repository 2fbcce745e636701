//! The outbox: every message Hearth will send, with a lease while it is being sent.
//!
//! Life of a row: `planned` → (claim) `sending` → `sent` | `failed`, or back to `planned`
//! with a later `run_at` on a retryable error. A row left in `sending` with an expired lease
//! (its node died mid-send) is never reclaimed blindly: the message may have gone out, so
//! reconciliation looks at [`expired_sending`] and decides, then calls [`release_for_retry`]
//! or [`mark_failed`].

use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Executor};

use crate::domain::{CampaignStatus, OutboxStatus, SendKind};

use super::row;
use super::{Backend, Store, StoreError};

const TABLE: &str = "outbox";

/// A message to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSend {
    pub campaign_id: i64,
    pub seed_id: i64,
    pub kind: SendKind,
    /// The Message-ID header (unique); also the ledger's key. `None` for a planned warm-up
    /// message: the claim that sends it gives it one (see [`claim_for_send`]).
    pub message_id: Option<String>,
    pub subject: String,
    pub in_reply_to: Option<String>,
    /// YYYY-MM-DD in the sender's time zone: the plan day this send counts against.
    pub plan_day: Option<String>,
    pub run_at: i64,
}

/// A stored outbox row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: i64,
    pub campaign_id: i64,
    pub seed_id: i64,
    pub kind: SendKind,
    /// Set from the row's first claim on (a row that never went to the relay may have none).
    pub message_id: Option<String>,
    pub subject: String,
    pub in_reply_to: Option<String>,
    pub status: OutboxStatus,
    pub plan_day: Option<String>,
    pub run_at: i64,
    /// The node that claimed the row (kept after the send, for the record).
    pub lease_owner: Option<String>,
    /// Set exactly while the row is `sending`.
    pub lease_until: Option<i64>,
    /// Claims so far (a claim counts as an attempt).
    pub attempts: i64,
    pub last_error: Option<String>,
    pub sent_at: Option<i64>,
    pub smtp_reply: Option<String>,
    pub created_at: i64,
}

/// The tail of an insert into `seed_days`: a seed's load from a sender on a day adds up.
macro_rules! seed_days_upsert {
    () => {
        "ON CONFLICT (seed_id, sender_id, day_start) DO UPDATE SET \
           planned = seed_days.planned + excluded.planned, \
           last_run_at = CASE WHEN excluded.last_run_at > seed_days.last_run_at \
             THEN excluded.last_run_at ELSE seed_days.last_run_at END"
    };
}
pub(super) use seed_days_upsert;

macro_rules! outbox_cols {
    () => {
        "id, campaign_id, seed_id, kind, message_id, subject, in_reply_to, status, plan_day, \
         run_at, lease_owner, lease_until, attempts, last_error, sent_at, smtp_reply, created_at"
    };
}

// One statement claims the rows. On PostgreSQL the candidate ids are collected by an
// `ARRAY(…)` sub-select, which runs exactly once (an `IN (… LIMIT n)` sub-select may be
// re-run per row and claim more than `n`); `FOR UPDATE SKIP LOCKED` lets concurrent
// claimers pass each other by. SQLite serializes writers on its database lock instead; there
// the outer `status` test is written `+status` so that the planner finds the rows by id (a
// plain `status = ?` makes it walk the status index over every planned row, per claim), and
// the campaign test is written `+campaign_id` so that it takes the due rows from the partial
// index `outbox_due` in time order rather than every row of every active campaign.
// `outbox_due` keys quarter-hour slots (`run_at / 900`, see migration 20261129000100): the
// claim walks the index in its own order — the oldest slot first, by id within a slot — and
// stops at the limit, however many rows are due (after an outage, say); it never sorts them.
//
// The claim gives a row its Message-ID (a retried row keeps the one it has): 32 hex digits at
// the sender's domain, the time in milliseconds (12) then 80 random bits (20) from the
// database's own generator (SQLite's `randomblob`, PostgreSQL's `gen_random_uuid`, both
// seeded by the system), like a UUIDv7: the time first keeps the unique index's insertions
// at its end, a few pages per claim instead of one random page per row. Planning writes rows
// without one, so its million rows a day skip that index; every row that reaches the relay
// has one, stored by the claim before the SMTP transaction starts (the reconciler looks for
// it).
macro_rules! claim_sql {
    (sqlite $($cols:expr)?) => {
        claim_sql!(
            "+status", "IN (", ")",
            "printf('%012x', CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)) \
             || lower(hex(randomblob(10)))",
            "substr(s.address, instr(s.address, '@') + 1)"
            $(, $cols)?
        )
    };
    (postgres $($cols:expr)?) => {
        claim_sql!(
            "status", "= ANY(ARRAY(", " FOR UPDATE SKIP LOCKED))",
            "lpad(to_hex((extract(epoch FROM statement_timestamp()) * 1000)::bigint), 12, '0') \
             || substr(md5(gen_random_uuid()::text), 1, 20)",
            "split_part(s.address, '@', 2)"
            $(, $cols)?
        )
    };
    ($status:literal, $open:literal, $close:literal, $id:literal, $domain:literal) => {
        claim_sql!($status, $open, $close, $id, $domain, outbox_cols!())
    };
    ($status:literal, $open:literal, $close:literal, $id:literal, $domain:literal,
     $cols:expr) => {
        concat!(
            "UPDATE outbox SET status = $1, lease_owner = $2, lease_until = $3, \
               attempts = attempts + 1, \
               message_id = COALESCE(message_id, '<' || ",
            $id,
            " || '@' || (SELECT ",
            $domain,
            " FROM campaigns c JOIN senders s ON s.id = c.sender_id \
               WHERE c.id = outbox.campaign_id) || '>') \
             WHERE ",
            $status,
            " = $4 AND id ",
            $open,
            "SELECT id FROM outbox WHERE status = 'planned' AND run_at / 900 <= $5 / 900 \
               AND run_at <= $5 AND kind = $8 \
               AND +campaign_id IN (SELECT id FROM campaigns WHERE status = $7) \
               ORDER BY run_at / 900, id LIMIT $6",
            $close,
            " RETURNING ",
            $cols
        )
    };
}

/// The columns of a [`Claimed`] row.
macro_rules! claimed_cols {
    () => {
        "id, campaign_id, seed_id, message_id, subject, in_reply_to, run_at, attempts, created_at"
    };
}

/// Adds a message to send at `send.run_at`. Returns its id.
///
/// One transaction: the row, its campaign day marked for the roll-ups, and, for a warm-up
/// message, its seed's load on the UTC day of `run_at` (planning writes its rows in bulk with
/// the planning day instead: [`super::outbox_bulk`]).
pub async fn enqueue<'a, A>(conn: A, send: &NewSend, now: i64) -> Result<i64, StoreError>
where
    A: sqlx::Acquire<'a, Database = Any>,
{
    let mut tx = conn.begin().await?;
    let r = sqlx::query(
        "INSERT INTO outbox (campaign_id, seed_id, kind, message_id, subject, in_reply_to, \
           status, plan_day, run_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
    )
    .bind(send.campaign_id)
    .bind(send.seed_id)
    .bind(send.kind.as_str())
    .bind(send.message_id.clone())
    .bind(send.subject.clone())
    .bind(send.in_reply_to.clone())
    .bind(OutboxStatus::Planned.as_str())
    .bind(send.plan_day.clone())
    .bind(send.run_at)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    let id = row::int(&r, "id")?;
    if send.kind == SendKind::Warmup {
        let day_start = send.run_at - send.run_at.rem_euclid(86_400);
        let counted = sqlx::query(concat!(
            "INSERT INTO seed_days (seed_id, sender_id, day_start, day_end, planned, last_run_at) \
             SELECT $1, c.sender_id, $2, $3, 1, $4 FROM campaigns c WHERE c.id = $5 ",
            seed_days_upsert!()
        ))
        .bind(send.seed_id)
        .bind(day_start)
        .bind(day_start + 86_400)
        .bind(send.run_at)
        .bind(send.campaign_id)
        .execute(&mut *tx)
        .await?;
        if counted.rows_affected() == 0 {
            // PostgreSQL's outbox has no foreign keys (planning checks them per batch).
            return Err(StoreError::NotFound {
                what: format!("campaign {}", send.campaign_id),
            });
        }
    }
    if let Some(day) = &send.plan_day {
        super::rollup::mark_days(&mut tx, &[(send.campaign_id, day.as_str())]).await?;
    }
    tx.commit().await?;
    Ok(id)
}

/// Claims up to `limit` planned rows of active campaigns due at `now` (the oldest quarter-hour
/// of `run_at` first, by id within it; a paused campaign's rows wait) for `owner`, for
/// `lease_secs`: they become `sending` and their `attempts` go up by one. Concurrent
/// claimers, on any number of nodes, never get the same row. Returned in `run_at` order.
pub async fn claim_due(
    store: &Store,
    now: i64,
    owner: &str,
    lease_secs: i64,
    limit: i64,
) -> Result<Vec<OutboxRow>, StoreError> {
    let mut conn = store.pool().acquire().await?;
    claim_due_on(&mut conn, now, owner, lease_secs, limit).await
}

/// [`claim_due`] on a connection the caller holds.
pub async fn claim_due_on(
    conn: &mut AnyConnection,
    now: i64,
    owner: &str,
    lease_secs: i64,
    limit: i64,
) -> Result<Vec<OutboxRow>, StoreError> {
    let sql = match backend_of(conn) {
        Backend::Postgres => claim_sql!(postgres),
        Backend::Sqlite => claim_sql!(sqlite),
    };
    let mut rows = claim_query(sql, now, owner, lease_secs, limit)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(decode)
        .collect::<Result<Vec<_>, _>>()?;
    rows.sort_by_key(|r| (r.run_at, r.id));
    Ok(rows)
}

/// What the sender needs of a row it claimed (see [`claim_for_send`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub id: i64,
    pub campaign_id: i64,
    pub seed_id: i64,
    pub message_id: String,
    pub subject: String,
    pub in_reply_to: Option<String>,
    pub run_at: i64,
    /// Claims so far, this one included.
    pub attempts: i64,
    /// When the row was written (with its campaign and seed: its
    /// [`crate::sender::content::ContentKey`]).
    pub created_at: i64,
}

/// [`claim_due`] for the sender, on a connection it holds (one for all its claims and
/// completions, rather than one from the pool per statement), returning only what sending
/// needs: the same claim, with a third of the columns to carry back and decode per row.
pub async fn claim_for_send(
    conn: &mut AnyConnection,
    now: i64,
    owner: &str,
    lease_secs: i64,
    limit: i64,
) -> Result<Vec<Claimed>, StoreError> {
    let sql = match backend_of(conn) {
        Backend::Postgres => claim_sql!(postgres claimed_cols!()),
        Backend::Sqlite => claim_sql!(sqlite claimed_cols!()),
    };
    let mut rows = claim_query(sql, now, owner, lease_secs, limit)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| {
            Ok(Claimed {
                id: row::int(r, "id")?,
                campaign_id: row::int(r, "campaign_id")?,
                seed_id: row::int(r, "seed_id")?,
                message_id: row::text(r, "message_id")?,
                subject: row::text(r, "subject")?,
                in_reply_to: row::text_opt(r, "in_reply_to")?,
                run_at: row::int(r, "run_at")?,
                attempts: row::int(r, "attempts")?,
                created_at: row::int(r, "created_at")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    rows.sort_by_key(|r| (r.run_at, r.id));
    Ok(rows)
}

fn claim_query<'q>(
    sql: &'static str,
    now: i64,
    owner: &'q str,
    lease_secs: i64,
    limit: i64,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments> {
    sqlx::query(sql)
        .bind(OutboxStatus::Sending.as_str())
        .bind(owner)
        .bind(now + lease_secs)
        .bind(OutboxStatus::Planned.as_str())
        .bind(now)
        .bind(limit)
        .bind(CampaignStatus::Active.as_str())
        .bind(SendKind::Warmup.as_str())
}

fn backend_of(conn: &AnyConnection) -> Backend {
    if conn.backend_name().eq_ignore_ascii_case("sqlite") {
        Backend::Sqlite
    } else {
        Backend::Postgres
    }
}

/// The `n`th (from 1) placeholder of a statement whose placeholders are numbered in textual
/// order (SQLite: anonymous `?`, since sqlx looks each numbered name up in a list).
fn placeholder(backend: Backend, n: usize) -> String {
    match backend {
        Backend::Sqlite => "?".to_owned(),
        Backend::Postgres => format!("${n}"),
    }
}

/// Warm-up rows still `sending` whose lease ended before `now`: their node died or hung
/// mid-send. (Replies are settled by `sender::replies`.)
pub async fn expired_sending<'c, E>(ex: E, now: i64) -> Result<Vec<OutboxRow>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    sqlx::query(concat!(
        "SELECT ",
        outbox_cols!(),
        " FROM outbox WHERE status = 'sending' AND lease_until < $1 AND kind = $2 \
         ORDER BY lease_until, id"
    ))
    .bind(now)
    .bind(SendKind::Warmup.as_str())
    .fetch_all(ex)
    .await?
    .iter()
    .map(decode)
    .collect()
}

/// Puts a `sending` row (whatever its lease) back to `planned` at `run_at`, recording
/// `error`. For reconciliation of expired leases. Returns whether it changed.
pub async fn release_for_retry<'c, E>(
    ex: E,
    id: i64,
    run_at: i64,
    error: &str,
) -> Result<bool, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let done = sqlx::query(
        "UPDATE outbox SET status = $2, run_at = $3, last_error = $4, \
           lease_owner = NULL, lease_until = NULL \
         WHERE id = $1 AND status = $5",
    )
    .bind(id)
    .bind(OutboxStatus::Planned.as_str())
    .bind(run_at)
    .bind(error)
    .bind(OutboxStatus::Sending.as_str())
    .execute(ex)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records a successful send, only if `owner` still holds the row. Returns whether it did.
pub async fn mark_sent<'c, E>(
    ex: E,
    id: i64,
    owner: &str,
    smtp_reply: &str,
    now: i64,
) -> Result<bool, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let done = sqlx::query(
        "UPDATE outbox SET status = $3, sent_at = $4, smtp_reply = $5, lease_until = NULL \
         WHERE id = $1 AND lease_owner = $2 AND status = $6",
    )
    .bind(id)
    .bind(owner)
    .bind(OutboxStatus::Sent.as_str())
    .bind(now)
    .bind(smtp_reply)
    .bind(OutboxStatus::Sending.as_str())
    .execute(ex)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Rows one [`mark_sent_many`] statement completes.
const MARK_SENT_CHUNK: usize = 500;

/// Records many successful sends, one statement per 500 rows, each row only if `owner` still
/// holds it and it is still `sending` (exactly as [`mark_sent`] does one). `sent` pairs a row
/// id with the relay's reply. Returns the ids it marked: a row left out had lost its lease
/// (reconciliation settles it from the mailbox).
pub async fn mark_sent_many(
    conn: &mut AnyConnection,
    owner: &str,
    sent: &[(i64, String)],
    now: i64,
) -> Result<Vec<i64>, StoreError> {
    let backend = backend_of(conn);
    let mut marked = Vec::with_capacity(sent.len());
    for part in sent.chunks(MARK_SENT_CHUNK) {
        let sql = mark_sent_many_sql(backend, part.len());
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(OutboxStatus::Sent.as_str())
            .bind(now);
        for (id, reply) in part {
            q = q.bind(*id).bind(reply.as_str());
        }
        let done = q
            .bind(owner)
            .bind(OutboxStatus::Sending.as_str())
            .execute(&mut *conn)
            .await?;
        if done.rows_affected() == part.len() as u64 {
            // The usual case, known without a row sent back per id.
            marked.extend(part.iter().map(|(id, _)| *id));
            continue;
        }
        // A lease was lost: find which rows this statement marked (sent, this owner, this
        // time and reply; nothing else writes this node's reply into a row).
        let sql = format!(
            "SELECT id, lease_owner, sent_at, smtp_reply FROM outbox \
             WHERE status = {} AND id IN ({})",
            placeholder(backend, 1),
            (0..part.len())
                .map(|i| placeholder(backend, i + 2))
                .collect::<Vec<_>>()
                .join(",")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(OutboxStatus::Sent.as_str());
        for (id, _) in part {
            q = q.bind(*id);
        }
        let replies: std::collections::HashMap<i64, &str> =
            part.iter().map(|(id, r)| (*id, r.as_str())).collect();
        for r in q.fetch_all(&mut *conn).await? {
            let id = row::int(&r, "id")?;
            if row::text_opt(&r, "lease_owner")?.as_deref() == Some(owner)
                && row::int_opt(&r, "sent_at")? == Some(now)
                && row::text_opt(&r, "smtp_reply")?.as_deref() == replies.get(&id).copied()
            {
                marked.push(id);
            }
        }
    }
    Ok(marked)
}

/// `UPDATE … FROM (VALUES (id, reply), …)`. Bind: the `sent` status, `sent_at`, the pairs,
/// the owner, the `sending` status.
fn mark_sent_many_sql(backend: Backend, rows: usize) -> String {
    let mut n = 0;
    let mut p = || {
        n += 1;
        placeholder(backend, n)
    };
    let mut sql = String::with_capacity(220 + rows * 12);
    sql.push_str("UPDATE outbox SET status = ");
    sql.push_str(&p());
    sql.push_str(", sent_at = ");
    sql.push_str(&p());
    sql.push_str(", smtp_reply = v.column2, lease_until = NULL FROM (VALUES ");
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ",(" });
        sql.push_str(&p());
        sql.push(',');
        sql.push_str(&p());
        sql.push(')');
    }
    sql.push_str(") AS v WHERE outbox.id = v.column1 AND outbox.lease_owner = ");
    sql.push_str(&p());
    sql.push_str(" AND outbox.status = ");
    sql.push_str(&p());
    sql
}

/// A retryable failure: back to `planned` at `next_run_at`, only if `owner` still holds it.
pub async fn mark_retry<'c, E>(
    ex: E,
    id: i64,
    owner: &str,
    next_run_at: i64,
    error: &str,
) -> Result<bool, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let done = sqlx::query(
        "UPDATE outbox SET status = $3, run_at = $4, last_error = $5, \
           lease_owner = NULL, lease_until = NULL \
         WHERE id = $1 AND lease_owner = $2 AND status = $6",
    )
    .bind(id)
    .bind(owner)
    .bind(OutboxStatus::Planned.as_str())
    .bind(next_run_at)
    .bind(error)
    .bind(OutboxStatus::Sending.as_str())
    .execute(ex)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A permanent failure (or attempts exhausted), only if `owner` still holds the row.
pub async fn mark_failed<'c, E>(
    ex: E,
    id: i64,
    owner: &str,
    error: &str,
) -> Result<bool, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let done = sqlx::query(
        "UPDATE outbox SET status = $3, last_error = $4, lease_until = NULL \
         WHERE id = $1 AND lease_owner = $2 AND status = $5",
    )
    .bind(id)
    .bind(owner)
    .bind(OutboxStatus::Failed.as_str())
    .bind(error)
    .bind(OutboxStatus::Sending.as_str())
    .execute(ex)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Cancels the campaign's warm-up rows that are still `planned` (a pause or a stop); a
/// seed's reply is its own act and stays. Returns how many.
pub async fn cancel_planned<'c, E>(ex: E, campaign_id: i64) -> Result<u64, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let done = sqlx::query(
        "UPDATE outbox SET status = $2 WHERE campaign_id = $1 AND status = $3 AND kind = $4",
    )
    .bind(campaign_id)
    .bind(OutboxStatus::Cancelled.as_str())
    .bind(OutboxStatus::Planned.as_str())
    .bind(SendKind::Warmup.as_str())
    .execute(ex)
    .await?;
    Ok(done.rows_affected())
}

pub async fn get<'c, E>(ex: E, id: i64) -> Result<Option<OutboxRow>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    sqlx::query(concat!(
        "SELECT ",
        outbox_cols!(),
        " FROM outbox WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(ex)
    .await?
    .as_ref()
    .map(decode)
    .transpose()
}

pub async fn get_by_message_id<'c, E>(
    ex: E,
    message_id: &str,
) -> Result<Option<OutboxRow>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    sqlx::query(concat!(
        "SELECT ",
        outbox_cols!(),
        " FROM outbox WHERE message_id = $1"
    ))
    .bind(message_id)
    .fetch_optional(ex)
    .await?
    .as_ref()
    .map(decode)
    .transpose()
}

/// The campaign's rows in `run_at` order.
pub async fn list_for_campaign<'c, E>(ex: E, campaign_id: i64) -> Result<Vec<OutboxRow>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    sqlx::query(concat!(
        "SELECT ",
        outbox_cols!(),
        " FROM outbox WHERE campaign_id = $1 ORDER BY run_at, id"
    ))
    .bind(campaign_id)
    .fetch_all(ex)
    .await?
    .iter()
    .map(decode)
    .collect()
}

/// Whether the campaign already has sends planned for `plan_day` (YYYY-MM-DD), in any
/// status: the scheduler plans each day once.
pub async fn has_plan_day<'c, E>(
    ex: E,
    campaign_id: i64,
    plan_day: &str,
) -> Result<bool, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM campaign_days WHERE campaign_id = $1 AND plan_day = $2",
    )
    .bind(campaign_id)
    .bind(plan_day)
    .fetch_one(ex)
    .await?;
    Ok(n > 0)
}

/// Claims a plan day for a campaign, recording how many sends it plans. Returns false when
/// the day was already claimed (by this or another node). Use inside the transaction that
/// enqueues the day's sends.
pub async fn claim_plan_day<'c, E>(
    ex: E,
    campaign_id: i64,
    plan_day: &str,
    sends: i64,
    now: i64,
) -> Result<bool, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let done = sqlx::query(
        "INSERT INTO campaign_days (campaign_id, plan_day, sends, planned_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(campaign_id)
    .bind(plan_day)
    .bind(sends)
    .bind(now)
    .execute(ex)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// How many distinct plan days the campaign has before `plan_day` (YYYY-MM-DD sorts as
/// text): the ramp's position.
pub async fn plan_days_before<'c, E>(
    ex: E,
    campaign_id: i64,
    plan_day: &str,
) -> Result<i64, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    Ok(sqlx::query_scalar(
        "SELECT COUNT(*) FROM campaign_days WHERE campaign_id = $1 AND plan_day < $2 AND sends > 0",
    )
    .bind(campaign_id)
    .bind(plan_day)
    .fetch_one(ex)
    .await?)
}

/// How many of the campaign's warm-up rows are in each status (statuses with none are left
/// out; replies are not counted).
pub async fn count_by_status<'c, E>(
    ex: E,
    campaign_id: i64,
) -> Result<Vec<(OutboxStatus, i64)>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    sqlx::query(
        "SELECT status, COUNT(*) AS n FROM outbox WHERE campaign_id = $1 AND kind = $2 \
         GROUP BY status ORDER BY status",
    )
    .bind(campaign_id)
    .bind(SendKind::Warmup.as_str())
    .fetch_all(ex)
    .await?
    .iter()
    .map(|r| Ok((row::parsed(r, TABLE, "status")?, row::int(r, "n")?)))
    .collect()
}

fn decode(r: &AnyRow) -> Result<OutboxRow, StoreError> {
    Ok(OutboxRow {
        id: row::int(r, "id")?,
        campaign_id: row::int(r, "campaign_id")?,
        seed_id: row::int(r, "seed_id")?,
        kind: row::parsed(r, TABLE, "kind")?,
        message_id: row::text_opt(r, "message_id")?,
        subject: row::text(r, "subject")?,
        in_reply_to: row::text_opt(r, "in_reply_to")?,
        status: row::parsed(r, TABLE, "status")?,
        plan_day: row::text_opt(r, "plan_day")?,
        run_at: row::int(r, "run_at")?,
        lease_owner: row::text_opt(r, "lease_owner")?,
        lease_until: row::int_opt(r, "lease_until")?,
        attempts: row::int(r, "attempts")?,
        last_error: row::text_opt(r, "last_error")?,
        sent_at: row::int_opt(r, "sent_at")?,
        smtp_reply: row::text_opt(r, "smtp_reply")?,
        created_at: row::int(r, "created_at")?,
    })
}

#[cfg(test)]
mod tests {
    use sqlx::Connection as _;

    use super::*;
    use crate::domain::{EmailAddress, Endpoint, Placement, Provider, Source, TlsMode};
    use crate::secrets::SecretRef;
    use crate::store::{campaigns, seeds, senders};

    /// The claim and the reconciler spell statuses as literals so that the partial indexes
    /// `outbox_due` and `outbox_leased` (migration 20261129000003) can serve them.
    #[test]
    fn status_literals_match_the_enum() {
        assert_eq!(OutboxStatus::Planned.as_str(), "planned");
        assert_eq!(OutboxStatus::Sending.as_str(), "sending");
    }

    #[tokio::test]
    async fn claim_and_expiry_use_the_partial_indexes_on_sqlite() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let mut conn = store.pool().acquire().await.unwrap();
        let plan = |sql: &str| format!("EXPLAIN QUERY PLAN {sql}");
        let claim = claim_sql!(sqlite);
        let expiry = concat!(
            "SELECT id FROM outbox WHERE status = 'sending' AND lease_until < 1 ",
            "ORDER BY lease_until, id"
        );
        for (sql, index) in [(claim, "outbox_due"), (expiry, "outbox_leased")] {
            let rows = sqlx::query(sqlx::AssertSqlSafe(plan(sql)))
                .bind(OutboxStatus::Sending.as_str())
                .bind("node")
                .bind(0_i64)
                .bind(OutboxStatus::Planned.as_str())
                .bind(0_i64)
                .bind(10_i64)
                .bind("active")
                .fetch_all(&mut *conn)
                .await
                .unwrap();
            let detail: Vec<String> = rows
                .iter()
                .map(|r| row::text(r, "detail").unwrap())
                .collect();
            assert!(
                detail.iter().any(|d| d.contains(index)),
                "{index} not used: {detail:?}"
            );
        }
    }

    async fn campaign(store: &Store) -> (i64, i64) {
        let pool = store.pool();
        let endpoint = Endpoint {
            host: "smtp.warm.test".into(),
            port: 587,
            tls: TlsMode::Starttls,
            ca_file: None,
            username: "ops".into(),
            secret: SecretRef::Env("OPS_PASSWORD".into()),
        };
        let sender = senders::SenderRecord {
            name: "ops".into(),
            address: EmailAddress::parse("ops@warm.test").unwrap(),
            display_name: None,
            helo: crate::domain::HeloName::parse("mta1.warm.test").unwrap(),
            ips: vec![],
            smtp: endpoint.clone(),
            dkim: None,
            imap: None,
            source: Source::Config,
        };
        let sender_id = senders::upsert(pool, &sender, 10).await.unwrap();
        let seed = seeds::SeedRecord {
            address: EmailAddress::parse("seed1@gmail.test").unwrap(),
            provider: Provider::Gmail,
            daily_cap: seeds::DEFAULT_DAILY_CAP,
            imap: endpoint,
            smtp: None,
            folders: "{}".into(),
            source: Source::Config,
        };
        let seed_id = seeds::upsert(pool, &seed, 10).await.unwrap();
        let id = campaigns::upsert_from_config(pool, "spring", sender_id, "{}", 10)
            .await
            .unwrap();
        campaigns::set_status(pool, id, CampaignStatus::Active, None, None, 10)
            .await
            .unwrap();
        (id, seed_id)
    }

    /// Claims for sending and marks sent in batches: only this owner's `sending` rows, each
    /// with its own reply, across the statement's chunk size. (One connection throughout: an
    /// in-memory SQLite store has only one.)
    async fn claim_for_send_and_mark_sent_many(store: Store) {
        let (campaign_id, seed_id) = campaign(&store).await;
        let n = MARK_SENT_CHUNK + 3;
        for i in 0..n {
            let send = NewSend {
                campaign_id,
                seed_id,
                kind: SendKind::Warmup,
                // A reply-like row has its Message-ID already; planned ones get theirs
                // from the claim.
                message_id: (i == 0).then(|| "<0@warm.test>".to_owned()),
                subject: format!("hello {i}"),
                in_reply_to: (i == 0).then(|| "<parent@warm.test>".to_owned()),
                plan_day: None,
                run_at: 100 + i as i64,
            };
            enqueue(store.pool(), &send, 50).await.unwrap();
        }
        let mut conn = store.pool().acquire().await.unwrap();
        let mine = claim_for_send(&mut conn, 1000, "node-a", 60, n as i64 - 2)
            .await
            .unwrap();
        assert_eq!(mine.len(), n - 2);
        assert!(mine.windows(2).all(|w| w[0].run_at < w[1].run_at));
        let first = &mine[0];
        assert_eq!(
            (first.subject.as_str(), first.in_reply_to.as_deref()),
            ("hello 0", Some("<parent@warm.test>"))
        );
        assert_eq!(
            (first.campaign_id, first.seed_id, first.attempts),
            (campaign_id, seed_id, 1)
        );
        // The claim kept the Message-ID the row had and gave the others fresh ones: 32 hex
        // digits at the sender's domain, all different, stored with the claim.
        assert_eq!(first.message_id, "<0@warm.test>");
        // The first 12 digits are the wall clock in milliseconds (the index grows at its end).
        #[allow(clippy::disallowed_methods)]
        let wall_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let fresh = |id: &str| {
            id.strip_prefix('<')
                .and_then(|id| id.strip_suffix("@warm.test>"))
                .is_some_and(|hex| {
                    hex.len() == 32
                        && hex.bytes().all(|b| b.is_ascii_hexdigit())
                        && i64::from_str_radix(&hex[..12], 16)
                            .is_ok_and(|ms| (ms - wall_ms).abs() < 3_600_000)
                })
        };
        assert!(mine[1..].iter().all(|r| fresh(&r.message_id)), "{mine:?}");
        let distinct: std::collections::HashSet<&str> =
            mine.iter().map(|r| r.message_id.as_str()).collect();
        assert_eq!(distinct.len(), mine.len());
        let stored = get(&mut *conn, mine[5].id).await.unwrap().unwrap();
        assert_eq!(
            stored.message_id.as_deref(),
            Some(mine[5].message_id.as_str())
        );
        let planned: Vec<OutboxRow> = list_for_campaign(&mut *conn, campaign_id)
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.status == OutboxStatus::Planned)
            .collect();
        assert_eq!(planned.len(), 2);
        assert!(planned.iter().all(|r| r.message_id.is_none()));
        let full = get(&mut *conn, first.id).await.unwrap().unwrap();
        assert_eq!(full.status, OutboxStatus::Sending);
        assert_eq!(full.lease_until, Some(1060));
        let theirs = claim_due_on(&mut conn, 1000, "node-b", 60, 10)
            .await
            .unwrap();
        assert_eq!(theirs.len(), 2);

        // Every row of node-a: all marked, each with its reply.
        let sent: Vec<(i64, String)> = mine
            .iter()
            .map(|r| (r.id, format!("250 queued as {}", r.id)))
            .collect();
        let marked = mark_sent_many(&mut conn, "node-a", &sent, 1010)
            .await
            .unwrap();
        assert_eq!(marked.len(), sent.len());
        let row = get(&mut *conn, mine[7].id).await.unwrap().unwrap();
        assert_eq!(row.status, OutboxStatus::Sent);
        assert_eq!(row.sent_at, Some(1010));
        assert_eq!(row.lease_until, None);
        assert_eq!(
            row.smtp_reply,
            Some(format!("250 queued as {}", mine[7].id))
        );

        // A row of node-b's, one already marked and one put back: only what node-a holds.
        release_for_retry(&mut *conn, theirs[1].id, 2000, "x")
            .await
            .unwrap();
        let again = vec![
            (mine[0].id, "250 again".to_owned()),
            (theirs[0].id, "250 not mine".to_owned()),
            (theirs[1].id, "250 not mine".to_owned()),
        ];
        let marked = mark_sent_many(&mut conn, "node-a", &again, 1020)
            .await
            .unwrap();
        assert!(marked.is_empty(), "{marked:?}");
        assert_eq!(
            get(&mut *conn, theirs[0].id).await.unwrap().unwrap().status,
            OutboxStatus::Sending
        );
        let kept = get(&mut *conn, mine[0].id).await.unwrap().unwrap();
        assert_eq!(
            kept.smtp_reply,
            Some(format!("250 queued as {}", mine[0].id))
        );
        let theirs_back = claim_for_send(&mut conn, 3000, "node-a", 60, 10)
            .await
            .unwrap();
        assert_eq!(theirs_back.len(), 1);
        // Sent again under the Message-ID it had: a retry is the same message.
        assert_eq!(
            Some(theirs_back[0].message_id.as_str()),
            theirs[1].message_id.as_deref()
        );
        let mixed = vec![
            (theirs_back[0].id, "250 mine now".to_owned()),
            (theirs[0].id, "250 not mine".to_owned()),
        ];
        let marked = mark_sent_many(&mut conn, "node-a", &mixed, 3010)
            .await
            .unwrap();
        assert_eq!(marked, vec![theirs_back[0].id]);
        drop(conn);
        store.close().await;
    }

    /// A SQLite database in a temporary directory, migrated up to (not including) the
    /// migration `version`: (directory, URL, pool).
    async fn sqlite_before(version: &str) -> (tempfile::TempDir, String, sqlx::AnyPool) {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("migrations");
        std::fs::create_dir(&old).unwrap();
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
        for entry in std::fs::read_dir(&src).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            if name.as_str() < version {
                std::fs::copy(&path, old.join(&name)).unwrap();
            }
        }
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("h.db").display());
        sqlx::any::install_default_drivers();
        let before = sqlx::AnyPool::connect(&url).await.unwrap();
        sqlx::migrate::Migrator::new(old.as_path())
            .await
            .unwrap()
            .run(&before)
            .await
            .unwrap();
        (dir, url, before)
    }

    /// A sender, a seed and a campaign as the store writes them, on an older database:
    /// (campaign id, seed id).
    async fn campaign_before(before: &sqlx::AnyPool) -> (i64, i64) {
        let store_like = Store {
            pool: before.clone(),
            backend: Backend::Sqlite,
            pg_options: None,
            sqlite_options: None,
            ledger_writer: None,
        };
        campaign(&store_like).await
    }

    async fn run_all(pool: &sqlx::AnyPool, sqls: impl IntoIterator<Item = String>) {
        for sql in sqls {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(pool)
                .await
                .unwrap();
        }
    }

    /// Two sent outbox rows of the campaign, 7 (`<a@warm.test>`, day 2026-11-29) and 8
    /// (`<b@warm.test>`, day 2026-11-30): what the placements rebuild tests start from.
    fn two_sent_rows(campaign_id: i64, seed_id: i64) -> String {
        format!(
            "INSERT INTO outbox (id, campaign_id, seed_id, kind, message_id, subject, status, \
             plan_day, run_at, sent_at, created_at) VALUES \
             (7, {campaign_id}, {seed_id}, 'warmup', '<a@warm.test>', 'hi', 'sent', \
              '2026-11-29', 100, 110, 50), \
             (8, {campaign_id}, {seed_id}, 'warmup', '<b@warm.test>', 'hey', 'sent', \
              '2026-11-30', 200, 210, 50)"
        )
    }

    /// After a placements rebuild: a placement of no outbox row is refused, and placement 3,
    /// which has an engagement event, cannot be deleted.
    async fn assert_placement_references_hold(pool: &sqlx::AnyPool) {
        let orphan = sqlx::query(
            "INSERT INTO placements (outbox_id, seed_id, message_id, placement, provider, \
             created_at) VALUES (999, 1, '<x@warm.test>', 'inbox', 'gmail', 1)",
        )
        .execute(pool)
        .await;
        assert!(orphan.is_err(), "a placement of no outbox row");
        let referenced = sqlx::query("DELETE FROM placements WHERE id = 3")
            .execute(pool)
            .await;
        assert!(referenced.is_err(), "a placement with an engagement event");
    }

    async fn assert_integrity(pool: &sqlx::AnyPool) {
        let check: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_all(pool)
            .await
            .unwrap();
        assert_eq!(check, vec!["ok".to_owned()]);
    }

    /// The SQLite migration that takes the per-row work off placement inserts rebuilds the
    /// ledger without its UNIQUE Message-ID and drops the per-row roll-up trigger: rows, ids
    /// and the high mark, references both ways and the engagement trigger come through, and
    /// the roll-up refresh finds the placements inserted after it by their ids.
    #[tokio::test]
    async fn sqlite_placements_rebuild_keeps_rows_and_the_rollups_true() {
        let (_dir, url, before) = sqlite_before("20261130000010").await;
        let (campaign_id, seed_id) = campaign_before(&before).await;
        run_all(
            &before,
            [
            two_sent_rows(campaign_id, seed_id),
            format!(
                "INSERT INTO placements (id, outbox_id, seed_id, message_id, placement, folder, \
                 provider, seen_at, latency_secs, auth_spf, gmail_labels, gmail_tab, created_at) \
                 VALUES (3, 7, {seed_id}, '<a@warm.test>', 'promotions', 'INBOX', 'gmail', 130, \
                 20, 'pass', '[\"\\\\Inbox\"]', 'promotions', 130)"
            ),
            "INSERT INTO engagement_events (placement_id, action, at) VALUES (3, 'open', 140)"
                .to_owned(),
            "UPDATE sqlite_sequence SET seq = 20 WHERE name = 'placements'".to_owned(),
            "DELETE FROM rollup_dirty".to_owned(),
            ],
        )
        .await;
        before.close().await;

        let store = Store::connect(&url).await.unwrap();
        let pool = store.pool();
        let kept = crate::store::ledger::get_by_message_id(pool, "<a@warm.test>")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(kept.id, 3);
        assert_eq!(kept.record.outbox_id, 7);
        assert_eq!(kept.record.placement, Placement::Promotions);
        assert_eq!(kept.record.latency_secs, Some(20));
        assert_eq!(kept.record.auth_spf.as_deref(), Some("pass"));
        let gmail = kept.record.gmail.unwrap();
        assert_eq!(gmail.labels, vec!["\\Inbox".to_owned()]);
        // One unique index left: the outbox row's. No roll-up trigger on inserts.
        let unique: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pragma_index_list('placements') WHERE \"unique\" = 1",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(unique, 1);
        let triggers: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN \
             ('placements', 'engagement_events') ORDER BY name",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        assert_eq!(triggers, vec!["engagement_events_rollup".to_owned()]);
        // A new placement takes the next id above the high mark; the refresh marks its day
        // (and only its day: the ones before the migration were marked by the trigger).
        run_all(
            pool,
            [format!(
                "INSERT INTO placements (outbox_id, seed_id, message_id, placement, provider, \
                 created_at) VALUES (8, {seed_id}, '<b@warm.test>', 'inbox', 'gmail', 230)"
            )],
        )
        .await;
        let id: i64 = sqlx::query_scalar("SELECT id FROM placements WHERE outbox_id = 8")
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(id, 21);
        assert_eq!(crate::store::rollup::dirty_count(&store).await.unwrap(), 1);
        let done = crate::store::rollup::refresh(&store, None, 10)
            .await
            .unwrap();
        assert_eq!(done.days, 1);
        assert_eq!(crate::store::rollup::dirty_count(&store).await.unwrap(), 0);
        let days: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT day FROM placement_rollups ORDER BY day")
                .fetch_all(pool)
                .await
                .unwrap();
        assert_eq!(days, vec!["2026-11-30".to_owned()]);
        // References hold both ways; the engagement trigger marks its day again.
        assert_placement_references_hold(pool).await;
        sqlx::query(
            "INSERT INTO engagement_events (placement_id, action, at) VALUES (3, 'star', 150)",
        )
        .execute(pool)
        .await
        .unwrap();
        assert_eq!(crate::store::rollup::dirty_count(&store).await.unwrap(), 1);
        assert_integrity(pool).await;
        store.close().await;
    }

    /// The SQLite migration that writes the ledger's enumerated CHECKs as comparisons
    /// rebuilds it once more: the rows, ids and high mark, the references and the engagement
    /// trigger come through, and the CHECKs accept every word of their enums (and NULL where
    /// the column allows it) and refuse any other.
    #[tokio::test]
    async fn sqlite_placements_checks_rebuild_keeps_rows_and_rules() {
        use crate::domain::GmailTab;
        let (_dir, url, before) = sqlite_before("20261130000020").await;
        let (campaign_id, seed_id) = campaign_before(&before).await;
        run_all(
            &before,
            [
            two_sent_rows(campaign_id, seed_id),
            format!(
                "INSERT INTO placements (id, outbox_id, seed_id, message_id, placement, folder, \
                 provider, seen_at, latency_secs, auth_results, gmail_labels, gmail_tab, \
                 created_at) VALUES (3, 7, {seed_id}, '<a@warm.test>', 'spam', '[Gmail]/Spam', \
                 'gmail', 130, 20, 'mx.test; spf=pass', '[\"\\\\Spam\"]', 'updates', 130)"
            ),
            "INSERT INTO engagement_events (placement_id, action, at) VALUES (3, 'open', 140)"
                .to_owned(),
            "UPDATE sqlite_sequence SET seq = 20 WHERE name = 'placements'".to_owned(),
            ],
        )
        .await;
        before.close().await;

        let store = Store::connect(&url).await.unwrap();
        let pool = store.pool();
        let kept = crate::store::ledger::get_by_message_id(pool, "<a@warm.test>")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((kept.id, kept.record.outbox_id), (3, 7));
        assert_eq!(kept.record.placement, Placement::Spam);
        assert_eq!(kept.record.folder.as_deref(), Some("[Gmail]/Spam"));
        assert_eq!(
            kept.record.auth_results.as_deref(),
            Some("mx.test; spf=pass")
        );
        let gmail = kept.record.gmail.unwrap();
        assert_eq!(gmail.labels, vec!["\\Spam".to_owned()]);
        assert_eq!(gmail.tab, Some(GmailTab::Updates));
        let insert = |placement: &str, provider: &str, tab: Option<&str>| {
            let tab = tab.map_or("NULL".to_owned(), |t| format!("'{t}'"));
            format!(
                "INSERT INTO placements (outbox_id, seed_id, message_id, placement, provider, \
                 gmail_tab, created_at) VALUES (8, {seed_id}, '<b@warm.test>', '{placement}', \
                 '{provider}', {tab}, 230)"
            )
        };
        // The next id is above the high mark.
        run_all(pool, [insert("inbox", "gmail", None)]).await;
        let id: i64 = sqlx::query_scalar("SELECT id FROM placements WHERE outbox_id = 8")
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(id, 21);
        let accepts = |sql: String| async move {
            let mut tx = pool.begin().await.unwrap();
            sqlx::query("DELETE FROM placements WHERE outbox_id = 8")
                .execute(&mut *tx)
                .await
                .unwrap();
            let done = sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut *tx)
                .await;
            tx.rollback().await.unwrap();
            done.map(|_| ()).map_err(|e| e.to_string())
        };
        for p in Placement::ALL {
            accepts(insert(p.as_str(), "other", None)).await.unwrap();
        }
        for p in Provider::ALL {
            accepts(insert("inbox", p.as_str(), None)).await.unwrap();
        }
        for t in GmailTab::ALL {
            accepts(insert("inbox", "gmail", Some(t.as_str())))
                .await
                .unwrap();
        }
        for bad in [
            insert("Inbox", "gmail", None),
            insert("inbox", "hotmail", None),
            insert("inbox", "gmail", Some("spam")),
            insert("", "gmail", None),
        ] {
            let refused = accepts(bad.clone()).await.unwrap_err();
            assert!(
                refused.contains("CHECK constraint failed"),
                "{bad}: {refused}"
            );
        }
        // References hold both ways; the engagement trigger marks its day.
        assert_placement_references_hold(pool).await;
        sqlx::query("DELETE FROM rollup_dirty")
            .execute(pool)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO engagement_events (placement_id, action, at) VALUES (3, 'star', 150)",
        )
        .execute(pool)
        .await
        .unwrap();
        let marked: Vec<String> = sqlx::query_scalar("SELECT plan_day FROM rollup_dirty")
            .fetch_all(pool)
            .await
            .unwrap();
        assert_eq!(marked, vec!["2026-11-29".to_owned()]);
        assert_integrity(pool).await;
        store.close().await;
    }

    /// The SQLite migration that lets planned rows wait without a Message-ID rebuilds the
    /// outbox: the rows, their ids and AUTOINCREMENT's high mark, the references to and from
    /// it, and the triggers that read it all come through, and the new rules hold.
    #[tokio::test]
    async fn sqlite_outbox_rebuild_keeps_rows_references_and_ids() {
        let (_dir, url, before) = sqlite_before("20261130000000").await;
        // A sender, a seed and a campaign as the store writes them; a sent row with its
        // placement and an engagement event, a planned row, and a high mark above both ids
        // (rows deleted since).
        let (campaign_id, seed_id) = campaign_before(&before).await;
        run_all(
            &before,
            [
            format!(
                "INSERT INTO outbox (id, campaign_id, seed_id, kind, message_id, subject, status, \
                 plan_day, run_at, sent_at, lease_owner, created_at) VALUES \
                 (7, {campaign_id}, {seed_id}, 'warmup', '<sent@warm.test>', 'hi', 'sent', \
                  '2026-11-29', 100, 110, 'node', 50), \
                 (8, {campaign_id}, {seed_id}, 'warmup', '<planned@warm.test>', 'hey', \
                  'planned', '2026-11-29', 200, NULL, NULL, 50)"
            ),
            format!(
                "INSERT INTO placements (id, outbox_id, seed_id, message_id, placement, provider, \
                 created_at) VALUES (3, 7, {seed_id}, '<sent@warm.test>', 'inbox', 'gmail', 120)"
            ),
            "INSERT INTO engagement_events (placement_id, action, at) VALUES (3, 'open', 130)"
                .to_owned(),
            "UPDATE sqlite_sequence SET seq = 41 WHERE name = 'outbox'".to_owned(),
            ],
        )
        .await;
        before.close().await;

        let store = Store::connect(&url).await.unwrap();
        let pool = store.pool();
        let rows = list_for_campaign(pool, campaign_id).await.unwrap();
        let kept: Vec<_> = rows
            .iter()
            .map(|r| (r.id, r.message_id.as_deref(), r.status, r.sent_at))
            .collect();
        assert_eq!(
            kept,
            vec![
                (7, Some("<sent@warm.test>"), OutboxStatus::Sent, Some(110)),
                (8, Some("<planned@warm.test>"), OutboxStatus::Planned, None)
            ]
        );
        // The high mark moved with the table: no id is handed out twice.
        let mut send = NewSend {
            campaign_id,
            seed_id,
            kind: SendKind::Warmup,
            message_id: None,
            subject: "later".into(),
            in_reply_to: None,
            plan_day: None,
            run_at: 300,
        };
        assert_eq!(enqueue(pool, &send, 60).await.unwrap(), 42);
        // Message-IDs are still unique where they are set, and a row that went to the relay
        // must have one.
        send.message_id = Some("<sent@warm.test>".into());
        let dup = enqueue(pool, &send, 60).await.unwrap_err();
        assert!(dup.is_unique_violation(), "{dup}");
        let bare =
            sqlx::query("UPDATE outbox SET status = 'sent', message_id = NULL WHERE id = 42")
                .execute(pool)
                .await;
        assert!(bare.is_err(), "a sent row without a Message-ID");
        // Foreign keys are enforced again, both ways.
        let orphan = sqlx::query(
            "INSERT INTO placements (outbox_id, seed_id, message_id, placement, provider, \
             created_at) VALUES (999, 1, '<x@warm.test>', 'inbox', 'gmail', 1)",
        )
        .execute(pool)
        .await;
        assert!(orphan.is_err(), "a placement of no outbox row");
        assert!(
            sqlx::query("DELETE FROM outbox WHERE id = 7")
                .execute(pool)
                .await
                .is_err()
        );
        // The triggers of the tables that read the outbox were made again.
        sqlx::query("DELETE FROM rollup_dirty")
            .execute(pool)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO engagement_events (placement_id, action, at) VALUES (3, 'star', 140)",
        )
        .execute(pool)
        .await
        .unwrap();
        let dirty: Vec<(i64, String)> =
            sqlx::query("SELECT campaign_id, plan_day FROM rollup_dirty")
                .fetch_all(pool)
                .await
                .unwrap()
                .iter()
                .map(|r| {
                    (
                        row::int(r, "campaign_id").unwrap(),
                        row::text(r, "plan_day").unwrap(),
                    )
                })
                .collect();
        assert_eq!(dirty, vec![(campaign_id, "2026-11-29".to_owned())]);
        assert_integrity(pool).await;
        store.close().await;
    }

    #[tokio::test]
    async fn claim_for_send_and_mark_sent_many_on_sqlite() {
        claim_for_send_and_mark_sent_many(Store::connect("sqlite::memory:").await.unwrap()).await;
    }

    /// The same on PostgreSQL, in a database of its own, when `DATABASE_URL` names a server.
    #[tokio::test]
    async fn claim_for_send_and_mark_sent_many_on_postgres() {
        let Ok(admin_url) = std::env::var("DATABASE_URL") else {
            return;
        };
        sqlx::any::install_default_drivers();
        let name = format!("hearth_unit_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::AnyConnection::connect(&admin_url).await.unwrap();
        admin
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .unwrap();
        let (base, query) = match admin_url.split_once('?') {
            Some((b, q)) => (b, format!("?{q}")),
            None => (admin_url.as_str(), String::new()),
        };
        let (scheme, rest) = base.split_once("://").unwrap();
        let host_start = rest.rfind('@').map_or(0, |i| i + 1);
        let authority_end = rest[host_start..]
            .find('/')
            .map_or(rest.len(), |i| host_start + i);
        let url = format!("{scheme}://{}/{name}{query}", &rest[..authority_end]);
        let store = Store::connect(&url).await.unwrap();
        let outcome = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(
            claim_for_send_and_mark_sent_many(store),
        ))
        .await;
        admin
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .await
            .unwrap();
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }
}
