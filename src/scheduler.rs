//! The scheduler only enqueues: for each active campaign it asks the planner for today's sends
//! and writes them into the outbox together with the claim of the day. It never sends.
//!
//! Campaigns are planned in groups: those of one sender whose local day is the same day
//! (same date, same bounds). A group reads its seed pool once, runs the planner campaign
//! after campaign on that pool in memory (each campaign sees the seeds the ones before it
//! took), and hands the rows to a writer task in batches while planning goes on. A batch is
//! one transaction: first the day claims (`ON CONFLICT DO NOTHING … RETURNING`), then the
//! sends of exactly the campaigns it claimed, so a day planned by another node in the
//! meantime is skipped, never doubled.
//!
//! Seeds' caps count across campaigns from what the outbox holds when a group is planned;
//! two nodes planning the same sender's groups at the same instant may each see a seed's
//! last free slot (the day's claim is per campaign), so a cap can be passed by one message
//! in that race.

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::Context as _;
use chrono::Days;
use rand::SeedableRng as _;
use rand::rngs::StdRng;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::domain::{CampaignStatus, PreflightTrigger, Provider, SendKind, Verdict};
use crate::planner::{self, DayInput, SeedState};
use crate::sender::content;
use crate::startup::{App, CampaignSpec};
use crate::store::outbox_bulk::{self, DayClaim, DayWindow, PlanBatch};
use crate::store::senders::SenderRow;
use crate::store::{self, Backend, Store, campaigns::CampaignRow, outbox::NewSend};

/// How many days back the provider mix looks to catch up with its shares.
const MIX_LOOKBACK_DAYS: u64 = 7;

/// Sends handed to the writer at a time (a transaction each).
const BATCH_SENDS: usize = 131_072;

/// Active campaigns of one sender whose local day is the same: planned together.
#[derive(Debug)]
pub struct DayGroup {
    pub sender_id: i64,
    /// `YYYY-MM-DD`, the campaigns' local date.
    pub day: String,
    /// The local day as unix seconds, `[start, end)`.
    pub day_start: i64,
    pub day_end: i64,
    /// The first day of the provider mix's look-back.
    pub mix_since: String,
    pub campaigns: Vec<(CampaignRow, CampaignSpec)>,
}

/// Groups the active campaigns by sender and local day at `now`, in a stable order.
pub fn day_groups(campaigns: Vec<CampaignRow>, now: i64) -> anyhow::Result<Vec<DayGroup>> {
    let mut groups: BTreeMap<(i64, String, i64), DayGroup> = BTreeMap::new();
    for c in campaigns
        .into_iter()
        .filter(|c| c.status == CampaignStatus::Active)
    {
        let spec: CampaignSpec = serde_json::from_str(&c.plan)
            .with_context(|| format!("campaign {}: stored plan is unreadable", c.name))?;
        let date = planner::local_date(spec.plan.timezone, now);
        let (day_start, day_end) = planner::day_bounds(spec.plan.timezone, date);
        let day = date.format("%Y-%m-%d").to_string();
        let key = (c.sender_id, day.clone(), day_start);
        groups
            .entry(key)
            .or_insert_with(|| DayGroup {
                sender_id: c.sender_id,
                mix_since: date
                    .checked_sub_days(Days::new(MIX_LOOKBACK_DAYS))
                    .unwrap_or(date)
                    .format("%Y-%m-%d")
                    .to_string(),
                day,
                day_start,
                day_end,
                campaigns: Vec::new(),
            })
            .campaigns
            .push((c, spec));
    }
    Ok(groups.into_values().collect())
}

/// Plans today for every active campaign that has no plan for today yet. Returns the number
/// of sends enqueued. Idempotent: a second call on the same day (on any node) enqueues nothing.
///
/// Before a sender's first send of a ramp step is enqueued its identity is checked again
/// (unless a preflight passed in the last 10 minutes); campaigns that check pauses are not
/// planned.
pub async fn run_once(app: &App) -> anyhow::Result<usize> {
    let now = app.clock.now();
    let campaigns = store::campaigns::list(app.store.pool()).await?;
    let mut planned = 0;
    for group in day_groups(campaigns, now)? {
        planned += plan_group(
            &app.store,
            &app.config.content,
            now,
            group,
            async |sender: &SenderRow| preflight_gate(app, sender, now).await,
        )
        .await?;
    }
    Ok(planned)
}

/// The campaigns a preflight of the sender paused (none when a recent one passed).
async fn preflight_gate(app: &App, sender: &SenderRow, now: i64) -> anyhow::Result<Vec<String>> {
    if preflight_is_fresh(app, sender.id, now).await? {
        return Ok(Vec::new());
    }
    let (_, applied) =
        crate::preflight::gate::recheck_sender(app, sender, PreflightTrigger::Schedule).await?;
    Ok(applied.paused)
}

/// A passing preflight of the sender in the last 10 minutes (a start has just checked it).
async fn preflight_is_fresh(app: &App, sender_id: i64, now: i64) -> anyhow::Result<bool> {
    let recent = store::preflight::recent_verdicts(app.store.pool(), sender_id, 1).await?;
    Ok(
        matches!(recent.first(), Some((v, at)) if matches!(v, Verdict::Pass | Verdict::Warn) && now - at < 600),
    )
}

/// Plans one group's day and enqueues it. `gate` runs once, only when the group has
/// something to send, before anything is written; it returns the names of campaigns that
/// must not be planned after all (a preflight just paused them).
pub async fn plan_group(
    store: &Store,
    content: &content::Library,
    now: i64,
    group: DayGroup,
    gate: impl AsyncFnOnce(&SenderRow) -> anyhow::Result<Vec<String>>,
) -> anyhow::Result<usize> {
    let pool = store.pool();
    let so_far = {
        let mut conn = pool.acquire().await?;
        outbox_bulk::days_so_far(&mut conn, &group.day, &group.mix_since).await?
    };
    let mut todo: Vec<(CampaignRow, CampaignSpec)> = group
        .campaigns
        .into_iter()
        .filter(|(c, _)| !so_far.claimed.contains(&c.id))
        .collect();
    if todo.is_empty() {
        return Ok(0);
    }
    let sender = store::senders::get(pool, group.sender_id)
        .await?
        .context("campaign's sender is missing")?;
    let mut addresses: HashMap<i64, String> = HashMap::new();
    let mut seeds: Vec<SeedState> =
        store::seeds::planning_day(pool, group.sender_id, group.day_start, group.day_end)
            .await?
            .into_iter()
            .map(|s| {
                addresses.insert(s.id, s.address.to_string());
                SeedState {
                    id: s.id,
                    provider: s.provider,
                    last_sent_at: s.last_sent_at,
                    planned_today: s.planned_today,
                    pair_today: s.pair_today,
                    daily_cap: s.daily_cap,
                }
            })
            .collect();
    let index: HashMap<i64, usize> = seeds.iter().enumerate().map(|(i, s)| (s.id, i)).collect();
    // The placement guard may hold a campaign's ramp at one provider: its seeds get nothing.
    let held = store::holds::held_all(pool).await?;
    let ctx = PlanCtx {
        day: &group.day,
        now,
        so_far: &so_far,
        addresses: &addresses,
        held: &held,
    };

    // Nothing to send today (window closed, pool full): no preflight, no claims; look again
    // on the next tick. The planner is deterministic, so this probe costs one campaign's
    // planning and changes nothing.
    if !todo
        .iter()
        .any(|(c, spec)| !ctx.plan(c, spec, &seeds).sends.is_empty())
    {
        tracing::debug!(sender = %sender.record.name, day = %group.day, "nothing to plan");
        return Ok(0);
    }
    let paused = gate(&sender).await?;
    if !paused.is_empty() {
        todo.retain(|(c, _)| !paused.contains(&c.name));
    }

    let sender_name = content::sender_name(&sender.record);
    let weekday = chrono::Datelike::weekday(&planner::local_date(
        todo.first()
            .map_or(chrono_tz::UTC, |(_, spec)| spec.plan.timezone),
        group.day_start,
    ));
    let window = DayWindow {
        sender_id: group.sender_id,
        day_start: group.day_start,
        day_end: group.day_end,
    };
    let (queues, writers) = writers(store, window, now).await?;
    let mut batch = PlanBatch::default();
    let mut next = 0;
    let mut short = 0;
    let last = todo.len().saturating_sub(1);
    for (i, (c, spec)) in todo.iter().enumerate() {
        let planned = ctx.plan(c, spec, &seeds);
        if let Some(why) = &planned.short {
            short += 1;
            tracing::info!(
                campaign = %c.name, day = %group.day, count = planned.sends.len(),
                volume = planned.volume, "planned fewer than the day's volume: {why}"
            );
        }
        if !planned.sends.is_empty() {
            let mut by_provider: Vec<(Provider, u32)> = Vec::new();
            for s in &planned.sends {
                let seed = &mut seeds[index[&s.seed_id]];
                seed.planned_today += 1;
                seed.pair_today += 1;
                seed.last_sent_at = Some(seed.last_sent_at.map_or(s.run_at, |t| t.max(s.run_at)));
                match by_provider.iter_mut().find(|(p, _)| *p == seed.provider) {
                    Some((_, n)) => *n += 1,
                    None => by_provider.push((seed.provider, 1)),
                }
                let key = content::ContentKey {
                    campaign_id: c.id,
                    seed_id: s.seed_id,
                    created_at: now,
                };
                batch.sends.push(NewSend {
                    campaign_id: c.id,
                    seed_id: s.seed_id,
                    kind: SendKind::Warmup,
                    subject: content.subject(key, &sender_name, weekday),
                    message_id: None,
                    in_reply_to: None,
                    plan_day: Some(group.day.clone()),
                    run_at: s.run_at,
                });
            }
            by_provider.sort_by_key(|(p, _)| p.as_str());
            batch.claims.push(DayClaim {
                campaign_id: c.id,
                plan_day: group.day.clone(),
                sends: planned.sends.len() as i64,
                by_provider: outbox_bulk::format_by_provider(&by_provider),
            });
            tracing::debug!(campaign = %c.name, day = %group.day, count = planned.sends.len(), "planned");
        }
        if (batch.sends.len() >= BATCH_SENDS || i == last) && !batch.claims.is_empty() {
            let full = std::mem::take(&mut batch);
            if queues[next % queues.len()].send(full).await.is_err() {
                break; // that writer failed: its error is reported below
            }
            next += 1;
        }
    }
    drop(queues);
    let mut enqueued = 0;
    let mut failure = None;
    for w in writers {
        match w.await {
            Ok(Ok(n)) => enqueued += n,
            Ok(Err(e)) => failure = failure.or(Some(e)),
            Err(e) => failure = failure.or(Some(anyhow::Error::new(e))),
        }
    }
    if let Some(e) = failure {
        return Err(e.context(format!("planning {} for {}", group.day, sender.record.name)));
    }
    tracing::info!(
        sender = %sender.record.name, day = %group.day, campaigns = todo.len(),
        sends = enqueued, short, "planned the day"
    );
    Ok(enqueued)
}

/// What planning one campaign of a group needs besides the seeds.
struct PlanCtx<'a> {
    day: &'a str,
    now: i64,
    so_far: &'a outbox_bulk::DaysSoFar,
    /// Seed id → address, for campaigns restricted to a list of seeds.
    addresses: &'a HashMap<i64, String>,
    /// Providers the placement guard holds, per campaign.
    held: &'a HashMap<i64, Vec<Provider>>,
}

impl PlanCtx<'_> {
    fn plan(&self, c: &CampaignRow, spec: &CampaignSpec, seeds: &[SeedState]) -> planner::DayPlan {
        let restricted: Vec<SeedState>;
        let held = self.held.get(&c.id).map_or(&[][..], Vec::as_slice);
        let seeds = if spec.seeds.is_none() && held.is_empty() {
            seeds
        } else {
            let only: Option<HashSet<&str>> = spec
                .seeds
                .as_ref()
                .map(|list| list.iter().map(String::as_str).collect());
            restricted = seeds
                .iter()
                .filter(|s| {
                    !held.contains(&s.provider)
                        && only.as_ref().is_none_or(|only| {
                            self.addresses
                                .get(&s.id)
                                .is_some_and(|a| only.contains(a.as_str()))
                        })
                })
                .cloned()
                .collect();
            &restricted
        };
        let recent = self
            .so_far
            .recent_by_provider
            .get(&c.id)
            .map_or(&[][..], Vec::as_slice);
        let input = DayInput {
            plan: &spec.plan,
            now: self.now,
            sending_days_before: self
                .so_far
                .sending_days_before
                .get(&c.id)
                .copied()
                .unwrap_or(0),
            seeds,
            recent_by_provider: recent,
        };
        let mut rng = StdRng::seed_from_u64(planner::day_seed(c.id, self.day));
        planner::plan_day(&input, &mut rng)
    }
}

/// Writer tasks, each with its own connection: one on SQLite (one writer at a time anyway),
/// two native connections on PostgreSQL (campaigns' days are independent of each other, and
/// a native connection can `COPY`).
async fn writers(
    store: &Store,
    window: DayWindow,
    now: i64,
) -> anyhow::Result<(
    Vec<mpsc::Sender<PlanBatch>>,
    Vec<JoinHandle<anyhow::Result<usize>>>,
)> {
    let (mut queues, mut handles) = (Vec::new(), Vec::new());
    match store.backend() {
        Backend::Sqlite => {
            let (tx, rx) = mpsc::channel::<PlanBatch>(2);
            queues.push(tx);
            handles.push(match store.sqlite_connection().await? {
                Some(conn) => tokio::spawn(sqlite_writer(conn, rx, window, now)),
                None => {
                    // In memory: the pool's one connection is the database.
                    let conn = store.pool().acquire().await?;
                    tokio::spawn(async move {
                        let mut conn = conn;
                        let mut rx = rx;
                        let mut enqueued = 0;
                        while let Some(b) = rx.recv().await {
                            enqueued += outbox_bulk::write_batch(&mut conn, b, window, now).await?;
                        }
                        Ok(enqueued)
                    })
                }
            });
        }
        Backend::Postgres => {
            for _ in 0..2 {
                let mut conn = store
                    .pg_connection()
                    .await?
                    .context("a PostgreSQL store opens native connections")?;
                let (tx, mut rx) = mpsc::channel::<PlanBatch>(2);
                queues.push(tx);
                handles.push(tokio::spawn(async move {
                    let mut enqueued = 0;
                    while let Some(b) = rx.recv().await {
                        enqueued += outbox_bulk::write_batch_pg(&mut conn, b, window, now).await?;
                    }
                    let _ = sqlx::Connection::close(conn).await;
                    Ok(enqueued)
                }));
            }
        }
    }
    Ok((queues, handles))
}

/// The SQLite writer, on a native connection of its own: a page cache that holds the day's
/// rows as they go into the outbox's indexes (SQLite's default, 2 MB, spills to the file on
/// every batch), statement journals in memory, the WAL checkpointed once at the end instead
/// of after every batch, and foreign keys checked once per batch by the writer instead of
/// per row by SQLite (see `outbox_bulk::write_batch_sqlite`).
async fn sqlite_writer(
    mut conn: sqlx::SqliteConnection,
    mut rx: mpsc::Receiver<PlanBatch>,
    window: DayWindow,
    now: i64,
) -> anyhow::Result<usize> {
    for pragma in [
        "PRAGMA cache_size = -262144",
        "PRAGMA temp_store = MEMORY",
        "PRAGMA wal_autocheckpoint = 0",
        "PRAGMA foreign_keys = OFF",
    ] {
        sqlx::Executor::execute(&mut conn, pragma).await?;
    }
    let mut enqueued = 0;
    let mut failure = None;
    while let Some(b) = rx.recv().await {
        match outbox_bulk::write_batch_sqlite(&mut conn, b, window, now).await {
            Ok(n) => enqueued += n,
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let checkpoint = sqlx::Executor::execute(&mut conn, "PRAGMA wal_checkpoint(PASSIVE)").await;
    let _ = sqlx::Connection::close(conn).await;
    match failure {
        Some(e) => Err(e.into()),
        None => {
            checkpoint?;
            Ok(enqueued)
        }
    }
}
