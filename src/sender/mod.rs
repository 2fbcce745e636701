//! The sender: claims due outbox rows and sends each through its sender's SMTP relay.
//! Only this module speaks SMTP for outgoing warm-up mail.

pub mod classify;
pub mod content;
pub mod dkim;
pub mod message;
pub mod reconcile;
pub mod replies;
pub mod template;
pub mod transport;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt as _;
use futures::future::{BoxFuture, FutureExt as _};
use futures::stream::FuturesUnordered;

use crate::domain::{CampaignStatus, PauseReason, SeedStatus};
use crate::startup::App;
use crate::store::{self, outbox::Claimed};
use classify::Failure;

/// Attempts before a retryable failure becomes final.
pub const MAX_ATTEMPTS: i64 = 8;
const SMTP_TIMEOUT: Duration = Duration::from_secs(60);
/// Rows claimed per session and claim. A claim is one statement; its rows then wait in memory,
/// their lease running, only until a session is free: the next claim starts when fewer than
/// half a claim's rows are left waiting.
const CLAIM_PER_SESSION: usize = 16;
const MIN_CLAIM: usize = 64;
/// Sent rows are marked `sent` FLUSH_ROWS at a time, or FLUSH_AFTER after the first of them.
const FLUSH_ROWS: usize = 256;
const FLUSH_AFTER: Duration = Duration::from_millis(50);

/// What one `run_once` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DispatchReport {
    pub claimed: usize,
    pub sent: usize,
    pub retried: usize,
    pub failed: usize,
}

impl DispatchReport {
    /// Both passes' counts together.
    pub fn plus(self, other: &DispatchReport) -> DispatchReport {
        DispatchReport {
            claimed: self.claimed + other.claimed,
            sent: self.sent + other.sent,
            retried: self.retried + other.retried,
            failed: self.failed + other.failed,
        }
    }
}

/// Sends due outbox rows, several at once. Holds one pooled transport per sender.
pub struct Dispatcher {
    app: App,
    transports: Mutex<HashMap<i64, transport::SmtpClient>>,
    concurrency: usize,
}

/// What one `run_once` looks up once: campaign, seed and sender rows, each sender's DKIM
/// signer, and each sender's remaining allowance today (the guard rail), so N rows cost a
/// handful of reads, not 3N (and a DKIM key is read and parsed once, not per message).
#[derive(Default)]
struct Batch {
    campaigns: Mutex<HashMap<i64, Arc<store::campaigns::CampaignRow>>>,
    seeds: Mutex<HashMap<i64, Arc<store::seeds::SeedRow>>>,
    senders: Mutex<HashMap<i64, Arc<store::senders::SenderRow>>>,
    dkim: Mutex<HashMap<i64, Arc<lettre::message::dkim::DkimConfig>>>,
    /// Each campaign's stored plan, parsed.
    plans: Mutex<HashMap<i64, Arc<crate::startup::CampaignSpec>>>,
    /// Held across the first count of a sender, so concurrent sends wait for it.
    budgets: tokio::sync::Mutex<HashMap<i64, i64>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The maps hold plain data, complete after every insert: a panic elsewhere cannot
    // leave them half-written.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

macro_rules! cached {
    ($map:expr, $id:expr, $load:expr, $what:literal) => {{
        let hit = lock(&$map).get(&$id).cloned();
        match hit {
            Some(v) => v,
            None => {
                let v = Arc::new(
                    $load
                        .await
                        .map_err(|e| SendError::Setup(e.to_string()))?
                        .ok_or_else(|| SendError::Setup(concat!($what, " vanished").into()))?,
                );
                lock(&$map).insert($id, v.clone());
                v
            }
        }
    }};
}

/// What happened to one claimed row.
enum Outcome {
    /// The relay took it; the row is marked `sent` with the next completion write.
    Sent(Completed),
    Retried,
    Failed,
}

/// A row the relay accepted, waiting for its completion write.
struct Completed {
    id: i64,
    message_id: String,
    reply: String,
}

/// A row's message, built and ready for its SMTP transaction.
struct Ready {
    msg: message::Built,
    transport: transport::SmtpClient,
}

/// The connection a `run_once` writes its claims and completions on (taken from the pool
/// once, not per statement), or none yet (or after an error).
type Conn = Option<sqlx::pool::PoolConnection<sqlx::Any>>;

/// What one unit of a `run_once` pipeline finished. Database writes hand the connection back.
enum Event {
    /// A row prepared (or refused before any SMTP).
    Prepared(Claimed, Result<Ready, SendError>),
    /// A row's send, or its failure before any SMTP, settled.
    Sent(anyhow::Result<Outcome>),
    /// Rows claimed, and how many were asked for (fewer: the queue is drained).
    Fetched(Conn, anyhow::Result<Vec<Claimed>>, i64),
    Completed(Conn, anyhow::Result<()>),
}

#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error("{0}")]
    Setup(String),
    #[error("{1}")]
    Smtp(Failure, String),
    /// The guard rail refused the send; the row is cancelled, not retried.
    #[error("{0}")]
    Refused(String),
}

/// Exponential backoff with jitter: 1, 2, 4 … minutes, capped at 4 hours.
pub fn backoff_secs(attempts: i64, failure: Failure) -> i64 {
    let base = 60i64 << attempts.clamp(0, 8);
    let base = if failure == Failure::Throttle {
        base * 4
    } else {
        base
    };
    let base = base.min(4 * 3600);
    let jitter = rand::random_range(0..=base / 4);
    base + jitter
}

impl Dispatcher {
    pub fn new(app: App) -> Self {
        Self::with_concurrency(app, 4)
    }

    /// `concurrency` SMTP transactions at once (each sender's pool holds as many connections).
    pub fn with_concurrency(app: App, concurrency: usize) -> Self {
        Self {
            app,
            transports: Mutex::new(HashMap::new()),
            concurrency: concurrency.max(1),
        }
    }

    /// Claims up to `limit` due rows and sends them. The loop and the tests call this.
    ///
    /// One pipeline in one task: `concurrency` SMTP transactions at once, each session's next
    /// message built while its current one waits for the relay, fed from rows claimed a few
    /// hundred at a time (the next claim starts while the previous one's rows are still being
    /// sent), and sent rows marked `sent` in batches, one statement each (only rows this node
    /// still leases and that are still `sending`): a batch is written when FLUSH_ROWS rows are
    /// waiting, FLUSH_AFTER after the first of them, or when the pipeline runs dry. Claims and
    /// marks go one at a time over one connection held for the run. A row whose mark is lost
    /// to a crash stays `sending` and is settled by `reconcile`, like a crash during its SMTP
    /// transaction. Every claimed row is settled before this returns, also after an error
    /// (then no more rows are claimed, and the first error is returned).
    pub async fn run_once(&self, limit: i64) -> anyhow::Result<DispatchReport> {
        let batch = Batch::default();
        let mut report = DispatchReport::default();
        let per_claim = (self.concurrency * CLAIM_PER_SESSION).max(MIN_CLAIM);
        let low_water = per_claim / 2;
        let per_claim = per_claim as i64;
        // Rows not claimed yet (0 once the queue is drained or after an error).
        let mut unclaimed = limit.max(0);
        let mut queue: VecDeque<Claimed> = VecDeque::new();
        let mut completed: Vec<Completed> = Vec::new();
        let mut tasks: FuturesUnordered<BoxFuture<'_, Event>> = FuturesUnordered::new();
        // Rows prepared (their message built), waiting for a session: up to one per
        // session, so that a session that finishes a transaction starts the next at once,
        // the next message having been built while this one waited for the relay.
        let mut ready: VecDeque<(Claimed, Ready)> = VecDeque::new();
        let mut preparing = 0;
        let mut sending = 0;
        // One database write at a time (a claim or a completion): on SQLite a second writer
        // would only wait for the lock.
        let mut writing = false;
        let mut conn: Conn = None;
        let mut error: Option<anyhow::Error> = None;
        let flush_timer = tokio::time::sleep(FLUSH_AFTER);
        tokio::pin!(flush_timer);
        let mut timer_armed = false;
        let mut flush_due = false;
        loop {
            // Sends first, so that a freed session is back on the wire before any building.
            while sending < self.concurrency
                && let Some((row, msg)) = ready.pop_front()
            {
                sending += 1;
                let batch = &batch;
                tasks.push(
                    async move {
                        // The SMTP transaction on a task of its own: the runtime's other
                        // workers take sessions' replies while this task builds and settles.
                        let result = tokio::spawn(async move { Self::transmit(&msg).await })
                            .await
                            .unwrap_or_else(|e| {
                                Err(SendError::Setup(format!("the SMTP task failed: {e}")))
                            });
                        Event::Sent(self.settle(row, result, batch).await)
                    }
                    .boxed(),
                );
            }
            while ready.len() + preparing < self.concurrency
                && let Some(row) = queue.pop_front()
            {
                preparing += 1;
                let batch = &batch;
                tasks.push(
                    async move {
                        let prepared = self.prepare(&row, batch).await;
                        Event::Prepared(row, prepared)
                    }
                    .boxed(),
                );
            }
            if !writing {
                let waiting = queue.len() + ready.len() + preparing;
                let claim = unclaimed > 0 && waiting < low_water.max(1);
                let flush = !completed.is_empty()
                    && (flush_due
                        || completed.len() >= FLUSH_ROWS
                        || (sending == 0 && waiting == 0 && !claim));
                // A claim first when the sessions are about to run out of rows.
                if claim && (waiting < self.concurrency || !flush) {
                    let n = unclaimed.min(per_claim);
                    unclaimed -= n;
                    writing = true;
                    let c = conn.take();
                    tasks.push(
                        async move {
                            let (c, rows) = self.claim(c, n).await;
                            Event::Fetched(c, rows, n)
                        }
                        .boxed(),
                    );
                } else if flush {
                    let done = std::mem::take(&mut completed);
                    writing = true;
                    flush_due = false;
                    timer_armed = false;
                    let c = conn.take();
                    tasks.push(
                        async move {
                            let (c, r) = self.complete(c, done).await;
                            Event::Completed(c, r)
                        }
                        .boxed(),
                    );
                }
            }
            if tasks.is_empty() {
                // Nothing in flight: every claimed row was sent and marked (a waiting mark
                // is written above as soon as nothing else is left).
                break;
            }
            if !completed.is_empty() && !timer_armed && !flush_due {
                flush_timer
                    .as_mut()
                    .reset(tokio::time::Instant::now() + FLUSH_AFTER);
                timer_armed = true;
            }
            let event = tokio::select! {
                biased;
                Some(event) = tasks.next() => event,
                () = &mut flush_timer, if timer_armed => {
                    timer_armed = false;
                    flush_due = true;
                    continue;
                }
            };
            match event {
                Event::Prepared(row, Ok(msg)) => {
                    preparing -= 1;
                    ready.push_back((row, msg));
                }
                Event::Prepared(row, Err(e)) => {
                    // Settled like a failed send (it counts as one in flight meanwhile).
                    preparing -= 1;
                    sending += 1;
                    let batch = &batch;
                    tasks.push(
                        async move { Event::Sent(self.settle(row, Err(e), batch).await) }.boxed(),
                    );
                }
                Event::Sent(outcome) => {
                    sending -= 1;
                    match outcome {
                        Ok(Outcome::Sent(c)) => {
                            report.sent += 1;
                            completed.push(c);
                        }
                        Ok(Outcome::Retried) => report.retried += 1,
                        Ok(Outcome::Failed) => report.failed += 1,
                        Err(e) => {
                            // Rows already claimed are still sent (and marked); no new claim.
                            unclaimed = 0;
                            error.get_or_insert(e);
                        }
                    }
                }
                Event::Fetched(c, rows, asked) => {
                    writing = false;
                    conn = c;
                    match rows {
                        Ok(rows) => {
                            if (rows.len() as i64) < asked {
                                unclaimed = 0;
                            }
                            report.claimed += rows.len();
                            queue.extend(rows);
                        }
                        Err(e) => {
                            unclaimed = 0;
                            error.get_or_insert(e);
                        }
                    }
                }
                Event::Completed(c, r) => {
                    writing = false;
                    conn = c;
                    if let Err(e) = r {
                        error.get_or_insert(e);
                    }
                }
            }
        }
        match error {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    /// The run's connection, or a new one from the pool.
    async fn conn(&self, conn: Conn) -> anyhow::Result<sqlx::pool::PoolConnection<sqlx::Any>> {
        Ok(match conn {
            Some(c) => c,
            None => self.app.store.pool().acquire().await?,
        })
    }

    /// Keeps the connection for the run's next write, unless it is the pool's only one (an
    /// in-memory SQLite store), which the lookups of the rows being prepared need too.
    fn keep(&self, conn: sqlx::pool::PoolConnection<sqlx::Any>) -> Conn {
        (self.app.store.pool().options().get_max_connections() > 1).then_some(conn)
    }

    async fn claim(&self, conn: Conn, n: i64) -> (Conn, anyhow::Result<Vec<Claimed>>) {
        let mut conn = match self.conn(conn).await {
            Ok(c) => c,
            Err(e) => return (None, Err(e)),
        };
        let now = self.app.clock.now();
        let lease = self.app.config.warmup.lease_secs as i64;
        match store::outbox::claim_for_send(&mut conn, now, &self.app.node_id, lease, n).await {
            Ok(rows) => (self.keep(conn), Ok(rows)),
            // The connection may be what failed: the next write takes another.
            Err(e) => (None, Err(e.into())),
        }
    }

    /// Marks sent rows `sent` in one statement (tried twice if the database was busy).
    async fn complete(&self, conn: Conn, done: Vec<Completed>) -> (Conn, anyhow::Result<()>) {
        let (message_ids, pairs): (Vec<String>, Vec<(i64, String)>) = done
            .into_iter()
            .map(|c| (c.message_id, (c.id, c.reply)))
            .unzip();
        let owner = &self.app.node_id;
        let mut conn = conn;
        let mut tries = 0;
        let marked = loop {
            tries += 1;
            let mut c = match self.conn(conn.take()).await {
                Ok(c) => c,
                Err(e) => return (None, Err(e)),
            };
            let now = self.app.clock.now();
            match store::outbox::mark_sent_many(&mut c, owner, &pairs, now).await {
                Ok(marked) => {
                    conn = self.keep(c);
                    break marked;
                }
                Err(e) if e.is_transient() && tries < 2 => {
                    tracing::warn!(error = %e, "marking sent rows failed; trying again");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                // The rows stay `sending`: reconciliation settles them from the mailboxes.
                Err(e) => return (None, Err(e.into())),
            }
        };
        let lost: std::collections::HashSet<i64> = if marked.len() == pairs.len() {
            Default::default()
        } else {
            let marked: std::collections::HashSet<i64> = marked.into_iter().collect();
            pairs
                .iter()
                .map(|(id, _)| *id)
                .filter(|id| !marked.contains(id))
                .collect()
        };
        for (message_id, (id, _)) in message_ids.iter().zip(&pairs) {
            if lost.contains(id) {
                // The lease was lost (this send took longer than the lease): reconciliation
                // will confirm it from the mailbox. It is never sent again blindly.
                tracing::warn!(%message_id, "sent, but the lease had been lost");
            } else {
                tracing::info!(%message_id, "sent");
            }
        }
        (conn, Ok(()))
    }

    /// Acts on the outcome of one row's send (or of its preparation).
    async fn settle(
        &self,
        row: Claimed,
        result: Result<String, SendError>,
        batch: &Batch,
    ) -> anyhow::Result<Outcome> {
        match result {
            Ok(reply) => Ok(Outcome::Sent(Completed {
                id: row.id,
                message_id: row.message_id,
                reply,
            })),
            Err(SendError::Refused(why)) => {
                tracing::warn!(message_id = %row.message_id, %why, "not sent: guard rail");
                store::reconcile::cancel_leased(
                    self.app.store.pool(),
                    row.id,
                    &self.app.node_id,
                    &why,
                )
                .await?;
                Ok(Outcome::Failed)
            }
            Err(e) => {
                let unknown = matches!(e, SendError::Smtp(Failure::UnknownRecipient, _));
                let retried = self.handle_failure(&row, e).await?;
                if unknown {
                    // The seed is disabled now: later rows of this run read it again.
                    lock(&batch.seeds).remove(&row.seed_id);
                }
                Ok(if retried {
                    Outcome::Retried
                } else {
                    Outcome::Failed
                })
            }
        }
    }

    /// Returns whether the row will be retried.
    async fn handle_failure(&self, row: &Claimed, err: SendError) -> anyhow::Result<bool> {
        let pool = self.app.store.pool();
        let now = self.app.clock.now();
        let owner = &self.app.node_id;
        let text = err.to_string();
        let failure = match &err {
            // A setup problem (missing secret, unreadable key) may be fixed: retry, bounded.
            SendError::Setup(_) => Failure::Retry,
            SendError::Smtp(f, _) => *f,
            SendError::Refused(_) => Failure::Permanent,
        };
        tracing::warn!(message_id = %row.message_id, ?failure, error = %text, "send failed");
        match failure {
            Failure::Unsure => {
                // Left `sending` under its lease: the reconciler decides, from the seed's
                // mailbox, whether it arrived.
                Ok(true)
            }
            Failure::Throttle if row.attempts < MAX_ATTEMPTS => {
                // A rate or reputation deferral concerns the sender, not this message: slow
                // the whole sender down, on every node, by pushing its queue back.
                let next = now + backoff_secs(row.attempts, failure);
                store::outbox::mark_retry(pool, row.id, owner, next, &text).await?;
                if let Some(c) = store::campaigns::get(pool, row.campaign_id).await? {
                    let moved = store::reconcile::defer_sender(pool, c.sender_id, next).await?;
                    tracing::warn!(
                        sender_id = c.sender_id,
                        until = next,
                        moved,
                        "sender throttled"
                    );
                }
                Ok(true)
            }
            Failure::Retry if row.attempts < MAX_ATTEMPTS => {
                let next = now + backoff_secs(row.attempts, failure);
                store::outbox::mark_retry(pool, row.id, owner, next, &text).await?;
                Ok(true)
            }
            Failure::Identity => {
                // Our identity was refused: keep the message, check the identity at once.
                // A failing preflight pauses with its reasons (and resumes when fixed); if
                // preflight passes, the receiver still refused us, so pause for a person.
                let next = now + backoff_secs(row.attempts, failure);
                store::outbox::mark_retry(pool, row.id, owner, next, &text).await?;
                if let Some(c) = store::campaigns::get(pool, row.campaign_id).await?
                    && let Some(sender) = store::senders::get(pool, c.sender_id).await?
                    && let Err(e) = crate::preflight::gate::recheck_sender(
                        &self.app,
                        &sender,
                        crate::domain::PreflightTrigger::SendFailure,
                    )
                    .await
                {
                    tracing::error!(error = %format!("{e:#}"), "preflight after an identity rejection failed");
                }
                store::campaigns::transition(
                    pool,
                    row.campaign_id,
                    &[CampaignStatus::Active],
                    CampaignStatus::Paused,
                    Some(PauseReason::SenderError),
                    Some(&format!("the receiver rejected our identity: {text}")),
                    self.app.clock.now(),
                )
                .await?;
                Ok(true)
            }
            Failure::Credentials => {
                // Our login was refused (a wrong password, a revoked OAuth2 grant): no retry
                // can fix that. Keep the message and pause for a person, with the reason.
                let next = now + backoff_secs(row.attempts, failure);
                store::outbox::mark_retry(pool, row.id, owner, next, &text).await?;
                store::campaigns::transition(
                    pool,
                    row.campaign_id,
                    &[CampaignStatus::Active],
                    CampaignStatus::Paused,
                    Some(PauseReason::SenderError),
                    Some(&format!("the relay refused the sender's login: {text}")),
                    now,
                )
                .await?;
                Ok(true)
            }
            Failure::UnknownRecipient => {
                store::seeds::set_status(pool, row.seed_id, SeedStatus::Disabled, Some(&text), now)
                    .await?;
                store::outbox::mark_failed(pool, row.id, owner, &text).await?;
                Ok(false)
            }
            _ => {
                store::outbox::mark_failed(pool, row.id, owner, &text).await?;
                Ok(false)
            }
        }
    }

    /// Guard rail: never more than the plan's daily maximum per sender, whatever the outbox
    /// holds (a bug, a double plan, rows inserted by hand).
    async fn daily_guard(
        &self,
        campaign: &store::campaigns::CampaignRow,
        batch: &Batch,
    ) -> Result<(), SendError> {
        use chrono::TimeZone as _;
        let cached = lock(&batch.plans).get(&campaign.id).cloned();
        let spec = match cached {
            Some(spec) => spec,
            None => {
                let spec: Arc<crate::startup::CampaignSpec> =
                    Arc::new(serde_json::from_str(&campaign.plan).map_err(|e| {
                        SendError::Setup(format!("stored plan is unreadable: {e}"))
                    })?);
                lock(&batch.plans).insert(campaign.id, spec.clone());
                spec
            }
        };
        let max = i64::from(spec.plan.max_per_day);
        let mut budgets = batch.budgets.lock().await;
        if let Some(left) = budgets.get_mut(&campaign.sender_id) {
            if *left <= 0 {
                return Err(SendError::Refused(format!(
                    "daily maximum reached: the sender has sent its plan maximum of {max} messages today"
                )));
            }
            *left -= 1;
            return Ok(());
        }
        let tz = spec.plan.timezone;
        let now = self.app.clock.now();
        let local = tz.timestamp_opt(now, 0).single().map(|d| d.date_naive());
        let day_start = local
            .and_then(|d| tz.from_local_datetime(&d.and_hms_opt(0, 0, 0)?).earliest())
            .map(|d| d.timestamp())
            .unwrap_or(now - 86_400);
        let sent = store::reconcile::sender_sends_since(
            self.app.store.pool(),
            campaign.sender_id,
            day_start,
            &self.app.node_id,
        )
        .await
        .map_err(|e| SendError::Setup(e.to_string()))?;
        if sent >= max {
            budgets.insert(campaign.sender_id, 0);
            return Err(SendError::Refused(format!(
                "daily maximum reached: the sender already sent {sent} messages today (plan maximum {max})"
            )));
        }
        budgets.insert(campaign.sender_id, max - sent - 1);
        Ok(())
    }

    /// Everything before the SMTP transaction: the guard rails, the message, the transport.
    async fn prepare(&self, row: &Claimed, batch: &Batch) -> Result<Ready, SendError> {
        let pool = self.app.store.pool();
        let setup = |e: &dyn std::fmt::Display| SendError::Setup(e.to_string());
        let campaign = cached!(
            batch.campaigns,
            row.campaign_id,
            store::campaigns::get(pool, row.campaign_id),
            "campaign"
        );
        let seed = cached!(
            batch.seeds,
            row.seed_id,
            store::seeds::get(pool, row.seed_id),
            "seed"
        );
        // Guard rail: only ever to an active seed of the pool.
        if seed.status != SeedStatus::Active {
            return Err(SendError::Refused(format!(
                "seed {} is {}",
                seed.record.address, seed.status
            )));
        }
        self.daily_guard(&campaign, batch).await?;
        let sender = cached!(
            batch.senders,
            campaign.sender_id,
            store::senders::get(pool, campaign.sender_id),
            "sender"
        );
        let s = &sender.record;
        let content = content::generate_for(
            &self.app.config.content,
            content::ContentKey {
                campaign_id: row.campaign_id,
                seed_id: row.seed_id,
                created_at: row.created_at,
            },
            &content::name_from_local(seed.record.address.local()),
            &content::sender_name(s),
            || {
                let tz = serde_json::from_str::<crate::startup::CampaignSpec>(&campaign.plan)
                    .map(|spec| spec.plan.timezone)
                    .unwrap_or(chrono_tz::UTC);
                chrono::Datelike::weekday(
                    &chrono::DateTime::from_timestamp(row.run_at, 0)
                        .unwrap_or_default()
                        .with_timezone(&tz),
                )
            },
        );
        let dkim = match &s.dkim {
            Some(d) => {
                let hit = lock(&batch.dkim).get(&sender.id).cloned();
                Some(match hit {
                    Some(cfg) => cfg,
                    None => {
                        let key = dkim::load_signing_key(&d.key_file).map_err(|e| setup(&e))?;
                        let cfg = Arc::new(message::dkim_config(&d.domain, &d.selector, key));
                        lock(&batch.dkim).insert(sender.id, cfg.clone());
                        cfg
                    }
                })
            }
            None => None,
        };
        let msg = message::build(
            &message::Outgoing {
                from: &s.address,
                from_name: s.display_name.as_deref(),
                to: &seed.record.address,
                message_id: &row.message_id,
                subject: &row.subject,
                text: &content.text,
                html: &content.html,
                in_reply_to: row.in_reply_to.as_deref(),
                references: row.in_reply_to.as_deref(),
            },
            &self.app.marker,
            dkim.as_deref(),
        )
        .map_err(|e| setup(&e))?;
        let cached = lock(&self.transports).get(&sender.id).cloned();
        let transport = match cached {
            Some(t) => t,
            None => {
                let auth =
                    transport::SmtpAuth::for_endpoint(&self.app, &s.smtp).map_err(|e| setup(&e))?;
                let t = transport::build_with(
                    &s.smtp,
                    &s.helo,
                    auth,
                    SMTP_TIMEOUT,
                    self.concurrency as u32,
                )
                .map_err(|e| setup(&e))?;
                lock(&self.transports).entry(sender.id).or_insert(t).clone()
            }
        };
        Ok(Ready { msg, transport })
    }

    /// The SMTP transaction. Returns the relay's reply to the message.
    async fn transmit(ready: &Ready) -> Result<String, SendError> {
        match ready
            .transport
            .send_raw(&ready.msg.envelope, &ready.msg.bytes)
            .await
        {
            Ok(resp) => Ok(format!(
                "{} {}",
                resp.code(),
                resp.message().collect::<Vec<_>>().join(" ")
            )),
            Err(e) => Err(SendError::Smtp(classify::classify(&e), e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

    use super::*;
    use crate::domain::OutboxStatus;

    /// A relay on loopback that takes every message, except that it refuses recipients
    /// whose address starts with `gone` (5.1.1), and hangs up without a reply after the
    /// content of a message to `hangup…`. Counts the messages it took.
    async fn relay() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let taken = Arc::new(AtomicUsize::new(0));
        let counter = taken.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let taken = counter.clone();
                tokio::spawn(async move {
                    let (read, mut write) = socket.into_split();
                    let mut lines = BufReader::new(read).lines();
                    write.write_all(b"220 relay.test ESMTP\r\n").await.ok();
                    let mut data = false;
                    let mut hang_up = false;
                    while let Ok(Some(line)) = lines.next_line().await {
                        let reply: &[u8] = if data {
                            if line != "." {
                                continue;
                            }
                            data = false;
                            let n = taken.fetch_add(1, Ordering::SeqCst);
                            if hang_up {
                                // The content is in, the reply never comes.
                                return;
                            }
                            write
                                .write_all(format!("250 2.0.0 Ok: queued as Q{n}\r\n").as_bytes())
                                .await
                                .ok();
                            continue;
                        } else if line.starts_with("EHLO") {
                            b"250-relay.test\r\n250 8BITMIME\r\n"
                        } else if line.starts_with("RCPT TO:<hangup") {
                            hang_up = true;
                            b"250 2.1.5 Ok\r\n"
                        } else if line.starts_with("RCPT TO:<gone") {
                            b"550 5.1.1 <gone>: Recipient address rejected: User unknown\r\n"
                        } else if line.starts_with("DATA") {
                            data = true;
                            b"354 go ahead\r\n"
                        } else if line.starts_with("QUIT") {
                            write.write_all(b"221 bye\r\n").await.ok();
                            break;
                        } else {
                            b"250 2.0.0 Ok\r\n"
                        };
                        write.write_all(reply).await.ok();
                    }
                });
            }
        });
        (addr, taken)
    }

    /// An app on an in-memory store (one connection) sending to `relay`, its campaign active,
    /// with `n` rows queued round-robin over `seeds`.
    async fn app(
        dir: &std::path::Path,
        relay: std::net::SocketAddr,
        seeds: &[&str],
        max_per_day: usize,
        n: usize,
    ) -> App {
        let mut text = format!(
            r#"
[server]
bind = "127.0.0.1:0"
data_dir = {dir:?}
database_url = "sqlite::memory:"
[dns]
nameservers = ["127.0.0.1:5353"]
[[senders]]
name = "test"
address = "hello@sender.test"
helo = "mta1.sender.test"
smtp = {{ host = "{host}", port = {port}, tls = "none" }}
[[campaigns]]
name = "test"
sender = "test"
plan = {{ start_per_day = 1, max_per_day = {max_per_day} }}
"#,
            dir = dir.display().to_string(),
            host = relay.ip(),
            port = relay.port(),
        );
        for seed in seeds {
            text.push_str(&format!(
                "[[seeds]]\naddress = \"{seed}\"\nimap = {{ host = \"127.0.0.1\", port = 1143 }}\n"
            ));
        }
        let config = crate::config::Config::from_toml(&text, None, &[]).unwrap();
        let app = App::build(config, Arc::new(crate::clock::SystemClock))
            .await
            .unwrap();
        let pool = app.store.pool();
        let c = store::campaigns::get_by_name(pool, "test")
            .await
            .unwrap()
            .unwrap();
        store::campaigns::set_status(
            pool,
            c.id,
            CampaignStatus::Active,
            None,
            None,
            app.clock.now(),
        )
        .await
        .unwrap();
        let seeds = store::seeds::list(pool).await.unwrap();
        for i in 0..n {
            let send = store::outbox::NewSend {
                campaign_id: c.id,
                seed_id: seeds[i % seeds.len()].id,
                kind: crate::domain::SendKind::Warmup,
                message_id: None,
                subject: content::subject(),
                in_reply_to: None,
                plan_day: None,
                run_at: 0,
            };
            store::outbox::enqueue(pool, &send, 0).await.unwrap();
        }
        app
    }

    async fn statuses(app: &App) -> HashMap<(String, OutboxStatus), usize> {
        let pool = app.store.pool();
        let c = store::campaigns::get_by_name(pool, "test")
            .await
            .unwrap()
            .unwrap();
        let seeds: HashMap<i64, String> = store::seeds::list(pool)
            .await
            .unwrap()
            .into_iter()
            .map(|s| (s.id, s.record.address.to_string()))
            .collect();
        let mut out = HashMap::new();
        for row in store::outbox::list_for_campaign(pool, c.id).await.unwrap() {
            *out.entry((seeds[&row.seed_id].clone(), row.status))
                .or_default() += 1;
        }
        out
    }

    /// More rows than one claim takes, on a store with a single connection: every row is
    /// claimed, sent once and marked `sent` with its own reply before `run_once` returns.
    #[tokio::test]
    async fn sends_and_marks_every_row_across_claims() {
        let dir = tempfile::tempdir().unwrap();
        let (relay, taken) = relay().await;
        let n = 300;
        let app = app(
            dir.path(),
            relay,
            &["a@gmail.test", "b@gmail.test"],
            1000,
            n,
        )
        .await;
        let d = Dispatcher::with_concurrency(app.clone(), 3);
        let r = d.run_once(1000).await.unwrap();
        assert_eq!((r.claimed, r.sent, r.retried, r.failed), (n, n, 0, 0));
        assert_eq!(taken.load(Ordering::SeqCst), n);
        let s = statuses(&app).await;
        assert_eq!(s[&("a@gmail.test".into(), OutboxStatus::Sent)], n / 2);
        assert_eq!(s[&("b@gmail.test".into(), OutboxStatus::Sent)], n / 2);
        let c = store::campaigns::get_by_name(app.store.pool(), "test")
            .await
            .unwrap()
            .unwrap();
        let rows = store::outbox::list_for_campaign(app.store.pool(), c.id)
            .await
            .unwrap();
        let replies: std::collections::HashSet<_> =
            rows.iter().map(|r| r.smtp_reply.clone().unwrap()).collect();
        assert_eq!(replies.len(), n, "each row has its own reply");
        assert!(
            rows.iter()
                .all(|r| r.attempts == 1 && r.lease_until.is_none())
        );
        assert_eq!(d.run_once(1000).await.unwrap(), DispatchReport::default());
    }

    /// `limit` is respected, and the daily maximum holds with messages built ahead: exactly
    /// the maximum is sent, across runs, and the rest is cancelled.
    #[tokio::test]
    async fn limit_and_daily_maximum() {
        let dir = tempfile::tempdir().unwrap();
        let (relay, taken) = relay().await;
        let app = app(dir.path(), relay, &["a@gmail.test"], 50, 80).await;
        let d = Dispatcher::with_concurrency(app.clone(), 4);
        let r = d.run_once(10).await.unwrap();
        assert_eq!((r.claimed, r.sent), (10, 10));
        let r = d.run_once(1000).await.unwrap();
        assert_eq!((r.claimed, r.sent, r.failed), (70, 40, 30));
        assert_eq!(taken.load(Ordering::SeqCst), 50);
        let s = statuses(&app).await;
        assert_eq!(s[&("a@gmail.test".into(), OutboxStatus::Sent)], 50);
        assert_eq!(s[&("a@gmail.test".into(), OutboxStatus::Cancelled)], 30);
    }

    /// The content went out and the connection dropped before the reply: the relay may have
    /// the message, so it is not sent again; the row stays `sending` under its lease for the
    /// reconciler (which looks in the seed's mailbox first).
    #[tokio::test]
    async fn no_reply_to_the_content_leaves_the_row_to_the_reconciler() {
        let dir = tempfile::tempdir().unwrap();
        let (relay, taken) = relay().await;
        let app = app(dir.path(), relay, &["hangup@gmail.test"], 1000, 1).await;
        let d = Dispatcher::with_concurrency(app.clone(), 1);
        let r = d.run_once(10).await.unwrap();
        assert_eq!((r.claimed, r.sent, r.retried, r.failed), (1, 0, 1, 0));
        assert_eq!(taken.load(Ordering::SeqCst), 1, "sent once, not retried");
        let c = store::campaigns::get_by_name(app.store.pool(), "test")
            .await
            .unwrap()
            .unwrap();
        let rows = store::outbox::list_for_campaign(app.store.pool(), c.id)
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].status, OutboxStatus::Sending);
        assert!(rows[0].lease_until.is_some());
        // Nothing more to claim while the lease runs.
        assert_eq!(d.run_once(10).await.unwrap().claimed, 0);
        assert_eq!(taken.load(Ordering::SeqCst), 1);
    }

    /// An unknown recipient fails its row and disables its seed; what is queued for that seed
    /// in the same run (already built, or not) is not sent; the other seed's rows are.
    #[tokio::test]
    async fn unknown_recipient_disables_the_seed() {
        let dir = tempfile::tempdir().unwrap();
        let (relay, taken) = relay().await;
        let app = app(
            dir.path(),
            relay,
            &["a@gmail.test", "gone@gmail.test"],
            1000,
            40,
        )
        .await;
        let d = Dispatcher::with_concurrency(app.clone(), 4);
        let r = d.run_once(1000).await.unwrap();
        assert_eq!((r.claimed, r.sent, r.failed), (40, 20, 20));
        assert_eq!(taken.load(Ordering::SeqCst), 20);
        let s = statuses(&app).await;
        assert_eq!(s[&("a@gmail.test".into(), OutboxStatus::Sent)], 20);
        let failed = s
            .get(&("gone@gmail.test".into(), OutboxStatus::Failed))
            .copied()
            .unwrap_or(0);
        let cancelled = s
            .get(&("gone@gmail.test".into(), OutboxStatus::Cancelled))
            .copied()
            .unwrap_or(0);
        assert!(failed >= 1 && failed + cancelled == 20, "{s:?}");
        let gone = store::seeds::list(app.store.pool())
            .await
            .unwrap()
            .into_iter()
            .find(|s| s.record.address.to_string() == "gone@gmail.test")
            .unwrap();
        assert_eq!(gone.status, SeedStatus::Disabled);
    }
}
