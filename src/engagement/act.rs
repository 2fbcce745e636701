//! Acting like an attentive recipient in one seed inbox: open, star, rescue from spam, and
//! finally file the message out of the inbox. Commands go in batches over UID sets (one STORE
//! or MOVE per folder and action), and every action is recorded as an engagement event.
//!
//! Idempotent across reconnects and restarts: each pass first finds where every message is
//! now, so an action that was done but not yet recorded (a crash in between) is recognised
//! by its effect and only recorded — never done twice.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use futures::TryStreamExt as _;

use super::folders::FolderMap;
use super::imap::{ImapError, Session};
use super::scan::{ScanError, discover_folders};
use super::{decide, gmail, reply};
use crate::domain::{EngagementAction, Placement};
use crate::startup::{App, CampaignSpec};
use crate::store::{self, ledger::EngageCandidate, seeds::SeedRow};

/// The folder warm-up mail is filed into when the seed has no override.
pub const DEFAULT_WARMUP_FOLDER: &str = "Warmup";
/// Messages seen longer ago than this are left alone.
const HORIZON_SECS: i64 = 7 * 86_400;
const IMAP_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EngageReport {
    /// Actions done on the server and recorded.
    pub performed: usize,
    /// Actions found already done (a previous pass did them) and recorded now.
    pub recognised: usize,
    /// Messages not found in any delivery folder (deleted by the seed's owner?).
    pub not_found: usize,
}

struct Due {
    placement_id: i64,
    message_id: String,
    /// Where the message was first seen (the ledger's class).
    placement: Placement,
    actions: Vec<EngagementAction>,
}

/// One engagement pass over a seed: the step the worker loop and the tests call.
pub async fn engage_seed(app: &App, seed: &SeedRow) -> Result<EngageReport, ScanError> {
    let pool = app.store.pool();
    let now = app.clock.now();
    let candidates = store::ledger::engage_candidates(pool, seed.id, now - HORIZON_SECS).await?;
    let can_reply = seed.record.smtp.is_some();
    let due: Vec<Due> = candidates
        .iter()
        .filter_map(|c| due_actions(c, now, can_reply))
        .collect();
    if due.is_empty() {
        return Ok(EngageReport::default());
    }
    let mut session = super::login::open(app, &seed.record.imap, IMAP_TIMEOUT).await?;
    let result = match discover_folders(&mut session, seed).await {
        Ok(folders) => act(app, seed, &mut session, &folders, &due).await,
        Err(e) => Err(e.into()),
    };
    let _ = session.logout().await;
    result
}

/// The same pass over a session that is already open (the seed workers keep theirs), in the
/// folders its scan listed ([`super::scan::discover_folders`]: one LIST for the worker's
/// pass). Sends nothing to the server when nothing is due.
pub async fn engage_session(
    app: &App,
    seed: &SeedRow,
    session: &mut Session,
    folders: &FolderMap,
) -> Result<EngageReport, ScanError> {
    let now = app.clock.now();
    let candidates =
        store::ledger::engage_candidates(app.store.pool(), seed.id, now - HORIZON_SECS).await?;
    let can_reply = seed.record.smtp.is_some();
    let due: Vec<Due> = candidates
        .iter()
        .filter_map(|c| due_actions(c, now, can_reply))
        .collect();
    if due.is_empty() {
        return Ok(EngageReport::default());
    }
    act(app, seed, session, folders, &due).await
}

/// The actions of a candidate whose time has come and that are not recorded yet.
/// Replies are planned only for seeds that can send (`can_reply`: the seed has SMTP).
fn due_actions(c: &EngageCandidate, now: i64, can_reply: bool) -> Option<Due> {
    let spec: CampaignSpec = serde_json::from_str(&c.plan).ok()?;
    let p = &c.placement.record;
    let seen = p.seen_at?;
    let planned = decide::plan(&p.message_id, p.placement, &spec.plan.rates, can_reply);
    let actions: Vec<EngagementAction> = planned
        .iter()
        .filter(|a| seen + a.after_secs <= now && !c.done.contains(&a.action))
        .map(|a| a.action)
        .collect();
    (!actions.is_empty()).then(|| Due {
        placement_id: c.placement.id,
        message_id: p.message_id.clone(),
        placement: p.placement,
        actions,
    })
}

async fn act(
    app: &App,
    seed: &SeedRow,
    session: &mut Session,
    folders: &FolderMap,
    due: &[Due],
) -> Result<EngageReport, ScanError> {
    let pool = app.store.pool();
    let mut report = EngageReport::default();
    let caps = super::imap::capabilities(session).await?;
    let has_move = caps.has("MOVE");
    let gmail = gmail::supported(&caps);
    let warmup = &folders.warmup;
    let wanted: HashMap<&str, &Due> = due
        .iter()
        .map(|d| (crate::mark::bare_message_id(&d.message_id), d))
        .collect();

    // Where is each message now? Inbox, spam, other delivery folders, and the warm-up folder
    // if there is one. Each folder's SELECT, search and fetch go out together (one round trip
    // where the server has SEARCHRES), and only genuinely marked mail counts.
    let mut places: Vec<&str> = folders.scan.iter().map(|(f, _)| f.as_str()).collect();
    if folders.warmup_listed {
        places.push(warmup);
    }
    let how = super::scan::Searching::of(&caps);
    let mut located: HashMap<String, (String, u32)> = HashMap::new();
    for folder in places {
        for found in super::scan::classify_folder(app, session, folder, how).await? {
            let mid = crate::mark::bare_message_id(&found.message_id);
            let uid = found.imap_uid.and_then(|uid| u32::try_from(uid).ok());
            if let Some(uid) = uid.filter(|_| wanted.contains_key(mid)) {
                located.insert(mid.to_owned(), (folder.to_owned(), uid));
            }
        }
    }

    // Per folder: flags, then moves (rescue out of spam, file out of the inbox).
    let spam = folders.spam.clone();
    let mut by_folder: BTreeMap<String, Vec<(&Due, u32)>> = BTreeMap::new();
    for d in due {
        match located.get(crate::mark::bare_message_id(&d.message_id)) {
            Some((folder, uid)) => by_folder.entry(folder.clone()).or_default().push((d, *uid)),
            None => report.not_found += 1,
        }
    }
    let mut warmup_exists = folders.warmup_listed;
    for (folder, items) in by_folder {
        session.select(&folder).await.map_err(ImapError::from)?;
        let in_spam = spam.as_deref() == Some(folder.as_str());
        let in_inbox = folder == folders.inbox;
        let set_of = |action: EngagementAction| -> Vec<(&Due, u32)> {
            items
                .iter()
                .filter(|(d, _)| d.actions.contains(&action))
                .copied()
                .collect()
        };
        for (action, flag) in [
            (EngagementAction::Open, "\\Seen"),
            (EngagementAction::Star, "\\Flagged"),
        ] {
            let these = set_of(action);
            if these.is_empty() {
                continue;
            }
            let uids = uid_set(&these);
            let _: Vec<_> = session
                .uid_store(&uids, format!("+FLAGS.SILENT ({flag})"))
                .await
                .map_err(ImapError::from)?
                .try_collect()
                .await
                .map_err(ImapError::from)?;
            report.performed += record(app, &these, action, &folder).await?;
        }
        // Gmail's \Important label needs its IMAP extension; other servers have no such
        // thing, and the action is recorded as not done (so it is not retried every pass).
        let important = set_of(EngagementAction::Important);
        if !important.is_empty() && gmail {
            gmail::add_label(session, &uid_set(&important), gmail::IMPORTANT).await?;
            report.performed += record(
                app,
                &important,
                EngagementAction::Important,
                "+X-GM-LABELS (\\Important)",
            )
            .await?;
        } else if !important.is_empty() {
            for (d, _) in &important {
                store::engagement::record(
                    pool,
                    d.placement_id,
                    EngagementAction::Important,
                    app.clock.now(),
                    Some("not supported by this server"),
                )
                .await?;
            }
        }
        // Replies read the message where it is now, before any move.
        let reply = set_of(EngagementAction::Reply);
        if !reply.is_empty() {
            let (new, old) = queue_replies(app, seed, session, &reply).await?;
            report.performed += new;
            report.recognised += old;
        }
        let rescue = set_of(EngagementAction::Rescue);
        if !rescue.is_empty() {
            if in_spam {
                move_uids(session, &uid_set(&rescue), &folders.inbox, has_move).await?;
                report.performed += record(
                    app,
                    &rescue,
                    EngagementAction::Rescue,
                    &format!("{folder} → {}", folders.inbox),
                )
                .await?;
            } else if gmail && in_inbox {
                // Out of Promotions: Gmail's IMAP cannot change a message's tab (see
                // `gmail`); the documented signal is the \Important label. Mail first
                // seen in spam and rescued before is already in the inbox: recognised.
                let (promo, rescued): (Vec<_>, Vec<_>) = rescue
                    .iter()
                    .partition(|(d, _)| d.placement == Placement::Promotions);
                if !promo.is_empty() {
                    gmail::add_label(session, &uid_set(&promo), gmail::IMPORTANT).await?;
                    report.performed += record(
                        app,
                        &promo,
                        EngagementAction::Rescue,
                        "Promotions: +X-GM-LABELS (\\Important); the tab is not changeable over IMAP",
                    )
                    .await?;
                }
                report.recognised += record(
                    app,
                    &rescued,
                    EngagementAction::Rescue,
                    "already out of spam",
                )
                .await?;
            } else {
                // Already out of spam (a previous pass moved it, or the owner did).
                report.recognised += record(
                    app,
                    &rescue,
                    EngagementAction::Rescue,
                    "already out of spam",
                )
                .await?;
            }
        }
        let file: Vec<_> = set_of(EngagementAction::File)
            .into_iter()
            .filter(|(d, _)| !d.actions.contains(&EngagementAction::Rescue) || !in_spam)
            .collect();
        if !file.is_empty() {
            if in_inbox {
                if !warmup_exists {
                    // Created when missing; an "already exists" answer is fine.
                    let _ = session.create(warmup).await;
                    warmup_exists = true;
                }
                move_uids(session, &uid_set(&file), warmup, has_move).await?;
                report.performed += record(
                    app,
                    &file,
                    EngagementAction::File,
                    &format!("{folder} → {warmup}"),
                )
                .await?;
            } else if folder == *warmup {
                report.recognised +=
                    record(app, &file, EngagementAction::File, "already filed").await?;
            }
            // Elsewhere (still in spam, another folder): filed on a later pass.
        }
    }
    Ok(report)
}

/// Reads the messages (in the selected folder) and queues the seed's reply to each, with its
/// `reply` event, in one transaction per reply. Returns (queued now, queued before).
async fn queue_replies(
    app: &App,
    seed: &SeedRow,
    session: &mut Session,
    items: &[(&Due, u32)],
) -> Result<(usize, usize), ScanError> {
    let pool = app.store.pool();
    let fetches: Vec<_> = session
        .uid_fetch(uid_set(items), "(UID BODY.PEEK[])")
        .await
        .map_err(ImapError::from)?
        .try_collect()
        .await
        .map_err(ImapError::from)?;
    let (mut new, mut old) = (0, 0);
    for (d, uid) in items {
        let Some(raw) = fetches
            .iter()
            .find(|f| f.uid == Some(*uid))
            .and_then(|f| f.body())
        else {
            continue;
        };
        let Some(sent) = store::outbox::get_by_message_id(pool, &d.message_id).await? else {
            continue;
        };
        let parsed = mail_parser::MessageParser::default().parse(raw);
        let text = parsed
            .as_ref()
            .and_then(|m| m.body_text(0))
            .map(|t| t.into_owned())
            .unwrap_or_default();
        let from = parsed
            .as_ref()
            .and_then(|m| m.from())
            .and_then(|a| a.first())
            .map(|a| match (a.name(), a.address()) {
                (Some(n), Some(e)) => format!("{n} <{e}>"),
                (None, Some(e)) => e.to_owned(),
                _ => String::new(),
            })
            .unwrap_or_default();
        let date = parsed
            .as_ref()
            .and_then(|m| m.date())
            .map(|d| d.to_rfc822());
        let original = reply::Original {
            message_id: &d.message_id,
            from: &from,
            date: date.as_deref(),
            text: &text,
        };
        let now = app.clock.now();
        let new_reply = store::replies::NewReply {
            campaign_id: sent.campaign_id,
            seed_id: seed.id,
            placement_id: d.placement_id,
            message_id: reply::message_id(&d.message_id, &seed.record.address),
            subject: reply::subject(&sent.subject),
            in_reply_to: d.message_id.clone(),
            body: reply::body(&original, &seed.record.address),
            run_at: now,
        };
        let mut tx = app.store.begin().await?;
        let queued = store::replies::queue(&mut tx, &new_reply, now).await?;
        tx.commit().await.map_err(store::StoreError::from)?;
        if queued {
            tracing::info!(seed = %seed.record.address, original = %d.message_id, reply = %new_reply.message_id, "reply queued");
            new += 1;
        } else {
            old += 1;
        }
    }
    Ok((new, old))
}

fn uid_set(items: &[(&Due, u32)]) -> String {
    items
        .iter()
        .map(|(_, u)| u.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// UID MOVE, or COPY + \Deleted + UID EXPUNGE where the server has no MOVE.
pub(super) async fn move_uids(
    session: &mut Session,
    uids: &str,
    to: &str,
    has_move: bool,
) -> Result<(), ScanError> {
    if has_move {
        session.uid_mv(uids, to).await.map_err(ImapError::from)?;
        return Ok(());
    }
    session.uid_copy(uids, to).await.map_err(ImapError::from)?;
    let _: Vec<_> = session
        .uid_store(uids, "+FLAGS.SILENT (\\Deleted)")
        .await
        .map_err(ImapError::from)?
        .try_collect()
        .await
        .map_err(ImapError::from)?;
    let _: Vec<_> = session
        .uid_expunge(uids)
        .await
        .map_err(ImapError::from)?
        .try_collect()
        .await
        .map_err(ImapError::from)?;
    Ok(())
}

async fn record(
    app: &App,
    items: &[(&Due, u32)],
    action: EngagementAction,
    detail: &str,
) -> Result<usize, ScanError> {
    let mut n = 0;
    for (d, _) in items {
        if store::engagement::record(
            app.store.pool(),
            d.placement_id,
            action,
            app.clock.now(),
            Some(detail),
        )
        .await?
        {
            n += 1;
        }
    }
    Ok(n)
}
