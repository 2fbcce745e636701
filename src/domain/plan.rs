//! A warm-up plan: how many messages a day, when, to which providers, and how seeds react.
//! Built only from validated input; the planner reads it, the store keeps it as JSON.

use chrono::{NaiveTime, Weekday};
use serde::{Deserialize, Serialize};

use super::Provider;

/// How the daily volume grows from one sending day to the next.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum Increase {
    /// Add this many messages per sending day.
    Absolute(u32),
    /// Grow by this percentage per sending day, at least +1.
    Percent(f64),
}

/// Days and local hours in which a campaign may send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendingWindow {
    pub days: Vec<Weekday>,
    pub start: NaiveTime,
    pub end: NaiveTime,
}

/// Rates in 0.0..=1.0 at which seed workers act on a found message.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EngagementRates {
    pub open: f64,
    pub star: f64,
    pub important: f64,
    pub rescue: f64,
    pub reply: f64,
}

impl Default for EngagementRates {
    /// Defaults: always open and rescue, star a third, mark important a fifth, reply ~30 %.
    fn default() -> Self {
        Self {
            open: 1.0,
            star: 0.33,
            important: 0.2,
            rescue: 1.0,
            reply: 0.3,
        }
    }
}

/// Target shares of the day's sends per provider: each share above zero, no provider twice,
/// normalised to sum to 1. Built with `TryFrom<Vec<(Provider, f64)>>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Vec<(Provider, f64)>", into = "Vec<(Provider, f64)>")]
pub struct ProviderMix(Vec<(Provider, f64)>);

impl ProviderMix {
    /// Each provider with its share (0 < share <= 1, summing to 1), in the order given.
    pub fn shares(&self) -> &[(Provider, f64)] {
        &self.0
    }

    /// The share of `provider`; 0 for a provider the mix leaves out.
    pub fn share(&self, provider: Provider) -> f64 {
        self.0
            .iter()
            .find(|(p, _)| *p == provider)
            .map_or(0.0, |(_, s)| *s)
    }
}

impl TryFrom<Vec<(Provider, f64)>> for ProviderMix {
    type Error = String;

    fn try_from(shares: Vec<(Provider, f64)>) -> Result<Self, String> {
        if shares.is_empty() {
            return Err("expected at least one provider".into());
        }
        for (i, (p, share)) in shares.iter().enumerate() {
            if !share.is_finite() || *share <= 0.0 {
                return Err(format!("{p}: expected a share above 0, got {share}"));
            }
            if shares[..i].iter().any(|(q, _)| q == p) {
                return Err(format!("{p}: given twice"));
            }
        }
        let total: f64 = shares.iter().map(|(_, s)| s).sum();
        Ok(Self(
            shares.into_iter().map(|(p, s)| (p, s / total)).collect(),
        ))
    }
}

impl From<ProviderMix> for Vec<(Provider, f64)> {
    fn from(mix: ProviderMix) -> Self {
        mix.0
    }
}

fn default_pair_daily_max() -> u32 {
    WarmupPlan::DEFAULT_PAIR_DAILY_MAX
}

fn default_min_gap_secs() -> u32 {
    WarmupPlan::DEFAULT_MIN_GAP_SECS
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WarmupPlan {
    pub start_per_day: u32,
    pub increase: Increase,
    pub max_per_day: u32,
    /// Volume per day once `max_per_day` has been reached.
    pub maintenance_per_day: u32,
    /// Random daily variation, in percent (e.g. 15 means ±15 %).
    pub variance_percent: u32,
    pub timezone: chrono_tz::Tz,
    pub window: SendingWindow,
    /// Target shares per provider; `None` spreads over the pool as it is (every seed in turn).
    #[serde(default)]
    pub provider_mix: Option<ProviderMix>,
    /// Most messages a day from the campaign's sender to one seed.
    #[serde(default = "default_pair_daily_max")]
    pub pair_daily_max: u32,
    /// Least time between two sends of the campaign, in seconds.
    #[serde(default = "default_min_gap_secs")]
    pub min_gap_secs: u32,
    pub rates: EngagementRates,
}

impl WarmupPlan {
    /// Default of [`WarmupPlan::pair_daily_max`]: one message a day from a sender to a seed.
    pub const DEFAULT_PAIR_DAILY_MAX: u32 = 1;
    /// Default of [`WarmupPlan::min_gap_secs`]: two minutes between two sends of a campaign.
    pub const DEFAULT_MIN_GAP_SECS: u32 = 120;

    /// The un-jittered volume for the `n`-th sending day (0-based).
    pub fn base_volume(&self, sending_day: u32) -> u32 {
        let mut v = self.start_per_day;
        for _ in 0..sending_day {
            if v >= self.max_per_day {
                return self.maintenance_per_day;
            }
            v = match self.increase {
                Increase::Absolute(n) => v.saturating_add(n),
                Increase::Percent(p) => {
                    let grown = (f64::from(v) * (1.0 + p / 100.0)).floor() as u32;
                    grown.max(v + 1)
                }
            };
        }
        v.min(self.max_per_day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(increase: Increase) -> WarmupPlan {
        WarmupPlan {
            start_per_day: 5,
            increase,
            max_per_day: 20,
            maintenance_per_day: 15,
            variance_percent: 0,
            timezone: chrono_tz::UTC,
            window: SendingWindow {
                days: vec![Weekday::Mon],
                start: NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
                end: NaiveTime::from_hms_opt(18, 0, 0).unwrap(),
            },
            provider_mix: None,
            pair_daily_max: WarmupPlan::DEFAULT_PAIR_DAILY_MAX,
            min_gap_secs: WarmupPlan::DEFAULT_MIN_GAP_SECS,
            rates: EngagementRates::default(),
        }
    }

    #[test]
    fn ramps() {
        let abs = plan(Increase::Absolute(3));
        let got: Vec<u32> = (0..9).map(|d| abs.base_volume(d)).collect();
        assert_eq!(got, [5, 8, 11, 14, 17, 20, 15, 15, 15]);
        let pct = plan(Increase::Percent(10.0));
        let got: Vec<u32> = (0..4).map(|d| pct.base_volume(d)).collect();
        assert_eq!(got, [5, 6, 7, 8], "a percent step is at least +1");
    }

    #[test]
    fn ramps_in_maintenance_and_with_one_day() {
        let mut p = plan(Increase::Percent(50.0));
        assert_eq!(
            (0..6).map(|d| p.base_volume(d)).collect::<Vec<_>>(),
            [5, 7, 10, 15, 20, 15]
        );
        p.start_per_day = 20;
        assert_eq!(
            p.base_volume(0),
            20,
            "the first day may already be the maximum"
        );
        assert_eq!(p.base_volume(1), 15);
    }

    #[test]
    fn provider_mix_is_normalised_and_checked() {
        let mix = ProviderMix::try_from(vec![
            (Provider::Gmail, 50.0),
            (Provider::Outlook, 30.0),
            (Provider::Yahoo, 20.0),
        ])
        .unwrap();
        assert!((mix.share(Provider::Gmail) - 0.5).abs() < 1e-9);
        assert!((mix.share(Provider::Yahoo) - 0.2).abs() < 1e-9);
        assert_eq!(mix.share(Provider::Other), 0.0);
        let back: ProviderMix =
            serde_json::from_str(&serde_json::to_string(&mix).unwrap()).unwrap();
        assert_eq!(back, mix);
        let bad = [
            vec![],
            vec![(Provider::Gmail, 0.0)],
            vec![(Provider::Gmail, -1.0)],
            vec![(Provider::Gmail, 1.0), (Provider::Gmail, 2.0)],
        ];
        for shares in bad {
            assert!(ProviderMix::try_from(shares.clone()).is_err(), "{shares:?}");
        }
    }

    #[test]
    fn plans_stored_before_the_mix_read_with_defaults() {
        let mut old = serde_json::to_value(plan(Increase::Absolute(1))).unwrap();
        let obj = old.as_object_mut().unwrap();
        for k in ["provider_mix", "pair_daily_max", "min_gap_secs"] {
            obj.remove(k);
        }
        let p: WarmupPlan = serde_json::from_value(old).unwrap();
        assert_eq!((p.pair_daily_max, p.min_gap_secs), (1, 120));
        assert_eq!(p.provider_mix, None);
    }
}
