//! Engagement events: what a worker did to a placed message. Each action happens at most
//! once per message (UNIQUE (placement_id, action)), so a retried worker step is harmless.

use sqlx::any::AnyRow;
use sqlx::{Any, Executor};

use crate::domain::{EngagementAction, Placement, SeedStatus, SendKind};

use super::StoreError;
use super::row;

const TABLE: &str = "engagement_events";

/// How far past the retention cutoff a seed is still visited for its old mail (14 days).
pub const RETENTION_LOOKBACK_SECS: i64 = 14 * 86_400;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngagementRow {
    pub id: i64,
    pub placement_id: i64,
    pub action: EngagementAction,
    pub at: i64,
    pub detail: Option<String>,
}

/// Records `action` on the placement unless it was already recorded. Returns whether it
/// was new.
pub async fn record<'c, E>(
    ex: E,
    placement_id: i64,
    action: EngagementAction,
    at: i64,
    detail: Option<&str>,
) -> Result<bool, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let done = sqlx::query(
        "INSERT INTO engagement_events (placement_id, action, at, detail) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (placement_id, action) DO NOTHING",
    )
    .bind(placement_id)
    .bind(action.as_str())
    .bind(at)
    .bind(detail)
    .execute(ex)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The placement's events in the order they happened.
pub async fn list_for_placement<'c, E>(
    ex: E,
    placement_id: i64,
) -> Result<Vec<EngagementRow>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    sqlx::query(
        "SELECT id, placement_id, action, at, detail FROM engagement_events \
         WHERE placement_id = $1 ORDER BY at, id",
    )
    .bind(placement_id)
    .fetch_all(ex)
    .await?
    .iter()
    .map(decode)
    .collect()
}

/// Seeds (not disabled) holding warm-up mail first seen before `cutoff` (and after
/// `cutoff - RETENTION_LOOKBACK_SECS`: mail the owner moved elsewhere is not looked for
/// forever) that has not been deleted yet: the ones retention has work in. Ids, ascending.
pub async fn seeds_with_mail_before<'c, E>(ex: E, cutoff: i64) -> Result<Vec<i64>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT p.seed_id FROM placements p JOIN seeds s ON s.id = p.seed_id \
         JOIN outbox o ON o.id = p.outbox_id \
         WHERE s.status <> $1 AND o.kind = $2 AND p.placement <> $3 AND p.seen_at < $4 AND p.seen_at >= $6 \
           AND NOT EXISTS (SELECT 1 FROM engagement_events e \
                           WHERE e.placement_id = p.id AND e.action = $5) \
         ORDER BY p.seed_id",
    )
    .bind(SeedStatus::Disabled.as_str())
    .bind(SendKind::Warmup.as_str())
    .bind(Placement::Missing.as_str())
    .bind(cutoff)
    .bind(EngagementAction::Delete.as_str())
    .bind(cutoff - RETENTION_LOOKBACK_SECS)
    .fetch_all(ex)
    .await?)
}

fn decode(r: &AnyRow) -> Result<EngagementRow, StoreError> {
    Ok(EngagementRow {
        id: row::int(r, "id")?,
        placement_id: row::int(r, "placement_id")?,
        action: row::parsed(r, TABLE, "action")?,
        at: row::int(r, "at")?,
        detail: row::text_opt(r, "detail")?,
    })
}
