//! The sender: claims due outbox rows and sends each through its sender's SMTP relay.
//! Only this module speaks SMTP for outgoing warm-up mail.

pub mod classify;
pub mod content;
pub mod dkim;
pub mod message;
pub mod reconcile;
pub mod transport;

use std::collections::HashMap;
use std::time::Duration;

use crate::domain::{CampaignStatus, PauseReason, SeedStatus};
use crate::startup::App;
use crate::store::{self, outbox::OutboxRow};
use classify::Failure;

/// Attempts before a retryable failure becomes final.
pub const MAX_ATTEMPTS: i64 = 8;
const SMTP_TIMEOUT: Duration = Duration::from_secs(60);

/// What one `run_once` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DispatchReport {
    pub claimed: usize,
    pub sent: usize,
    pub retried: usize,
    pub failed: usize,
}

/// Sends due outbox rows, several at once. Holds one pooled transport per sender.
pub struct Dispatcher {
    app: App,
    transports: tokio::sync::Mutex<HashMap<i64, transport::SmtpClient>>,
    concurrency: usize,
}

/// What one batch looks up once: campaign, seed and sender rows, and each sender's remaining
/// allowance today (the guard rail), so a batch of N rows costs a handful of reads, not 3N.
#[derive(Default)]
struct Batch {
    campaigns: tokio::sync::Mutex<HashMap<i64, std::sync::Arc<store::campaigns::CampaignRow>>>,
    seeds: tokio::sync::Mutex<HashMap<i64, std::sync::Arc<store::seeds::SeedRow>>>,
    senders: tokio::sync::Mutex<HashMap<i64, std::sync::Arc<store::senders::SenderRow>>>,
    budgets: tokio::sync::Mutex<HashMap<i64, i64>>,
}

macro_rules! cached {
    ($map:expr, $id:expr, $load:expr, $what:literal) => {{
        let hit = $map.lock().await.get(&$id).cloned();
        match hit {
            Some(v) => v,
            None => {
                let v = std::sync::Arc::new(
                    $load
                        .await
                        .map_err(|e| SendError::Setup(e.to_string()))?
                        .ok_or_else(|| SendError::Setup(concat!($what, " vanished").into()))?,
                );
                $map.lock().await.insert($id, v.clone());
                v
            }
        }
    }};
}

/// What happened to one claimed row.
enum Outcome {
    Sent,
    Retried,
    Failed,
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
            transports: tokio::sync::Mutex::new(HashMap::new()),
            concurrency: concurrency.max(1),
        }
    }

    /// Claims up to `limit` due rows and sends them. The loop and the tests call this.
    pub async fn run_once(&self, limit: i64) -> anyhow::Result<DispatchReport> {
        use futures::StreamExt as _;
        let now = self.app.clock.now();
        let lease = self.app.config.warmup.lease_secs as i64;
        let rows =
            store::outbox::claim_due(&self.app.store, now, &self.app.node_id, lease, limit).await?;
        let mut report = DispatchReport {
            claimed: rows.len(),
            ..Default::default()
        };
        let batch = Batch::default();
        let outcomes: Vec<anyhow::Result<Outcome>> = futures::stream::iter(rows)
            .map(|row| self.process(row, &batch))
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        for o in outcomes {
            match o? {
                Outcome::Sent => report.sent += 1,
                Outcome::Retried => report.retried += 1,
                Outcome::Failed => report.failed += 1,
            }
        }
        Ok(report)
    }

    async fn process(&self, row: OutboxRow, batch: &Batch) -> anyhow::Result<Outcome> {
        match self.send_one(&row, batch).await {
            Ok(reply) => {
                let now = self.app.clock.now();
                let marked = store::outbox::mark_sent(
                    self.app.store.pool(),
                    row.id,
                    &self.app.node_id,
                    &reply,
                    now,
                )
                .await?;
                if !marked {
                    // The lease was lost (this send took longer than the lease): reconciliation
                    // will confirm it from the mailbox. It is never sent again blindly.
                    tracing::warn!(message_id = %row.message_id, "sent, but the lease had been lost");
                }
                tracing::info!(message_id = %row.message_id, "sent");
                Ok(Outcome::Sent)
            }
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
            Err(e) => Ok(if self.handle_failure(&row, e).await? {
                Outcome::Retried
            } else {
                Outcome::Failed
            }),
        }
    }

    /// Returns whether the row will be retried.
    async fn handle_failure(&self, row: &OutboxRow, err: SendError) -> anyhow::Result<bool> {
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
        let spec: crate::startup::CampaignSpec = serde_json::from_str(&campaign.plan)
            .map_err(|e| SendError::Setup(format!("stored plan is unreadable: {e}")))?;
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

    async fn send_one(&self, row: &OutboxRow, batch: &Batch) -> Result<String, SendError> {
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
        let content = content::generate(
            &content::name_from_local(seed.record.address.local()),
            s.display_name
                .as_deref()
                .unwrap_or(&content::name_from_local(s.address.local())),
        );
        let dkim = match &s.dkim {
            Some(d) => Some(message::Dkim {
                domain: &d.domain,
                selector: &d.selector,
                key: dkim::load_signing_key(&d.key_file).map_err(|e| setup(&e))?,
            }),
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
            dkim,
        )
        .map_err(|e| setup(&e))?;
        let cached = self.transports.lock().await.get(&sender.id).cloned();
        let transport = match cached {
            Some(t) => t,
            None => {
                let password = s
                    .smtp
                    .secret
                    .resolve(&self.app.key)
                    .map_err(|e| setup(&e))?;
                let t = transport::build(
                    &s.smtp,
                    &s.helo,
                    Some(&password),
                    SMTP_TIMEOUT,
                    self.concurrency as u32,
                )
                .map_err(|e| setup(&e))?;
                self.transports.lock().await.insert(sender.id, t.clone());
                t
            }
        };
        match transport.send(&msg).await {
            Ok(resp) => Ok(format!(
                "{} {}",
                resp.code(),
                resp.message().collect::<Vec<_>>().join(" ")
            )),
            Err(e) => Err(SendError::Smtp(classify::classify(&e), e.to_string())),
        }
    }
}
