//! Table-driven tests of the pure planner. Times are written in UTC (`Z`); window hours are
//! local to the plan's zone.

use chrono::{NaiveTime, Weekday};
use rand::SeedableRng as _;
use rand::rngs::StdRng;

use super::*;
use crate::domain::{EngagementRates, Increase, SendingWindow};

mod seeds;

const ALL_DAYS: [Weekday; 7] = [
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
    Weekday::Sat,
    Weekday::Sun,
];

fn ts(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp()
}

fn hm(s: &str) -> NaiveTime {
    NaiveTime::parse_from_str(s, "%H:%M").unwrap()
}

fn plan() -> WarmupPlan {
    WarmupPlan {
        start_per_day: 3,
        increase: Increase::Absolute(2),
        max_per_day: 10,
        maintenance_per_day: 8,
        variance_percent: 0,
        timezone: chrono_tz::Europe::Berlin,
        window: SendingWindow {
            days: ALL_DAYS.to_vec(),
            start: hm("09:00"),
            end: hm("17:00"),
        },
        provider_mix: None,
        pair_daily_max: 1,
        min_gap_secs: 120,
        rates: EngagementRates::default(),
    }
}

fn pool(spec: &[(Provider, usize)]) -> Vec<SeedState> {
    let mut id = 0;
    let mut out = Vec::new();
    for &(provider, n) in spec {
        for _ in 0..n {
            id += 1;
            out.push(SeedState {
                id,
                provider,
                last_sent_at: None,
                planned_today: 0,
                pair_today: 0,
                daily_cap: 2,
            });
        }
    }
    out
}

fn gmail(n: usize) -> Vec<SeedState> {
    pool(&[(Provider::Gmail, n)])
}

fn run(plan: &WarmupPlan, now: i64, before: u32, seeds: &[SeedState]) -> DayPlan {
    let input = DayInput {
        plan,
        now,
        sending_days_before: before,
        seeds,
        recent_by_provider: &[],
    };
    plan_day(&input, &mut StdRng::seed_from_u64(7))
}

/// Plans `days` consecutive days at 06:00 UTC, feeding each day's sends back into the seeds'
/// state as the store would. Returns each day's plan.
fn simulate(plan: &WarmupPlan, seeds: &mut [SeedState], start: &str, days: i64) -> Vec<DayPlan> {
    let mut recent: Vec<(i64, Provider)> = Vec::new();
    let mut sending_days = 0;
    let mut out = Vec::new();
    for d in 0..days {
        let now = ts(start) + d * 86_400;
        for s in seeds.iter_mut() {
            s.planned_today = 0;
            s.pair_today = 0;
        }
        let by_provider: Vec<(Provider, u32)> = Provider::ALL
            .iter()
            .map(|p| {
                let n = recent
                    .iter()
                    .filter(|(at, q)| q == p && *at > now - 7 * 86_400)
                    .count();
                (*p, n as u32)
            })
            .collect();
        let input = DayInput {
            plan,
            now,
            sending_days_before: sending_days,
            seeds,
            recent_by_provider: &by_provider,
        };
        let day = plan_day(
            &input,
            &mut StdRng::seed_from_u64(day_seed(1, &d.to_string())),
        );
        for send in &day.sends {
            let s = seeds.iter_mut().find(|s| s.id == send.seed_id).unwrap();
            s.planned_today += 1;
            s.pair_today += 1;
            s.last_sent_at = Some(s.last_sent_at.unwrap_or(0).max(send.run_at));
            recent.push((send.run_at, s.provider));
        }
        if !day.sends.is_empty() {
            sending_days += 1;
        }
        out.push(day);
    }
    out
}

#[test]
fn ramps() {
    // (increase, max, maintenance, volumes of sending days 0..)
    let cases: &[(Increase, u32, u32, &[u32])] = &[
        (Increase::Absolute(2), 10, 8, &[3, 5, 7, 9, 10, 8, 8]),
        (Increase::Absolute(0), 10, 10, &[3, 3, 3]),
        (Increase::Percent(50.0), 12, 6, &[3, 4, 6, 9, 12, 6]),
        (Increase::Percent(1.0), 6, 6, &[3, 4, 5, 6, 6]),
    ];
    let seeds = gmail(20);
    let mon = ts("2026-11-30T06:00:00Z");
    for (increase, max, maintenance, want) in cases {
        let mut p = plan();
        (p.increase, p.max_per_day, p.maintenance_per_day) = (*increase, *max, *maintenance);
        let got: Vec<u32> = (0..want.len() as u32)
            .map(|d| run(&p, mon, d, &seeds).sends.len() as u32)
            .collect();
        assert_eq!(got, *want, "{increase:?}");
    }
}

#[test]
fn variance_stays_in_bounds_and_is_reproducible() {
    let mut p = plan();
    p.variance_percent = 20;
    p.max_per_day = 200;
    p.start_per_day = 100;
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..500 {
        let v = volume(&p, 0, &mut StdRng::seed_from_u64(seed));
        assert!((80..=120).contains(&v), "{v}");
        seen.insert(v);
    }
    assert!(seen.len() > 20, "variance barely varies: {seen:?}");
    // At the maximum, variance never goes above it; small volumes never drop to zero.
    p.start_per_day = 200;
    assert!((0..200).all(|s| volume(&p, 0, &mut StdRng::seed_from_u64(s)) <= 200));
    p.start_per_day = 1;
    assert!((0..200).all(|s| volume(&p, 0, &mut StdRng::seed_from_u64(s)) >= 1));
    // Same campaign and day, same plan; another day, another plan.
    let seeds = gmail(300);
    let input = |now| DayInput {
        plan: &p,
        now,
        sending_days_before: 3,
        seeds: &seeds,
        recent_by_provider: &[],
    };
    let now = ts("2026-11-30T06:00:00Z");
    let a = plan_day(
        &input(now),
        &mut StdRng::seed_from_u64(day_seed(9, "2026-11-30")),
    );
    let b = plan_day(
        &input(now),
        &mut StdRng::seed_from_u64(day_seed(9, "2026-11-30")),
    );
    let c = plan_day(
        &input(now),
        &mut StdRng::seed_from_u64(day_seed(9, "2026-12-01")),
    );
    assert_eq!(a, b);
    assert_ne!(a.sends, c.sends);
}

#[test]
fn window_hours_are_local_on_dst_days() {
    // (date's first minute in UTC, window start, end, want open, want close (last send < it))
    let cases: &[(&str, &str, &str, &str, &str)] = &[
        // An ordinary winter day: Berlin is UTC+1.
        (
            "2026-11-30T00:00:00Z",
            "09:00",
            "17:00",
            "2026-11-30T08:00:00Z",
            "2026-11-30T16:00:00Z",
        ),
        // Spring forward, Sunday 2027-03-28 02:00 → 03:00: a window after it is UTC+2 ...
        (
            "2027-03-28T00:00:00Z",
            "09:00",
            "17:00",
            "2027-03-28T07:00:00Z",
            "2027-03-28T15:00:00Z",
        ),
        // ... one across it is an hour shorter ...
        (
            "2027-03-28T00:00:00Z",
            "01:00",
            "04:00",
            "2027-03-28T00:00:00Z",
            "2027-03-28T02:00:00Z",
        ),
        // ... and 02:30, which does not exist, opens at 03:30 summer time.
        (
            "2027-03-28T00:00:00Z",
            "02:30",
            "05:00",
            "2027-03-28T01:30:00Z",
            "2027-03-28T03:00:00Z",
        ),
        // Fall back, Sunday 2026-10-25 03:00 → 02:00: the day's window is an hour longer ...
        (
            "2026-10-25T00:00:00Z",
            "01:00",
            "04:00",
            "2026-10-24T23:00:00Z",
            "2026-10-25T03:00:00Z",
        ),
        // ... 02:30 happens twice: a window opens at the first and closes at the second.
        (
            "2026-10-25T00:00:00Z",
            "02:30",
            "02:45",
            "2026-10-25T00:30:00Z",
            "2026-10-25T01:45:00Z",
        ),
        (
            "2026-10-25T00:00:00Z",
            "09:00",
            "17:00",
            "2026-10-25T08:00:00Z",
            "2026-10-25T16:00:00Z",
        ),
    ];
    let seeds = gmail(50);
    for (day, start, end, open, close) in cases {
        let mut p = plan();
        (p.window.start, p.window.end) = (hm(start), hm(end));
        (p.start_per_day, p.max_per_day, p.min_gap_secs) = (30, 30, 60);
        // Plan from the day's local midnight (the UTC instant given is inside the local day).
        let date = local_date(p.timezone, ts(day) + 3 * 3600);
        let (midnight, _) = day_bounds(p.timezone, date);
        let got = run(&p, midnight, 0, &seeds);
        assert!(
            !got.sends.is_empty(),
            "{day} {start}-{end}: {:?}",
            got.short
        );
        let first = got.sends.first().unwrap().run_at;
        let last = got.sends.last().unwrap().run_at;
        assert!(
            first >= ts(open),
            "{day} {start}: first {first} before {open}"
        );
        assert!(
            first < ts(open) + 3600,
            "{day} {start}: first send far from the opening"
        );
        assert!(
            last < ts(close),
            "{day} {end}: last {last} not before {close}"
        );
        assert!(
            last > ts(close) - 3600,
            "{day} {end}: last send far from the closing"
        );
    }
    // The days themselves: 23 and 25 hours long.
    let tz = chrono_tz::Europe::Berlin;
    let len = |d: &str| {
        let (a, b) = day_bounds(tz, d.parse().unwrap());
        (b - a) / 3600
    };
    assert_eq!(
        (len("2027-03-28"), len("2026-10-25"), len("2026-11-30")),
        (23, 25, 24)
    );
}

#[test]
fn closed_and_skipped_days_plan_nothing_and_say_why() {
    let mut p = plan();
    p.window.days = vec![Weekday::Mon, Weekday::Tue];
    let seeds = gmail(10);
    // (now, expected shortfall)
    let cases: &[(&str, Shortfall)] = &[
        ("2026-12-02T10:00:00Z", Shortfall::NotASendingDay), // a Wednesday
        ("2026-11-30T16:00:00Z", Shortfall::WindowClosed),   // Monday 17:00 Berlin
    ];
    for (now, want) in cases {
        let got = run(&p, ts(now), 0, &seeds);
        assert!(got.sends.is_empty(), "{now}");
        assert_eq!(got.short, Some(*want), "{now}");
    }
    // 23:30 UTC Monday is 00:30 Tuesday in Berlin: a sending day, the whole window ahead.
    let tue = run(&p, ts("2026-11-30T23:30:00Z"), 0, &seeds);
    assert_eq!((tue.day(), tue.sends.len()), ("2026-12-01".to_owned(), 3));
    // Over two weeks of Mon/Tue windows the ramp moves only on sending days.
    let mut seeds = gmail(40);
    let days = simulate(&p, &mut seeds, "2026-11-30T06:00:00Z", 14);
    let volumes: Vec<usize> = days.iter().map(|d| d.sends.len()).collect();
    assert_eq!(volumes, [3, 5, 0, 0, 0, 0, 0, 7, 9, 0, 0, 0, 0, 0]);
}

#[test]
fn sends_keep_the_minimum_gap_inside_what_remains_of_the_window() {
    // (now, gap, volume, want sends, want short)
    let cases: &[(&str, u32, u32, usize, Option<Shortfall>)] = &[
        ("2026-11-30T06:00:00Z", 120, 10, 10, None),
        (
            "2026-11-30T06:00:00Z",
            3600,
            10,
            8,
            Some(Shortfall::WindowTooShort { fits: 8 }),
        ),
        // 16:50 Berlin: ten minutes left.
        (
            "2026-11-30T15:50:00Z",
            120,
            10,
            5,
            Some(Shortfall::WindowTooShort { fits: 5 }),
        ),
        ("2026-11-30T15:50:00Z", 0, 10, 10, None),
        (
            "2026-11-30T15:59:59Z",
            120,
            10,
            1,
            Some(Shortfall::WindowTooShort { fits: 1 }),
        ),
    ];
    let seeds = gmail(20);
    for &(now, gap, vol, want, short) in cases {
        let mut p = plan();
        (p.start_per_day, p.max_per_day, p.min_gap_secs) = (vol, vol, gap);
        let got = run(&p, ts(now), 0, &seeds);
        assert_eq!(
            (got.sends.len(), got.short),
            (want, short),
            "{now} gap {gap}"
        );
        let times: Vec<i64> = got.sends.iter().map(|s| s.run_at).collect();
        assert!(
            times.windows(2).all(|w| w[1] - w[0] >= i64::from(gap)),
            "{times:?}"
        );
        assert!(
            times
                .iter()
                .all(|t| *t >= ts(now) && *t < ts("2026-11-30T16:00:00Z"))
        );
    }
    // Spread over the whole window, not bunched at its start.
    let mut p = plan();
    (p.start_per_day, p.max_per_day) = (8, 8);
    let got = run(&p, ts("2026-11-30T06:00:00Z"), 0, &seeds);
    let hours: std::collections::BTreeSet<i64> = got
        .sends
        .iter()
        .map(|s| (s.run_at - ts("2026-11-30T08:00:00Z")) / 3600)
        .collect();
    assert_eq!(
        hours.len(),
        8,
        "one send in each hour of the window: {hours:?}"
    );
}
