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
    /// Set once a person lifted the hold.
    pub released_at: Option<i64>,
}

/// Holds the provider for the campaign unless it already is held. Returns whether it is new.
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
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (campaign_id, provider) DO UPDATE SET \
           reason = excluded.reason, detail = excluded.detail, held_at = excluded.held_at, \
           released_at = NULL \
         WHERE provider_holds.released_at IS NOT NULL",
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
pub async fn release<'c, E>(
    ex: E,
    campaign_id: i64,
    provider: Provider,
    now: i64,
) -> Result<bool, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let done = sqlx::query(
        "UPDATE provider_holds SET released_at = $3 \
         WHERE campaign_id = $1 AND provider = $2 AND released_at IS NULL",
    )
    .bind(campaign_id)
    .bind(provider.as_str())
    .bind(now)
    .execute(ex)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The campaign's holds, lifted ones included, by provider.
pub async fn list_for_campaign<'c, E>(ex: E, campaign_id: i64) -> Result<Vec<HoldRow>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    sqlx::query(
        "SELECT campaign_id, provider, reason, detail, held_at, released_at FROM provider_holds \
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
        released_at: row::int_opt(r, "released_at")?,
    })
}

/// The providers held for the campaign now.
pub async fn held_providers<'c, E>(ex: E, campaign_id: i64) -> Result<Vec<Provider>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    Ok(list_for_campaign(ex, campaign_id)
        .await?
        .into_iter()
        .filter(|h| h.released_at.is_none())
        .map(|h| h.provider)
        .collect())
}

/// Every campaign's providers held now (campaigns without a hold are absent): one statement
/// for the scheduler's whole pass.
pub async fn held_all<'c, E>(
    ex: E,
) -> Result<std::collections::HashMap<i64, Vec<Provider>>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let mut out: std::collections::HashMap<i64, Vec<Provider>> = Default::default();
    for r in sqlx::query(
        "SELECT campaign_id, provider FROM provider_holds WHERE released_at IS NULL \
         ORDER BY campaign_id, provider",
    )
    .fetch_all(ex)
    .await?
    {
        out.entry(row::int(&r, "campaign_id")?)
            .or_default()
            .push(row::parsed(&r, "provider_holds", "provider")?);
    }
    Ok(out)
}

/// What the guard judges: the latest messages of a campaign (at one provider, or at every
/// provider but some), scheduled at or after `since`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    /// Placed and found (not missing), of the last `window` placed.
    pub found: u32,
    pub spam: u32,
    /// Sent or failed, of the last `window` finished sends.
    pub finished: u32,
    pub failed: u32,
}

/// Which providers a [`sample`] covers.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    Only(Provider),
    AllBut(&'a [Provider]),
}

pub async fn sample(
    pool: &sqlx::AnyPool,
    campaign_id: i64,
    scope: Scope<'_>,
    since: i64,
    window: u32,
) -> Result<Sample, StoreError> {
    use crate::domain::{OutboxStatus, Placement};
    use sqlx::AssertSqlSafe;
    let (providers, negate): (Vec<Provider>, bool) = match scope {
        Scope::Only(p) => (vec![p], false),
        Scope::AllBut(list) => (list.to_vec(), true),
    };
    // Only placeholders are generated; every value is bound. Providers are $6, $7, ….
    let filter = if providers.is_empty() {
        String::new()
    } else {
        format!(
            "AND s.provider {}IN ({})",
            if negate { "NOT " } else { "" },
            (0..providers.len())
                .map(|i| format!("${}", i + 6))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let sql = format!(
        "SELECT p.placement AS v FROM placements p JOIN outbox o ON o.id = p.outbox_id \
         JOIN seeds s ON s.id = o.seed_id \
         WHERE o.campaign_id = $1 AND o.run_at >= $2 AND p.placement <> $3 AND $5 = $5 {filter} \
         ORDER BY p.id DESC LIMIT $4"
    );
    let bind = |sql: String, a: &'static str, b: &'static str| {
        let mut q = sqlx::query(AssertSqlSafe(sql))
            .bind(campaign_id)
            .bind(since)
            .bind(a)
            .bind(i64::from(window))
            .bind(b);
        for p in &providers {
            q = q.bind(p.as_str());
        }
        q
    };
    let placed = bind(
        sql,
        Placement::Missing.as_str(),
        Placement::Missing.as_str(),
    )
    .fetch_all(pool)
    .await?;
    let mut out = Sample::default();
    for r in &placed {
        let placement: Placement = row::parsed(r, "placements", "v")?;
        out.found += 1;
        out.spam += u32::from(placement == Placement::Spam);
    }
    let sql = format!(
        "SELECT o.status AS v FROM outbox o JOIN seeds s ON s.id = o.seed_id \
         WHERE o.campaign_id = $1 AND o.run_at >= $2 AND o.status IN ($3, $5) {filter} \
         ORDER BY o.id DESC LIMIT $4"
    );
    let finished = bind(
        sql,
        OutboxStatus::Sent.as_str(),
        OutboxStatus::Failed.as_str(),
    )
    .fetch_all(pool)
    .await?;
    for r in &finished {
        let status: OutboxStatus = row::parsed(r, "outbox", "v")?;
        out.finished += 1;
        out.failed += u32::from(status == OutboxStatus::Failed);
    }
    Ok(out)
}
