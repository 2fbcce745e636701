//! What a seed does with one warm-up message, and when: pure, reproducible decisions.
//!
//! The choice (open? star? reply?) and the delays come from the plan's rates and a random
//! generator seeded by the Message-ID, so a restart, another node or a reconnect decides
//! exactly the same thing again — no second reply, no second rescue, no change of mind.

use rand::{RngExt as _, SeedableRng as _};
use sha2::Digest as _;

use crate::domain::{EngagementAction, EngagementRates, Placement};

/// One planned action: what, and how long after the message was first seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Planned {
    pub action: EngagementAction,
    pub after_secs: i64,
}

/// The actions for a message first seen in `placement`, in the order they are done.
/// `reply` is only planned when the seed can send (`can_reply`); `important` only where the
/// server supports it (Gmail's labels), which the executor checks.
pub fn plan(
    message_id: &str,
    placement: Placement,
    rates: &EngagementRates,
    can_reply: bool,
) -> Vec<Planned> {
    if placement == Placement::Missing {
        return Vec::new();
    }
    let digest = sha2::Sha256::digest(message_id.as_bytes());
    let mut rng = rand::rngs::StdRng::from_seed(digest.into());
    let mut roll = |rate: f64| rng.random_range(0.0..1.0) < rate;
    let rescue = matches!(placement, Placement::Spam | Placement::Promotions) && roll(rates.rescue);
    let open = roll(rates.open);
    let star = open && roll(rates.star);
    let important = open && roll(rates.important);
    let reply = open && can_reply && roll(rates.reply);
    // A person notices the message minutes to hours later, then acts within minutes.
    let mut at = rng.random_range(2 * 60..=90 * 60);
    let mut out = Vec::new();
    let mut push = |action, gap: std::ops::RangeInclusive<i64>, rng: &mut rand::rngs::StdRng| {
        at += rng.random_range(gap);
        out.push(Planned {
            action,
            after_secs: at,
        });
    };
    if rescue {
        push(EngagementAction::Rescue, 0..=60, &mut rng);
    }
    if open {
        push(EngagementAction::Open, 5..=120, &mut rng);
    }
    if star {
        push(EngagementAction::Star, 5..=300, &mut rng);
    }
    if important {
        push(EngagementAction::Important, 5..=300, &mut rng);
    }
    if reply {
        push(EngagementAction::Reply, 60..=1800, &mut rng);
    }
    // Out of the inbox at last, so the seed owner's inbox stays clean.
    if placement != Placement::Other || rescue {
        push(EngagementAction::File, 300..=3600, &mut rng);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_are_reproducible_and_ordered() {
        let rates = EngagementRates::default();
        let a = plan("<x1@sender.test>", Placement::Spam, &rates, true);
        assert_eq!(a, plan("<x1@sender.test>", Placement::Spam, &rates, true));
        assert_eq!(
            a[0].action,
            EngagementAction::Rescue,
            "rescue comes first: {a:?}"
        );
        assert_eq!(a.last().unwrap().action, EngagementAction::File);
        assert!(a.windows(2).all(|w| w[0].after_secs < w[1].after_secs));
        assert!(plan("<x@y>", Placement::Missing, &rates, true).is_empty());
    }

    #[test]
    fn rates_hold_over_many_messages() {
        let rates = EngagementRates {
            open: 1.0,
            star: 0.5,
            important: 0.0,
            rescue: 1.0,
            reply: 0.3,
        };
        let n = 2000;
        let (mut star, mut reply, mut important) = (0, 0, 0);
        for i in 0..n {
            let p = plan(&format!("<m{i}@s.test>"), Placement::Inbox, &rates, true);
            assert!(p.iter().any(|a| a.action == EngagementAction::Open));
            star += p
                .iter()
                .filter(|a| a.action == EngagementAction::Star)
                .count();
            reply += p
                .iter()
                .filter(|a| a.action == EngagementAction::Reply)
                .count();
            important += p
                .iter()
                .filter(|a| a.action == EngagementAction::Important)
                .count();
        }
        assert!((900..1100).contains(&star), "{star}");
        assert!((500..700).contains(&reply), "{reply}");
        assert_eq!(important, 0);
        let no_reply = plan(
            "<m1@s.test>",
            Placement::Inbox,
            &EngagementRates {
                reply: 1.0,
                ..rates
            },
            false,
        );
        assert!(no_reply.iter().all(|a| a.action != EngagementAction::Reply));
    }
}
