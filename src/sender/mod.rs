//! The sender: claims due outbox rows and sends each through its sender's SMTP relay.
//! Only this module speaks SMTP for outgoing warm-up mail.

pub mod classify;
pub mod content;
pub mod dkim;
pub mod message;
pub mod transport;

use std::collections::HashMap;
use std::time::Duration;

use lettre::{AsyncSmtpTransport, AsyncTransport as _, Tokio1Executor};

use crate::domain::{CampaignStatus, PauseReason, SeedStatus};
use crate::startup::App;
use crate::store::{self, outbox::OutboxRow};
use classify::Failure;

/// How long a claim is leased before another node may look at the row.
pub const LEASE_SECS: i64 = 300;
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

/// Sends due outbox rows. Holds one pooled transport per sender.
pub struct Dispatcher {
    app: App,
    transports: HashMap<i64, AsyncSmtpTransport<Tokio1Executor>>,
}

#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error("{0}")]
    Setup(String),
    #[error("{1}")]
    Smtp(Failure, String),
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
        Self {
            app,
            transports: HashMap::new(),
        }
    }

    /// Claims up to `limit` due rows and sends them. The loop and the tests call this.
    pub async fn run_once(&mut self, limit: i64) -> anyhow::Result<DispatchReport> {
        let now = self.app.clock.now();
        let rows =
            store::outbox::claim_due(&self.app.store, now, &self.app.node_id, LEASE_SECS, limit)
                .await?;
        let mut report = DispatchReport {
            claimed: rows.len(),
            ..Default::default()
        };
        for row in rows {
            match self.send_one(&row).await {
                Ok(reply) => {
                    let now = self.app.clock.now();
                    store::outbox::mark_sent(
                        self.app.store.pool(),
                        row.id,
                        &self.app.node_id,
                        &reply,
                        now,
                    )
                    .await?;
                    tracing::info!(message_id = %row.message_id, "sent");
                    report.sent += 1;
                }
                Err(e) => {
                    if self.handle_failure(&row, e).await? {
                        report.retried += 1;
                    } else {
                        report.failed += 1;
                    }
                }
            }
        }
        Ok(report)
    }

    /// Returns whether the row will be retried.
    async fn handle_failure(&mut self, row: &OutboxRow, err: SendError) -> anyhow::Result<bool> {
        let pool = self.app.store.pool();
        let now = self.app.clock.now();
        let owner = &self.app.node_id;
        let text = err.to_string();
        let failure = match &err {
            // A setup problem (missing secret, unreadable key) may be fixed: retry, bounded.
            SendError::Setup(_) => Failure::Retry,
            SendError::Smtp(f, _) => *f,
        };
        tracing::warn!(message_id = %row.message_id, ?failure, error = %text, "send failed");
        match failure {
            Failure::Retry | Failure::Throttle if row.attempts < MAX_ATTEMPTS => {
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

    async fn send_one(&mut self, row: &OutboxRow) -> Result<String, SendError> {
        let pool = self.app.store.pool();
        let setup = |e: &dyn std::fmt::Display| SendError::Setup(e.to_string());
        let campaign = store::campaigns::get(pool, row.campaign_id)
            .await
            .map_err(|e| setup(&e))?
            .ok_or_else(|| SendError::Setup("campaign vanished".into()))?;
        let seed = store::seeds::get(pool, row.seed_id)
            .await
            .map_err(|e| setup(&e))?
            .ok_or_else(|| SendError::Setup("seed vanished".into()))?;
        // Guard rail: only ever to an active seed of the pool.
        if seed.status != SeedStatus::Active {
            return Err(SendError::Setup(format!(
                "seed {} is {}",
                seed.record.address, seed.status
            )));
        }
        let sender = store::senders::get(pool, campaign.sender_id)
            .await
            .map_err(|e| setup(&e))?
            .ok_or_else(|| SendError::Setup("sender vanished".into()))?;
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
        let transport = match self.transports.get(&sender.id) {
            Some(t) => t.clone(),
            None => {
                let password = s
                    .smtp
                    .secret
                    .resolve(&self.app.key)
                    .map_err(|e| setup(&e))?;
                let t = transport::build(&s.smtp, &s.helo, Some(&password), SMTP_TIMEOUT)
                    .map_err(|e| setup(&e))?;
                self.transports.insert(sender.id, t.clone());
                t
            }
        };
        match transport.send(msg).await {
            Ok(resp) => Ok(format!(
                "{} {}",
                resp.code(),
                resp.message().collect::<Vec<_>>().join(" ")
            )),
            Err(e) => {
                let failure = classify::classify(&e);
                if !failure.is_retryable() {
                    // A fresh connection next time, in case the pooled one is in a bad state.
                    self.transports.remove(&sender.id);
                }
                Err(SendError::Smtp(failure, e.to_string()))
            }
        }
    }
}
