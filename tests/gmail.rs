//! Gmail's IMAP extensions (X-GM-EXT-1).
//!
//! No real Gmail is reachable from here, so the Gmail path is a **unit test of the protocol
//! handling** against a scripted IMAP server on 127.0.0.1 (tests/common/gmail_server.rs) that
//! answers in the formats of Google's documentation: labels are read and recorded, tabs are
//! found with X-GM-RAW and decide the folder class, "important" and "rescue out of
//! Promotions" are `+X-GM-LABELS (\Important)`, each once. It proves what Hearth sends and
//! how it reads the answers, not how real Gmail reacts.
//!
//! The real-server half runs against the lab's Dovecot (no X-GM-EXT-1) through a recording
//! proxy: the same scan and engagement send no X-GM command at all, and "important" is
//! recorded as not supported.

#[path = "common/gmail_server.rs"]
mod gmail_server;
#[path = "common/imap.rs"]
mod imap_util;
#[allow(dead_code)]
#[path = "common/lab.rs"]
mod lab;

use std::path::Path;
use std::sync::{Arc, Mutex};

use gmail_server::GmailServer;
use hearth::clock::{Clock as _, ManualClock};
use hearth::config::Config;
use hearth::domain::{
    CampaignStatus, EmailAddress, EngagementAction, GmailTab, Placement, SendKind,
};
use hearth::engagement::{act, scan};
use hearth::startup::App;
use hearth::store::{self, outbox::NewSend, seeds::SeedRow};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const SEED: &str = "seed1@gmail.test";

/// A config with one sender (no DKIM, never used to send here), one Gmail seed whose IMAP is
/// `imap_port` on 127.0.0.1 without TLS (loopback only), and an active campaign.
fn config(data: &Path, imap_port: u16, password: &str, rates: &str) -> Config {
    let text = format!(
        r#"
[server]
bind = "127.0.0.1:0"
data_dir = {data:?}

[[senders]]
name = "s"
address = "hello@sender.test"
helo = "mta1.sender.test"
smtp = {{ host = "127.0.0.1", port = 5587, tls = "starttls", password = "x" }}

[[seeds]]
address = "{SEED}"
provider = "gmail"
imap = {{ host = "127.0.0.1", port = {imap_port}, tls = "none", password = "{password}" }}

[[campaigns]]
name = "c"
sender = "s"
[campaigns.plan]
start_per_day = 2
increase_per_day = 1
max_per_day = 4
timezone = "UTC"
window = {{ days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], start = "00:00", end = "23:59" }}
rates = {rates}
"#,
        data = data.to_str().unwrap()
    );
    Config::from_toml(&text, None, &[]).unwrap()
}

struct World {
    app: App,
    clock: ManualClock,
    seed: SeedRow,
    campaign: i64,
}

async fn world(data: &Path, imap_port: u16, password: &str, rates: &str) -> World {
    let clock = ManualClock::new(hearth::clock::SystemClock.now());
    let app = App::build(
        config(data, imap_port, password, rates),
        Arc::new(clock.clone()),
    )
    .await
    .unwrap();
    let pool = app.store.pool();
    let campaign = store::campaigns::get_by_name(pool, "c")
        .await
        .unwrap()
        .unwrap()
        .id;
    store::campaigns::set_status(
        pool,
        campaign,
        CampaignStatus::Active,
        None,
        None,
        clock.now(),
    )
    .await
    .unwrap();
    let seed = store::seeds::get_by_address(pool, &EmailAddress::parse(SEED).unwrap())
        .await
        .unwrap()
        .unwrap();
    World {
        app,
        clock,
        seed,
        campaign,
    }
}

/// An outbox row marked sent, as if the dispatcher had sent it; returns its Message-ID.
async fn sent(w: &World, n: usize) -> String {
    let pool = w.app.store.pool();
    let id = format!("<gm{n}.{}@sender.test>", w.clock.now());
    let row = store::outbox::enqueue(
        pool,
        &NewSend {
            campaign_id: w.campaign,
            seed_id: w.seed.id,
            kind: SendKind::Warmup,
            message_id: Some(id.clone()),
            subject: "Notes".into(),
            in_reply_to: None,
            plan_day: None,
            run_at: 0,
        },
        w.clock.now(),
    )
    .await
    .unwrap();
    sqlx::query("UPDATE outbox SET status = 'sent', sent_at = $1 WHERE id = $2")
        .bind(w.clock.now())
        .bind(row)
        .execute(pool)
        .await
        .unwrap();
    id
}

fn header(w: &World, id: &str) -> String {
    format!(
        "From: Hello <hello@sender.test>\nTo: {SEED}\nSubject: Notes\nMessage-ID: {id}\n{}: {}\n",
        w.app.marker.header(),
        w.app.marker.token(id)
    )
}

#[tokio::test]
async fn labels_and_tabs_are_recorded_and_gmail_actions_are_sent_once() {
    let server = GmailServer::start().await;
    let data = tempfile::tempdir().unwrap();
    let rates = "{ open = 1.0, star = 0.0, important = 1.0, rescue = 1.0, reply = 0.0 }";
    let w = world(data.path(), server.addr.port(), "x", rates).await;
    let pool = w.app.store.pool().clone();

    // One message per tab, and one in spam, each with the labels Gmail would show.
    let cases = [
        (
            "INBOX",
            "primary",
            vec!["\\Inbox"],
            Placement::Inbox,
            Some(GmailTab::Primary),
        ),
        (
            "INBOX",
            "promotions",
            vec!["\\Inbox"],
            Placement::Promotions,
            Some(GmailTab::Promotions),
        ),
        (
            "INBOX",
            "social",
            vec!["\\Inbox", "\"Muy Importante\""],
            Placement::Other,
            Some(GmailTab::Social),
        ),
        (
            "INBOX",
            "updates",
            vec!["\\Inbox", "\\Important"],
            Placement::Other,
            Some(GmailTab::Updates),
        ),
        (
            "INBOX",
            "forums",
            vec!["\\Inbox"],
            Placement::Other,
            Some(GmailTab::Forums),
        ),
        ("[Gmail]/Spam", "primary", vec![], Placement::Spam, None),
    ];
    let mut ids = Vec::new();
    for (n, (folder, tab, labels, _, _)) in cases.iter().enumerate() {
        let id = sent(&w, n).await;
        server.deliver(folder, &header(&w, &id), labels, tab);
        ids.push(id);
    }

    let report = scan::scan_seed(&w.app, &w.seed).await.unwrap();
    assert_eq!((report.found, report.recorded), (6, 6), "{report:?}");
    for ((_, _, labels, placement, tab), id) in cases.iter().zip(&ids) {
        let p = store::ledger::get_by_message_id(&pool, id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(p.record.placement, *placement, "{id}");
        let g = p.record.gmail.expect("Gmail's view is recorded");
        assert_eq!(g.tab, *tab, "{id}");
        let want: Vec<String> = labels
            .iter()
            .map(|l| l.trim_matches('"').to_owned())
            .collect();
        assert_eq!(g.labels, want, "{id}");
    }
    let commands = server.commands();
    let fetches: Vec<_> = commands
        .iter()
        .filter(|c| c.starts_with("UID FETCH"))
        .collect();
    assert_eq!(fetches.len(), 2, "one batch per folder: {commands:#?}");
    assert!(
        fetches.iter().all(|c| c.contains("X-GM-LABELS")),
        "{fetches:?}"
    );
    let raw: Vec<_> = commands.iter().filter(|c| c.contains("X-GM-RAW")).collect();
    assert_eq!(
        raw.len(),
        4,
        "one search per non-primary tab, inbox only: {raw:?}"
    );
    for tab in ["promotions", "social", "updates", "forums"] {
        assert!(
            raw.iter()
                .any(|c| c.ends_with(&format!("X-GM-RAW \"category:{tab}\""))),
            "{tab}: {raw:?}"
        );
    }

    // A day on, everything is due: important for all, rescue for spam and Promotions.
    w.clock.advance(86_400);
    let before = server.commands().len();
    let r = act::engage_seed(&w.app, &w.seed).await.unwrap();
    assert_eq!(r.not_found, 0, "{r:?}");
    let sent_now: Vec<String> = server.commands()[before..].to_vec();
    let label_stores: Vec<_> = sent_now
        .iter()
        .filter(|c| c.contains("+X-GM-LABELS"))
        .collect();
    assert!(
        label_stores
            .iter()
            .all(|c| c.ends_with("+X-GM-LABELS (\\Important)")),
        "only \\Important is ever stored: {label_stores:?}"
    );
    // Important for every message, and the Promotions rescue: all on the server.
    for id in &ids {
        let (_, m) = server
            .find(id)
            .unwrap_or_else(|| panic!("{id} gone: {:?}", server.dump()));
        assert!(m.labels.iter().any(|l| l == "\\Important"), "{id}: {m:?}");
    }
    for (case, id) in cases.iter().zip(&ids) {
        let p = store::ledger::get_by_message_id(&pool, id)
            .await
            .unwrap()
            .unwrap();
        let events = store::engagement::list_for_placement(&pool, p.id)
            .await
            .unwrap();
        let important = events
            .iter()
            .find(|e| e.action == EngagementAction::Important)
            .unwrap_or_else(|| panic!("{id}: {events:?}"));
        assert_eq!(
            important.detail.as_deref(),
            Some("+X-GM-LABELS (\\Important)")
        );
        let rescue = events.iter().find(|e| e.action == EngagementAction::Rescue);
        match case.3 {
            Placement::Promotions => assert!(
                rescue
                    .unwrap()
                    .detail
                    .as_deref()
                    .unwrap()
                    .starts_with("Promotions: +X-GM-LABELS (\\Important)"),
                "{events:?}"
            ),
            Placement::Spam => {
                assert_eq!(
                    rescue.unwrap().detail.as_deref(),
                    Some("[Gmail]/Spam → INBOX")
                )
            }
            _ => assert!(rescue.is_none(), "{id}: {events:?}"),
        }
    }
    // The spam message was moved out of spam (UID MOVE), never labelled in place.
    assert!(
        sent_now
            .iter()
            .any(|c| c.starts_with("UID MOVE") && c.ends_with("\"INBOX\""))
    );

    // Another pass (and another, after a restart would look the same): no Gmail command again.
    w.clock.advance(86_400);
    let before = server.commands().len();
    for _ in 0..2 {
        act::engage_seed(&w.app, &w.seed).await.unwrap();
    }
    let again: Vec<_> = server.commands()[before..]
        .iter()
        .filter(|c| c.contains("X-GM-"))
        .cloned()
        .collect();
    assert!(again.is_empty(), "nothing done twice: {again:?}");
}

/// A TCP proxy to `upstream` that records what the client sends (plain IMAP, so readable).
async fn recording_proxy(upstream: u16) -> (u16, Arc<Mutex<Vec<u8>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let server = tokio::net::TcpStream::connect(("127.0.0.1", upstream))
                    .await
                    .unwrap();
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let up = async move {
                    let mut buf = [0u8; 8192];
                    while let Ok(n) = cr.read(&mut buf).await {
                        if n == 0 || sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        log.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                };
                let down = async move {
                    let _ = tokio::io::copy(&mut sr, &mut cw).await;
                };
                tokio::join!(up, down);
            });
        }
    });
    (port, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dovecot_never_receives_a_gmail_command() {
    let Some(lab) = lab::lab_dir("gmail lab tests", &[1143, 5587]) else {
        return;
    };
    hearth::tls::install_crypto_provider();
    // Plain IMAP to the lab Dovecot through the proxy (loopback counts as secure there).
    let (port, seen) = recording_proxy(1143).await;
    let data = tempfile::tempdir().unwrap();
    let rates = "{ open = 1.0, star = 1.0, important = 1.0, rescue = 1.0, reply = 0.0 }";
    let w = world(data.path(), port, "lab-pass-1", rates).await;
    let pool = w.app.store.pool().clone();
    // One message in the inbox, one in spam (put there over IMAP: where they land is not
    // what this test is about).
    let mut ids = Vec::new();
    for (n, spam) in [false, true].iter().enumerate() {
        let id = sent(&w, n).await;
        let folder = if *spam { "[Gmail]/Spam" } else { "INBOX" };
        let raw = format!("{}\nHello.\n", header(&w, &id));
        imap_util::append(&lab, SEED, folder, "29-Nov-2026 10:00:00 +0000", &raw).await;
        ids.push(id);
    }
    let mut found = 0;
    for _ in 0..100 {
        found += scan::scan_seed(&w.app, &w.seed).await.unwrap().recorded;
        if found == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(found, 2, "both delivered messages found");
    for id in &ids {
        let p = store::ledger::get_by_message_id(&pool, id)
            .await
            .unwrap()
            .unwrap();
        assert!(p.record.gmail.is_none(), "no Gmail view without X-GM-EXT-1");
        assert!(matches!(
            p.record.placement,
            Placement::Inbox | Placement::Spam
        ));
    }
    w.clock.advance(86_400);
    let r = act::engage_seed(&w.app, &w.seed).await.unwrap();
    assert!(r.performed > 0, "{r:?}");
    for id in &ids {
        let p = store::ledger::get_by_message_id(&pool, id)
            .await
            .unwrap()
            .unwrap();
        let events = store::engagement::list_for_placement(&pool, p.id)
            .await
            .unwrap();
        let important = events
            .iter()
            .find(|e| e.action == EngagementAction::Important)
            .unwrap_or_else(|| panic!("{events:?}"));
        assert_eq!(
            important.detail.as_deref(),
            Some("not supported by this server")
        );
    }
    let text = String::from_utf8_lossy(&seen.lock().unwrap()).to_string();
    let commands: Vec<&str> = text.lines().collect();
    assert!(
        commands.iter().any(|c| c.contains("UID STORE")),
        "the proxy saw the session: {commands:#?}"
    );
    let gmail: Vec<_> = commands
        .iter()
        .filter(|c| c.to_ascii_uppercase().contains("X-GM"))
        .collect();
    assert!(gmail.is_empty(), "X-GM commands sent to Dovecot: {gmail:?}");
    eprintln!(
        "{} commands sent to Dovecot, none of them X-GM",
        commands.len()
    );
}
