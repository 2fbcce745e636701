//! The placement guard: after each scan, judge every active campaign on its latest messages
//! and pause it (or hold one provider) when placement or bounces turn bad.
//!
//! [`evaluate`] is the pure core (bands from `[guard]`, a minimum sample); [`run_once`] is
//! the worker's step. Only messages scheduled since the campaign last became active (and,
//! for a provider, since its hold was last lifted) are judged, so a resumed campaign starts
//! with a clean slate instead of being paused again by the mail that paused it. Placement and
//! bounce pauses are lifted by a person only (`hearth campaign resume`, `… release`).

use serde::Serialize;

use crate::config::GuardConfig;
use crate::domain::{CampaignStatus, PauseReason, Provider};
use crate::startup::App;
use crate::store::holds::{self, Sample, Scope};
use crate::store::{self, StoreError};

/// What the guard makes of one sample.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Fewer messages than `min_sample`: no judgement yet.
    TooFew,
    Fine,
    /// Spam share above the warning band.
    Warn {
        detail: String,
    },
    /// Pause the campaign (or hold the provider) with this reason.
    Pause {
        reason: PauseReason,
        detail: String,
    },
}

fn pct(n: u32, of: u32) -> f64 {
    100.0 * f64::from(n) / f64::from(of.max(1))
}

/// Judges a sample against the bands. Bounces first (a relay refusing mail is the more
/// urgent), then spam; each only with at least `min_sample` messages.
pub fn evaluate(cfg: &GuardConfig, s: &Sample) -> Decision {
    let bounce_known = s.finished >= cfg.min_sample;
    let spam_known = s.found >= cfg.min_sample;
    if bounce_known && pct(s.failed, s.finished) > cfg.bounce_pause_percent {
        return Decision::Pause {
            reason: PauseReason::Bounces,
            detail: format!(
                "{:.1} % of the last {} sends failed (limit {} %)",
                pct(s.failed, s.finished),
                s.finished,
                cfg.bounce_pause_percent
            ),
        };
    }
    if !spam_known {
        return if bounce_known {
            Decision::Fine
        } else {
            Decision::TooFew
        };
    }
    let spam = pct(s.spam, s.found);
    let detail = |limit: f64| {
        format!(
            "spam {spam:.1} % of the last {} placed messages (limit {limit} %)",
            s.found
        )
    };
    if spam > cfg.spam_pause_percent {
        Decision::Pause {
            reason: PauseReason::Placement,
            detail: detail(cfg.spam_pause_percent),
        }
    } else if spam > cfg.spam_warn_percent {
        Decision::Warn {
            detail: detail(cfg.spam_warn_percent),
        }
    } else {
        Decision::Fine
    }
}

/// What one [`run_once`] did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct GuardOutcome {
    /// (campaign, reason, detail)
    pub paused: Vec<(String, PauseReason, String)>,
    /// (campaign, provider, detail)
    pub held: Vec<(String, Provider, String)>,
    /// (campaign, provider or none for the whole campaign, detail)
    pub warned: Vec<(String, Option<Provider>, String)>,
}

/// The guard's step: judge every active campaign (per provider first when configured, then
/// the campaign over the providers not held) and apply the pauses and holds.
pub async fn run_once(app: &App) -> Result<GuardOutcome, StoreError> {
    let cfg = &app.config.guard;
    let mut out = GuardOutcome::default();
    if !cfg.enabled {
        return Ok(out);
    }
    let pool = app.store.pool();
    let now = app.clock.now();
    for c in store::campaigns::list(pool).await? {
        if c.status != CampaignStatus::Active {
            continue;
        }
        let since = store::events::last_activation(pool, c.id)
            .await?
            .or(c.started_at)
            .unwrap_or(0);
        let all_holds = holds::list_for_campaign(pool, c.id).await?;
        let mut held: Vec<Provider> = all_holds
            .iter()
            .filter(|h| h.released_at.is_none())
            .map(|h| h.provider)
            .collect();
        if cfg.per_provider {
            let candidates: Vec<Provider> = Provider::ALL
                .iter()
                .filter(|p| !held.contains(p))
                .copied()
                .collect();
            for p in &candidates {
                let p_since = all_holds
                    .iter()
                    .find(|h| h.provider == *p)
                    .and_then(|h| h.released_at)
                    // Scheduled after the release: the next whole second on.
                    .map_or(since, |r| (r + 1).max(since));
                let s = holds::sample(pool, c.id, Scope::Only(*p), p_since, cfg.window).await?;
                match evaluate(cfg, &s) {
                    Decision::Pause { reason, detail } => {
                        if holds::hold(pool, c.id, *p, reason, Some(&detail), now).await? {
                            tracing::warn!(campaign = %c.name, provider = %p, %detail, "provider held");
                            out.held.push((c.name.clone(), *p, detail));
                        }
                        held.push(*p);
                    }
                    Decision::Warn { detail } => {
                        out.warned.push((c.name.clone(), Some(*p), detail));
                    }
                    Decision::TooFew | Decision::Fine => {}
                }
            }
        }
        let s = holds::sample(pool, c.id, Scope::AllBut(&held), since, cfg.window).await?;
        match evaluate(cfg, &s) {
            Decision::Pause { reason, detail } => {
                let moved = store::campaigns::transition(
                    pool,
                    c.id,
                    &[CampaignStatus::Active],
                    CampaignStatus::Paused,
                    Some(reason),
                    Some(&detail),
                    now,
                )
                .await?;
                if moved {
                    tracing::warn!(campaign = %c.name, %reason, %detail, "campaign paused");
                    out.paused.push((c.name.clone(), reason, detail));
                }
            }
            Decision::Warn { detail } => out.warned.push((c.name.clone(), None, detail)),
            Decision::TooFew | Decision::Fine => {}
        }
    }
    for (campaign, provider, detail) in &out.warned {
        tracing::warn!(%campaign, provider = ?provider, %detail, "placement warning");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(found: u32, spam: u32, finished: u32, failed: u32) -> Sample {
        Sample {
            found,
            spam,
            finished,
            failed,
        }
    }

    #[test]
    fn bands_with_a_minimum_sample() {
        let cfg = GuardConfig::default();
        // (sample, expected decision kind, reason)
        let cases: &[(Sample, &str, Option<PauseReason>)] = &[
            (s(0, 0, 0, 0), "too_few", None),
            (s(49, 49, 49, 0), "too_few", None),
            (s(50, 20, 50, 0), "warn", None),
            (s(50, 21, 50, 0), "pause", Some(PauseReason::Placement)),
            (s(50, 7, 50, 0), "fine", None),
            (s(50, 8, 50, 0), "warn", None),
            (s(50, 0, 50, 2), "fine", None),
            (s(50, 0, 50, 3), "pause", Some(PauseReason::Bounces)),
            // Bounces are judged on their own sample, before spam.
            (s(10, 10, 50, 3), "pause", Some(PauseReason::Bounces)),
            (s(10, 10, 50, 0), "fine", None),
            (s(50, 30, 60, 0), "pause", Some(PauseReason::Placement)),
        ];
        for (sample, kind, reason) in cases {
            let d = evaluate(&cfg, sample);
            let (got_kind, got_reason) = match &d {
                Decision::TooFew => ("too_few", None),
                Decision::Fine => ("fine", None),
                Decision::Warn { .. } => ("warn", None),
                Decision::Pause { reason, .. } => ("pause", Some(*reason)),
            };
            assert_eq!(
                (got_kind, got_reason),
                (*kind, *reason),
                "{sample:?}: {d:?}"
            );
        }
        let strict = GuardConfig {
            min_sample: 5,
            window: 5,
            ..GuardConfig::default()
        };
        assert!(matches!(
            evaluate(&strict, &s(5, 3, 5, 0)),
            Decision::Pause { .. }
        ));
    }
}
