//! One scan of one seed inbox: find Hearth's marked mail that arrived since the last scan in
//! every folder worth looking at, and write each message's placement to the ledger once.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::time::Duration;

use futures::TryStreamExt as _;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use super::folders::{self, FolderMap};
use super::gmail;
use super::imap::{ImapError, Session};
use super::marked::{self, Marked};
use crate::config::FolderOverrides;
use crate::domain::{OutboxStatus, Placement, SeedStatus};
use crate::mark::MarkMode;
use crate::startup::App;
use crate::store::ledger::{GmailSeen, NewPlacement};
use crate::store::scan_batch::{FolderSighting, Sighting};
use crate::store::{self, seeds::SeedRow};

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
    scan_folders(app, seed, session, &map).await
}

/// Scans the folders of `map` ([`discover_folders`]) over an open session: a worker's pass
/// lists the folders once for its scan and its engagement.
pub async fn scan_folders(
    app: &App,
    seed: &SeedRow,
    session: &mut Session,
    map: &FolderMap,
) -> Result<ScanReport, ScanError> {
    let caps = super::imap::capabilities(session).await?;
    let gmail = gmail::supported(&caps);
    let how = Searching::of(&caps);
    let mut report = ScanReport::default();
    for (folder, class) in &map.scan {
        if gmail {
            let view = FolderView {
                name: folder,
                class: *class,
                gmail,
            };
            scan_folder_gmail(app, seed, session, &view, &mut report).await?;
        } else {
            scan_folder(app, seed, session, folder, *class, how, &mut report).await?;
        }
        report.folders.push(folder.clone());
    }
    Ok(report)
}

/// How a folder's new marked mail is searched and fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Searching {
    /// UID SEARCH, then a UID FETCH of the UIDs it returned: two round trips.
    TwoSteps,
    /// The server has SEARCHRES (RFC 5182): the UID SEARCH saves its result as `$` and the UID
    /// FETCH of `$` goes out right behind it, one round trip for both.
    Pipelined,
}

impl Searching {
    /// Pipelined where the server offers SEARCHRES.
    pub fn of(caps: &super::imap::Caps) -> Searching {
        if caps.has("SEARCHRES") {
            Searching::Pipelined
        } else {
            Searching::TwoSteps
        }
    }
}

/// Scans one folder for marked mail that arrived since its cursor and records what it finds.
/// Where the server has SEARCHRES, that is one round trip: the SELECT, the UID SEARCH from the
/// cursor and the UID FETCH of its result (the few header fields the scan reads) go out
/// together, the cursor being read from the database while the SELECT is on its way (see
/// [`Searching`] for servers without SEARCHRES). The search assumes that the folder's
/// UIDVALIDITY is still the cursor's. The SELECT's answer, which comes before any other,
/// tells: where it is not, nothing of that search is recorded and the folder is scanned
/// again from its first message.
///
/// Each response is checked as it arrives, and the database work runs beside the FETCH, in
/// chunks: while the server sends the rest, the placements of the messages already verified
/// are inserted, joined with this seed's outbox rows, one statement per chunk
/// ([`store::scan_batch`]). Each insert is atomic on its own and skips what is recorded
/// already; the cursor moves last, once every chunk is in, so a scan cut short is repeated
/// and records nothing twice.
pub async fn scan_folder(
    app: &App,
    seed: &SeedRow,
    session: &mut Session,
    folder: &str,
    class: Placement,
    how: Searching,
    report: &mut ScanReport,
) -> Result<(), ScanError> {
    let mut target = Target {
        folder,
        class,
        how,
        from_start: false,
    };
    if scan_folder_from(app, seed, session, &target, report).await? == Scanned::Rebuilt {
        // A new UIDVALIDITY: the folder was rebuilt, every UID is new again.
        target.from_start = true;
        scan_folder_from(app, seed, session, &target, report).await?;
    }
    Ok(())
}

/// A folder to scan, and how.
struct Target<'a> {
    folder: &'a str,
    class: Placement,
    how: Searching,
    /// Search from the folder's first message, whatever the cursor says.
    from_start: bool,
}

/// How one pass over a folder ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scanned {
    /// Searched from the cursor (or the start), recorded, the cursor moved.
    Done,
    /// The folder's UIDVALIDITY is not the cursor's: the search from the cursor found only
    /// part of the new mail. Nothing was recorded, the cursor did not move.
    Rebuilt,
}

/// One pass of [`scan_folder`].
async fn scan_folder_from(
    app: &App,
    seed: &SeedRow,
    session: &mut Session,
    target: &Target<'_>,
    report: &mut ScanReport,
) -> Result<Scanned, ScanError> {
    let pool = app.store.pool();
    let seen_at = app.clock.now();
    let sighted = |imap_uidvalidity| FolderSighting {
        seed_id: seed.id,
        provider: seed.record.provider,
        placement: target.class,
        folder: target.folder,
        imap_uidvalidity,
        seen_at,
    };
    let select = select_command(target.folder)?;
    let (tag, read) = tokio::join!(session.run_command(select), async {
        let mut conn = pool.acquire().await.map_err(store::StoreError::from)?;
        let cursor = store::cursors::get(&mut *conn, seed.id, target.folder).await?;
        let sending = store::scan_batch::sending(&mut conn, seed.id).await?;
        Ok::<_, store::StoreError>((cursor, sending))
    });
    let mut sent = vec![(tag.map_err(ImapError::from)?, "SELECT")];
    let (cursor, sending) = match read {
        Ok(read) => read,
        Err(e) => {
            // The SELECT's answer is read all the same: the session stays in step.
            read_answers(app, session, sent, Assumed::default(), None, None).await?;
            return Err(e.into());
        }
    };
    let assumed = match cursor.filter(|_| !target.from_start) {
        Some(c) => Assumed {
            after: c.last_uid,
            uidvalidity: Some(c.uidvalidity),
        },
        None => Assumed::default(),
    };
    let after = assumed.after;
    send(session, search_commands(app, target.how, after), &mut sent).await?;
    let (folder_tx, folder_rx) = tokio::sync::oneshot::channel();
    let (sightings, chunks) = tokio::sync::mpsc::unbounded_channel();
    let (selected, (found, recorded)) = tokio::try_join!(
        read_answers(
            app,
            session,
            sent,
            assumed,
            Some(folder_tx),
            Some(sightings)
        ),
        async {
            // The SELECT's answer comes first; without it (refused, or another UIDVALIDITY),
            // nothing is recorded.
            let Ok((uidvalidity, expected)) = folder_rx.await else {
                return Ok((0, 0));
            };
            record_chunks(app, &sighted(uidvalidity), &sending, expected, chunks).await
        },
    )?;
    let Some(selected) = selected else {
        return Ok(Scanned::Rebuilt);
    };
    report.forged += selected.forged;
    report.found += found;
    report.recorded += recorded;
    if recorded > 0 {
        tracing::info!(seed = %seed.record.address, placement = %target.class, folder = target.folder, recorded, "placements recorded");
    }
    // Everything below UIDNEXT at SELECT time has been searched.
    let high = after
        .max(selected.high)
        .max(selected.uid_next.map_or(0, |next| i64::from(next) - 1));
    let folder = sighted(selected.uidvalidity);
    store::scan_batch::set_cursor_on(&app.store, &folder, high, app.clock.now()).await?;
    Ok(Scanned::Done)
}

/// Sends `commands` (each with its name, for errors) one after the other without waiting
/// for answers, adding their tags to `sent`.
async fn send(
    session: &mut Session,
    commands: impl IntoIterator<Item = (String, &'static str)>,
    sent: &mut Vec<(async_imap::imap_proto::RequestId, &'static str)>,
) -> Result<(), ImapError> {
    for (command, name) in commands {
        sent.push((session.run_command(command).await?, name));
    }
    Ok(())
}

/// `SELECT "folder"`, the name quoted as async-imap quotes it (a name with a line break in
/// it cannot be sent).
fn select_command(folder: &str) -> Result<String, ImapError> {
    if folder.contains(['\r', '\n']) {
        return Err(ImapError::Protocol(format!(
            "a folder name with a line break cannot be selected: {folder:?}"
        )));
    }
    Ok(format!(
        "SELECT \"{}\"",
        folder.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

/// The search for marked mail above `after`, as it goes out behind the SELECT: with
/// SEARCHRES the UID SEARCH saves its result as `$` and the UID FETCH of `$` follows without
/// waiting for it (RFC 5182; a SEARCH the server refused is an error, never an empty folder:
/// the FETCH of an unset `$` finds nothing). Otherwise the UID SEARCH alone: the UID FETCH
/// of what it finds is sent once its answer is in ([`read_answers`]).
fn search_commands(app: &App, how: Searching, after: i64) -> Vec<(String, &'static str)> {
    let key = app.marker.search_key();
    match how {
        Searching::Pipelined => vec![
            (
                format!("UID SEARCH RETURN (SAVE) UID {}:* {key}", after + 1),
                "UID SEARCH",
            ),
            (
                format!("UID FETCH $ {}", marked::fetch_items(&app.marker)),
                "UID FETCH",
            ),
        ],
        Searching::TwoSteps => vec![(
            format!("UID SEARCH UID {}:* {key}", after + 1),
            "UID SEARCH",
        )],
    }
}

/// The first half of [`scan_folder`] alone: SELECT, search and fetch every marked message of
/// `folder`, verify and read each; nothing is recorded, no cursor read or moved. Returns the
/// verified sightings. Engagement finds its messages with it (where each is now), and the scan
/// bench times it apart from the ledger.
pub(crate) async fn classify_folder(
    app: &App,
    session: &mut Session,
    folder: &str,
    how: Searching,
) -> Result<Vec<Sighting>, ScanError> {
    let mut sent = Vec::new();
    let mut commands = vec![(select_command(folder)?, "SELECT")];
    commands.extend(search_commands(app, how, 0));
    send(session, commands, &mut sent).await?;
    let (folder_tx, _folder) = tokio::sync::oneshot::channel();
    let (out, mut sightings) = tokio::sync::mpsc::unbounded_channel();
    let collect = async {
        let mut all = Vec::new();
        while sightings.recv_many(&mut all, 1024).await > 0 {}
        Ok::<_, ScanError>(all)
    };
    let reading = read_answers(
        app,
        session,
        sent,
        Assumed::default(),
        Some(folder_tx),
        Some(out),
    );
    let (_, all) = tokio::try_join!(reading, collect)?;
    Ok(all)
}

/// What a scan's search assumes of the folder: the cursor's UID and UIDVALIDITY (none: from
/// the first message, whatever the UIDVALIDITY).
#[derive(Debug, Clone, Copy, Default)]
struct Assumed {
    after: i64,
    uidvalidity: Option<i64>,
}

/// What the answers to a folder's SELECT, SEARCH and FETCH said besides the sightings.
#[derive(Debug, Clone, Copy, Default)]
struct Selected {
    /// The folder's UIDVALIDITY (0 where the server gave none).
    uidvalidity: i64,
    uid_next: Option<u32>,
    /// Marks that did not verify.
    forged: usize,
    /// The highest UID fetched above the cursor (0 if none).
    high: i64,
}

/// Where the SELECT of a folder scan stands while its answers are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Selecting {
    /// Not answered yet: the untagged responses are the SELECT's.
    Waiting,
    /// Selected, the search's assumption holds: what the FETCH brings is this folder's new mail.
    Holds,
    /// Refused, or another UIDVALIDITY than assumed: nothing read after it is passed on.
    Void,
}

/// The UIDs above `after` that `search` (a UID SEARCH) finds, ascending. (`n:*` holds the
/// highest UID even below `n`: mail seen in an earlier scan.)
pub(crate) async fn new_uids(
    session: &mut Session,
    search: &str,
    after: i64,
) -> Result<Vec<u32>, ImapError> {
    let mut uids: Vec<u32> = session
        .uid_search(search)
        .await?
        .into_iter()
        .filter(|u| i64::from(*u) > after)
        .collect();
    uids.sort_unstable();
    Ok(uids)
}

/// A command the server answered `NO` or `BAD`: transient, like every protocol error (the
/// next scan asks again; the cursor has not moved).
fn refused(command: &str, reason: &str) -> ScanError {
    ImapError::Protocol(format!("{command} refused: {reason}")).into()
}

/// Reads the server's answers to the commands `sent` (their tags and names, the SELECT
/// first) until every one is complete, the UID FETCH of a two-step search included, which is
/// sent once its UID SEARCH is answered. The SELECT's answer says what the folder holds;
/// when it is `OK` and the folder's UIDVALIDITY is the one the search assumed, its
/// UIDVALIDITY and how many new messages it can hold at most go to `folder`, and from then
/// on each FETCH response is checked as it arrives: the messages above the cursor whose mark
/// verifies go to `out`, marks that do not verify are counted. Returns what the folder held,
/// or `None` where the assumption did not hold (nothing was passed on).
///
/// A command the server answered `NO` or `BAD` is an error, the first one sent that was
/// ([`refused`]), once every answer is in: the session is ready for the next command either
/// way. A refused SELECT leaves no folder selected (RFC 3501), so what is sent behind it is
/// refused too; whatever a server answers to it all the same is not passed on.
///
/// The responses are read straight off the connection ([`super::wire::Reader`]), not through
/// async-imap's stream, which copies and parses each into owned attribute lists (see the
/// `wire` module for what that cost), and whose FETCH stream ends on the tagged answer
/// without saying whether it was `OK`. Untagged responses a scan has no use for (EXPUNGE,
/// FLAGS, …) are dropped: it asks for what it needs anew each time.
async fn read_answers(
    app: &App,
    session: &mut Session,
    mut sent: Vec<(async_imap::imap_proto::RequestId, &'static str)>,
    assumed: Assumed,
    mut folder: Option<tokio::sync::oneshot::Sender<(i64, usize)>>,
    out: Option<UnboundedSender<Sighting>>,
) -> Result<Option<Selected>, ScanError> {
    use super::wire::{Reader, Response, Status};
    let mut answered = vec![false; sent.len()];
    let mut refusal: Option<(usize, ScanError)> = None;
    let mut selected = Selected::default();
    let mut exists = 0;
    let mut selecting = Selecting::Waiting;
    let mut found_uids = Vec::new();
    let mut passed = 0;
    let mut closed = out.is_none();
    let mut reader = Reader::default();
    while answered.contains(&false) {
        let response = reader
            .next(session.get_mut())
            .await
            .map_err(|e| ImapError::Protocol(e.to_string()))?;
        match response {
            Response::Exists(n) if selecting == Selecting::Waiting => exists = n,
            Response::UidValidity(n) if selecting == Selecting::Waiting => {
                selected.uidvalidity = i64::from(n);
            }
            Response::UidNext(n) if selecting == Selecting::Waiting => selected.uid_next = Some(n),
            Response::Search(uids) if selecting == Selecting::Holds => found_uids.extend(uids),
            Response::Fetch(attrs) => {
                if selecting != Selecting::Holds || closed {
                    continue; // not this search's, or the recording side failed
                }
                let Some(sighting) = sighting(app, &attrs, assumed.after, &mut selected) else {
                    continue;
                };
                if out.as_ref().is_none_or(|out| out.send(sighting).is_err()) {
                    closed = true;
                    continue;
                }
                passed += 1;
                if passed % store::scan_batch::CHUNK_SIZES[3] == 0 {
                    // Responses already buffered never make the reading wait: let the
                    // recording side take a chunk that is full to the database now, beside
                    // the rest of the FETCH.
                    tokio::task::yield_now().await;
                }
            }
            Response::Done { tag, status, text } => {
                let Some(i) = sent.iter().position(|(t, _)| t.0 == tag) else {
                    continue;
                };
                answered[i] = true;
                if status != Status::Ok {
                    if refusal.as_ref().is_none_or(|(j, _)| i < *j) {
                        refusal = Some((i, refused(sent[i].1, text)));
                    }
                    if i == 0 {
                        selecting = Selecting::Void;
                    }
                    continue;
                }
                if i == 0 {
                    if assumed
                        .uidvalidity
                        .is_some_and(|u| u != selected.uidvalidity)
                    {
                        selecting = Selecting::Void;
                        continue;
                    }
                    selecting = Selecting::Holds;
                    // What the FETCH can bring at most: the messages above the cursor.
                    let new_at_most = selected.uid_next.map_or(exists as usize, |next| {
                        let above = (i64::from(next) - 1 - assumed.after).max(0);
                        (exists as usize).min(usize::try_from(above).unwrap_or(usize::MAX))
                    });
                    if folder
                        .take()
                        .is_some_and(|f| f.send((selected.uidvalidity, new_at_most)).is_err())
                    {
                        closed = true;
                    }
                } else if sent[i].1 == "UID SEARCH"
                    && selecting == Selecting::Holds
                    && !sent.iter().any(|(_, name)| *name == "UID FETCH")
                {
                    // A two-step search (no FETCH of `$` went out with it): the UID FETCH of
                    // what it found.
                    let mut uids: Vec<u32> = std::mem::take(&mut found_uids)
                        .into_iter()
                        .filter(|u| i64::from(*u) > assumed.after)
                        .collect();
                    uids.sort_unstable();
                    if !uids.is_empty() {
                        let items = marked::fetch_items(&app.marker);
                        let command = format!("UID FETCH {} {items}", uid_set(&uids));
                        send(session, [(command, "UID FETCH")], &mut sent).await?;
                        answered.push(false);
                    }
                }
            }
            _ => {}
        }
    }
    session.get_mut().unread(reader.finish());
    if let Some((_, e)) = refusal {
        return Err(e);
    }
    Ok((selecting == Selecting::Holds).then_some(selected))
}

/// What a scan records of one FETCH response: `None` for a message at or below `after`
/// (`n:*` holds the highest UID even below `n`: mail seen in an earlier scan), or without a
/// genuine mark (a forged one is counted).
fn sighting(
    app: &App,
    attrs: &super::wire::FetchAttrs<'_>,
    after: i64,
    selected: &mut Selected,
) -> Option<Sighting> {
    let uid = attrs.uid.map_or(0, i64::from);
    if uid <= after {
        return None;
    }
    selected.high = selected.high.max(uid);
    let (mut seen, message_id) = match marked::check_wire(&app.marker, attrs) {
        Marked::Unmarked => return None,
        Marked::Forged => {
            selected.forged += 1;
            return None;
        }
        Marked::Genuine(seen, id) => (seen, id),
    };
    let verdicts = seen.verdicts();
    Some(Sighting {
        message_id: message_id.into(),
        arrived: attrs
            .internal_date
            .and_then(super::imap::date_time)
            .unwrap_or_else(|| app.clock.now()),
        auth_spf: verdicts.spf.map(Into::into),
        auth_dkim: verdicts.dkim.map(Into::into),
        auth_dmarc: verdicts.dmarc.map(Into::into),
        auth_results: seen.take_auth_results().map(Into::into),
        imap_uid: Some(uid),
    })
}

/// The IMAP set of `uids` (sorted, ascending): runs written as ranges, `1:1000,1003`.
pub fn uid_set(uids: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] <= end.saturating_add(1) {
            i += 1;
            end = end.max(uids[i]);
        }
        if !out.is_empty() {
            out.push(',');
        }
        if end == start {
            let _ = write!(out, "{start}");
        } else {
            let _ = write!(out, "{start}:{end}");
        }
        i += 1;
    }
    out
}

/// Records the sightings as they come, a chunk at a time, until the FETCH is over, beside it:
/// full chunks while plenty are to come, then whatever is ready each time the database is
/// free ([`store::scan_batch::next_chunk`]), so that little is left to write after the last
/// response. `expected` is how many the FETCH should bring, `sending` the seed's sends not
/// yet confirmed when the scan began. Returns (found, recorded).
async fn record_chunks(
    app: &App,
    folder: &FolderSighting<'_>,
    sending: &[String],
    expected: usize,
    mut sightings: UnboundedReceiver<Sighting>,
) -> Result<(usize, usize), ScanError> {
    use tokio::sync::mpsc::error::TryRecvError;
    let (mut found, mut recorded, mut received) = (0, 0, 0);
    let mut ready = Vec::new();
    let mut over = false;
    loop {
        while !over {
            match sightings.try_recv() {
                Ok(s) => {
                    ready.push(s);
                    received += 1;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => over = true,
            }
        }
        let to_come = expected.saturating_sub(received);
        match store::scan_batch::next_chunk(ready.len(), to_come, over) {
            Some(n) => {
                let (f, r) = record(app, folder, sending, &ready[..n]).await?;
                found += f;
                recorded += r;
                ready.drain(..n);
            }
            None if over => return Ok((found, recorded)),
            None => {
                let got = sightings
                    .recv_many(&mut ready, store::scan_batch::CHUNK)
                    .await;
                received += got;
                over = got == 0;
            }
        }
    }
}

/// Records a chunk: inserts the placements of this seed's messages among them (only genuine
/// marks on this very seed's mail count), joined with their outbox rows in one statement
/// (atomic on its own). When every distinct Message-ID went in, all were this seed's mail;
/// only otherwise (recorded before, or not ours) are they counted. Returns (found, recorded).
async fn record(
    app: &App,
    folder: &FolderSighting<'_>,
    sending: &[String],
    chunk: &[Sighting],
) -> Result<(usize, usize), ScanError> {
    let recorded =
        store::scan_batch::record_sightings_on(&app.store, folder, chunk).await? as usize;
    let ids: HashSet<&str> = chunk.iter().map(|s| &*s.message_id).collect();
    let found = if recorded == ids.len() {
        recorded
    } else {
        let ids: Vec<&str> = ids.into_iter().collect();
        let mut conn = app
            .store
            .pool()
            .acquire()
            .await
            .map_err(store::StoreError::from)?;
        store::scan_batch::attribute(&mut conn, folder.seed_id, &ids)
            .await?
            .found as usize
    };
    // A message seen before its send was confirmed (a crash between SMTP and the database)
    // is proof that it was sent.
    for message_id in sending {
        if chunk.iter().any(|s| *s.message_id == **message_id) {
            tracing::info!(%message_id, "found in the seed inbox while marked sending");
        }
    }
    Ok((found, recorded))
}

/// A folder to scan: its name, its class, and whether the server speaks Gmail's extensions.
struct FolderView<'a> {
    name: &'a str,
    class: Placement,
    gmail: bool,
}

/// [`scan_folder`] for servers with Gmail's extensions: each message's `X-GM-LABELS` and
/// inbox tab are its own, so these folders are recorded a message at a time (one transaction
/// per folder), with whole headers fetched.
async fn scan_folder_gmail(
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
    let uids = new_uids(session, &query, after).await?;
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
            let (mut seen, message_id) = match marked::check_fetch(&app.marker, f) {
                Marked::Unmarked => continue,
                Marked::Forged => {
                    report.forged += 1;
                    continue;
                }
                Marked::Genuine(seen, id) => (seen, id),
            };
            let message_id = &message_id;
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
            let verdicts = seen.verdicts();
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
                auth_results: seen.take_auth_results(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets_collapse_runs() {
        let cases: &[(&[u32], &str)] = &[
            (&[], ""),
            (&[7], "7"),
            (&[1, 2, 3], "1:3"),
            (&[1, 2, 3, 5, 7, 8, 10], "1:3,5,7:8,10"),
            (&[4, 4, 5], "4:5"),
            (&[u32::MAX - 1, u32::MAX], "4294967294:4294967295"),
        ];
        for (uids, want) in cases {
            assert_eq!(uid_set(uids), *want, "{uids:?}");
        }
    }
}
