//! Counts for `/metrics` and the API's outbox depth: one cheap `GROUP BY` each, read at
//! scrape time, so every node reports the same totals from the shared database.

use sqlx::{Any, Executor};

use crate::domain::{
    CampaignStatus, OutboxStatus, PauseReason, Placement, Provider, SeedStatus, Verdict,
};

use super::StoreError;
use super::row;

/// Outbox rows per status (statuses with none are left out), of one campaign or all.
pub async fn outbox_by_status<'c, E>(
    ex: E,
    campaign_id: Option<i64>,
) -> Result<Vec<(OutboxStatus, i64)>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    sqlx::query(
        "SELECT status, COUNT(*) AS n FROM outbox WHERE ($1 = 0 OR campaign_id = $2) \
         GROUP BY status ORDER BY status",
    )
    .bind(i64::from(campaign_id.is_some()))
    .bind(campaign_id.unwrap_or(0))
    .fetch_all(ex)
    .await?
    .iter()
    .map(|r| Ok((row::parsed(r, "outbox", "status")?, row::int(r, "n")?)))
    .collect()
}

/// Planned rows whose time has come (`run_at <= now`): work waiting for a sender.
pub async fn outbox_due<'c, E>(ex: E, campaign_id: Option<i64>, now: i64) -> Result<i64, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    Ok(sqlx::query_scalar(
        "SELECT COUNT(*) FROM outbox WHERE status = $1 AND run_at <= $2 \
           AND ($3 = 0 OR campaign_id = $4)",
    )
    .bind(OutboxStatus::Planned.as_str())
    .bind(now)
    .bind(i64::from(campaign_id.is_some()))
    .bind(campaign_id.unwrap_or(0))
    .fetch_one(ex)
    .await?)
}

/// Ledger rows per seed provider and placement (folder class).
pub async fn placements<'c, E>(ex: E) -> Result<Vec<(Provider, Placement, i64)>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    sqlx::query(
        "SELECT provider, placement, COUNT(*) AS n FROM placements \
         GROUP BY provider, placement ORDER BY provider, placement",
    )
    .fetch_all(ex)
    .await?
    .iter()
    .map(|r| {
        Ok((
            row::parsed(r, "placements", "provider")?,
            row::parsed(r, "placements", "placement")?,
            row::int(r, "n")?,
        ))
    })
    .collect()
}

/// Campaigns per status and pause reason (`None` unless paused).
pub async fn campaigns<'c, E>(
    ex: E,
) -> Result<Vec<(CampaignStatus, Option<PauseReason>, i64)>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    sqlx::query(
        "SELECT status, pause_reason, COUNT(*) AS n FROM campaigns \
         GROUP BY status, pause_reason ORDER BY status, pause_reason",
    )
    .fetch_all(ex)
    .await?
    .iter()
    .map(|r| {
        Ok((
            row::parsed(r, "campaigns", "status")?,
            row::parsed_opt(r, "campaigns", "pause_reason")?,
            row::int(r, "n")?,
        ))
    })
    .collect()
}

/// Seeds per health status.
pub async fn seeds<'c, E>(ex: E) -> Result<Vec<(SeedStatus, i64)>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    sqlx::query("SELECT status, COUNT(*) AS n FROM seeds GROUP BY status ORDER BY status")
        .fetch_all(ex)
        .await?
        .iter()
        .map(|r| Ok((row::parsed(r, "seeds", "status")?, row::int(r, "n")?)))
        .collect()
}

/// Finished preflight runs per verdict, ever.
pub async fn preflight_runs<'c, E>(ex: E) -> Result<Vec<(Verdict, i64)>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    sqlx::query(
        "SELECT verdict, COUNT(*) AS n FROM preflight_runs WHERE verdict IS NOT NULL \
         GROUP BY verdict ORDER BY verdict",
    )
    .fetch_all(ex)
    .await?
    .iter()
    .map(|r| {
        Ok((
            row::parsed(r, "preflight_runs", "verdict")?,
            row::int(r, "n")?,
        ))
    })
    .collect()
}

/// Each sender's latest finished verdict: `(sender name, verdict)`, by name.
pub async fn latest_verdicts<'c, E>(ex: E) -> Result<Vec<(String, Verdict)>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    sqlx::query(
        "SELECT s.name, r.verdict FROM senders s JOIN preflight_runs r ON r.id = \
           (SELECT MAX(id) FROM preflight_runs WHERE sender_id = s.id AND verdict IS NOT NULL) \
         ORDER BY s.name",
    )
    .fetch_all(ex)
    .await?
    .iter()
    .map(|r| {
        Ok((
            row::text(r, "name")?,
            row::parsed(r, "preflight_runs", "verdict")?,
        ))
    })
    .collect()
}
