//! Sends seeds' replies (outbox rows of kind `reply`) through each seed's own SMTP, to the
//! campaign's sender address and nowhere else.
//!
//! Exactly once, as for warm-up mail: a reply is `sending` under a lease before its SMTP
//! transaction starts. A reply left `sending` by a dead node is looked up in the sender's own
//! mailbox (when the sender has IMAP): found, it is confirmed; not found `resend_after_secs`
//! after the lease ended, it is sent again. Without a mailbox to look in there is no proof
//! either way, and the reply is given up rather than risk a second one.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::domain::{HeloName, SeedStatus};
use crate::startup::App;
use crate::store::{self, replies::ReplyRow};

use super::classify::{self, Failure};
use super::{MAX_ATTEMPTS, backoff_secs, message, transport};

const SMTP_TIMEOUT: Duration = Duration::from_secs(60);
const IMAP_TIMEOUT: Duration = Duration::from_secs(30);
/// Replies claimed per step.
const CLAIM: i64 = 20;

/// What one [`run_once`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplyReport {
    pub sent: usize,
    pub retried: usize,
    pub failed: usize,
    /// Interrupted replies found in the sender's mailbox: sent, not sent again.
    pub confirmed: usize,
    /// Interrupted replies not delivered after the grace period: queued again.
    pub released: usize,
    /// Interrupted replies with no mailbox to prove them either way: given up.
    pub abandoned: usize,
    /// Interrupted replies not found yet, still within the grace period.
    pub waiting: usize,
}

/// Settles interrupted replies, then sends the due ones. The worker loop and the tests call it.
pub async fn run_once(app: &App) -> anyhow::Result<ReplyReport> {
    let mut report = ReplyReport::default();
    reconcile(app, &mut report).await?;
    let mut conn = app.store.pool().acquire().await?;
    let rows = store::replies::claim_due(
        &mut conn,
        app.clock.now(),
        &app.node_id,
        app.config.warmup.lease_secs as i64,
        CLAIM,
    )
    .await?;
    drop(conn);
    for row in rows {
        send_one(app, &row, &mut report).await?;
    }
    Ok(report)
}

async fn send_one(app: &App, row: &ReplyRow, report: &mut ReplyReport) -> anyhow::Result<()> {
    let pool = app.store.pool();
    let owner = app.node_id.as_str();
    let result = async {
        let seed = store::seeds::get(pool, row.seed_id)
            .await
            .map_err(store_failure)?
            .ok_or_else(|| (Failure::Permanent, "the seed vanished".to_owned()))?;
        if seed.status != SeedStatus::Active {
            return Err((
                Failure::Retry,
                format!("seed {} is {}", seed.record.address, seed.status),
            ));
        }
        let smtp = seed.record.smtp.as_ref().ok_or_else(|| {
            (
                Failure::Permanent,
                format!("seed {} has no SMTP", seed.record.address),
            )
        })?;
        let campaign = store::campaigns::get(pool, row.campaign_id)
            .await
            .map_err(store_failure)?
            .ok_or_else(|| (Failure::Permanent, "the campaign vanished".to_owned()))?;
        let sender = store::senders::get(pool, campaign.sender_id)
            .await
            .map_err(store_failure)?
            .ok_or_else(|| (Failure::Permanent, "the sender vanished".to_owned()))?;
        let body = row.body.clone().unwrap_or_default();
        let html = crate::engagement::reply::html(&body);
        let msg = message::build(
            &message::Outgoing {
                from: &seed.record.address,
                from_name: None,
                // Only ever to the campaign's own sender address.
                to: &sender.record.address,
                message_id: &row.message_id,
                subject: &row.subject,
                text: &body,
                html: &html,
                in_reply_to: row.in_reply_to.as_deref(),
                references: row.in_reply_to.as_deref(),
            },
            &app.marker,
            None,
        )
        .map_err(|e| (Failure::Permanent, e.to_string()))?;
        let helo = HeloName::parse(seed.record.address.domain().as_str()).map_err(|e| {
            (
                Failure::Permanent,
                format!("HELO from the seed's domain: {e}"),
            )
        })?;
        let auth = transport::SmtpAuth::for_endpoint(app, smtp)
            .map_err(|e| (Failure::Permanent, e.to_string()))?;
        let client = transport::build_with(smtp, &helo, auth, SMTP_TIMEOUT, 1)
            .map_err(|e| (Failure::Permanent, e.to_string()))?;
        match client.send_raw(&msg.envelope, &msg.bytes).await {
            Ok(resp) => Ok(format!(
                "{} {}",
                resp.code(),
                resp.message().collect::<Vec<_>>().join(" ")
            )),
            Err(e) => Err((classify::classify(&e), e.to_string())),
        }
    }
    .await;
    let now = app.clock.now();
    match result {
        Ok(reply) => {
            if store::outbox::mark_sent(pool, row.id, owner, &reply, now).await? {
                tracing::info!(message_id = %row.message_id, "reply sent");
                report.sent += 1;
            }
        }
        Err((Failure::Unsure, why)) => {
            // Left `sending`: the reconciler looks in the sender's mailbox once the lease ends.
            tracing::warn!(message_id = %row.message_id, error = %why, "reply outcome unknown");
            report.retried += 1;
        }
        Err((failure, why)) if failure.is_retryable() && row.attempts < MAX_ATTEMPTS => {
            let next = now + backoff_secs(row.attempts, failure);
            store::outbox::mark_retry(pool, row.id, owner, next, &why).await?;
            tracing::warn!(message_id = %row.message_id, error = %why, "reply deferred");
            report.retried += 1;
        }
        Err((_, why)) => {
            store::outbox::mark_failed(pool, row.id, owner, &why).await?;
            tracing::warn!(message_id = %row.message_id, error = %why, "reply failed");
            report.failed += 1;
        }
    }
    Ok(())
}

/// A store error on the way to the SMTP transaction, classed like a send failure.
fn store_failure(e: store::StoreError) -> (Failure, String) {
    let class = if e.is_transient() {
        Failure::Retry
    } else {
        Failure::Permanent
    };
    (class, e.to_string())
}

/// Replies left `sending` by a dead node: proven by the sender's mailbox, or not.
async fn reconcile(app: &App, report: &mut ReplyReport) -> anyhow::Result<()> {
    let pool = app.store.pool();
    let now = app.clock.now();
    let resend_after = app.config.warmup.resend_after_secs as i64;
    let mut by_sender: BTreeMap<i64, Vec<ReplyRow>> = BTreeMap::new();
    for row in store::replies::expired_sending(pool, now).await? {
        if let Some(sender) = store::replies::sender_of(pool, row.id).await? {
            by_sender.entry(sender).or_default().push(row);
        }
    }
    for (sender_id, rows) in by_sender {
        let Some(sender) = store::senders::get(pool, sender_id).await? else {
            continue;
        };
        let Some(endpoint) = &sender.record.imap else {
            for row in &rows {
                let why = "interrupted mid-send, and the sender has no IMAP to prove delivery: \
                           not sent again (no second reply)";
                if store::replies::abandon(pool, row.id, why).await? {
                    report.abandoned += 1;
                }
            }
            continue;
        };
        let found = match find_in_mailbox(app, endpoint, &rows).await {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(sender = %sender.record.name, error = %e, "cannot reconcile interrupted replies yet");
                continue;
            }
        };
        for row in &rows {
            let now = app.clock.now();
            if let Some(folder) = found.get(&row.message_id) {
                let note =
                    format!("found in {folder} of the sender mailbox after an interrupted send");
                if store::reconcile::confirm_sent(pool, row.id, &note, now).await? {
                    report.confirmed += 1;
                }
            } else if now - row.lease_until.unwrap_or(now) >= resend_after {
                let why = "reply not delivered after an interrupted send: sending again";
                if store::outbox::release_for_retry(pool, row.id, now, why).await? {
                    report.released += 1;
                }
            } else {
                report.waiting += 1;
            }
        }
    }
    Ok(())
}

/// Searches the delivery folders of the sender's mailbox for the rows' Message-IDs.
async fn find_in_mailbox(
    app: &App,
    endpoint: &crate::domain::Endpoint,
    rows: &[ReplyRow],
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut session = crate::engagement::login::open(app, endpoint, IMAP_TIMEOUT).await?;
    let map = crate::engagement::sender_scan::discover(&mut session).await?;
    let mut found = BTreeMap::new();
    for (folder, _) in &map.scan {
        session.select(folder).await?;
        for row in rows {
            if found.contains_key(&row.message_id) {
                continue;
            }
            let bare = crate::mark::bare_message_id(&row.message_id).replace(['"', '\\'], "");
            if !session
                .uid_search(format!("HEADER Message-ID \"{bare}\""))
                .await?
                .is_empty()
            {
                found.insert(row.message_id.clone(), folder.clone());
            }
        }
    }
    let _ = session.logout().await;
    Ok(found)
}
