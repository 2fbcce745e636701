//! The numbers behind the dashboard: the campaign's report (`report::report_for`, from the
//! daily roll-ups) turned into the plain [`Series`] the renderers in `charts.rs` draw, and the
//! seed table's counts (one `GROUP BY` each).

use std::collections::BTreeMap;

use chrono::NaiveDate;
use sqlx::Row as _;

use super::charts::Series;
use crate::domain::{Placement, Provider};
use crate::report::{CampaignReport, Counts, Hold};
use crate::store::StoreError;

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

fn count_of(c: &Counts, p: Placement) -> u64 {
    match p {
        Placement::Inbox => c.inbox,
        Placement::Promotions => c.promotions,
        Placement::Other => c.other,
        Placement::Spam => c.spam,
        Placement::Missing => c.missing,
    }
}

/// One provider's placement chart.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderChart {
    pub provider: Provider,
    /// The health score over the report's days (see `report::health`).
    pub health: Option<u8>,
    /// Held by the placement guard: the planner sends it nothing until released.
    pub held: Option<Hold>,
    /// A series per folder class, in [`STACK_ORDER`].
    pub series: Vec<Series>,
}

/// What the campaign page draws.
#[derive(Debug, Clone, PartialEq)]
pub struct CampaignCharts {
    /// Planned and sent per day.
    pub ramp: Vec<Series>,
    pub providers: Vec<ProviderChart>,
}

/// The report's days as chart series, from the first day anything was planned, sent or
/// placed (a campaign younger than the period is not drawn as weeks of zeros).
pub fn charts(r: &CampaignReport) -> CampaignCharts {
    let first = r
        .volume
        .iter()
        .filter(|v| v.planned > 0 || v.sent > 0)
        .map(|v| v.day)
        .chain(r.providers.iter().flat_map(|p| {
            p.days
                .iter()
                .filter(|d| d.metrics.counts.placed > 0)
                .map(|d| d.day)
        }))
        .min();
    let Some(first) = first else {
        return CampaignCharts {
            ramp: Vec::new(),
            providers: Vec::new(),
        };
    };
    let shown = |d: &NaiveDate| *d >= first;
    let mut planned = Series::new("planned", "#7e57c2");
    let mut sent = Series::new("sent", "#00897b");
    for v in r.volume.iter().filter(|v| shown(&v.day)) {
        planned.points.push((v.day, v.planned as f64));
        sent.points.push((v.day, v.sent as f64));
    }
    let providers = r
        .providers
        .iter()
        .map(|p| ProviderChart {
            provider: p.provider,
            health: p.health,
            held: p.held.clone(),
            series: STACK_ORDER
                .iter()
                .map(|class| {
                    let mut s = Series::new(class.as_str(), placement_color(*class));
                    s.points = p
                        .days
                        .iter()
                        .filter(|d| shown(&d.day))
                        .map(|d| (d.day, count_of(&d.metrics.counts, *class) as f64))
                        .collect();
                    s
                })
                .collect(),
        })
        .collect();
    CampaignCharts {
        ramp: vec![planned, sent],
        providers,
    }
}

fn parsed<T: std::str::FromStr>(r: &sqlx::any::AnyRow, col: &'static str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    let raw: String = r.try_get(col)?;
    raw.parse().map_err(|e: T::Err| StoreError::Corrupt {
        table: "placements",
        column: col,
        detail: format!("{raw:?}: {e}"),
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CampaignStatus;
    use crate::report::model::{CampaignHeader, DayRollup, ReportInput, build};

    fn d(day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, day).unwrap()
    }

    fn report(rollups: &[DayRollup], planned: &[(NaiveDate, u64)]) -> CampaignReport {
        build(ReportInput {
            campaign: CampaignHeader {
                id: 1,
                name: "c".into(),
                sender: "s".into(),
                status: CampaignStatus::Active,
                pause_reason: None,
                pause_detail: None,
            },
            from: d(1),
            to: d(10),
            generated_at: 0,
            rollups,
            planned,
            holds: &[],
        })
    }

    fn rollup(day: u32, provider: Provider, inbox: u64, spam: u64) -> DayRollup {
        DayRollup {
            day: d(day),
            provider,
            counts: Counts {
                sent: inbox + spam,
                placed: inbox + spam,
                inbox,
                spam,
                ..Counts::default()
            },
            latency: Default::default(),
        }
    }

    #[test]
    fn series_start_on_the_first_day_with_mail() {
        let r = report(
            &[
                rollup(8, Provider::Gmail, 3, 1),
                rollup(9, Provider::Gmail, 4, 0),
                rollup(9, Provider::Yahoo, 1, 1),
            ],
            &[(d(7), 4), (d(8), 5), (d(9), 6), (d(10), 7)],
        );
        let c = charts(&r);
        let [planned, sent] = &c.ramp[..] else {
            panic!("two ramp series: {:?}", c.ramp)
        };
        assert_eq!(
            planned.points,
            vec![(d(7), 4.0), (d(8), 5.0), (d(9), 6.0), (d(10), 7.0)]
        );
        assert_eq!(
            sent.points,
            vec![(d(7), 0.0), (d(8), 4.0), (d(9), 6.0), (d(10), 0.0)]
        );
        let providers: Vec<Provider> = c.providers.iter().map(|p| p.provider).collect();
        assert_eq!(providers, [Provider::Gmail, Provider::Yahoo]);
        let gmail = &c.providers[0].series;
        let labels: Vec<&str> = gmail.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(labels, ["inbox", "promotions", "other", "spam", "missing"]);
        assert_eq!(gmail[0].points[1], (d(8), 3.0));
        assert_eq!(gmail[3].points[1], (d(8), 1.0));
        assert!(c.providers[0].health.is_some());
    }

    #[test]
    fn nothing_yet_draws_nothing() {
        let c = charts(&report(&[], &[]));
        assert!(c.ramp.is_empty() && c.providers.is_empty());
    }
}
