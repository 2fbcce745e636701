//! Placement reports: per campaign, per provider, per plan day — planned, sent, seen,
//! inbox/spam/promotions/missing shares, rescued, replied, delivery latency (median, p95)
//! and the receivers' SPF/DKIM/DMARC pass rates; planned vs actual volume; a health score.
//!
//! Served from daily roll-ups (`store::rollup`), so a report reads at most one row per
//! provider and day whatever the ledger's size. The aggregation itself ([`model::build`],
//! [`health`], [`latency`]) is pure; the two entry points below only fetch and call it.
//!
//! For the API and the dashboard: [`campaign_report`] and [`status_overview`] return
//! `serde::Serialize` values; [`CampaignReport::to_csv`] gives the CSV form. The health
//! score's formula is documented in [`health`] (and the README).

pub mod guard;
pub mod health;
pub mod latency;
pub mod model;

use chrono::{Duration, NaiveDate};
use serde::Serialize;

use crate::domain::{CampaignStatus, PauseReason, Provider};
use crate::store::campaigns::CampaignRow;
use crate::store::{self, Store, StoreError};

pub use model::{
    CampaignHeader, CampaignReport, Counts, CsvRow, DayMetrics, DayRollup, Hold, Metrics,
    ProviderReport, VolumeDay,
};

/// The longest report, in days (ten years).
pub const MAX_DAYS: u32 = 3660;
/// Days the health score of [`status_overview`] looks back over.
pub const STATUS_HEALTH_DAYS: u32 = 28;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("no campaign named {0:?}")]
    NoSuchCampaign(String),
    #[error("days must be from 1 to {MAX_DAYS}, got {0}")]
    BadDays(u32),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The report of the campaign named `campaign` over the `days` plan days ending today (in
/// the plan's time zone) at `now`. Brings the campaign's roll-ups up to date first.
pub async fn campaign_report(
    store: &Store,
    campaign: &str,
    days: u32,
    now: i64,
) -> Result<CampaignReport, ReportError> {
    let c = store::campaigns::get_by_name(store.pool(), campaign)
        .await?
        .ok_or_else(|| ReportError::NoSuchCampaign(campaign.to_owned()))?;
    report_for(store, &c, days, now).await
}

/// [`campaign_report`] for a campaign already loaded (or found by id).
pub async fn report_for(
    store: &Store,
    c: &CampaignRow,
    days: u32,
    now: i64,
) -> Result<CampaignReport, ReportError> {
    if days == 0 || days > MAX_DAYS {
        return Err(ReportError::BadDays(days));
    }
    store::rollup::refresh(store, Some(c.id), store::rollup::DEFAULT_BATCH).await?;
    let to = today(c, now);
    let from = to - Duration::days(i64::from(days) - 1);
    let pool = store.pool();
    let rollups = store::rollup::rows_for_campaign(pool, c.id, from, to).await?;
    let planned = store::rollup::planned_days(pool, c.id, from, to).await?;
    let holds = holds_of(store, c.id).await?;
    Ok(model::build(model::ReportInput {
        campaign: header(c),
        from,
        to,
        generated_at: now,
        rollups: &rollups,
        planned: &planned,
        holds: &holds,
    }))
}

/// One line of `hearth status`: a campaign, where it is in its ramp, its state and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CampaignStatusLine {
    pub campaign: CampaignHeader,
    /// Sending days so far, today included when it is planned (day 1 is the first).
    pub ramp_day: u32,
    /// The last plan day and its planned volume.
    pub last_plan_day: Option<NaiveDate>,
    pub last_planned: u64,
    /// Over the last [`STATUS_HEALTH_DAYS`] days.
    pub health: Option<u8>,
    pub inbox_pct: Option<f64>,
    pub spam_pct: Option<f64>,
    pub held: Vec<(Provider, Hold)>,
}

/// Every campaign by name, with its ramp day, state, pause reason, holds and recent health.
pub async fn status_overview(
    store: &Store,
    now: i64,
) -> Result<Vec<CampaignStatusLine>, ReportError> {
    store::rollup::refresh(store, None, store::rollup::DEFAULT_BATCH).await?;
    let campaigns = store::campaigns::list(store.pool()).await?;
    let mut out = Vec::with_capacity(campaigns.len());
    for c in &campaigns {
        let report = report_for(store, c, STATUS_HEALTH_DAYS, now).await?;
        let (ramp_day, last) = store::rollup::plan_day_summary(store.pool(), c.id).await?;
        out.push(CampaignStatusLine {
            campaign: report.campaign,
            ramp_day,
            last_plan_day: last.map(|(d, _)| d),
            last_planned: last.map(|(_, n)| n).unwrap_or(0),
            health: report.health,
            inbox_pct: report.totals.inbox_pct,
            spam_pct: report.totals.spam_pct,
            held: holds_of(store, c.id).await?,
        });
    }
    Ok(out)
}

fn header(c: &CampaignRow) -> CampaignHeader {
    CampaignHeader {
        id: c.id,
        name: c.name.clone(),
        sender: c.sender_name.clone(),
        status: c.status,
        pause_reason: c.pause_reason,
        pause_detail: c.pause_detail.clone(),
    }
}

async fn holds_of(store: &Store, campaign_id: i64) -> Result<Vec<(Provider, Hold)>, StoreError> {
    Ok(store::holds::list_for_campaign(store.pool(), campaign_id)
        .await?
        .into_iter()
        .filter(|h| h.released_at.is_none())
        .map(|h| {
            (
                h.provider,
                Hold {
                    reason: h.reason,
                    detail: h.detail,
                    since: h.held_at,
                },
            )
        })
        .collect())
}

/// Today in the campaign's plan time zone (UTC when the stored plan cannot be read).
fn today(c: &CampaignRow, now: i64) -> NaiveDate {
    let tz = serde_json::from_str::<crate::startup::CampaignSpec>(&c.plan)
        .map(|s| s.plan.timezone)
        .unwrap_or(chrono_tz::UTC);
    crate::planner::local_date(tz, now)
}

/// Whether a pause reason is one the placement guard sets (and only a person lifts).
pub fn is_guard_reason(r: PauseReason) -> bool {
    matches!(r, PauseReason::Placement | PauseReason::Bounces)
}

/// The state words a person reads, e.g. `paused (placement: spam 44 % of the last 50)`.
pub fn describe_state(h: &CampaignHeader) -> String {
    match (h.status, h.pause_reason) {
        (CampaignStatus::Paused, Some(r)) => match &h.pause_detail {
            Some(d) => format!("paused ({r}: {d})"),
            None => format!("paused ({r})"),
        },
        (s, _) => s.to_string(),
    }
}
