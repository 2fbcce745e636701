//! The health score of a campaign (or of one provider): 0–100, weighted toward recent days.
//!
//! ```text
//! quality(d) = (inbox + 0.75·promotions + 0.5·other) / placed        spam and missing: 0
//! bounce(d)  = failed / (sent + failed)
//! score(d)   = quality(d) · max(0, 1 − 10·bounce(d))                   10 % bounces zero a day
//! weight(d)  = placed(d) · 2^(−age(d) / 7)                             age in days, 0 = today
//! health     = round(100 · Σ weight(d)·score(d) / Σ weight(d))
//! ```
//!
//! Only days with placed messages count (a day's weight is its sample size), and a day's
//! weight halves every 7 days of age, so last week counts about twice as much as the week
//! before. No placed message in the window: no score (`None`), never a made-up 100.

use super::model::Counts;

/// Half-life of a day's weight, in days.
pub const HALF_LIFE_DAYS: f64 = 7.0;
/// Bounce rate at which a day scores zero.
pub const BOUNCE_ZERO: f64 = 0.10;

/// One day's quality in 0..=1, before weighting; `None` without placed messages.
pub fn day_score(c: &Counts) -> Option<f64> {
    if c.placed == 0 {
        return None;
    }
    let quality =
        (c.inbox as f64 + 0.75 * c.promotions as f64 + 0.5 * c.other as f64) / c.placed as f64;
    let attempted = c.sent + c.failed;
    let bounce = if attempted == 0 {
        0.0
    } else {
        c.failed as f64 / attempted as f64
    };
    Some(quality * (1.0 - bounce / BOUNCE_ZERO).max(0.0))
}

/// The health score over days given as `(age in days, counts)`.
pub fn health_score<'a>(days: impl IntoIterator<Item = (u32, &'a Counts)>) -> Option<u8> {
    let (mut num, mut den) = (0.0, 0.0);
    for (age, c) in days {
        if let Some(s) = day_score(c) {
            let w = c.placed as f64 * 2f64.powf(-f64::from(age) / HALF_LIFE_DAYS);
            num += w * s;
            den += w;
        }
    }
    (den > 0.0).then(|| (100.0 * num / den).round().clamp(0.0, 100.0) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(placed: u64, inbox: u64, spam: u64, promotions: u64, sent: u64, failed: u64) -> Counts {
        Counts {
            placed,
            inbox,
            spam,
            promotions,
            sent,
            failed,
            missing: placed - inbox - spam - promotions,
            ..Counts::default()
        }
    }

    #[test]
    fn health_table() {
        // (days as (age, counts), expected score)
        type Case = (&'static str, Vec<(u32, Counts)>, Option<u8>);
        let cases: Vec<Case> = vec![
            ("nothing placed", vec![(0, day(0, 0, 0, 0, 5, 0))], None),
            ("all inbox", vec![(0, day(10, 10, 0, 0, 10, 0))], Some(100)),
            ("all spam", vec![(0, day(10, 0, 10, 0, 10, 0))], Some(0)),
            (
                "half inbox half missing",
                vec![(0, day(10, 5, 0, 0, 10, 0))],
                Some(50),
            ),
            (
                "promotions count 3/4",
                vec![(0, day(4, 0, 0, 4, 4, 0))],
                Some(75),
            ),
            (
                "5 % bounces halve the day",
                vec![(0, day(19, 19, 0, 0, 19, 1))],
                Some(50),
            ),
            (
                "10 % bounces zero it",
                vec![(0, day(9, 9, 0, 0, 9, 1))],
                Some(0),
            ),
            // Equal samples: today all inbox, a week ago all spam → weights 1 and 1/2.
            (
                "recent days weigh more",
                vec![(0, day(10, 10, 0, 0, 10, 0)), (7, day(10, 0, 10, 0, 10, 0))],
                Some(67),
            ),
            (
                "and the other way round",
                vec![(0, day(10, 0, 10, 0, 10, 0)), (7, day(10, 10, 0, 0, 10, 0))],
                Some(33),
            ),
        ];
        for (name, days, want) in cases {
            let got = health_score(days.iter().map(|(a, c)| (*a, c)));
            assert_eq!(got, want, "{name}");
        }
    }
}
