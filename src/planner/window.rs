//! Local days and sending windows in the plan's time zone, and send times spread over them.
//!
//! Window hours are wall-clock hours: on a daylight-saving day a 09:00–17:00 window is still
//! 09:00–17:00 local, so it is 8 real hours long unless the change falls inside it. A local
//! time that does not exist (skipped by a spring-forward) moves forward by the gap, like a
//! clock that was not changed yet; one that exists twice (fall-back) opens a window at its
//! first occurrence and closes it at its second.

use chrono::{
    Datelike as _, Duration, NaiveDate, NaiveDateTime, NaiveTime, Offset as _, TimeZone as _,
};
use chrono_tz::Tz;
use rand::RngExt as _;

use crate::domain::WarmupPlan;

/// The local calendar day containing `now` in `tz`.
pub fn local_date(tz: Tz, now: i64) -> NaiveDate {
    let utc = chrono::DateTime::from_timestamp(now, 0).unwrap_or_default();
    tz.from_utc_datetime(&utc.naive_utc()).date_naive()
}

/// The instant of a local time; see the module notes for skipped and repeated times.
pub fn instant(tz: Tz, local: NaiveDateTime, late: bool) -> i64 {
    use chrono::LocalResult;
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.timestamp(),
        LocalResult::Ambiguous(early, later) => {
            if late {
                later.timestamp()
            } else {
                early.timestamp()
            }
        }
        LocalResult::None => {
            // In a gap: read the wall clock with the offset in force just before it.
            let before = tz
                .from_local_datetime(&(local - Duration::hours(3)))
                .earliest()
                .map_or(0, |t| i64::from(t.offset().fix().local_minus_utc()));
            local.and_utc().timestamp() - before
        }
    }
}

/// `[start, end)` of a local calendar day, in unix seconds (23 or 25 hours on DST days).
pub fn day_bounds(tz: Tz, date: NaiveDate) -> (i64, i64) {
    let next = date.succ_opt().unwrap_or(date);
    (
        instant(tz, date.and_time(NaiveTime::MIN), false),
        instant(tz, next.and_time(NaiveTime::MIN), false),
    )
}

/// `[open, close)` of the plan's sending window on `date`, or `None` when `date` is not one of
/// the window's weekdays.
pub fn window_on(plan: &WarmupPlan, date: NaiveDate) -> Option<(i64, i64)> {
    if !plan.window.days.contains(&date.weekday()) {
        return None;
    }
    let tz = plan.timezone;
    Some((
        instant(tz, date.and_time(plan.window.start), false),
        instant(tz, date.and_time(plan.window.end), true),
    ))
}

/// How many sends fit in `[from, close)` at least `gap` seconds apart.
pub fn fits(from: i64, close: i64, gap: i64) -> u32 {
    if close <= from {
        0
    } else if gap <= 0 {
        u32::MAX
    } else {
        u32::try_from((close - 1 - from) / gap + 1).unwrap_or(u32::MAX)
    }
}

/// `n` times in `[from, close)`, ascending, at least `gap` apart, each jittered inside its
/// own stretch of the spare time, so the day is covered evenly but never on a grid.
/// `n` must fit ([`fits`]).
pub fn spread(from: i64, close: i64, n: u32, gap: i64, rng: &mut impl rand::Rng) -> Vec<i64> {
    if n == 0 {
        return Vec::new();
    }
    let gap = gap.max(0);
    let n64 = i64::from(n);
    let slack = (close - 1 - from - (n64 - 1) * gap).max(0);
    (0..n64)
        .map(|i| {
            // i128: slack * (i + 1) can pass i64 only for absurd inputs, but never panic.
            let lo = (i128::from(slack) * i128::from(i) / i128::from(n64)) as i64;
            let hi = (i128::from(slack) * i128::from(i + 1) / i128::from(n64)) as i64;
            from + i * gap + rng.random_range(lo..=hi)
        })
        .collect()
}
