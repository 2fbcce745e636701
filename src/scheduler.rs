//! The scheduler only enqueues: for each active campaign it asks the planner for today's sends
//! and writes them into the outbox in one transaction. It never sends.

use anyhow::Context as _;

use crate::domain::{CampaignStatus, SeedStatus, SendKind};
use crate::planner;
use crate::sender::{content, message};
use crate::startup::{App, CampaignSpec};
use crate::store::{self, outbox::NewSend};

/// Plans today for every active campaign that has no plan for today yet. Returns the number
/// of sends enqueued. Idempotent: a second call on the same day enqueues nothing.
pub async fn run_once(app: &App) -> anyhow::Result<usize> {
    let now = app.clock.now();
    let campaigns = store::campaigns::list(app.store.pool()).await?;
    let mut planned = 0;
    for c in campaigns
        .iter()
        .filter(|c| c.status == CampaignStatus::Active)
    {
        let spec: CampaignSpec = serde_json::from_str(&c.plan)
            .with_context(|| format!("campaign {}: stored plan is unreadable", c.name))?;
        let day = planner::plan_day(&spec.plan, now);
        let mut tx = app.store.pool().begin().await?;
        if store::outbox::has_plan_day(&mut *tx, c.id, &day).await? {
            continue;
        }
        let days_before = store::outbox::plan_days_before(&mut *tx, c.id, &day).await?;
        let seeds: Vec<_> = store::seeds::list(&mut *tx)
            .await?
            .into_iter()
            .filter(|s| s.status == SeedStatus::Active)
            .filter(|s| match &spec.seeds {
                Some(list) => list.iter().any(|a| *a == s.record.address.to_string()),
                None => true,
            })
            .collect();
        let sender = store::senders::get(&mut *tx, c.sender_id)
            .await?
            .context("campaign's sender is missing")?;
        let sends = planner::plan_today(&spec.plan, now, days_before as u32, seeds.len(), |slot| {
            rand::random_range(0..slot.max(1))
        });
        // Fair rotation: start where yesterday's plan stopped.
        let offset = days_before as usize * spec.plan.start_per_day as usize;
        for s in &sends {
            let seed = &seeds[(s.seed + offset) % seeds.len()];
            let subject = content::generate("", "").subject;
            let send = NewSend {
                campaign_id: c.id,
                seed_id: seed.id,
                kind: SendKind::Warmup,
                message_id: message::new_message_id(sender.record.address.domain()),
                subject,
                in_reply_to: None,
                plan_day: Some(day.clone()),
                run_at: s.run_at,
            };
            store::outbox::enqueue(&mut *tx, &send, now).await?;
        }
        tx.commit().await?;
        if !sends.is_empty() {
            tracing::info!(campaign = %c.name, %day, count = sends.len(), "planned");
        }
        planned += sends.len();
    }
    Ok(planned)
}
