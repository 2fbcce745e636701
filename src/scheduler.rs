//! The scheduler only enqueues: for each active campaign it asks the planner for today's sends
//! and writes them into the outbox in one transaction. It never sends.

use anyhow::Context as _;

use crate::domain::{CampaignStatus, PreflightTrigger, SeedStatus, SendKind, Verdict};
use crate::planner;
use crate::sender::{content, message};
use crate::startup::{App, CampaignSpec};
use crate::store::{self, campaigns::CampaignRow, outbox::NewSend};

/// Plans today for every active campaign that has no plan for today yet. Returns the number
/// of sends enqueued. Idempotent: a second call on the same day (on any node) enqueues nothing.
pub async fn run_once(app: &App) -> anyhow::Result<usize> {
    let campaigns = store::campaigns::list(app.store.pool()).await?;
    let mut planned = 0;
    for c in campaigns
        .iter()
        .filter(|c| c.status == CampaignStatus::Active)
    {
        planned += plan_campaign(app, c).await?;
    }
    Ok(planned)
}

async fn plan_campaign(app: &App, c: &CampaignRow) -> anyhow::Result<usize> {
    let pool = app.store.pool();
    let now = app.clock.now();
    let spec: CampaignSpec = serde_json::from_str(&c.plan)
        .with_context(|| format!("campaign {}: stored plan is unreadable", c.name))?;
    let day = planner::plan_day(&spec.plan, now);
    if store::outbox::has_plan_day(pool, c.id, &day).await? {
        return Ok(0);
    }
    let seeds: Vec<_> = store::seeds::list(pool)
        .await?
        .into_iter()
        .filter(|s| s.status == SeedStatus::Active)
        .filter(|s| match &spec.seeds {
            Some(list) => list.iter().any(|a| *a == s.record.address.to_string()),
            None => true,
        })
        .collect();
    let days_before = store::outbox::plan_days_before(pool, c.id, &day).await?;
    let sends = planner::plan_today(&spec.plan, now, days_before as u32, seeds.len(), |slot| {
        rand::random_range(0..slot.max(1))
    });
    if sends.is_empty() {
        // Outside the window, or no seed: nothing to claim, look again on the next tick.
        return Ok(0);
    }
    let sender = store::senders::get(pool, c.sender_id)
        .await?
        .context("campaign's sender is missing")?;
    // Before each ramp step the identity is checked again (unless it just was).
    if !preflight_is_fresh(app, c.sender_id, now).await? {
        let (_, applied) =
            crate::preflight::gate::recheck_sender(app, &sender, PreflightTrigger::Schedule)
                .await?;
        if applied.paused.contains(&c.name) {
            return Ok(0);
        }
    }
    let mut tx = pool.begin().await?;
    // Claim the day: of several nodes planning at once, one wins, the others skip.
    if !store::outbox::claim_plan_day(&mut *tx, c.id, &day, sends.len() as i64, now).await? {
        return Ok(0);
    }
    // Fair rotation: start where the previous day's plan stopped.
    let offset = days_before as usize * spec.plan.start_per_day as usize;
    for s in &sends {
        let seed = &seeds[(s.seed + offset) % seeds.len()];
        let send = NewSend {
            campaign_id: c.id,
            seed_id: seed.id,
            kind: SendKind::Warmup,
            message_id: message::new_message_id(sender.record.address.domain()),
            subject: content::subject(),
            in_reply_to: None,
            plan_day: Some(day.clone()),
            run_at: s.run_at,
        };
        store::outbox::enqueue(&mut *tx, &send, now).await?;
    }
    tx.commit().await?;
    tracing::info!(campaign = %c.name, %day, count = sends.len(), "planned");
    Ok(sends.len())
}

/// A passing preflight of the sender in the last 10 minutes (a start has just checked it).
async fn preflight_is_fresh(app: &App, sender_id: i64, now: i64) -> anyhow::Result<bool> {
    let recent = store::preflight::recent_verdicts(app.store.pool(), sender_id, 1).await?;
    Ok(
        matches!(recent.first(), Some((v, at)) if matches!(v, Verdict::Pass | Verdict::Warn) && now - at < 600),
    )
}
