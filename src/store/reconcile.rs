//! Queries for exactly-once sending: reconciling rows whose sender died mid-send, and the
//! per-sender daily guard rail.

use sqlx::{Any, Executor};

use crate::domain::{OutboxStatus, SendKind};

use super::StoreError;

/// Marks a `sending` row as sent on the evidence of the seed mailbox (or the ledger), whoever
/// held its lease. `note` records how it was confirmed. Returns whether it changed.
pub async fn confirm_sent<'c, E>(ex: E, id: i64, note: &str, now: i64) -> Result<bool, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let done = sqlx::query(
        "UPDATE outbox SET status = $2, sent_at = COALESCE(sent_at, $3), smtp_reply = $4, \
           lease_until = NULL \
         WHERE id = $1 AND status = $5",
    )
    .bind(id)
    .bind(OutboxStatus::Sent.as_str())
    .bind(now)
    .bind(note)
    .bind(OutboxStatus::Sending.as_str())
    .execute(ex)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Messages of a sender that went out since `since`, or are being sent right now by another
/// node than `owner`, across all its campaigns (`owner`'s own batch is what is being counted
/// against this number).
pub async fn sender_sends_since<'c, E>(
    ex: E,
    sender_id: i64,
    since: i64,
    owner: &str,
) -> Result<i64, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    Ok(sqlx::query_scalar(
        "SELECT COUNT(*) FROM outbox o JOIN campaigns c ON c.id = o.campaign_id \
         WHERE c.sender_id = $1 AND o.kind = $6 AND ( \
           (o.status = $3 AND o.sent_at >= $4) \
           OR (o.status = $5 AND o.lease_owner <> $2 AND o.run_at >= $4 - 86400))",
    )
    .bind(sender_id)
    .bind(owner)
    .bind(OutboxStatus::Sent.as_str())
    .bind(since)
    .bind(OutboxStatus::Sending.as_str())
    .bind(SendKind::Warmup.as_str())
    .fetch_one(ex)
    .await?)
}

/// Cancels a row this node holds (the guard rail refused it), recording why.
pub async fn cancel_leased<'c, E>(
    ex: E,
    id: i64,
    owner: &str,
    why: &str,
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
    .bind(OutboxStatus::Cancelled.as_str())
    .bind(why)
    .bind(OutboxStatus::Sending.as_str())
    .execute(ex)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Pushes every planned row of a sender's campaigns due before `until` to `until`: the sender
/// is throttled (a receiver deferred it for rate or reputation), on every node at once.
pub async fn defer_sender<'c, E>(ex: E, sender_id: i64, until: i64) -> Result<u64, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let done = sqlx::query(
        "UPDATE outbox SET run_at = $2 WHERE status = 'planned' AND run_at < $2 AND kind = $3 \
           AND campaign_id IN (SELECT id FROM campaigns WHERE sender_id = $1)",
    )
    .bind(sender_id)
    .bind(until)
    .bind(SendKind::Warmup.as_str())
    .execute(ex)
    .await?;
    Ok(done.rows_affected())
}
