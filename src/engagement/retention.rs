//! Retention: warm-up mail older than `warmup.retention_days` is deleted from the seed's
//! warm-up folder and its spam folder, so the seed owner's mailbox does not fill up.
//!
//! Only Hearth's own mail is ever touched: a message is deleted only when its mark (in the
//! install's form, header or body: [`super::marked`]) verifies against the install secret and
//! its Message-ID is a warm-up message of this very seed in the ledger. Deletion is one `UID STORE +FLAGS.SILENT (\Deleted)` and one `UID EXPUNGE`
//! per folder (UIDPLUS), so messages the owner flagged `\Deleted` are left alone; without
//! UIDPLUS a plain EXPUNGE is used only when nothing else in the folder is flagged `\Deleted`.
//! Every deletion is a `delete` engagement event.

use std::collections::HashSet;
use std::time::Duration;

use futures::TryStreamExt as _;

use super::act::DEFAULT_WARMUP_FOLDER;
use super::imap::{ImapError, Session};
use super::marked::{self, Marked};
use super::scan::{ScanError, discover_folders};
use crate::config::FolderOverrides;
use crate::domain::{EngagementAction, SendKind};
use crate::startup::App;
use crate::store::{self, seeds::SeedRow};

const IMAP_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RetentionReport {
    /// Messages deleted (and recorded).
    pub deleted: usize,
    /// Old messages carrying the mark (the header, or the body's prefix) that are not provably
    /// ours: left alone.
    pub left_alone: usize,
    /// Messages flagged `\Deleted` but not expunged (no UIDPLUS and the owner has flagged
    /// other mail in the folder): expunged by a later pass or by the owner's client.
    pub pending_expunge: usize,
}

/// The oldest arrival time warm-up mail may have at `now`.
pub fn cutoff(now: i64, retention_days: u64) -> i64 {
    now - retention_days as i64 * 86_400
}

/// Deletes the seed's warm-up mail older than the retention period. The step the worker loop
/// and the tests call.
pub async fn retain_seed(app: &App, seed: &SeedRow) -> Result<RetentionReport, ScanError> {
    let cutoff = cutoff(app.clock.now(), app.config.warmup.retention_days);
    let mut session = super::login::open(app, &seed.record.imap, IMAP_TIMEOUT).await?;
    let result = retain_session(app, seed, &mut session, cutoff).await;
    let _ = session.logout().await;
    result
}

async fn retain_session(
    app: &App,
    seed: &SeedRow,
    session: &mut Session,
    cutoff: i64,
) -> Result<RetentionReport, ScanError> {
    let mut report = RetentionReport::default();
    let caps = super::imap::capabilities(session).await?;
    let uidplus = caps.has("UIDPLUS");
    let map = discover_folders(session, seed).await?;
    let overrides: FolderOverrides = serde_json::from_str(&seed.record.folders).unwrap_or_default();
    let warmup = overrides
        .warmup
        .unwrap_or_else(|| DEFAULT_WARMUP_FOLDER.to_owned());
    let mut targets = vec![warmup];
    targets.extend(map.spam.clone());
    targets.dedup();
    for folder in targets {
        if session.select(&folder).await.is_err() {
            continue; // no warm-up folder yet
        }
        retain_folder(app, seed, session, &folder, cutoff, uidplus, &mut report).await?;
    }
    Ok(report)
}

async fn retain_folder(
    app: &App,
    seed: &SeedRow,
    session: &mut Session,
    folder: &str,
    cutoff: i64,
    uidplus: bool,
    report: &mut RetentionReport,
) -> Result<(), ScanError> {
    let pool = app.store.pool();
    // BEFORE has a granularity of days: take the day after the cutoff, then compare exactly.
    let day = chrono::DateTime::from_timestamp(cutoff + 86_400, 0)
        .unwrap_or_default()
        .format("%d-%b-%Y");
    let uids = session
        .uid_search(format!("BEFORE {day} {}", app.marker.search_key()))
        .await
        .map_err(ImapError::from)?;
    if uids.is_empty() {
        return Ok(());
    }
    let mut list: Vec<u32> = uids.into_iter().collect();
    list.sort_unstable();
    let fetches: Vec<_> = session
        .uid_fetch(join(&list), marked::fetch_items(&app.marker))
        .await
        .map_err(ImapError::from)?
        .try_collect()
        .await
        .map_err(ImapError::from)?;
    // (uid, placement id, Message-ID) of each message provably ours and old enough.
    let mut doomed: Vec<(u32, i64, String)> = Vec::new();
    for f in &fetches {
        let Some(uid) = f.uid else {
            continue;
        };
        let Some(arrived) = f.internal_date().map(|d| d.timestamp()) else {
            continue;
        };
        if arrived >= cutoff {
            continue;
        }
        let message_id = match marked::check_fetch(&app.marker, f) {
            Marked::Unmarked => continue,
            Marked::Forged => {
                report.left_alone += 1;
                continue;
            }
            Marked::Genuine(_, id) => id,
        };
        let ours = match store::outbox::get_by_message_id(pool, &message_id).await? {
            Some(o) => o.kind == SendKind::Warmup && o.seed_id == seed.id,
            None => false,
        };
        let placement = if ours {
            store::ledger::get_by_message_id(pool, &message_id).await?
        } else {
            None
        };
        match placement {
            Some(p) => doomed.push((uid, p.id, message_id)),
            None => report.left_alone += 1,
        }
    }
    if doomed.is_empty() {
        return Ok(());
    }
    let set = join(&doomed.iter().map(|d| d.0).collect::<Vec<_>>());
    let _: Vec<_> = session
        .uid_store(&set, "+FLAGS.SILENT (\\Deleted)")
        .await
        .map_err(ImapError::from)?
        .try_collect()
        .await
        .map_err(ImapError::from)?;
    if uidplus {
        let _: Vec<_> = session
            .uid_expunge(&set)
            .await
            .map_err(ImapError::from)?
            .try_collect()
            .await
            .map_err(ImapError::from)?;
    } else {
        let ours: HashSet<u32> = doomed.iter().map(|d| d.0).collect();
        let flagged = session
            .uid_search("DELETED")
            .await
            .map_err(ImapError::from)?;
        if flagged.iter().all(|u| ours.contains(u)) {
            let _: Vec<_> = session
                .expunge()
                .await
                .map_err(ImapError::from)?
                .try_collect()
                .await
                .map_err(ImapError::from)?;
        } else {
            report.pending_expunge += doomed.len();
        }
    }
    let now = app.clock.now();
    for (_, placement_id, message_id) in &doomed {
        let detail = format!("deleted from {folder} after the retention period");
        if store::engagement::record(
            pool,
            *placement_id,
            EngagementAction::Delete,
            now,
            Some(&detail),
        )
        .await?
        {
            report.deleted += 1;
            tracing::info!(seed = %seed.record.address, %message_id, folder, "warm-up mail deleted (retention)");
        }
    }
    Ok(())
}

fn join(uids: &[u32]) -> String {
    uids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Runs retention on every seed that has warm-up mail older than the period left.
pub async fn retain_pending(
    app: &App,
) -> Result<Vec<(String, Result<RetentionReport, ScanError>)>, ScanError> {
    let pool = app.store.pool();
    let cutoff = cutoff(app.clock.now(), app.config.warmup.retention_days);
    let mut out = Vec::new();
    for id in store::engagement::seeds_with_mail_before(pool, cutoff).await? {
        let Some(seed) = store::seeds::get(pool, id).await? else {
            continue;
        };
        let r = retain_seed(app, &seed).await;
        out.push((seed.record.address.to_string(), r));
    }
    Ok(out)
}
