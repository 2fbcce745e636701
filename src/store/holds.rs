//! Provider holds: the ramp of one campaign stopped at one provider while the others go on.
//! The planner skips a held provider's seeds. Placement holds are lifted by a person only.

use sqlx::any::AnyRow;
use sqlx::{Any, Executor};

use crate::domain::{PauseReason, Provider};

use super::StoreError;
use super::row;

const TABLE: &str = "provider_holds";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldRow {
    pub campaign_id: i64,
    pub provider: Provider,
    pub reason: PauseReason,
    pub detail: Option<String>,
    pub held_at: i64,
}

/// Holds the provider for the campaign unless it already is. Returns whether it is new.
pub async fn hold<'c, E>(
    ex: E,
    campaign_id: i64,
    provider: Provider,
    reason: PauseReason,
    detail: Option<&str>,
    now: i64,
) -> Result<bool, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let done = sqlx::query(
        "INSERT INTO provider_holds (campaign_id, provider, reason, detail, held_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (campaign_id, provider) DO NOTHING",
    )
    .bind(campaign_id)
    .bind(provider.as_str())
    .bind(reason.as_str())
    .bind(detail)
    .bind(now)
    .execute(ex)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Lifts the hold. Returns whether there was one.
pub async fn release<'c, E>(ex: E, campaign_id: i64, provider: Provider) -> Result<bool, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let done = sqlx::query("DELETE FROM provider_holds WHERE campaign_id = $1 AND provider = $2")
        .bind(campaign_id)
        .bind(provider.as_str())
        .execute(ex)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// The campaign's holds, by provider.
pub async fn list_for_campaign<'c, E>(ex: E, campaign_id: i64) -> Result<Vec<HoldRow>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    sqlx::query(
        "SELECT campaign_id, provider, reason, detail, held_at FROM provider_holds \
         WHERE campaign_id = $1 ORDER BY provider",
    )
    .bind(campaign_id)
    .fetch_all(ex)
    .await?
    .iter()
    .map(decode)
    .collect()
}

fn decode(r: &AnyRow) -> Result<HoldRow, StoreError> {
    Ok(HoldRow {
        campaign_id: row::int(r, "campaign_id")?,
        provider: row::parsed(r, TABLE, "provider")?,
        reason: row::parsed(r, TABLE, "reason")?,
        detail: row::text_opt(r, "detail")?,
        held_at: row::int(r, "held_at")?,
    })
}
