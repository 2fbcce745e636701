//! The sender's own mailbox, read like a seed's: where did the seeds' replies land (inbox or
//! spam)? Each reply found is recorded in the placement ledger once, under its own outbox row
//! (kind `reply`, `in_reply_to` = the original), so the ledger links it to the message it
//! answers. Incremental per folder (UIDVALIDITY + highest UID, in `sender_cursors`). Replies
//! carry the mark like warm-up mail, in the install's form (header or body), and are found
//! and verified as the seed scan does ([`super::marked`]).
//!
//! The sender then reacts like a person to the replies it finds: it opens them (`\Seen`) and
//! rescues the ones in spam (MOVE to the inbox), each an engagement event of the reply's
//! ledger row, done only when not recorded yet (a reply seen again after a crash is only
//! recorded, never moved twice). A reply not found within `warmup.missing_after_minutes` of
//! its sending, after a scan that succeeded, is recorded `missing` once, and the sender is no
//! longer scanned for it.

use std::time::Duration;

use futures::TryStreamExt as _;

use super::folders::{self, FolderMap};
use super::imap::{ImapError, Session};
use super::marked::{self, Marked};
use super::scan::{ScanError, ScanReport};
use crate::config::{FolderOverrides, guess_provider};
use crate::domain::{EngagementAction, Placement, SendKind};
use crate::startup::App;
use crate::store::{self, ledger::NewPlacement, senders::SenderRow};

const IMAP_TIMEOUT: Duration = Duration::from_secs(30);

/// The folders of a sender mailbox (SPECIAL-USE, then common names).
pub async fn discover(session: &mut Session) -> Result<FolderMap, ImapError> {
    let names: Vec<_> = session
        .list(Some(""), Some("*"))
        .await?
        .try_collect()
        .await?;
    let listed: Vec<_> = names.iter().map(folders::from_imap).collect();
    Ok(folders::discover(
        &listed,
        crate::domain::Provider::Other,
        &FolderOverrides::default(),
    ))
}

/// Scans every sender that has replies awaiting placement. One sender's failure does not stop
/// the others; each result is returned with the sender's name.
pub async fn scan_pending(
    app: &App,
) -> Result<Vec<(String, Result<ScanReport, ScanError>)>, ScanError> {
    let pool = app.store.pool();
    let mut out = Vec::new();
    for id in store::replies::senders_awaiting_placement(pool).await? {
        let Some(sender) = store::senders::get(pool, id).await? else {
            continue;
        };
        let r = scan_sender(app, &sender).await;
        out.push((sender.record.name.clone(), r));
    }
    Ok(out)
}

/// Logs into the sender's mailbox (when it has IMAP) and records the replies found.
pub async fn scan_sender(app: &App, sender: &SenderRow) -> Result<ScanReport, ScanError> {
    let Some(endpoint) = &sender.record.imap else {
        return Ok(ScanReport::default());
    };
    let mut session = super::login::open(app, endpoint, IMAP_TIMEOUT).await?;
    let result = async {
        let map = discover(&mut session).await?;
        let caps = super::imap::capabilities(&mut session).await?;
        let has_move = caps.has("MOVE");
        let mut report = ScanReport::default();
        for (folder, class) in &map.scan {
            let found = scan_folder(app, sender, &mut session, folder, *class, &mut report).await?;
            report.engaged += react(app, &mut session, &map, folder, has_move, &found).await?;
            report.folders.push(folder.clone());
        }
        Ok::<_, ScanError>(report)
    }
    .await;
    let _ = session.logout().await;
    let mut report = result?;
    report.missing = record_missing(app, sender).await?;
    Ok(report)
}

/// Records the sender's overdue replies as `missing` (once: the ledger has one row per
/// message). Called after a scan that succeeded, so "not found" means not there.
async fn record_missing(app: &App, sender: &SenderRow) -> Result<usize, ScanError> {
    let pool = app.store.pool();
    let now = app.clock.now();
    let cutoff = now - app.config.warmup.missing_after_minutes as i64 * 60;
    let mut n = 0;
    for reply in store::replies::overdue_unplaced(pool, sender.id, cutoff).await? {
        let missing = NewPlacement {
            outbox_id: reply.id,
            seed_id: reply.seed_id,
            message_id: reply.message_id.clone(),
            placement: Placement::Missing,
            folder: None,
            provider: guess_provider(sender.record.address.domain().as_str()),
            seen_at: None,
            latency_secs: None,
            auth_spf: None,
            auth_dkim: None,
            auth_dmarc: None,
            auth_results: None,
            imap_uidvalidity: None,
            imap_uid: None,
            gmail: None,
        };
        if store::ledger::record(pool, &missing, now).await? {
            tracing::warn!(sender = %sender.record.name, reply = %reply.message_id, "reply never arrived: recorded missing");
            n += 1;
        }
    }
    Ok(n)
}

/// A reply found in the selected folder: its UID there and its ledger row.
struct Found {
    uid: u32,
    placement_id: i64,
    /// Where it was first seen.
    first_seen: Placement,
}

/// The sender's reaction to the replies found in the selected `folder`: open each, and move
/// the ones in spam to the inbox. Returns the actions done or recognised.
async fn react(
    app: &App,
    session: &mut Session,
    map: &FolderMap,
    folder: &str,
    has_move: bool,
    found: &[Found],
) -> Result<usize, ScanError> {
    let pool = app.store.pool();
    let in_spam = map.spam.as_deref() == Some(folder);
    let (mut to_open, mut to_rescue, mut recognised) = (Vec::new(), Vec::new(), Vec::new());
    for f in found {
        let done: Vec<EngagementAction> =
            store::engagement::list_for_placement(pool, f.placement_id)
                .await?
                .into_iter()
                .map(|e| e.action)
                .collect();
        if !done.contains(&EngagementAction::Open) {
            to_open.push(f);
        }
        if f.first_seen == Placement::Spam && !done.contains(&EngagementAction::Rescue) {
            if in_spam {
                to_rescue.push(f);
            } else {
                // Out of spam already: a previous pass moved it and died before recording.
                recognised.push(f);
            }
        }
    }
    let set = |items: &[&Found]| {
        items
            .iter()
            .map(|f| f.uid.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut n = 0;
    let mut record = async |items: &[&Found], action, detail: &str| -> Result<(), ScanError> {
        for f in items {
            if store::engagement::record(
                pool,
                f.placement_id,
                action,
                app.clock.now(),
                Some(detail),
            )
            .await?
            {
                n += 1;
            }
        }
        Ok(())
    };
    if !to_open.is_empty() {
        let _: Vec<_> = session
            .uid_store(set(&to_open), "+FLAGS.SILENT (\\Seen)")
            .await
            .map_err(ImapError::from)?
            .try_collect()
            .await
            .map_err(ImapError::from)?;
        record(&to_open, EngagementAction::Open, "opened by the sender").await?;
    }
    if !to_rescue.is_empty() {
        super::act::move_uids(session, &set(&to_rescue), &map.inbox, has_move).await?;
        let detail = format!("{folder} → {}", map.inbox);
        record(&to_rescue, EngagementAction::Rescue, &detail).await?;
    }
    if !recognised.is_empty() {
        record(&recognised, EngagementAction::Rescue, "already out of spam").await?;
    }
    Ok(n)
}

async fn scan_folder(
    app: &App,
    sender: &SenderRow,
    session: &mut Session,
    folder: &str,
    class: Placement,
    report: &mut ScanReport,
) -> Result<Vec<Found>, ScanError> {
    let pool = app.store.pool();
    let mut found = Vec::new();
    let mailbox = session.select(folder).await.map_err(ImapError::from)?;
    let uidvalidity = i64::from(mailbox.uid_validity.unwrap_or(0));
    let after = store::cursors::get_sender(pool, sender.id, folder)
        .await?
        .filter(|c| c.uidvalidity == uidvalidity)
        .map(|c| c.last_uid)
        .unwrap_or(0);
    let mut high = after;
    if let Some(next) = mailbox.uid_next {
        high = high.max(i64::from(next) - 1);
    }
    if mailbox.exists > 0 {
        let query = format!("UID {}:* {}", after + 1, app.marker.search_key());
        let uids = super::scan::new_uids(session, &query, after).await?;
        if let Some(last) = uids.last() {
            high = high.max(i64::from(*last));
        }
        if !uids.is_empty() {
            let set = uids
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",");
            let fetches: Vec<_> = session
                .uid_fetch(&set, marked::fetch_items(&app.marker))
                .await
                .map_err(ImapError::from)?
                .try_collect()
                .await
                .map_err(ImapError::from)?;
            for f in &fetches {
                let (mut seen, message_id) = match marked::check_fetch(&app.marker, f) {
                    Marked::Unmarked => continue,
                    Marked::Forged => {
                        report.forged += 1;
                        continue;
                    }
                    Marked::Genuine(seen, id) => (seen, id),
                };
                let message_id = &message_id;
                // Only replies of this sender's own campaigns.
                let Some(sent) = store::outbox::get_by_message_id(pool, message_id).await? else {
                    continue;
                };
                if sent.kind != SendKind::Reply
                    || store::replies::sender_of(pool, sent.id).await? != Some(sender.id)
                {
                    continue;
                }
                report.found += 1;
                let now = app.clock.now();
                let arrived = f.internal_date().map(|d| d.timestamp()).unwrap_or(now);
                let verdicts = seen.verdicts();
                let placement = NewPlacement {
                    outbox_id: sent.id,
                    // The seed that replied.
                    seed_id: sent.seed_id,
                    message_id: message_id.clone(),
                    placement: class,
                    folder: Some(folder.to_owned()),
                    provider: guess_provider(sender.record.address.domain().as_str()),
                    seen_at: Some(now),
                    latency_secs: Some((arrived - sent.sent_at.unwrap_or(sent.run_at)).max(0)),
                    auth_spf: verdicts.spf,
                    auth_dkim: verdicts.dkim,
                    auth_dmarc: verdicts.dmarc,
                    auth_results: seen.take_auth_results(),
                    imap_uidvalidity: Some(uidvalidity),
                    imap_uid: f.uid.map(i64::from),
                    gmail: None,
                };
                if store::ledger::record(pool, &placement, now).await? {
                    report.recorded += 1;
                    tracing::info!(sender = %sender.record.name, %message_id, placement = %class, folder, "reply placement recorded");
                }
                if let (Some(uid), Some(p)) = (
                    f.uid,
                    store::ledger::get_by_message_id(pool, message_id).await?,
                ) {
                    found.push(Found {
                        uid,
                        placement_id: p.id,
                        first_seen: p.record.placement,
                    });
                }
            }
        }
    }
    store::cursors::set_sender(pool, sender.id, folder, uidvalidity, high, app.clock.now()).await?;
    Ok(found)
}
