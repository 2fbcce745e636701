//! The day's volume (ramp plus variance) and which seeds receive it (mix, caps, rotation).

use std::collections::VecDeque;

use rand::RngExt as _;

use crate::domain::{Provider, WarmupPlan};

use super::SeedState;

/// The volume for the `n`-th sending day: the ramp's, moved by up to ±`variance_percent`
/// (uniformly, from `rng`), never below 1 nor above `max_per_day`.
pub fn volume(plan: &WarmupPlan, sending_days_before: u32, rng: &mut impl rand::Rng) -> u32 {
    let base = plan.base_volume(sending_days_before);
    if base == 0 || plan.variance_percent == 0 {
        return base;
    }
    let v = f64::from(plan.variance_percent) / 100.0;
    let moved = (f64::from(base) * (1.0 + rng.random_range(-v..=v))).round();
    (moved as u32).clamp(1, plan.max_per_day.max(base))
}

/// How many more sends the seed may receive today from this campaign.
pub fn room(plan: &WarmupPlan, s: &SeedState) -> u32 {
    let by_cap = s.daily_cap.saturating_sub(s.planned_today);
    let by_pair = plan.pair_daily_max.saturating_sub(s.pair_today);
    by_cap.min(by_pair)
}

/// One provider's seeds in turn: least recently sent-to by this sender first (never first of
/// all), then the least loaded today (so senders new to the pool share it), then by id; a
/// seed picked today goes to the back while it has room left.
struct Rotation {
    queue: VecDeque<(usize, u32)>,
}

impl Rotation {
    /// `candidates` are (index into the seeds, room); only the `want` first in turn are
    /// ordered, the rest follow in any order (they are reached only once all have had a turn).
    fn new(seeds: &[SeedState], mut candidates: Vec<(usize, u32)>, want: usize) -> Self {
        let key = |&(i, _): &(usize, u32)| {
            let s = &seeds[i];
            (s.last_sent_at.unwrap_or(i64::MIN), s.planned_today, s.id)
        };
        let k = want.min(candidates.len());
        if k > 0 && k < candidates.len() {
            candidates.select_nth_unstable_by_key(k - 1, key);
        }
        candidates[..k].sort_unstable_by_key(key);
        Rotation {
            queue: candidates.into(),
        }
    }

    fn next(&mut self) -> Option<usize> {
        let (i, room) = self.queue.pop_front()?;
        if room > 1 {
            self.queue.push_back((i, room - 1));
        }
        Some(i)
    }
}

/// Up to `n` picks (indices into `seeds`, a seed may repeat when its room allows). Without a
/// mix, the whole pool rotates as one. With a mix, each pick goes to the provider furthest
/// below its share, counting this campaign's `recent` sends, so the shares hold over days
/// even when a day's volume is too small to split; a provider with no room left is skipped
/// and the others fill in. Providers outside the mix are never picked.
pub fn pick(
    plan: &WarmupPlan,
    seeds: &[SeedState],
    recent: &[(Provider, u32)],
    n: u32,
) -> Vec<usize> {
    let want = n as usize;
    let candidates = |provider: Option<Provider>| -> Vec<(usize, u32)> {
        seeds
            .iter()
            .enumerate()
            .filter(|(_, s)| provider.is_none_or(|p| s.provider == p))
            .map(|(i, s)| (i, room(plan, s)))
            .filter(|&(_, r)| r > 0)
            .collect()
    };
    let Some(mix) = &plan.provider_mix else {
        let mut all = Rotation::new(seeds, candidates(None), want);
        return std::iter::from_fn(|| all.next()).take(want).collect();
    };
    let mut lanes: Vec<(f64, f64, Rotation)> = mix
        .shares()
        .iter()
        .map(|&(p, share)| {
            let done = recent
                .iter()
                .filter(|(q, _)| *q == p)
                .map(|(_, c)| f64::from(*c))
                .sum();
            (share, done, Rotation::new(seeds, candidates(Some(p)), want))
        })
        .collect();
    let mut total: f64 = lanes.iter().map(|(_, done, _)| done).sum();
    let mut picks = Vec::with_capacity(want);
    while picks.len() < want {
        // The lane most below its share once this pick is made; ties go to the mix's order.
        let best = lanes
            .iter_mut()
            .filter(|(_, _, r)| !r.queue.is_empty())
            .max_by(|a, b| {
                let owed = |l: &(f64, f64, Rotation)| l.0 * (total + 1.0) - l.1;
                owed(a)
                    .total_cmp(&owed(b))
                    .then(std::cmp::Ordering::Greater)
            });
        let Some((_, done, rotation)) = best else {
            break;
        };
        let Some(i) = rotation.next() else { break };
        *done += 1.0;
        total += 1.0;
        picks.push(i);
    }
    picks
}
