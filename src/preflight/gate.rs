//! The gate: preflight decides whether a campaign may start, pauses running campaigns whose
//! identity broke, and resumes those it paused once a re-check passes.
//!
//! Rules: `fail` blocks a start and pauses at once; `unknown` blocks a start and pauses only
//! when it has lasted longer than `preflight.unknown_grace_minutes`; a campaign paused with
//! reason `preflight` resumes on a passing run when its `auto_resume` is on. Every run and
//! every verdict is stored.

use std::time::Duration;

use crate::domain::{CampaignStatus, PauseReason, PreflightTrigger, Verdict};
use crate::preflight::check::{CheckId, PreflightReport};
use crate::preflight::identity::{DkimExpectation, Identity, Options};
use crate::preflight::run_checks;
use crate::startup::App;
use crate::store::{self, preflight::NewCheckResult, senders::SenderRow};

/// The identity a configured sender presents.
pub fn identity_for(sender: &SenderRow) -> Identity {
    let s = &sender.record;
    Identity {
        helo: s.helo.to_string(),
        ips: s.ips.clone(),
        mail_from: s.address.clone(),
        from_domain: s.address.domain().clone(),
        dkim: s.dkim.as_ref().map(|d| DkimExpectation {
            domain: d.domain.clone(),
            selector: d.selector.clone(),
            key_file: Some(d.key_file.clone()),
        }),
        smtp: Some(s.smtp.clone()),
    }
}

pub fn options(app: &App) -> Options {
    let p = &app.config.preflight;
    Options {
        ip_blocklists: p.ip_blocklists.clone(),
        domain_blocklists: p.domain_blocklists.clone(),
        smtp_timeout: Duration::from_secs(p.smtp_timeout_secs),
    }
}

/// Why a start is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    pub failing: Vec<CheckId>,
    pub unknown: Vec<CheckId>,
}

impl std::fmt::Display for Blocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids = |v: &[CheckId]| v.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ");
        match (self.failing.is_empty(), self.unknown.is_empty()) {
            (false, true) => write!(f, "failing: {}", ids(&self.failing)),
            (true, false) => write!(f, "could not verify: {}", ids(&self.unknown)),
            _ => write!(
                f,
                "failing: {}; could not verify: {}",
                ids(&self.failing),
                ids(&self.unknown)
            ),
        }
    }
}

pub fn blocked(report: &PreflightReport) -> Option<Blocked> {
    let b = Blocked {
        failing: report.with(Verdict::Fail),
        unknown: report.with(Verdict::Unknown),
    };
    (!b.failing.is_empty() || !b.unknown.is_empty()).then_some(b)
}

/// Runs every check for a sender and stores the run with its results.
pub async fn preflight_sender(
    app: &App,
    sender: &SenderRow,
    trigger: PreflightTrigger,
) -> anyhow::Result<PreflightReport> {
    let pool = app.store.pool();
    let run_id = store::preflight::start_run(pool, sender.id, trigger, app.clock.now()).await?;
    let report = run_checks(&app.dns, &identity_for(sender), &options(app)).await;
    let mut tx = pool.begin().await?;
    for r in &report.results {
        let mut evidence = vec![r.summary.clone()];
        evidence.extend(r.evidence.iter().cloned());
        store::preflight::add_result(
            &mut *tx,
            run_id,
            &NewCheckResult {
                check_id: r.id.as_str().to_owned(),
                verdict: r.verdict,
                evidence: evidence.join("\n"),
                remediation: (!r.remediation.is_empty()).then(|| r.remediation.clone()),
            },
        )
        .await?;
    }
    store::preflight::finish_run(&mut *tx, run_id, report.verdict(), app.clock.now()).await?;
    tx.commit().await?;
    tracing::info!(sender = %sender.record.name, %trigger, verdict = %report.verdict(), "preflight");
    Ok(report)
}

/// What applying a report to a sender's campaigns did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    pub paused: Vec<String>,
    pub resumed: Vec<String>,
}

/// Pauses or resumes the sender's campaigns according to the report.
pub async fn apply(app: &App, sender_id: i64, report: &PreflightReport) -> anyhow::Result<Applied> {
    let pool = app.store.pool();
    let now = app.clock.now();
    let mut applied = Applied::default();
    let campaigns: Vec<_> = store::campaigns::list(pool)
        .await?
        .into_iter()
        .filter(|c| c.sender_id == sender_id)
        .collect();
    let block = blocked(report);
    // An unknown that has lasted past the grace period counts as a failure.
    let unknown_too_long = match &block {
        Some(b) if b.failing.is_empty() => {
            let history = store::preflight::recent_verdicts(pool, sender_id, 1000).await?;
            let since = history
                .iter()
                .take_while(|(v, _)| *v == Verdict::Unknown)
                .last()
                .map(|(_, at)| *at)
                .unwrap_or(now);
            now - since >= app.config.preflight.unknown_grace_minutes as i64 * 60
        }
        _ => false,
    };
    for c in campaigns {
        match (&block, c.status) {
            (Some(b), CampaignStatus::Active) if !b.failing.is_empty() || unknown_too_long => {
                let detail = b.to_string();
                if store::campaigns::transition(
                    pool,
                    c.id,
                    &[CampaignStatus::Active],
                    CampaignStatus::Paused,
                    Some(PauseReason::Preflight),
                    Some(&detail),
                    now,
                )
                .await?
                {
                    tracing::warn!(campaign = %c.name, %detail, "paused by preflight");
                    applied.paused.push(c.name.clone());
                }
            }
            (None, CampaignStatus::Paused)
                if c.pause_reason == Some(PauseReason::Preflight) && c.auto_resume =>
            {
                let resumed = store::campaigns::transition(
                    pool,
                    c.id,
                    &[CampaignStatus::Paused],
                    CampaignStatus::Active,
                    None,
                    None,
                    now,
                )
                .await?;
                if resumed {
                    tracing::info!(campaign = %c.name, "resumed: preflight passes again");
                    applied.resumed.push(c.name.clone());
                }
            }
            (Some(b), CampaignStatus::Paused) if c.pause_reason == Some(PauseReason::Preflight) => {
                // Keep the reason current: the failing checks may have changed.
                let detail = b.to_string();
                if c.pause_detail.as_deref() != Some(detail.as_str()) {
                    store::campaigns::transition(
                        pool,
                        c.id,
                        &[CampaignStatus::Paused],
                        CampaignStatus::Paused,
                        Some(PauseReason::Preflight),
                        Some(&detail),
                        now,
                    )
                    .await?;
                }
            }
            _ => {}
        }
    }
    Ok(applied)
}

/// Runs preflight for the sender and applies it: the re-check step of the schedule.
pub async fn recheck_sender(
    app: &App,
    sender: &SenderRow,
    trigger: PreflightTrigger,
) -> anyhow::Result<(PreflightReport, Applied)> {
    let report = preflight_sender(app, sender, trigger).await?;
    let applied = apply(app, sender.id, &report).await?;
    Ok((report, applied))
}

/// Re-checks every sender that has a running campaign, or one paused by preflight.
/// `paused_only` limits it to the latter (the frequent re-check that resumes them).
pub async fn recheck_all(app: &App, paused_only: bool) -> anyhow::Result<Applied> {
    let pool = app.store.pool();
    let campaigns = store::campaigns::list(pool).await?;
    let mut sender_ids: Vec<i64> = campaigns
        .iter()
        .filter(|c| {
            let paused_by_preflight = c.status == CampaignStatus::Paused
                && c.pause_reason == Some(PauseReason::Preflight);
            paused_by_preflight || (!paused_only && c.status == CampaignStatus::Active)
        })
        .map(|c| c.sender_id)
        .collect();
    sender_ids.sort_unstable();
    sender_ids.dedup();
    let mut total = Applied::default();
    for id in sender_ids {
        let Some(sender) = store::senders::get(pool, id).await? else {
            continue;
        };
        let (_, applied) = recheck_sender(app, &sender, PreflightTrigger::Schedule).await?;
        total.paused.extend(applied.paused);
        total.resumed.extend(applied.resumed);
    }
    Ok(total)
}

/// Preflight before a campaign starts: `Err` with the reasons when it may not.
pub async fn check_before_start(
    app: &App,
    sender: &SenderRow,
) -> anyhow::Result<Result<PreflightReport, (Blocked, PreflightReport)>> {
    let report = preflight_sender(app, sender, PreflightTrigger::Start).await?;
    Ok(match blocked(&report) {
        None => Ok(report),
        Some(b) => Err((b, report)),
    })
}
