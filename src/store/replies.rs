//! Replies: outbox rows of kind `reply`, sent by a seed through its own SMTP to the sender.
//!
//! A reply is written with its text in the same transaction as the seed's `reply` engagement
//! event, before anything is sent; its Message-ID is derived from the original's and UNIQUE,
//! so a second pass (a reconnect, a restart, another node) never writes a second one. The row
//! then lives like a warm-up row (`planned` → `sending` → `sent` | `failed`), claimed only by
//! the reply sender (`sender::replies`), never by the warm-up dispatcher.

use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Executor, Transaction};

use crate::domain::{EngagementAction, OutboxStatus, SendKind};

use super::StoreError;
use super::row;

const TABLE: &str = "outbox";

/// A reply to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReply {
    pub campaign_id: i64,
    /// The seed that replies.
    pub seed_id: i64,
    /// The ledger row of the message answered (its `reply` event is written with the row).
    pub placement_id: i64,
    pub message_id: String,
    pub subject: String,
    /// The Message-ID answered.
    pub in_reply_to: String,
    pub body: String,
    pub run_at: i64,
}

/// A reply row as the reply sender needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyRow {
    pub id: i64,
    pub campaign_id: i64,
    pub seed_id: i64,
    pub message_id: String,
    pub subject: String,
    pub in_reply_to: Option<String>,
    pub body: Option<String>,
    pub status: OutboxStatus,
    pub run_at: i64,
    pub lease_until: Option<i64>,
    pub attempts: i64,
}

macro_rules! reply_cols {
    () => {
        "id, campaign_id, seed_id, message_id, subject, in_reply_to, body, status, run_at, \
         lease_until, attempts"
    };
}

/// Queues the reply and records the seed's `reply` event, in the caller's transaction.
/// Returns whether the reply is new (false: it was queued before, nothing was written).
pub async fn queue(
    tx: &mut Transaction<'_, Any>,
    r: &NewReply,
    now: i64,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO outbox (campaign_id, seed_id, kind, message_id, subject, in_reply_to, \
           body, status, run_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (message_id) WHERE message_id IS NOT NULL DO NOTHING",
    )
    .bind(r.campaign_id)
    .bind(r.seed_id)
    .bind(SendKind::Reply.as_str())
    .bind(r.message_id.clone())
    .bind(r.subject.clone())
    .bind(r.in_reply_to.clone())
    .bind(r.body.clone())
    .bind(OutboxStatus::Planned.as_str())
    .bind(r.run_at)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    let event = super::engagement::record(
        &mut **tx,
        r.placement_id,
        EngagementAction::Reply,
        now,
        Some(&format!("queued {}", r.message_id)),
    )
    .await?;
    Ok(done.rows_affected() == 1 || event)
}

/// Claims up to `limit` due reply rows for `owner` for `lease_secs` (like the warm-up claim:
/// one statement, `FOR UPDATE SKIP LOCKED` on PostgreSQL). A reply waits for no campaign
/// status: it is the seed's act, not the sender's.
pub async fn claim_due(
    conn: &mut AnyConnection,
    now: i64,
    owner: &str,
    lease_secs: i64,
    limit: i64,
) -> Result<Vec<ReplyRow>, StoreError> {
    let sql = if conn.backend_name().eq_ignore_ascii_case("sqlite") {
        concat!(
            "UPDATE outbox SET status = $1, lease_owner = $2, lease_until = $3, \
               attempts = attempts + 1 \
             WHERE +status = $4 AND kind = $5 AND id IN (SELECT id FROM outbox \
               WHERE kind = 'reply' AND status = 'planned' AND run_at <= $6 ORDER BY run_at, id LIMIT $7) \
             RETURNING ",
            reply_cols!()
        )
    } else {
        concat!(
            "UPDATE outbox SET status = $1, lease_owner = $2, lease_until = $3, \
               attempts = attempts + 1 \
             WHERE status = $4 AND kind = $5 AND id = ANY(ARRAY(SELECT id FROM outbox \
               WHERE kind = 'reply' AND status = 'planned' AND run_at <= $6 ORDER BY run_at, id LIMIT $7 \
               FOR UPDATE SKIP LOCKED)) \
             RETURNING ",
            reply_cols!()
        )
    };
    let mut rows = sqlx::query(sql)
        .bind(OutboxStatus::Sending.as_str())
        .bind(owner)
        .bind(now + lease_secs)
        .bind(OutboxStatus::Planned.as_str())
        .bind(SendKind::Reply.as_str())
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(decode)
        .collect::<Result<Vec<_>, _>>()?;
    rows.sort_by_key(|r| (r.run_at, r.id));
    Ok(rows)
}

/// Reply rows still `sending` whose lease ended before `now` (their node died mid-send).
pub async fn expired_sending<'c, E>(ex: E, now: i64) -> Result<Vec<ReplyRow>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    sqlx::query(concat!(
        "SELECT ",
        reply_cols!(),
        " FROM outbox WHERE kind = 'reply' AND status = 'sending' AND lease_until < $1 \
         ORDER BY lease_until, id"
    ))
    .bind(now)
    .fetch_all(ex)
    .await?
    .iter()
    .map(decode)
    .collect()
}

/// A `sending` reply whose delivery cannot be proven (its sender has no IMAP to look in):
/// given up rather than risk a second reply. Returns whether it changed.
pub async fn abandon<'c, E>(ex: E, id: i64, why: &str) -> Result<bool, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let done = sqlx::query(
        "UPDATE outbox SET status = $2, last_error = $3, lease_until = NULL \
         WHERE id = $1 AND status = $4",
    )
    .bind(id)
    .bind(OutboxStatus::Failed.as_str())
    .bind(why)
    .bind(OutboxStatus::Sending.as_str())
    .execute(ex)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The reply to the message `original` (its Message-ID), if one was queued.
pub async fn for_original<'c, E>(ex: E, original: &str) -> Result<Option<ReplyRow>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    sqlx::query(concat!(
        "SELECT ",
        reply_cols!(),
        " FROM outbox WHERE kind = 'reply' AND in_reply_to = $1 ORDER BY id LIMIT 1"
    ))
    .bind(original)
    .fetch_optional(ex)
    .await?
    .as_ref()
    .map(decode)
    .transpose()
}

/// Senders with IMAP whose campaigns have sent (or may have sent) replies not yet in the
/// ledger: the sender mailboxes worth scanning. Ids, ascending.
pub async fn senders_awaiting_placement<'c, E>(ex: E) -> Result<Vec<i64>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT c.sender_id FROM outbox o \
         JOIN campaigns c ON c.id = o.campaign_id JOIN senders s ON s.id = c.sender_id \
         WHERE o.kind = 'reply' AND (o.status = $1 OR o.status = $2) AND s.imap_host IS NOT NULL \
           AND NOT EXISTS (SELECT 1 FROM placements p WHERE p.outbox_id = o.id) \
         ORDER BY c.sender_id",
    )
    .bind(OutboxStatus::Sent.as_str())
    .bind(OutboxStatus::Sending.as_str())
    .fetch_all(ex)
    .await?)
}

/// Replies to `sender_id` (its campaigns') sent before `cutoff` that have no placement yet:
/// overdue in the sender's mailbox.
pub async fn overdue_unplaced<'c, E>(
    ex: E,
    sender_id: i64,
    cutoff: i64,
) -> Result<Vec<ReplyRow>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    sqlx::query(concat!(
        "SELECT ",
        reply_cols!(),
        " FROM outbox WHERE kind = 'reply' AND status = 'sent' AND sent_at < $2 \
           AND campaign_id IN (SELECT id FROM campaigns WHERE sender_id = $1) \
           AND NOT EXISTS (SELECT 1 FROM placements p WHERE p.outbox_id = outbox.id) \
         ORDER BY id"
    ))
    .bind(sender_id)
    .bind(cutoff)
    .fetch_all(ex)
    .await?
    .iter()
    .map(decode)
    .collect()
}

/// The sender id a reply row goes to (its campaign's sender).
pub async fn sender_of<'c, E>(ex: E, outbox_id: i64) -> Result<Option<i64>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    Ok(sqlx::query_scalar(
        "SELECT c.sender_id FROM outbox o JOIN campaigns c ON c.id = o.campaign_id \
         WHERE o.id = $1",
    )
    .bind(outbox_id)
    .fetch_optional(ex)
    .await?)
}

fn decode(r: &AnyRow) -> Result<ReplyRow, StoreError> {
    Ok(ReplyRow {
        id: row::int(r, "id")?,
        campaign_id: row::int(r, "campaign_id")?,
        seed_id: row::int(r, "seed_id")?,
        message_id: row::text(r, "message_id")?,
        subject: row::text(r, "subject")?,
        in_reply_to: row::text_opt(r, "in_reply_to")?,
        body: row::text_opt(r, "body")?,
        status: row::parsed(r, TABLE, "status")?,
        run_at: row::int(r, "run_at")?,
        lease_until: row::int_opt(r, "lease_until")?,
        attempts: row::int(r, "attempts")?,
    })
}
