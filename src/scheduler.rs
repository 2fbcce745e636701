//! The scheduler only enqueues: for each active campaign it asks the planner for today's sends
//! and writes them into the outbox in one transaction, with the claim of the day. It never
//! sends.
//!
//! Seeds' caps count across campaigns from what the outbox holds when a campaign is planned;
//! two nodes planning two campaigns at the same instant may each see a seed's last free slot
//! (the day's claim is per campaign), so a cap can be passed by one message in that race.

use std::collections::HashSet;

use anyhow::Context as _;
use rand::SeedableRng as _;
use rand::rngs::StdRng;

use crate::domain::{CampaignStatus, PreflightTrigger, SendKind, Verdict};
use crate::planner::{self, DayInput, SeedState};
use crate::sender::{content, message};
use crate::startup::{App, CampaignSpec};
use crate::store::{self, campaigns::CampaignRow, outbox::NewSend};

/// How far back the provider mix looks to catch up with its shares.
const MIX_LOOKBACK_SECS: i64 = 7 * 86_400;

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
    let plan = &spec.plan;
    let date = planner::local_date(plan.timezone, now);
    let day = date.format("%Y-%m-%d").to_string();
    if store::outbox::has_plan_day(pool, c.id, &day).await? {
        return Ok(0);
    }
    let (day_start, day_end) = planner::day_bounds(plan.timezone, date);
    let only: Option<HashSet<&str>> = spec
        .seeds
        .as_ref()
        .map(|list| list.iter().map(String::as_str).collect());
    // The placement guard may hold the ramp at one provider: its seeds get nothing.
    let held = store::holds::held_providers(pool, c.id).await?;
    let seeds: Vec<SeedState> = store::seeds::planning_day(pool, c.sender_id, day_start, day_end)
        .await?
        .into_iter()
        .filter(|s| {
            only.as_ref()
                .is_none_or(|set| set.contains(s.address.to_string().as_str()))
                && !held.contains(&s.provider)
        })
        .map(|s| SeedState {
            id: s.id,
            provider: s.provider,
            last_sent_at: s.last_sent_at,
            planned_today: s.planned_today,
            pair_today: s.pair_today,
            daily_cap: s.daily_cap,
        })
        .collect();
    let recent = store::seeds::campaign_sends_by_provider(
        pool,
        c.id,
        day_start - MIX_LOOKBACK_SECS,
        day_start,
    )
    .await?;
    let days_before = store::outbox::plan_days_before(pool, c.id, &day).await?;
    let input = DayInput {
        plan,
        now,
        sending_days_before: u32::try_from(days_before).unwrap_or(u32::MAX),
        seeds: &seeds,
        recent_by_provider: &recent,
    };
    let mut rng = StdRng::seed_from_u64(planner::day_seed(c.id, &day));
    let planned = planner::plan_day(&input, &mut rng);
    if planned.sends.is_empty() {
        // Outside the window, or no seed with room: nothing to claim, look again on the next
        // tick (the ramp does not move on a day without sends).
        tracing::debug!(campaign = %c.name, %day, reason = ?planned.short, "nothing to plan");
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
    let sends: Vec<NewSend> = planned
        .sends
        .iter()
        .map(|s| NewSend {
            campaign_id: c.id,
            seed_id: s.seed_id,
            kind: SendKind::Warmup,
            message_id: message::new_message_id(sender.record.address.domain()),
            subject: content::subject(),
            in_reply_to: None,
            plan_day: Some(day.clone()),
            run_at: s.run_at,
        })
        .collect();
    let mut tx = pool.begin().await?;
    // Claim the day: of several nodes planning at once, one wins, the others skip.
    if !store::outbox::claim_plan_day(&mut *tx, c.id, &day, sends.len() as i64, now).await? {
        return Ok(0);
    }
    store::outbox_bulk::enqueue_many(&mut tx, &sends, now).await?;
    tx.commit().await?;
    match planned.short {
        Some(why) => tracing::info!(
            campaign = %c.name, %day, count = sends.len(), volume = planned.volume,
            "planned fewer than the day's volume: {why}"
        ),
        None => tracing::info!(campaign = %c.name, %day, count = sends.len(), "planned"),
    }
    Ok(sends.len())
}

/// A passing preflight of the sender in the last 10 minutes (a start has just checked it).
async fn preflight_is_fresh(app: &App, sender_id: i64, now: i64) -> anyhow::Result<bool> {
    let recent = store::preflight::recent_verdicts(app.store.pool(), sender_id, 1).await?;
    Ok(
        matches!(recent.first(), Some((v, at)) if matches!(v, Verdict::Pass | Verdict::Warn) && now - at < 600),
    )
}
