//! A warm-up plan: how many messages a day, when, and how seeds react.
//! Built only from validated input; the planner (issue 4) reads it, the store keeps it as JSON.

use chrono::{NaiveTime, Weekday};
use serde::{Deserialize, Serialize};

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
    pub rates: EngagementRates,
}

impl WarmupPlan {
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
}
