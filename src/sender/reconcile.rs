//! Exactly once across crashes. A row is `sending` from its claim until the SMTP transaction's
//! outcome is written. If the node dies in between, the lease expires and the row stays
//! `sending`: nobody knows whether the relay took the message. This step finds out before
//! anything is sent again — the ledger first, then the seed mailbox itself over IMAP — and
//! only when the message has not arrived after a grace period is the row sent again.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::engagement::scan;
use crate::startup::App;
use crate::store::{self, outbox::OutboxRow};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Found delivered: marked sent, never sent again.
    pub confirmed: usize,
    /// Not delivered after the grace period: back in the queue.
    pub released: usize,
    /// Not found yet, still within the grace period.
    pub waiting: usize,
    /// Seeds that could not be searched this time.
    pub errors: usize,
}

pub async fn run_once(app: &App) -> anyhow::Result<ReconcileReport> {
    let pool = app.store.pool();
    let now = app.clock.now();
    let mut report = ReconcileReport::default();
    // How long after the lease expired a message may still be on its way before it is resent.
    let resend_after = app.config.warmup.resend_after_secs as i64;
    let mut by_seed: BTreeMap<i64, Vec<(String, OutboxRow)>> = BTreeMap::new();
    for row in store::outbox::expired_sending(pool, now).await? {
        let Some(message_id) = row.message_id.clone() else {
            // The claim gives a row its Message-ID before the relay hears of it (the schema
            // holds a `sending` row to having one): without one, nothing went out.
            let why = "interrupted before sending: no Message-ID was assigned";
            if store::outbox::release_for_retry(pool, row.id, now, why).await? {
                report.released += 1;
            }
            continue;
        };
        if store::ledger::get_by_message_id(pool, &message_id)
            .await?
            .is_some()
        {
            if store::reconcile::confirm_sent(
                pool,
                row.id,
                "confirmed by the placement ledger after an interrupted send",
                now,
            )
            .await?
            {
                report.confirmed += 1;
            }
            continue;
        }
        by_seed
            .entry(row.seed_id)
            .or_default()
            .push((message_id, row));
    }
    for (seed_id, rows) in by_seed {
        let Some(seed) = store::seeds::get(pool, seed_id).await? else {
            continue;
        };
        match find_in_mailbox(app, &seed, &rows).await {
            Ok(found) => {
                for (message_id, row) in &rows {
                    let now = app.clock.now();
                    if let Some(folder) = found.get(message_id) {
                        let note = format!(
                            "found in {folder} of the seed mailbox after an interrupted send"
                        );
                        if store::reconcile::confirm_sent(pool, row.id, &note, now).await? {
                            tracing::info!(%message_id, %folder, "interrupted send confirmed delivered");
                            report.confirmed += 1;
                        }
                    } else if now - row.lease_until.unwrap_or(now) >= resend_after {
                        let why = "not delivered after an interrupted send: sending again";
                        if store::outbox::release_for_retry(pool, row.id, now, why).await? {
                            tracing::warn!(%message_id, "interrupted send not delivered: queued again");
                            report.released += 1;
                        }
                    } else {
                        report.waiting += 1;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(seed = %seed.record.address, error = %e, "cannot reconcile interrupted sends yet");
                report.errors += 1;
            }
        }
    }
    Ok(report)
}

/// Searches every delivery folder of the seed for the rows' Message-IDs.
async fn find_in_mailbox(
    app: &App,
    seed: &store::seeds::SeedRow,
    rows: &[(String, OutboxRow)],
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut session =
        crate::engagement::login::open(app, &seed.record.imap, Duration::from_secs(30)).await?;
    let folders = scan::discover_folders(&mut session, seed).await?;
    let mut found = BTreeMap::new();
    for (folder, _) in &folders.scan {
        session.select(folder).await?;
        for (message_id, _) in rows {
            if found.contains_key(message_id) {
                continue;
            }
            let bare = crate::mark::bare_message_id(message_id).replace(['"', '\\'], "");
            let hits = session
                .uid_search(format!("HEADER Message-ID \"{bare}\""))
                .await?;
            if !hits.is_empty() {
                found.insert(message_id.clone(), folder.clone());
            }
        }
    }
    let _ = session.logout().await;
    Ok(found)
}
