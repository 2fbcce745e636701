//! Campaigns: a sender ramping up to the seeds along a plan, with a guarded lifecycle.

use sqlx::any::AnyRow;
use sqlx::{Any, AssertSqlSafe, Executor};

use crate::domain::{CampaignStatus, PauseReason, Source};

use super::StoreError;
use super::row;

const TABLE: &str = "campaigns";

/// A stored campaign, with its sender's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignRow {
    pub id: i64,
    pub name: String,
    pub sender_id: i64,
    pub sender_name: String,
    /// JSON of the ramp plan, opaque to the store.
    pub plan: String,
    pub status: CampaignStatus,
    /// Set exactly when `status` is `Paused` (a CHECK constraint holds this).
    pub pause_reason: Option<PauseReason>,
    pub pause_detail: Option<String>,
    /// Whether a passing preflight may resume an automatic pause.
    pub auto_resume: bool,
    /// When the campaign first became active.
    pub started_at: Option<i64>,
    pub source: Source,
    pub created_at: i64,
    pub updated_at: i64,
}

macro_rules! campaign_select {
    () => {
        "SELECT c.id, c.name, c.sender_id, s.name AS sender_name, c.plan, c.status, \
           c.pause_reason, c.pause_detail, c.auto_resume, c.started_at, c.source, \
           c.created_at, c.updated_at \
         FROM campaigns c JOIN senders s ON s.id = c.sender_id"
    };
}

/// Creates the campaign from the config, or updates its sender and plan. Never touches the
/// status: a paused campaign stays paused across config reloads. Returns the id.
pub async fn upsert_from_config<'c, E>(
    ex: E,
    name: &str,
    sender_id: i64,
    plan_json: &str,
    now: i64,
) -> Result<i64, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    upsert(ex, name, sender_id, plan_json, Source::Config, now).await
}

/// Creates the campaign, or updates the sender, plan and source of the one with this name.
/// Never touches the status. Returns the id.
pub async fn upsert<'c, E>(
    ex: E,
    name: &str,
    sender_id: i64,
    plan_json: &str,
    source: Source,
    now: i64,
) -> Result<i64, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let r = sqlx::query(
        "INSERT INTO campaigns (name, sender_id, plan, status, source, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6) \
         ON CONFLICT (name) DO UPDATE SET \
           sender_id = excluded.sender_id, plan = excluded.plan, \
           source = excluded.source, updated_at = excluded.updated_at \
         RETURNING id",
    )
    .bind(name)
    .bind(sender_id)
    .bind(plan_json)
    .bind(CampaignStatus::Draft.as_str())
    .bind(source.as_str())
    .bind(now)
    .fetch_one(ex)
    .await?;
    row::int(&r, "id")
}

/// All campaigns, by name.
pub async fn list<'c, E>(ex: E) -> Result<Vec<CampaignRow>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    sqlx::query(concat!(campaign_select!(), " ORDER BY c.name"))
        .fetch_all(ex)
        .await?
        .iter()
        .map(decode)
        .collect()
}

pub async fn get<'c, E>(ex: E, id: i64) -> Result<Option<CampaignRow>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    sqlx::query(concat!(campaign_select!(), " WHERE c.id = $1"))
        .bind(id)
        .fetch_optional(ex)
        .await?
        .as_ref()
        .map(decode)
        .transpose()
}

pub async fn get_by_name<'c, E>(ex: E, name: &str) -> Result<Option<CampaignRow>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    sqlx::query(concat!(campaign_select!(), " WHERE c.name = $1"))
        .bind(name)
        .fetch_optional(ex)
        .await?
        .as_ref()
        .map(decode)
        .transpose()
}

/// Sets the status unconditionally. `reason` is required for `Paused` (the database refuses
/// a pause without one) and ignored, with `detail`, for any other status. The first move to
/// `Active` records `started_at`. [`StoreError::NotFound`] when no campaign has this id.
pub async fn set_status<'c, E>(
    ex: E,
    id: i64,
    status: CampaignStatus,
    reason: Option<PauseReason>,
    detail: Option<&str>,
    now: i64,
) -> Result<(), StoreError>
where
    E: Executor<'c, Database = Any>,
{
    if transition(ex, id, CampaignStatus::ALL, status, reason, detail, now).await? {
        Ok(())
    } else {
        Err(StoreError::NotFound {
            what: format!("campaign {id}"),
        })
    }
}

/// Moves the campaign to `to` only if its status is one of `from` (compare-and-set, safe
/// against other nodes). Returns whether it moved. Same rules as [`set_status`] for
/// `reason`, `detail` and `started_at`.
pub async fn transition<'c, E>(
    ex: E,
    id: i64,
    from: &[CampaignStatus],
    to: CampaignStatus,
    reason: Option<PauseReason>,
    detail: Option<&str>,
    now: i64,
) -> Result<bool, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    if from.is_empty() {
        return Ok(false);
    }
    let (reason, detail) = if to == CampaignStatus::Paused {
        (reason, detail)
    } else {
        (None, None)
    };
    // Only placeholders are generated here; every value is bound.
    let first_from = 7;
    let placeholders = (first_from..first_from + from.len())
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "UPDATE campaigns SET status = $2, pause_reason = $3, pause_detail = $4, \
           started_at = CASE WHEN $2 = $5 AND started_at IS NULL THEN $6 ELSE started_at END, \
           updated_at = $6 \
         WHERE id = $1 AND status IN ({placeholders})"
    );
    let mut q = sqlx::query(AssertSqlSafe(sql))
        .bind(id)
        .bind(to.as_str())
        .bind(reason.map(PauseReason::as_str))
        .bind(detail)
        .bind(CampaignStatus::Active.as_str())
        .bind(now);
    for status in from {
        q = q.bind(status.as_str());
    }
    Ok(q.execute(ex).await?.rows_affected() == 1)
}

/// Sets whether a passing preflight may resume an automatic pause.
pub async fn set_auto_resume<'c, E>(
    ex: E,
    id: i64,
    auto_resume: bool,
    now: i64,
) -> Result<bool, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let done = sqlx::query("UPDATE campaigns SET auto_resume = $2, updated_at = $3 WHERE id = $1")
        .bind(id)
        .bind(i64::from(auto_resume))
        .bind(now)
        .execute(ex)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether the campaign has done anything yet: planned a day or queued a message. A campaign
/// with history is kept (the ledger refers to it); one without may be deleted.
pub async fn has_history<'c, E>(ex: E, id: i64) -> Result<bool, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let n: i64 = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM outbox WHERE campaign_id = $1) \
              + (SELECT COUNT(*) FROM campaign_days WHERE campaign_id = $1)",
    )
    .bind(id)
    .fetch_one(ex)
    .await?;
    Ok(n > 0)
}

/// How many campaigns use the sender.
pub async fn count_for_sender<'c, E>(ex: E, sender_id: i64) -> Result<i64, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM campaigns WHERE sender_id = $1")
            .bind(sender_id)
            .fetch_one(ex)
            .await?,
    )
}

/// Deletes the campaign. Returns false when no campaign has this id. The database refuses
/// (a foreign-key violation) when outbox rows or planned days refer to it.
pub async fn delete<'c, E>(ex: E, id: i64) -> Result<bool, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let done = sqlx::query("DELETE FROM campaigns WHERE id = $1")
        .bind(id)
        .execute(ex)
        .await?;
    Ok(done.rows_affected() == 1)
}

fn decode(r: &AnyRow) -> Result<CampaignRow, StoreError> {
    Ok(CampaignRow {
        id: row::int(r, "id")?,
        name: row::text(r, "name")?,
        sender_id: row::int(r, "sender_id")?,
        sender_name: row::text(r, "sender_name")?,
        plan: row::text(r, "plan")?,
        status: row::parsed(r, TABLE, "status")?,
        pause_reason: row::parsed_opt(r, TABLE, "pause_reason")?,
        pause_detail: row::text_opt(r, "pause_detail")?,
        auto_resume: row::flag(r, TABLE, "auto_resume")?,
        started_at: row::int_opt(r, "started_at")?,
        source: row::parsed(r, TABLE, "source")?,
        created_at: row::int(r, "created_at")?,
        updated_at: row::int(r, "updated_at")?,
    })
}
