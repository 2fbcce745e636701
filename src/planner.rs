//! Turns a campaign's plan into the day's sends. The core is pure (time passed in); the glue
//! below writes the result into the outbox in one transaction, once per campaign and day.
//!
//! This is the first, minimal planner: the day's volume from the ramp, one message per seed
//! per day, times spread evenly with jitter over what remains of the sending window.
//! Provider mix, daily variance and caps come with the full planner.

use chrono::{Datelike as _, TimeZone as _};

use crate::domain::WarmupPlan;

/// One planned send: which seed (index into the list given) and when (unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedSend {
    pub seed: usize,
    pub run_at: i64,
}

/// The local calendar day of `now` in the plan's zone, as `YYYY-MM-DD`.
pub fn plan_day(plan: &WarmupPlan, now: i64) -> String {
    let local = plan
        .timezone
        .timestamp_opt(now, 0)
        .single()
        .unwrap_or_else(|| {
            plan.timezone
                .timestamp_opt(0, 0)
                .single()
                .expect("epoch is unambiguous")
        });
    local.format("%Y-%m-%d").to_string()
}

/// The sends for the day containing `now`, given how many sending days came before.
/// Empty outside the window's days or after the window has closed.
pub fn plan_today(
    plan: &WarmupPlan,
    now: i64,
    sending_days_before: u32,
    seed_count: usize,
    mut jitter: impl FnMut(i64) -> i64,
) -> Vec<PlannedSend> {
    let Some(local) = plan.timezone.timestamp_opt(now, 0).single() else {
        return Vec::new();
    };
    if !plan.window.days.contains(&local.weekday()) {
        return Vec::new();
    }
    let date = local.date_naive();
    let at = |t: chrono::NaiveTime| {
        plan.timezone
            .from_local_datetime(&date.and_time(t))
            .earliest()
            .map(|d| d.timestamp())
    };
    let (Some(open), Some(close)) = (at(plan.window.start), at(plan.window.end)) else {
        return Vec::new();
    };
    let from = open.max(now);
    if from >= close {
        return Vec::new();
    }
    let count = (plan.base_volume(sending_days_before) as usize).min(seed_count);
    if count == 0 {
        return Vec::new();
    }
    let slot = (close - from) / count as i64;
    (0..count)
        .map(|i| {
            let start = from + slot * i as i64;
            let offset = if slot > 1 {
                jitter(slot).clamp(0, slot - 1)
            } else {
                0
            };
            PlannedSend {
                seed: i,
                run_at: start + offset,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{EngagementRates, Increase, SendingWindow};
    use chrono::{NaiveTime, Weekday};

    fn plan() -> WarmupPlan {
        WarmupPlan {
            start_per_day: 3,
            increase: Increase::Absolute(2),
            max_per_day: 10,
            maintenance_per_day: 10,
            variance_percent: 0,
            timezone: chrono_tz::Europe::Berlin,
            window: SendingWindow {
                days: vec![Weekday::Mon, Weekday::Tue],
                start: NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
                end: NaiveTime::from_hms_opt(17, 0, 0).unwrap(),
            },
            rates: EngagementRates::default(),
        }
    }

    fn ts(s: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp()
    }

    #[test]
    fn table() {
        let p = plan();
        // Monday 2026-11-30 06:00 UTC = 07:00 Berlin: before the window, whole window used.
        let mon = ts("2026-11-30T06:00:00Z");
        let got = plan_today(&p, mon, 0, 10, |_| 0);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].run_at, ts("2026-11-30T08:00:00Z"), "09:00 Berlin");
        assert!(got.iter().all(|s| s.run_at < ts("2026-11-30T16:00:00Z")));
        // Second sending day ramps; the pool caps it.
        assert_eq!(plan_today(&p, mon, 1, 10, |_| 0).len(), 5);
        assert_eq!(plan_today(&p, mon, 1, 4, |_| 0).len(), 4);
        // Wednesday is not a sending day; Monday after 17:00 Berlin is closed.
        assert!(plan_today(&p, ts("2026-12-02T10:00:00Z"), 0, 10, |_| 0).is_empty());
        assert!(plan_today(&p, ts("2026-11-30T16:30:00Z"), 0, 10, |_| 0).is_empty());
        // Mid-window: sends are spread over what remains, never in the past.
        let noon = ts("2026-11-30T11:00:00Z");
        let got = plan_today(&p, noon, 0, 10, |slot| slot / 2);
        assert!(got.iter().all(|s| s.run_at >= noon));
        assert_eq!(
            plan_day(&p, ts("2026-11-30T23:30:00Z")),
            "2026-12-01",
            "Berlin is UTC+1"
        );
    }

    #[test]
    fn dst_day_keeps_local_hours() {
        let p = plan();
        // Monday 2027-03-29, the day after Berlin moves to UTC+2: 09:00 local is 07:00 UTC.
        let got = plan_today(&p, ts("2027-03-29T05:00:00Z"), 0, 10, |_| 0);
        assert_eq!(got[0].run_at, ts("2027-03-29T07:00:00Z"));
    }
}
