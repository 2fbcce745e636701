//! State events: every campaign status change and every finished preflight run, written by
//! triggers in the same transaction as the change (migration 20261129000010). The source of
//! the webhooks, and of "since when is this campaign active".

use sqlx::any::AnyRow;
use sqlx::{Any, Executor};

use crate::domain::{CampaignStatus, PauseReason, Verdict};

use super::StoreError;
use super::row;

const TABLE: &str = "state_events";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateEvent {
    pub id: i64,
    pub campaign_id: Option<i64>,
    pub preflight_run_id: Option<i64>,
    pub old_status: Option<CampaignStatus>,
    pub new_status: Option<CampaignStatus>,
    pub pause_reason: Option<PauseReason>,
    pub pause_detail: Option<String>,
    pub verdict: Option<Verdict>,
    pub at: i64,
}

/// When the campaign last became active (started or resumed), if it ever did since the
/// events were recorded.
pub async fn last_activation<'c, E>(ex: E, campaign_id: i64) -> Result<Option<i64>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    Ok(sqlx::query_scalar(
        "SELECT MAX(at) FROM state_events WHERE campaign_id = $1 AND new_status = $2",
    )
    .bind(campaign_id)
    .bind(CampaignStatus::Active.as_str())
    .fetch_one(ex)
    .await?)
}

pub async fn get<'c, E>(ex: E, id: i64) -> Result<Option<StateEvent>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    sqlx::query(
        "SELECT id, campaign_id, preflight_run_id, old_status, new_status, pause_reason, \
           pause_detail, verdict, at FROM state_events WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(ex)
    .await?
    .as_ref()
    .map(decode)
    .transpose()
}

/// Events from `since` on, oldest first.
pub async fn list_since<'c, E>(ex: E, since: i64) -> Result<Vec<StateEvent>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    sqlx::query(
        "SELECT id, campaign_id, preflight_run_id, old_status, new_status, pause_reason, \
           pause_detail, verdict, at FROM state_events WHERE at >= $1 ORDER BY id",
    )
    .bind(since)
    .fetch_all(ex)
    .await?
    .iter()
    .map(decode)
    .collect()
}

fn decode(r: &AnyRow) -> Result<StateEvent, StoreError> {
    Ok(StateEvent {
        id: row::int(r, "id")?,
        campaign_id: row::int_opt(r, "campaign_id")?,
        preflight_run_id: row::int_opt(r, "preflight_run_id")?,
        old_status: row::parsed_opt(r, TABLE, "old_status")?,
        new_status: row::parsed_opt(r, TABLE, "new_status")?,
        pause_reason: row::parsed_opt(r, TABLE, "pause_reason")?,
        pause_detail: row::text_opt(r, "pause_detail")?,
        verdict: row::parsed_opt(r, TABLE, "verdict")?,
        at: row::int(r, "at")?,
    })
}
