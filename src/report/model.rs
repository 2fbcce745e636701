//! The report's shapes and the pure aggregation that fills them from daily roll-ups.

use std::collections::BTreeMap;
use std::ops::AddAssign;

use chrono::NaiveDate;
use serde::Serialize;

use crate::domain::{CampaignStatus, PauseReason, Provider};

use super::health;
use super::latency::Histogram;

/// Message counts of one roll-up row, or of any sum of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Warm-up messages planned (outbox rows of the plan day, whatever became of them).
    pub planned: u64,
    pub sent: u64,
    /// Given up on at sending (refused by the relay or out of attempts): the bounces.
    pub failed: u64,
    /// Messages with a ledger row: found somewhere, or recorded missing.
    pub placed: u64,
    pub inbox: u64,
    pub spam: u64,
    pub promotions: u64,
    pub other: u64,
    pub missing: u64,
    /// Moved out of spam by the engagement worker.
    pub rescued: u64,
    pub replied: u64,
    pub spf_pass: u64,
    /// Messages whose receiver reported an SPF result at all.
    pub spf_seen: u64,
    pub dkim_pass: u64,
    pub dkim_seen: u64,
    pub dmarc_pass: u64,
    pub dmarc_seen: u64,
}

impl AddAssign<&Counts> for Counts {
    fn add_assign(&mut self, o: &Counts) {
        self.planned += o.planned;
        self.sent += o.sent;
        self.failed += o.failed;
        self.placed += o.placed;
        self.inbox += o.inbox;
        self.spam += o.spam;
        self.promotions += o.promotions;
        self.other += o.other;
        self.missing += o.missing;
        self.rescued += o.rescued;
        self.replied += o.replied;
        self.spf_pass += o.spf_pass;
        self.spf_seen += o.spf_seen;
        self.dkim_pass += o.dkim_pass;
        self.dkim_seen += o.dkim_seen;
        self.dmarc_pass += o.dmarc_pass;
        self.dmarc_seen += o.dmarc_seen;
    }
}

/// One roll-up row: a campaign's plan day at one provider.
#[derive(Debug, Clone, PartialEq)]
pub struct DayRollup {
    pub day: NaiveDate,
    pub provider: Provider,
    pub counts: Counts,
    pub latency: Histogram,
}

/// Counts and the rates derived from them. Percentages are of `placed` (messages whose
/// fate is known), rounded to 0.1; `None` when their denominator is zero.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metrics {
    #[serde(flatten)]
    pub counts: Counts,
    /// Found in some folder (`placed − missing`).
    pub seen: u64,
    pub inbox_pct: Option<f64>,
    pub spam_pct: Option<f64>,
    pub promotions_pct: Option<f64>,
    pub missing_pct: Option<f64>,
    /// `failed / (sent + failed)`.
    pub bounce_pct: Option<f64>,
    /// Median and 95th percentile from send to first sight, seconds (log-bucket histogram,
    /// within 9.1 % + 0.5 s: see `report::latency`).
    pub latency_p50_secs: Option<i64>,
    pub latency_p95_secs: Option<i64>,
    /// Of the messages whose receiver reported the result.
    pub spf_pass_pct: Option<f64>,
    pub dkim_pass_pct: Option<f64>,
    pub dmarc_pass_pct: Option<f64>,
}

fn pct(n: u64, of: u64) -> Option<f64> {
    (of > 0).then(|| (1000.0 * n as f64 / of as f64).round() / 10.0)
}

impl Metrics {
    pub fn new(c: Counts, latency: &Histogram) -> Metrics {
        Metrics {
            seen: c.placed.saturating_sub(c.missing),
            inbox_pct: pct(c.inbox, c.placed),
            spam_pct: pct(c.spam, c.placed),
            promotions_pct: pct(c.promotions, c.placed),
            missing_pct: pct(c.missing, c.placed),
            bounce_pct: pct(c.failed, c.sent + c.failed),
            latency_p50_secs: latency.quantile(0.5),
            latency_p95_secs: latency.quantile(0.95),
            spf_pass_pct: pct(c.spf_pass, c.spf_seen),
            dkim_pass_pct: pct(c.dkim_pass, c.dkim_seen),
            dmarc_pass_pct: pct(c.dmarc_pass, c.dmarc_seen),
            counts: c,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DayMetrics {
    pub day: NaiveDate,
    #[serde(flatten)]
    pub metrics: Metrics,
}

/// One provider over the report's days: every day of the range is listed (zeros included),
/// oldest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProviderReport {
    pub provider: Provider,
    /// The health score of this provider alone (same formula).
    pub health: Option<u8>,
    pub totals: Metrics,
    pub days: Vec<DayMetrics>,
    /// Set when the ramp is held for this provider (the planner skips its seeds).
    pub held: Option<Hold>,
}

/// Planned vs actual volume of one day, all providers together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct VolumeDay {
    pub day: NaiveDate,
    /// What the planner planned for the day (`campaign_days`); 0 on a day not planned.
    pub planned: u64,
    pub sent: u64,
    pub failed: u64,
}

/// A provider held for one campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hold {
    pub reason: PauseReason,
    pub detail: Option<String>,
    pub since: i64,
}

/// The campaign facts a report is headed with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CampaignHeader {
    pub id: i64,
    pub name: String,
    pub sender: String,
    pub status: CampaignStatus,
    pub pause_reason: Option<PauseReason>,
    pub pause_detail: Option<String>,
}

/// A campaign's placement, per provider and day, from `from` to `to` (inclusive, plan days
/// in the plan's time zone).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CampaignReport {
    pub campaign: CampaignHeader,
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// Unix seconds the report was built at.
    pub generated_at: i64,
    /// 0–100, see [`crate::report::health`]; `None` without placed messages in the range.
    pub health: Option<u8>,
    pub totals: Metrics,
    /// Providers with any message in the range, or held.
    pub providers: Vec<ProviderReport>,
    pub volume: Vec<VolumeDay>,
}

/// Everything [`build`] needs besides the roll-ups.
#[derive(Debug, Clone)]
pub struct ReportInput<'a> {
    pub campaign: CampaignHeader,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub generated_at: i64,
    pub rollups: &'a [DayRollup],
    /// `campaign_days`: the volume planned per day.
    pub planned: &'a [(NaiveDate, u64)],
    pub holds: &'a [(Provider, Hold)],
}

/// The pure aggregation: roll-up rows → the report. Rows outside `from..=to` are ignored.
pub fn build(input: ReportInput<'_>) -> CampaignReport {
    let (from, to) = (input.from, input.to);
    let days: Vec<NaiveDate> = from.iter_days().take_while(|d| *d <= to).collect();
    let age = |d: NaiveDate| u32::try_from((to - d).num_days()).unwrap_or(0);
    let mut by_provider: BTreeMap<Provider, BTreeMap<NaiveDate, (Counts, Histogram)>> =
        BTreeMap::new();
    let mut total_counts = Counts::default();
    let mut total_latency = Histogram::default();
    let mut per_day: BTreeMap<NaiveDate, Counts> = BTreeMap::new();
    for r in input
        .rollups
        .iter()
        .filter(|r| r.day >= from && r.day <= to)
    {
        let slot = by_provider
            .entry(r.provider)
            .or_default()
            .entry(r.day)
            .or_default();
        slot.0 += &r.counts;
        slot.1.merge(&r.latency);
        total_counts += &r.counts;
        total_latency.merge(&r.latency);
        *per_day.entry(r.day).or_default() += &r.counts;
    }
    for (p, _) in input.holds {
        by_provider.entry(*p).or_default();
    }
    let providers = by_provider
        .into_iter()
        .map(|(provider, filled)| {
            let mut counts = Counts::default();
            let mut latency = Histogram::default();
            let day_rows = days
                .iter()
                .map(|d| {
                    let (c, h) = filled.get(d).cloned().unwrap_or_default();
                    counts += &c;
                    latency.merge(&h);
                    DayMetrics {
                        day: *d,
                        metrics: Metrics::new(c, &h),
                    }
                })
                .collect();
            ProviderReport {
                provider,
                health: health::health_score(filled.iter().map(|(d, (c, _))| (age(*d), c))),
                totals: Metrics::new(counts, &latency),
                days: day_rows,
                held: input
                    .holds
                    .iter()
                    .find(|(p, _)| *p == provider)
                    .map(|(_, h)| h.clone()),
            }
        })
        .collect();
    let volume = days
        .iter()
        .map(|d| {
            let c = per_day.get(d).copied().unwrap_or_default();
            VolumeDay {
                day: *d,
                planned: input
                    .planned
                    .iter()
                    .filter(|(pd, _)| pd == d)
                    .map(|(_, n)| *n)
                    .sum(),
                sent: c.sent,
                failed: c.failed,
            }
        })
        .collect();
    CampaignReport {
        health: health::health_score(per_day.iter().map(|(d, c)| (age(*d), c))),
        campaign: input.campaign,
        from,
        to,
        generated_at: input.generated_at,
        totals: Metrics::new(total_counts, &total_latency),
        providers,
        volume,
    }
}

/// One CSV line: a provider's day (flat: the csv crate writes no nested structs).
#[derive(Debug, Clone, Serialize)]
pub struct CsvRow<'a> {
    pub campaign: &'a str,
    pub day: NaiveDate,
    pub provider: Provider,
    pub planned: u64,
    pub sent: u64,
    pub failed: u64,
    pub placed: u64,
    pub seen: u64,
    pub inbox: u64,
    pub spam: u64,
    pub promotions: u64,
    pub other: u64,
    pub missing: u64,
    pub rescued: u64,
    pub replied: u64,
    pub inbox_pct: Option<f64>,
    pub spam_pct: Option<f64>,
    pub promotions_pct: Option<f64>,
    pub missing_pct: Option<f64>,
    pub bounce_pct: Option<f64>,
    pub latency_p50_secs: Option<i64>,
    pub latency_p95_secs: Option<i64>,
    pub spf_pass_pct: Option<f64>,
    pub dkim_pass_pct: Option<f64>,
    pub dmarc_pass_pct: Option<f64>,
}

impl<'a> CsvRow<'a> {
    fn new(campaign: &'a str, day: NaiveDate, provider: Provider, m: &Metrics) -> Self {
        let c = &m.counts;
        CsvRow {
            campaign,
            day,
            provider,
            planned: c.planned,
            sent: c.sent,
            failed: c.failed,
            placed: c.placed,
            seen: m.seen,
            inbox: c.inbox,
            spam: c.spam,
            promotions: c.promotions,
            other: c.other,
            missing: c.missing,
            rescued: c.rescued,
            replied: c.replied,
            inbox_pct: m.inbox_pct,
            spam_pct: m.spam_pct,
            promotions_pct: m.promotions_pct,
            missing_pct: m.missing_pct,
            bounce_pct: m.bounce_pct,
            latency_p50_secs: m.latency_p50_secs,
            latency_p95_secs: m.latency_p95_secs,
            spf_pass_pct: m.spf_pass_pct,
            dkim_pass_pct: m.dkim_pass_pct,
            dmarc_pass_pct: m.dmarc_pass_pct,
        }
    }
}

impl CampaignReport {
    /// One row per provider and day, oldest first within each provider.
    pub fn csv_rows(&self) -> Vec<CsvRow<'_>> {
        self.providers
            .iter()
            .flat_map(|p| {
                p.days
                    .iter()
                    .map(|d| CsvRow::new(&self.campaign.name, d.day, p.provider, &d.metrics))
            })
            .collect()
    }

    /// The CSV document (a header line, then [`Self::csv_rows`]); empty rates are empty cells.
    pub fn to_csv(&self) -> Result<String, csv::Error> {
        let mut w = csv::Writer::from_writer(Vec::new());
        for row in self.csv_rows() {
            w.serialize(row)?;
        }
        let bytes = w.into_inner().map_err(|e| e.into_error())?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn roll(
        day: &str,
        provider: Provider,
        placed: u64,
        inbox: u64,
        sent: u64,
        lat: &[i64],
    ) -> DayRollup {
        let mut latency = Histogram::default();
        lat.iter().for_each(|l| latency.record(*l));
        DayRollup {
            day: d(day),
            provider,
            counts: Counts {
                planned: sent,
                sent,
                placed,
                inbox,
                spam: placed - inbox,
                ..Counts::default()
            },
            latency,
        }
    }

    #[test]
    fn build_table() {
        use Provider::{Gmail, Yahoo};
        let header = CampaignHeader {
            id: 1,
            name: "c".into(),
            sender: "s".into(),
            status: CampaignStatus::Active,
            pause_reason: None,
            pause_detail: None,
        };
        // (name, rollups, holds, from, to, expected: providers, totals (placed, inbox),
        //  inbox % of the first provider's last day, p50 of the totals)
        type Case = (
            &'static str,
            Vec<DayRollup>,
            Vec<(Provider, Hold)>,
            &'static str,
            &'static str,
            Vec<Provider>,
            (u64, u64),
            Option<f64>,
            Option<i64>,
        );
        let hold = Hold {
            reason: PauseReason::Placement,
            detail: None,
            since: 5,
        };
        let cases: Vec<Case> = vec![
            (
                "empty",
                vec![],
                vec![],
                "2026-11-01",
                "2026-11-03",
                vec![],
                (0, 0),
                None,
                None,
            ),
            (
                "rows outside the range are ignored",
                vec![
                    roll("2026-10-31", Gmail, 4, 4, 4, &[10]),
                    roll("2026-11-03", Gmail, 4, 1, 4, &[20, 20, 20]),
                ],
                vec![],
                "2026-11-01",
                "2026-11-03",
                vec![Gmail],
                (4, 1),
                Some(25.0),
                // 20 s falls in [19.03, 22.63): its middle, 21 s.
                Some(21),
            ),
            (
                "providers sum into totals; a held provider is listed",
                vec![
                    roll("2026-11-02", Gmail, 2, 2, 2, &[1]),
                    roll("2026-11-03", Gmail, 2, 0, 2, &[1]),
                ],
                vec![(Yahoo, hold.clone())],
                "2026-11-01",
                "2026-11-03",
                vec![Gmail, Yahoo],
                (4, 2),
                Some(0.0),
                Some(1),
            ),
        ];
        for (name, rollups, holds, from, to, providers, totals, last_inbox, p50) in cases {
            let r = build(ReportInput {
                campaign: header.clone(),
                from: d(from),
                to: d(to),
                generated_at: 0,
                rollups: &rollups,
                planned: &[(d(to), 7)],
                holds: &holds,
            });
            assert_eq!(
                r.providers.iter().map(|p| p.provider).collect::<Vec<_>>(),
                providers,
                "{name}"
            );
            assert_eq!(
                (r.totals.counts.placed, r.totals.counts.inbox),
                totals,
                "{name}"
            );
            assert!(r.providers.iter().all(|p| p.days.len() == 3), "{name}");
            assert_eq!(
                r.providers
                    .first()
                    .and_then(|p| p.days[2].metrics.inbox_pct),
                last_inbox,
                "{name}"
            );
            assert_eq!(r.totals.latency_p50_secs, p50, "{name}");
            assert_eq!(r.volume.len(), 3);
            assert_eq!(r.volume[2].planned, 7, "{name}");
            assert_eq!(
                r.providers.iter().any(|p| p.held.is_some()),
                !holds.is_empty(),
                "{name}"
            );
        }
    }
}
