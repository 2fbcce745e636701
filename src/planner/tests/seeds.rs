//! Seed choice: pool size, caps across campaigns, the pair limit, the provider mix and
//! rotation.

use super::*;

#[test]
fn small_pools_caps_and_pairs_limit_the_day() {
    // (seeds, daily_cap, already today, pair max, pair already, volume, want sends, want short)
    type Case = (usize, u32, u32, u32, u32, u32, usize, Option<Shortfall>);
    let cases: &[Case] = &[
        (10, 2, 0, 1, 0, 5, 5, None),
        (
            4,
            2,
            0,
            1,
            0,
            5,
            4,
            Some(Shortfall::SeedCapacity { available: 4 }),
        ),
        (4, 2, 0, 2, 0, 5, 5, None),
        (
            4,
            2,
            0,
            3,
            0,
            10,
            8,
            Some(Shortfall::SeedCapacity { available: 8 }),
        ),
        // Other campaigns already filled the caps.
        (
            4,
            2,
            2,
            1,
            0,
            5,
            0,
            Some(Shortfall::SeedCapacity { available: 0 }),
        ),
        (
            4,
            2,
            1,
            2,
            0,
            5,
            4,
            Some(Shortfall::SeedCapacity { available: 4 }),
        ),
        // This sender already reached each seed today (another of its campaigns).
        (
            4,
            5,
            1,
            1,
            1,
            5,
            0,
            Some(Shortfall::SeedCapacity { available: 0 }),
        ),
        (
            0,
            2,
            0,
            1,
            0,
            5,
            0,
            Some(Shortfall::SeedCapacity { available: 0 }),
        ),
    ];
    for (i, &(n, cap, today, pair_max, pair, vol, want, short)) in cases.iter().enumerate() {
        let mut p = plan();
        (p.start_per_day, p.max_per_day, p.pair_daily_max) = (vol, vol, pair_max);
        let mut seeds = gmail(n);
        for s in &mut seeds {
            (s.daily_cap, s.planned_today, s.pair_today) = (cap, today, pair);
        }
        let got = run(&p, ts("2026-11-30T06:00:00Z"), 0, &seeds);
        assert_eq!((got.sends.len(), got.short), (want, short), "case {i}");
        for s in &seeds {
            let mine = got.sends.iter().filter(|x| x.seed_id == s.id).count() as u32;
            assert!(mine + today <= cap && mine + pair <= pair_max, "case {i}");
        }
    }
}

#[test]
fn caps_hold_across_campaigns() {
    // Three campaigns of three senders plan one after another over a shared pool: the
    // second sees what the first planned (as the store would report it).
    let mut seeds = pool(&[(Provider::Gmail, 3), (Provider::Yahoo, 2)]);
    let mut p = plan();
    (p.start_per_day, p.max_per_day) = (4, 4);
    let mut got = Vec::new();
    for _ in 0..3 {
        for s in &mut seeds {
            s.pair_today = 0;
        }
        let day = run(&p, ts("2026-11-30T06:00:00Z"), 0, &seeds);
        for send in &day.sends {
            let s = seeds.iter_mut().find(|s| s.id == send.seed_id).unwrap();
            s.planned_today += 1;
            s.pair_today += 1;
        }
        got.push(day.sends.len());
    }
    assert_eq!(got, [4, 4, 2], "5 seeds × cap 2 = 10 messages a day in all");
    assert!(seeds.iter().all(|s| s.planned_today == 2));
}

#[test]
fn provider_mix_holds_over_a_week() {
    let mut p = plan();
    (
        p.start_per_day,
        p.increase,
        p.max_per_day,
        p.maintenance_per_day,
    ) = (7, Increase::Absolute(0), 7, 7);
    p.variance_percent = 15;
    p.provider_mix = Some(
        vec![
            (Provider::Gmail, 50.0),
            (Provider::Outlook, 30.0),
            (Provider::Yahoo, 20.0),
        ]
        .try_into()
        .unwrap(),
    );
    // Uneven pool sizes, and a provider outside the mix that must never be used.
    let mut seeds = pool(&[
        (Provider::Gmail, 8),
        (Provider::Outlook, 3),
        (Provider::Yahoo, 6),
        (Provider::Other, 5),
    ]);
    let days = simulate(&p, &mut seeds, "2026-11-30T06:00:00Z", 7);
    let provider_of = |id| seeds.iter().find(|s| s.id == id).unwrap().provider;
    let sends: Vec<Provider> = days
        .iter()
        .flat_map(|d| &d.sends)
        .map(|s| provider_of(s.seed_id))
        .collect();
    let total = sends.len() as f64;
    for (provider, share) in [
        (Provider::Gmail, 0.5),
        (Provider::Outlook, 0.3),
        (Provider::Yahoo, 0.2),
    ] {
        let n = sends.iter().filter(|p| **p == provider).count() as f64;
        assert!(
            (n - share * total).abs() <= 1.0,
            "{provider}: {n} of {total}"
        );
    }
    assert!(!sends.contains(&Provider::Other));
    // A provider whose seeds are full yields to the others; the volume is kept.
    let mut seeds = pool(&[(Provider::Gmail, 1), (Provider::Outlook, 10)]);
    p.variance_percent = 0;
    let day = run(&p, ts("2026-11-30T06:00:00Z"), 0, &seeds);
    assert_eq!((day.sends.len(), day.short), (7, None));
    seeds.retain(|s| s.provider == Provider::Gmail);
    let day = run(&p, ts("2026-11-30T06:00:00Z"), 0, &seeds);
    assert_eq!(day.short, Some(Shortfall::SeedCapacity { available: 1 }));
}

#[test]
fn rotation_is_fair_within_one() {
    // (pool, daily volume, days)
    let cases: &[(usize, u32, i64)] = &[(7, 3, 20), (5, 5, 9), (13, 4, 30), (3, 1, 10)];
    for &(n, vol, days) in cases {
        let mut p = plan();
        (p.start_per_day, p.max_per_day, p.maintenance_per_day) = (vol, vol, vol);
        let mut seeds = gmail(n);
        let plans = simulate(&p, &mut seeds, "2026-11-30T06:00:00Z", days);
        let mut counts = vec![0; n];
        for day in &plans {
            for s in &day.sends {
                counts[(s.seed_id - 1) as usize] += 1;
            }
            let (lo, hi) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
            assert!(hi - lo <= 1, "pool {n}, volume {vol}: {counts:?}");
        }
    }
}
