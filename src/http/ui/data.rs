//! The numbers behind the dashboard's charts and seed table, read straight from the outbox and
//! the ledger with one `GROUP BY` each.
//!
//! Interim: the daily roll-ups of `src/report/` (branch wip-reports) will feed the charts once
//! merged; the renderers in `charts.rs` take plain [`Series`] and will not change.
//!
//! A day is the row's `plan_day` (the plan's own calendar day, in its time zone); rows without
//! one (none in production: the scheduler always sets it) fall back to the UTC day they were
//! sent.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate};
use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::charts::Series;
use crate::domain::{OutboxStatus, Placement, Provider, SendKind};
use crate::store::StoreError;

const DAY: i64 = 86_400;

/// Colour of each folder class in the placement charts.
pub fn placement_color(p: Placement) -> &'static str {
    match p {
        Placement::Inbox => "#2e7d32",
        Placement::Promotions => "#1565c0",
        Placement::Other => "#8d8d8d",
        Placement::Spam => "#c62828",
        Placement::Missing => "#f9a825",
    }
}

/// The stacking order of the placement charts: good news at the bottom.
pub const STACK_ORDER: [Placement; 5] = [
    Placement::Inbox,
    Placement::Promotions,
    Placement::Other,
    Placement::Spam,
    Placement::Missing,
];

fn corrupt(column: &'static str, detail: impl ToString) -> StoreError {
    StoreError::Corrupt {
        table: "outbox",
        column,
        detail: detail.to_string(),
    }
}

/// The row's day: its `plan_day`, or the UTC day of `epoch_day`.
fn row_day(r: &AnyRow) -> Result<Option<NaiveDate>, StoreError> {
    let plan_day: String = r.try_get("day")?;
    if !plan_day.is_empty() {
        return NaiveDate::parse_from_str(&plan_day, "%Y-%m-%d")
            .map(Some)
            .map_err(|e| corrupt("plan_day", format!("{plan_day:?}: {e}")));
    }
    let epoch_day: Option<i64> = r.try_get("epoch_day")?;
    Ok(epoch_day
        .and_then(|d| DateTime::from_timestamp(d * DAY, 0))
        .map(|t| t.date_naive()))
}

fn parsed<T: std::str::FromStr>(r: &AnyRow, col: &'static str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    let raw: String = r.try_get(col)?;
    raw.parse()
        .map_err(|e: T::Err| corrupt(col, format!("{raw:?}: {e}")))
}

/// Planned (from the day's plan) and sent warm-up messages per day since `since`, as two
/// series for [`super::charts::line_chart`].
pub async fn ramp(
    pool: &sqlx::AnyPool,
    campaign_id: i64,
    since: NaiveDate,
) -> Result<(Series, Series), StoreError> {
    let since_text = since.format("%Y-%m-%d").to_string();
    let since_ts = since
        .and_hms_opt(0, 0, 0)
        .map_or(0, |t| t.and_utc().timestamp());
    let mut planned = Series::new("planned", "#7e57c2");
    for r in sqlx::query(
        "SELECT plan_day AS day, sends FROM campaign_days \
         WHERE campaign_id = $1 AND plan_day >= $2 ORDER BY plan_day",
    )
    .bind(campaign_id)
    .bind(&since_text)
    .fetch_all(pool)
    .await?
    {
        let day: String = r.try_get("day")?;
        let day = NaiveDate::parse_from_str(&day, "%Y-%m-%d")
            .map_err(|e| corrupt("plan_day", format!("{day:?}: {e}")))?;
        let sends: i64 = r.try_get("sends")?;
        planned.points.push((day, sends as f64));
    }
    let mut sent: BTreeMap<NaiveDate, f64> = BTreeMap::new();
    for r in sqlx::query(
        "SELECT COALESCE(plan_day, '') AS day, sent_at / 86400 AS epoch_day, COUNT(*) AS n \
         FROM outbox WHERE campaign_id = $1 AND kind = $2 AND status = $3 \
           AND (plan_day >= $4 OR (plan_day IS NULL AND sent_at >= $5)) \
         GROUP BY COALESCE(plan_day, ''), sent_at / 86400",
    )
    .bind(campaign_id)
    .bind(SendKind::Warmup.as_str())
    .bind(OutboxStatus::Sent.as_str())
    .bind(&since_text)
    .bind(since_ts)
    .fetch_all(pool)
    .await?
    {
        if let Some(day) = row_day(&r)? {
            let n: i64 = r.try_get("n")?;
            *sent.entry(day).or_default() += n as f64;
        }
    }
    let mut sent_series = Series::new("sent", "#00897b");
    sent_series.points = sent.into_iter().collect();
    Ok((planned, sent_series))
}

/// Per provider (in [`Provider::ALL`] order, those with messages only): a series per folder
/// class in [`STACK_ORDER`], counting the campaign's placed warm-up messages per day.
pub async fn placements(
    pool: &sqlx::AnyPool,
    campaign_id: i64,
    since: NaiveDate,
) -> Result<Vec<(Provider, Vec<Series>)>, StoreError> {
    let since_text = since.format("%Y-%m-%d").to_string();
    let since_ts = since
        .and_hms_opt(0, 0, 0)
        .map_or(0, |t| t.and_utc().timestamp());
    let rows = sqlx::query(
        "SELECT COALESCE(o.plan_day, '') AS day, o.sent_at / 86400 AS epoch_day, \
           p.provider, p.placement, COUNT(*) AS n \
         FROM placements p JOIN outbox o ON o.id = p.outbox_id \
         WHERE o.campaign_id = $1 AND o.kind = $2 \
           AND (o.plan_day >= $3 OR (o.plan_day IS NULL AND o.sent_at >= $4)) \
         GROUP BY COALESCE(o.plan_day, ''), o.sent_at / 86400, p.provider, p.placement",
    )
    .bind(campaign_id)
    .bind(SendKind::Warmup.as_str())
    .bind(&since_text)
    .bind(since_ts)
    .fetch_all(pool)
    .await?;
    let mut counts: BTreeMap<(usize, usize, NaiveDate), f64> = BTreeMap::new();
    for r in &rows {
        let Some(day) = row_day(r)? else { continue };
        let provider: Provider = parsed(r, "provider")?;
        let placement: Placement = parsed(r, "placement")?;
        let n: i64 = r.try_get("n")?;
        let pi = Provider::ALL
            .iter()
            .position(|p| *p == provider)
            .unwrap_or(0);
        let ci = STACK_ORDER
            .iter()
            .position(|c| *c == placement)
            .unwrap_or(0);
        *counts.entry((pi, ci, day)).or_default() += n as f64;
    }
    let mut out: Vec<(Provider, Vec<Series>)> = Vec::new();
    for (pi, provider) in Provider::ALL.iter().enumerate() {
        if !counts.keys().any(|(p, _, _)| *p == pi) {
            continue;
        }
        let series = STACK_ORDER
            .iter()
            .enumerate()
            .map(|(ci, class)| {
                let mut s = Series::new(class.as_str(), placement_color(*class));
                s.points = counts
                    .iter()
                    .filter(|((p, c, _), _)| *p == pi && *c == ci)
                    .map(|((_, _, d), n)| (*d, *n))
                    .collect();
                s
            })
            .collect();
        out.push((*provider, series));
    }
    Ok(out)
}

/// What the seed table shows beside a seed's status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeedHealth {
    /// Messages found (or given up as missing) per folder class.
    pub placed: BTreeMap<&'static str, i64>,
    /// When a message was last found in this seed.
    pub last_seen: Option<i64>,
    /// The latest error of a send to this seed, and when it was due.
    pub last_error: Option<(String, i64)>,
}

/// [`SeedHealth`] of every seed that has any, by seed id.
pub async fn seed_health(pool: &sqlx::AnyPool) -> Result<BTreeMap<i64, SeedHealth>, StoreError> {
    let mut out: BTreeMap<i64, SeedHealth> = BTreeMap::new();
    for r in sqlx::query(
        "SELECT seed_id, placement, COUNT(*) AS n, MAX(seen_at) AS last_seen \
         FROM placements GROUP BY seed_id, placement",
    )
    .fetch_all(pool)
    .await?
    {
        let seed: i64 = r.try_get("seed_id")?;
        let placement: Placement = parsed(&r, "placement")?;
        let n: i64 = r.try_get("n")?;
        let seen: Option<i64> = r.try_get("last_seen")?;
        let h = out.entry(seed).or_default();
        h.placed.insert(placement.as_str(), n);
        h.last_seen = h.last_seen.max(seen);
    }
    // The newest failing row per seed: ids grow with time, so the largest id is the latest.
    for r in sqlx::query(
        "SELECT o.seed_id, o.last_error, o.run_at FROM outbox o \
         JOIN (SELECT seed_id, MAX(id) AS id FROM outbox WHERE last_error IS NOT NULL \
               GROUP BY seed_id) l ON l.id = o.id",
    )
    .fetch_all(pool)
    .await?
    {
        let seed: i64 = r.try_get("seed_id")?;
        let error: String = r.try_get("last_error")?;
        let at: i64 = r.try_get("run_at")?;
        out.entry(seed).or_default().last_error = Some((error, at));
    }
    Ok(out)
}
