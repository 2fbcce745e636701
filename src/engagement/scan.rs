//! One scan of one seed inbox: find Hearth's marked mail that arrived since the last scan in
//! every folder worth looking at, and write each message's placement to the ledger once.

use std::time::Duration;

use futures::TryStreamExt as _;

use super::folders::{self, FolderMap};
use super::imap::{ImapError, Session};
use super::{gmail, headers};
use crate::config::FolderOverrides;
use crate::domain::{OutboxStatus, Placement, SeedStatus};
use crate::mark::MarkMode;
use crate::startup::App;
use crate::store::{
    self,
    ledger::{GmailSeen, NewPlacement},
    seeds::SeedRow,
};

const IMAP_TIMEOUT: Duration = Duration::from_secs(30);

/// What one scan found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ScanReport {
    /// Marked messages seen in this scan (genuine mark, known Message-ID).
    pub found: usize,
    /// Of those, the ones new to the ledger.
    pub recorded: usize,
    /// Messages carrying the mark (header, or the body's prefix) that did not verify: ignored.
    pub forged: usize,
    pub folders: Vec<String>,
    /// Replies recorded `missing` (sender mailboxes only: not found in time).
    pub missing: usize,
    /// Actions done on what was found (sender mailboxes only: open, rescue from spam).
    pub engaged: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error(transparent)]
    Imap(#[from] ImapError),
    #[error("cannot read the seed's password: {0}")]
    Secret(#[from] crate::secrets::SecretError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

impl ScanError {
    pub fn is_transient(&self) -> bool {
        match self {
            ScanError::Imap(e) => e.is_transient(),
            ScanError::Secret(_) => false,
            ScanError::Store(e) => e.is_transient(),
        }
    }
}

/// Logs into the seed, scans it, logs out. A refused login marks the seed `broken` with the
/// server's reason; a later successful login marks it `active` again.
pub async fn scan_seed(app: &App, seed: &SeedRow) -> Result<ScanReport, ScanError> {
    let pool = app.store.pool();
    let mut session = match super::login::open(app, &seed.record.imap, IMAP_TIMEOUT).await {
        Ok(s) => s,
        Err(e) => {
            if let ScanError::Imap(ImapError::Login { .. }) = &e {
                let reason = e.to_string();
                store::seeds::set_status(
                    pool,
                    seed.id,
                    SeedStatus::Broken,
                    Some(&reason),
                    app.clock.now(),
                )
                .await?;
            }
            return Err(e);
        }
    };
    if seed.status == SeedStatus::Broken {
        store::seeds::set_status(pool, seed.id, SeedStatus::Active, None, app.clock.now()).await?;
    }
    let result = scan_session(app, seed, &mut session).await;
    let _ = session.logout().await;
    result
}

/// Discovers the folders of an open session.
pub async fn discover_folders(
    session: &mut Session,
    seed: &SeedRow,
) -> Result<FolderMap, ImapError> {
    let names: Vec<_> = session
        .list(Some(""), Some("*"))
        .await?
        .try_collect()
        .await?;
    let listed: Vec<_> = names.iter().map(folders::from_imap).collect();
    let overrides: FolderOverrides = serde_json::from_str(&seed.record.folders).unwrap_or_default();
    Ok(folders::discover(&listed, seed.record.provider, &overrides))
}

/// Scans the seed over a session that is already open (the seed workers keep theirs).
pub async fn scan_session(
    app: &App,
    seed: &SeedRow,
    session: &mut Session,
) -> Result<ScanReport, ScanError> {
    let map = discover_folders(session, seed).await?;
    let caps = session.capabilities().await.map_err(ImapError::from)?;
    let gmail = gmail::supported(&caps);
    let mut report = ScanReport::default();
    for (folder, class) in &map.scan {
        let view = FolderView {
            name: folder,
            class: *class,
            gmail,
        };
        scan_folder(app, seed, session, &view, &mut report).await?;
        report.folders.push(folder.clone());
    }
    Ok(report)
}

/// A folder to scan: its name, its class, and whether the server speaks Gmail's extensions.
struct FolderView<'a> {
    name: &'a str,
    class: Placement,
    gmail: bool,
}

async fn scan_folder(
    app: &App,
    seed: &SeedRow,
    session: &mut Session,
    view: &FolderView<'_>,
    report: &mut ScanReport,
) -> Result<(), ScanError> {
    let (folder, class) = (view.name, view.class);
    let pool = app.store.pool();
    let mailbox = session.select(folder).await.map_err(ImapError::from)?;
    let uidvalidity = i64::from(mailbox.uid_validity.unwrap_or(0));
    let cursor = store::cursors::get(pool, seed.id, folder).await?;
    // A new UIDVALIDITY means the folder was rebuilt: every UID is new again.
    let after = cursor
        .filter(|c| c.uidvalidity == uidvalidity)
        .map(|c| c.last_uid)
        .unwrap_or(0);
    let uid_next = mailbox.uid_next.map(i64::from);
    if mailbox.exists == 0 {
        store::cursors::set(pool, seed.id, folder, uidvalidity, after, app.clock.now()).await?;
        return Ok(());
    }
    let query = format!("UID {}:* {}", after + 1, app.marker.search_key());
    let body_mark = app.marker.mode() == MarkMode::Body;
    let mut uids: Vec<u32> = session
        .uid_search(&query)
        .await
        .map_err(ImapError::from)?
        .into_iter()
        .filter(|u| i64::from(*u) > after)
        .collect();
    uids.sort_unstable();
    let mut high = uids.last().map(|u| i64::from(*u)).unwrap_or(after);
    if let Some(next) = uid_next {
        // Everything below UIDNEXT at SELECT time has been searched.
        high = high.max(next - 1);
    }
    if !uids.is_empty() {
        let set = uids
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        // The mark is in the text: the whole message (warm-up mail is small).
        let part = if body_mark {
            "BODY.PEEK[]"
        } else {
            "BODY.PEEK[HEADER]"
        };
        let labels = if view.gmail { " X-GM-LABELS" } else { "" };
        let fetches: Vec<_> = session
            .uid_fetch(&set, format!("(UID INTERNALDATE{labels} {part})"))
            .await
            .map_err(ImapError::from)?
            .try_collect()
            .await
            .map_err(ImapError::from)?;
        // Gmail sorts its inbox into tabs: which one each new message is in.
        let tabs = if view.gmail && class == Placement::Inbox {
            Some(gmail::tabs(session, &uids).await?)
        } else {
            None
        };
        // One transaction for the whole batch: a commit per message cost ~0.3 ms each on
        // SQLite, ten times the IMAP time of the batch (`hearth bench imap-scan`).
        let mut tx = pool.begin().await.map_err(store::StoreError::from)?;
        for f in &fetches {
            let Some(raw) = (if body_mark { f.body() } else { f.header() }) else {
                continue;
            };
            let seen = headers::parse(raw, app.marker.header());
            let Some(message_id) = &seen.message_id else {
                continue;
            };
            let genuine = if body_mark {
                app.marker.verify_body(message_id, &headers::body_text(raw))
            } else {
                let Some(mark) = &seen.mark else { continue };
                app.marker.verify(message_id, mark)
            };
            if !genuine {
                report.forged += 1;
                continue;
            }
            let Some(sent) = store::outbox::get_by_message_id(&mut *tx, message_id).await? else {
                continue;
            };
            if sent.seed_id != seed.id {
                continue;
            }
            report.found += 1;
            let now = app.clock.now();
            let arrived = f.internal_date().map(|d| d.timestamp()).unwrap_or(now);
            let sent_at = sent.sent_at.unwrap_or(sent.run_at);
            let verdicts = seen
                .auth_results
                .first()
                .map(|v| headers::auth_verdicts(v))
                .unwrap_or_default();
            let tab = match (&tabs, f.uid) {
                (Some(t), Some(uid)) => t.get(&uid).copied(),
                _ => None,
            };
            let class = tab.map(|t| t.placement()).unwrap_or(class);
            let placement = NewPlacement {
                outbox_id: sent.id,
                seed_id: seed.id,
                message_id: message_id.clone(),
                placement: class,
                folder: Some(folder.to_owned()),
                provider: seed.record.provider,
                seen_at: Some(now),
                latency_secs: Some((arrived - sent_at).max(0)),
                auth_spf: verdicts.spf,
                auth_dkim: verdicts.dkim,
                auth_dmarc: verdicts.dmarc,
                auth_results: (!seen.auth_results.is_empty()).then(|| seen.auth_results.join("\n")),
                imap_uidvalidity: Some(uidvalidity),
                imap_uid: f.uid.map(i64::from),
                gmail: view.gmail.then(|| GmailSeen {
                    labels: gmail::labels(f),
                    tab,
                }),
            };
            if store::ledger::record(&mut *tx, &placement, now).await? {
                report.recorded += 1;
                tracing::info!(seed = %seed.record.address, %message_id, placement = %class, folder, "placement recorded");
            }
            // A message seen before its send was confirmed (a crash between SMTP and the
            // database) is proof that it was sent.
            if sent.status == OutboxStatus::Sending {
                tracing::info!(%message_id, "found in the seed inbox while marked sending");
            }
        }
        tx.commit().await.map_err(store::StoreError::from)?;
    }
    store::cursors::set(pool, seed.id, folder, uidvalidity, high, app.clock.now()).await?;
    Ok(())
}
