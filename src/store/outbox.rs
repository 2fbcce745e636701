//! The outbox: every message Hearth will send, with a lease while it is being sent.
//!
//! Life of a row: `planned` → (claim) `sending` → `sent` | `failed`, or back to `planned`
//! with a later `run_at` on a retryable error. A row left in `sending` with an expired lease
//! (its node died mid-send) is never reclaimed blindly: the message may have gone out, so
//! reconciliation looks at [`expired_sending`] and decides, then calls [`release_for_retry`]
//! or [`mark_failed`].

use sqlx::any::AnyRow;
use sqlx::{Any, Executor};

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
    /// The Message-ID header (unique); also the ledger's key.
    pub message_id: String,
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
    pub message_id: String,
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

macro_rules! outbox_cols {
    () => {
        "id, campaign_id, seed_id, kind, message_id, subject, in_reply_to, status, plan_day, \
         run_at, lease_owner, lease_until, attempts, last_error, sent_at, smtp_reply, created_at"
    };
}

// One statement claims the rows. On PostgreSQL the candidate ids are collected by an
// `ARRAY(…)` sub-select, which runs exactly once (an `IN (… LIMIT n)` sub-select may be
// re-run per row and claim more than `n`); `FOR UPDATE SKIP LOCKED` lets concurrent
// claimers pass each other by. SQLite serializes writers on its database lock instead.
macro_rules! claim_sql {
    ($open:literal, $close:literal) => {
        concat!(
            "UPDATE outbox SET status = $1, lease_owner = $2, lease_until = $3, \
               attempts = attempts + 1 \
             WHERE status = $4 AND id ",
            $open,
            "SELECT id FROM outbox WHERE status = $4 AND run_at <= $5 \
               AND campaign_id IN (SELECT id FROM campaigns WHERE status = $7) \
               ORDER BY run_at, id LIMIT $6",
            $close,
            " RETURNING ",
            outbox_cols!()
        )
    };
}

/// Adds a message to send at `send.run_at`. Returns its id.
pub async fn enqueue<'c, E>(ex: E, send: &NewSend, now: i64) -> Result<i64, StoreError>
where
    E: Executor<'c, Database = Any>,
{
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
    .fetch_one(ex)
    .await?;
    row::int(&r, "id")
}

/// Claims up to `limit` planned rows of active campaigns due at `now` (oldest `run_at` first;
/// a paused campaign's rows wait) for `owner`, for
/// `lease_secs`: they become `sending` and their `attempts` go up by one. Concurrent
/// claimers, on any number of nodes, never get the same row. Returned in `run_at` order.
pub async fn claim_due(
    store: &Store,
    now: i64,
    owner: &str,
    lease_secs: i64,
    limit: i64,
) -> Result<Vec<OutboxRow>, StoreError> {
    let sql = match store.backend() {
        Backend::Postgres => claim_sql!("= ANY(ARRAY(", " FOR UPDATE SKIP LOCKED))"),
        Backend::Sqlite => claim_sql!("IN (", ")"),
    };
    let mut rows = sqlx::query(sql)
        .bind(OutboxStatus::Sending.as_str())
        .bind(owner)
        .bind(now + lease_secs)
        .bind(OutboxStatus::Planned.as_str())
        .bind(now)
        .bind(limit)
        .bind(CampaignStatus::Active.as_str())
        .fetch_all(store.pool())
        .await?
        .iter()
        .map(decode)
        .collect::<Result<Vec<_>, _>>()?;
    rows.sort_by_key(|r| (r.run_at, r.id));
    Ok(rows)
}

/// Rows still `sending` whose lease ended before `now`: their node died or hung mid-send.
pub async fn expired_sending<'c, E>(ex: E, now: i64) -> Result<Vec<OutboxRow>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    sqlx::query(concat!(
        "SELECT ",
        outbox_cols!(),
        " FROM outbox WHERE status = $1 AND lease_until < $2 ORDER BY lease_until, id"
    ))
    .bind(OutboxStatus::Sending.as_str())
    .bind(now)
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

/// Cancels the campaign's rows that are still `planned` (a pause or a stop). Returns how many.
pub async fn cancel_planned<'c, E>(ex: E, campaign_id: i64) -> Result<u64, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let done = sqlx::query("UPDATE outbox SET status = $2 WHERE campaign_id = $1 AND status = $3")
        .bind(campaign_id)
        .bind(OutboxStatus::Cancelled.as_str())
        .bind(OutboxStatus::Planned.as_str())
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

/// How many of the campaign's rows are in each status (statuses with none are left out).
pub async fn count_by_status<'c, E>(
    ex: E,
    campaign_id: i64,
) -> Result<Vec<(OutboxStatus, i64)>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    sqlx::query(
        "SELECT status, COUNT(*) AS n FROM outbox WHERE campaign_id = $1 \
         GROUP BY status ORDER BY status",
    )
    .bind(campaign_id)
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
        message_id: row::text(r, "message_id")?,
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
