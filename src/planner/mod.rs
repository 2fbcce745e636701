//! Pure planning: a plan, the time and the seeds' state → the day's sends. No IO; time and
//! randomness come in as arguments, so a seeded RNG makes a day reproducible.
//!
//! - Volume: the ramp counts sending days (days that planned at least one send), then
//!   daily variance moves it by up to ±`variance_percent`, capped by `max_per_day`.
//! - Seeds: each seed may receive `daily_cap` messages a day from all campaigns together and
//!   `pair_daily_max` from this campaign's sender; within that, the provider mix decides
//!   the provider and rotation the seed (least recently sent-to first).
//! - Times: spread over what remains of the local sending window with jitter, at least
//!   `min_gap_secs` apart. When the window or the pool cannot hold the volume, fewer are
//!   planned and [`DayPlan::short`] says why.

mod select;
#[cfg(test)]
mod tests;
mod window;

use std::fmt;

use chrono::NaiveDate;

use crate::domain::{Provider, WarmupPlan};

pub use select::volume;
pub use window::{day_bounds, local_date};

/// What the planner needs to know about one candidate seed on the day being planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedState {
    pub id: i64,
    pub provider: Provider,
    /// When this campaign's sender last had a message planned for the seed; `None` = never.
    pub last_sent_at: Option<i64>,
    /// Messages the seed already receives this local day, from every campaign.
    pub planned_today: u32,
    /// Messages the seed already receives this local day from this campaign's sender.
    pub pair_today: u32,
    /// Most messages the seed may receive in a day, from every campaign together.
    pub daily_cap: u32,
}

/// Everything one campaign's day depends on.
#[derive(Debug, Clone, Copy)]
pub struct DayInput<'a> {
    pub plan: &'a WarmupPlan,
    pub now: i64,
    /// Sending days (days with at least one send) before this one: the ramp's position.
    pub sending_days_before: u32,
    pub seeds: &'a [SeedState],
    /// This campaign's sends per provider over the last days, so the mix can catch up.
    pub recent_by_provider: &'a [(Provider, u32)],
}

/// One planned send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedSend {
    pub seed_id: i64,
    /// Unix seconds.
    pub run_at: i64,
}

/// Why a day plans fewer sends than its volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shortfall {
    /// The day's weekday is not in the window.
    NotASendingDay,
    /// The window has already closed today.
    WindowClosed,
    /// Seeds with room left today (caps, pair limit, mix, pool size) allow only this many.
    SeedCapacity { available: u32 },
    /// What remains of the window holds only this many sends `min_gap_secs` apart.
    WindowTooShort { fits: u32 },
}

impl fmt::Display for Shortfall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shortfall::NotASendingDay => f.write_str("not a sending day"),
            Shortfall::WindowClosed => f.write_str("the sending window has closed"),
            Shortfall::SeedCapacity { available } => write!(
                f,
                "seeds have room for only {available} (daily caps, one pair a day, pool size)"
            ),
            Shortfall::WindowTooShort { fits } => write!(
                f,
                "the rest of the window holds only {fits} sends at the minimum gap"
            ),
        }
    }
}

/// The day's plan for one campaign.
#[derive(Debug, Clone, PartialEq)]
pub struct DayPlan {
    /// The local calendar day planned (the plan's time zone).
    pub date: NaiveDate,
    /// The volume the ramp and variance ask for.
    pub volume: u32,
    /// In `run_at` order.
    pub sends: Vec<PlannedSend>,
    /// Set when fewer than `volume` were planned.
    pub short: Option<Shortfall>,
}

impl DayPlan {
    /// The day as stored in the outbox and `campaign_days`: `YYYY-MM-DD`.
    pub fn day(&self) -> String {
        self.date.format("%Y-%m-%d").to_string()
    }
}

/// Plans the local day containing `input.now`. The RNG drives variance, then jitter; the
/// same input and seed give the same plan.
pub fn plan_day(input: &DayInput<'_>, rng: &mut impl rand::Rng) -> DayPlan {
    let plan = input.plan;
    let date = local_date(plan.timezone, input.now);
    let volume = volume(plan, input.sending_days_before, rng);
    let empty = |short| DayPlan {
        date,
        volume,
        sends: Vec::new(),
        short: Some(short),
    };
    let Some((open, close)) = window::window_on(plan, date) else {
        return empty(Shortfall::NotASendingDay);
    };
    let from = open.max(input.now);
    let gap = i64::from(plan.min_gap_secs);
    let fits = window::fits(from, close, gap);
    if fits == 0 {
        return empty(Shortfall::WindowClosed);
    }
    let picks = select::pick(
        plan,
        input.seeds,
        input.recent_by_provider,
        volume.min(fits),
    );
    let short = if (picks.len() as u32) < volume.min(fits) {
        Some(Shortfall::SeedCapacity {
            available: picks.len() as u32,
        })
    } else if fits < volume {
        Some(Shortfall::WindowTooShort { fits })
    } else {
        None
    };
    // Times go out in rotation order: the rotation's queue keeps its order from day to day,
    // which is what makes it fair (each seed within one of the others).
    let times = window::spread(from, close, picks.len() as u32, gap, rng);
    let sends = picks
        .into_iter()
        .zip(times)
        .map(|(i, run_at)| PlannedSend {
            seed_id: input.seeds[i].id,
            run_at,
        })
        .collect();
    DayPlan {
        date,
        volume,
        sends,
        short,
    }
}

/// A stable RNG seed for a campaign's day (the same on every node and every retry).
pub fn day_seed(campaign_id: i64, day: &str) -> u64 {
    // FNV-1a over the day, then mixed with the id (splitmix64's finaliser).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in day.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let mut z = h ^ (campaign_id as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
