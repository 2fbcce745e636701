//! Replies, reply placement and retention against the lab: a seed answers in-thread through
//! its own SMTP (the lab's submission relay), the reply arrives in the sender's mailbox
//! threaded to the original, its placement there is recorded once, and neither a second
//! pass, a restart, a lost completion write nor a relay outage sends a second reply.
//! Retention deletes only warm-up mail past its age, never anything else. Retention and the
//! sender's reading of its mailbox are tested with the mark in a header and in the body
//! (`warmup.mark`). Time comes from a ManualClock, never from sleeping (only real mail
//! delivery is waited for).

#[path = "common/imap.rs"]
mod imap_util;
#[path = "common/lab.rs"]
mod lab;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use hearth::clock::{Clock as _, ManualClock};
use hearth::config::Config;
use hearth::domain::{
    CampaignStatus, EmailAddress, EngagementAction, OutboxStatus, Placement, SendKind,
};
use hearth::engagement::{act, retention, scan, sender_scan};
use hearth::mark::MarkMode;
use hearth::sender::{Dispatcher, replies};
use hearth::startup::App;
use hearth::store::{self, outbox::NewSend, seeds::SeedRow};

/// One at a time: one test stops the relay's authentication (Dovecot) for a moment.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const SENDER: &str = "hello@sender.test";

fn lab_cmd(args: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/lab");
    let out = Command::new(script)
        .args(args)
        .output()
        .expect("run scripts/lab");
    assert!(
        out.status.success(),
        "scripts/lab {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The lab config with `rates` and the warm-up `mark` form, and SMTP for the lab's Gmail-like
/// seeds (host, port and TLS given; the password defaults to the IMAP one).
fn config(lab: &Path, data: &Path, rates: &str, mark: MarkMode) -> Config {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let smtp = format!(
        "smtp = {{ host = \"127.0.0.1\", port = 5587, tls = \"starttls\", ca_file = \"{}\" }}\n",
        lab.join("tls/ca.pem").display()
    );
    let mut text = lab::lab_config_text(lab, data)
        .replace(
            "min_gap_secs = 60",
            &format!("min_gap_secs = 60\nrates = {rates}"),
        )
        .replace("[warmup]\n", &format!("[warmup]\nmark = \"{mark}\"\n"));
    for seed in ["seed1@gmail.test", "spam1@gmail.test"] {
        text = text.replace(
            &format!("address = \"{seed}\"\n"),
            &format!("address = \"{seed}\"\n{smtp}"),
        );
    }
    Config::from_toml(&text, Some(&root.join("config/lab.toml")), &[]).unwrap()
}

async fn start(lab: &Path, data: &Path, rates: &str, mark: MarkMode, clock: &ManualClock) -> App {
    let app = App::build(config(lab, data, rates, mark), Arc::new(clock.clone()))
        .await
        .unwrap();
    let c = campaign(&app).await;
    store::campaigns::set_status(
        app.store.pool(),
        c,
        CampaignStatus::Active,
        None,
        None,
        clock.now(),
    )
    .await
    .unwrap();
    app
}

async fn campaign(app: &App) -> i64 {
    store::campaigns::get_by_name(app.store.pool(), "lab-warmup")
        .await
        .unwrap()
        .unwrap()
        .id
}

async fn seed(app: &App, address: &str) -> SeedRow {
    store::seeds::get_by_address(app.store.pool(), &EmailAddress::parse(address).unwrap())
        .await
        .unwrap()
        .unwrap()
}

/// Sends one warm-up message to each seed and waits until each scan has found its own.
async fn send_and_find(app: &App, seeds: &[&str]) -> Vec<(SeedRow, String)> {
    let pool = app.store.pool();
    let c = campaign(app).await;
    let domain = hearth::domain::DomainName::parse("sender.test").unwrap();
    let mut sends = Vec::new();
    for s in seeds {
        let seed = seed(app, s).await;
        let message_id = hearth::sender::message::new_message_id(&domain);
        store::outbox::enqueue(
            pool,
            &NewSend {
                campaign_id: c,
                seed_id: seed.id,
                kind: SendKind::Warmup,
                message_id: Some(message_id.clone()),
                subject: "Notes from this week: the garden project".into(),
                in_reply_to: None,
                plan_day: None,
                run_at: 0,
            },
            app.clock.now(),
        )
        .await
        .unwrap();
        sends.push((seed, message_id));
    }
    let sent = Dispatcher::new(app.clone())
        .run_once(10)
        .await
        .unwrap()
        .sent;
    assert_eq!(sent, seeds.len());
    for (seed, id) in &sends {
        let mut found = false;
        for _ in 0..100 {
            scan::scan_seed(app, seed).await.unwrap();
            if store::ledger::get_by_message_id(pool, id)
                .await
                .unwrap()
                .is_some()
            {
                found = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(found, "{} never found {id}", seed.record.address);
    }
    sends
}

/// Scans the sender's mailbox until the reply is in the ledger (real delivery takes a moment).
async fn wait_reply_placed(app: &App, reply_id: &str) -> store::ledger::PlacementRow {
    for _ in 0..100 {
        for (name, r) in sender_scan::scan_pending(app).await.unwrap() {
            r.unwrap_or_else(|e| panic!("scanning sender {name}: {e}"));
        }
        if let Some(p) = store::ledger::get_by_message_id(app.store.pool(), reply_id)
            .await
            .unwrap()
        {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("reply {reply_id} never placed in the sender's mailbox");
}

async fn replies_to(app: &App, original: &str) -> Vec<store::outbox::OutboxRow> {
    let c = campaign(app).await;
    store::outbox::list_for_campaign(app.store.pool(), c)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == SendKind::Reply && r.in_reply_to.as_deref() == Some(original))
        .collect()
}

/// Sets a reply row back to `sending` under a dead node's expired lease, as if its node died
/// after the relay took the message but before the completion was written.
async fn lose_completion(app: &App, id: i64, lease_until: i64) {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE outbox SET status = 'sending', lease_owner = 'dead-node', lease_until = {lease_until} WHERE id = {id}"
    )))
    .execute(app.store.pool())
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_arrive_threaded_once_and_are_placed() {
    let _serial = SERIAL.lock().await;
    let Some(lab) = lab::lab_dir("reply lab tests", &[5587, 1993]) else {
        return;
    };
    hearth::tls::install_crypto_provider();
    let data = tempfile::tempdir().unwrap();
    let rates = "{ open = 1.0, star = 0.0, important = 0.0, rescue = 1.0, reply = 1.0 }";
    let clock = ManualClock::new(hearth::clock::SystemClock.now());
    let app = start(&lab, data.path(), rates, MarkMode::Header, &clock).await;
    let pool = app.store.pool().clone();
    let sends = send_and_find(&app, &["seed1@gmail.test", "spam1@gmail.test"]).await;

    // A day later everything is due: the reply is queued with its event, nothing sent yet.
    clock.advance(86_400);
    for (seed, _) in &sends {
        act::engage_seed(&app, seed).await.unwrap();
    }
    let mut reply_ids = Vec::new();
    for (seed, id) in &sends {
        let rows = replies_to(&app, id).await;
        assert_eq!(rows.len(), 1, "{}: {rows:?}", seed.record.address);
        assert_eq!(rows[0].status, OutboxStatus::Planned);
        assert_eq!(rows[0].seed_id, seed.id);
        let p = store::ledger::get_by_message_id(&pool, id)
            .await
            .unwrap()
            .unwrap();
        let events = store::engagement::list_for_placement(&pool, p.id)
            .await
            .unwrap();
        assert!(
            events.iter().any(|e| e.action == EngagementAction::Reply),
            "{events:?}"
        );
        reply_ids.push(
            rows[0]
                .message_id
                .clone()
                .expect("a reply has its Message-ID"),
        );
    }
    // Another pass, and a restart (a new App on the same database), queue nothing more.
    for (seed, _) in &sends {
        act::engage_seed(&app, seed).await.unwrap();
    }
    let app = start(&lab, data.path(), rates, MarkMode::Header, &clock).await;
    for (seed, _) in &sends {
        act::engage_seed(&app, seed).await.unwrap();
    }
    for (_, id) in &sends {
        assert_eq!(replies_to(&app, id).await.len(), 1);
    }

    // The relay cannot authenticate the seeds while Dovecot is down: deferred, not failed.
    lab_cmd(&["stop", "dovecot"]);
    let down = replies::run_once(&app).await;
    lab_cmd(&["start", "dovecot"]);
    let down = down.unwrap();
    assert_eq!(
        (down.sent, down.failed, down.retried),
        (0, 0, 2),
        "{down:?}"
    );
    // Back up, and past the backoff: each reply goes out once.
    clock.advance(3_600);
    let r = replies::run_once(&app).await.unwrap();
    assert_eq!(r.sent, 2, "{r:?}");

    // Threaded to the original, marked, quoting it, from the seed to the sender.
    for ((seed, original), reply_id) in sends.iter().zip(&reply_ids) {
        let raw = {
            let mut got = None;
            for _ in 0..100 {
                got = imap_util::fetch_message(&lab, SENDER, reply_id).await;
                if got.is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            got.unwrap_or_else(|| panic!("reply {reply_id} never arrived"))
        };
        let msg = mail_parser::MessageParser::default().parse(&raw).unwrap();
        let bare = original.trim_matches(['<', '>']);
        assert_eq!(msg.in_reply_to().as_text(), Some(bare));
        let refs = msg.references();
        assert!(
            refs.as_text() == Some(bare)
                || refs
                    .as_text_list()
                    .is_some_and(|l| l.contains(&bare.into())),
            "References {refs:?}"
        );
        assert_eq!(
            msg.subject(),
            Some("Re: Notes from this week: the garden project")
        );
        let from = msg.from().unwrap().first().unwrap().address().unwrap();
        assert_eq!(from, seed.record.address.to_string());
        assert_eq!(msg.to().unwrap().first().unwrap().address(), Some(SENDER));
        let text = msg.body_text(0).unwrap().replace("\r\n", "\n");
        let seed_copy = imap_util::fetch_message(&lab, &seed.record.address.to_string(), original)
            .await
            .expect("the original is still in the seed mailbox");
        let orig = mail_parser::MessageParser::default()
            .parse(&seed_copy)
            .unwrap();
        let orig_text = orig.body_text(0).unwrap();
        assert!(text.contains(" wrote:\n> "), "{text}");
        for line in orig_text.lines().filter(|l| !l.trim().is_empty()) {
            assert!(
                text.contains(&format!("> {}", line.trim_end())),
                "{line:?} quoted in {text}"
            );
        }
        let mark = msg
            .header_raw(app.marker.header())
            .expect("the reply carries the mark");
        assert!(app.marker.verify(reply_id, mark));
        assert_eq!(
            imap_util::where_is(&lab, SENDER, reply_id).await.len(),
            1,
            "one copy"
        );
    }

    // Its placement at the sender is recorded once, linked to the original.
    for ((_, original), reply_id) in sends.iter().zip(&reply_ids) {
        let p = wait_reply_placed(&app, reply_id).await;
        assert_eq!(p.record.placement, Placement::Inbox);
        assert_eq!(p.record.folder.as_deref(), Some("INBOX"));
        let row = store::outbox::get(&pool, p.record.outbox_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.kind, SendKind::Reply);
        assert_eq!(row.in_reply_to.as_deref(), Some(original.as_str()));
    }
    let again: usize = sender_scan::scan_pending(&app)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, r)| r.unwrap().recorded)
        .sum();
    assert_eq!(again, 0, "nothing recorded twice");
    // Reports of the campaign count warm-up mail only.
    let counts = store::ledger::counts_for_campaign(&pool, campaign(&app).await)
        .await
        .unwrap();
    assert_eq!(counts.iter().map(|(_, n)| n).sum::<i64>(), 2, "{counts:?}");

    // A node that dies after the relay took a reply but before writing it down: the reply is
    // found in the sender's mailbox and confirmed, never sent again.
    let row = &replies_to(&app, &sends[0].1).await[0];
    lose_completion(&app, row.id, clock.now() - 1).await;
    clock.advance(app.config.warmup.resend_after_secs as i64 + 60);
    let r = replies::run_once(&app).await.unwrap();
    assert_eq!((r.confirmed, r.sent, r.released), (1, 0, 0), "{r:?}");
    assert_eq!(
        store::outbox::get(&pool, row.id)
            .await
            .unwrap()
            .unwrap()
            .status,
        OutboxStatus::Sent
    );
    assert_eq!(
        imap_util::where_is(&lab, SENDER, row.message_id.as_deref().unwrap())
            .await
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_interrupted_before_smtp_is_sent_after_the_grace_period() {
    let _serial = SERIAL.lock().await;
    let Some(lab) = lab::lab_dir("reply lab tests", &[5587, 1993]) else {
        return;
    };
    hearth::tls::install_crypto_provider();
    let data = tempfile::tempdir().unwrap();
    let rates = "{ open = 1.0, star = 0.0, important = 0.0, rescue = 1.0, reply = 1.0 }";
    let clock = ManualClock::new(hearth::clock::SystemClock.now());
    let app = start(&lab, data.path(), rates, MarkMode::Header, &clock).await;
    let sends = send_and_find(&app, &["seed1@gmail.test"]).await;
    clock.advance(86_400);
    act::engage_seed(&app, &sends[0].0).await.unwrap();
    let row = replies_to(&app, &sends[0].1).await.remove(0);
    // A node claimed it and died before its SMTP transaction.
    lose_completion(&app, row.id, clock.now() + 60).await;
    let r = replies::run_once(&app).await.unwrap();
    assert_eq!(r, replies::ReplyReport::default(), "leased: left alone");
    clock.advance(120);
    let r = replies::run_once(&app).await.unwrap();
    assert_eq!(
        (r.waiting, r.sent),
        (1, 0),
        "within the grace period: {r:?}"
    );
    clock.advance(app.config.warmup.resend_after_secs as i64);
    let r = replies::run_once(&app).await.unwrap();
    assert_eq!((r.released, r.sent), (1, 1), "{r:?}");
    let p = wait_reply_placed(&app, row.message_id.as_deref().unwrap()).await;
    assert_eq!(p.record.placement, Placement::Inbox);
    assert_eq!(
        imap_util::where_is(&lab, SENDER, row.message_id.as_deref().unwrap())
            .await
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_only_old_warm_up_mail() {
    retention_deletes_only_old_warm_up_mail_marked(MarkMode::Header).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_only_old_warm_up_mail_with_body_marks() {
    retention_deletes_only_old_warm_up_mail_marked(MarkMode::Body).await;
}

/// The mark of `message_id` as a test message carries it in the app's mark form: (header
/// lines, body). Not `genuine`: the same mark with its tag reversed, a forgery.
fn mark_of(app: &App, message_id: &str, genuine: bool) -> (String, String) {
    let tag = |t: &str| {
        let forged: String = t.chars().rev().collect();
        assert_ne!(forged, t);
        if genuine { t.to_owned() } else { forged }
    };
    match app.marker.mode() {
        MarkMode::Header => (
            format!(
                "{}: {}\n",
                app.marker.header(),
                tag(&app.marker.token(message_id))
            ),
            "Hello.\n".to_owned(),
        ),
        MarkMode::Body => {
            let token = app.marker.body_token(message_id);
            let (prefix, t) = token.split_once('-').unwrap();
            (
                String::new(),
                format!("Hello.\n\nRef {prefix}-{}\n", tag(t)),
            )
        }
    }
}

async fn retention_deletes_only_old_warm_up_mail_marked(mark: MarkMode) {
    let _serial = SERIAL.lock().await;
    let Some(lab) = lab::lab_dir("retention lab tests", &[5587, 1993]) else {
        return;
    };
    hearth::tls::install_crypto_provider();
    let data = tempfile::tempdir().unwrap();
    // Mail in spam stays there (no rescue); mail in the inbox is filed into Warmup.
    let rates = "{ open = 1.0, star = 0.0, important = 0.0, rescue = 0.0, reply = 0.0 }";
    let t0 = hearth::clock::SystemClock.now();
    let clock = ManualClock::new(t0);
    let app = start(&lab, data.path(), rates, mark, &clock).await;
    let pool = app.store.pool().clone();
    let sends = send_and_find(&app, &["seed1@yahoo.test", "spam1@outlook.test"]).await;
    clock.advance(86_400);
    for _ in 0..2 {
        for (seed, _) in &sends {
            act::engage_seed(&app, seed).await.unwrap();
        }
    }
    let (yahoo, filed) = (&sends[0].0, &sends[0].1);
    let (outlook, in_spam) = (&sends[1].0, &sends[1].1);
    assert_eq!(
        imap_util::where_is(&lab, "seed1@yahoo.test", filed).await[0].0,
        "Warmup"
    );
    assert_eq!(
        imap_util::where_is(&lab, "spam1@outlook.test", in_spam).await[0].0,
        "Junk Email"
    );

    // Old mail that is not Hearth's, in the same folders: a forged mark on the Message-ID of
    // the seed's real warm-up message (in the outbox and the ledger: only the mark tells them
    // apart), a genuine-looking mark for a message Hearth never sent, and plain mail.
    let old = "01-Jan-2026 10:00:00 +0000";
    // The header and body forms run at once in one process, in the same lab mailboxes.
    let uniq = format!("{}.{t0}.{mark:?}", std::process::id()).to_ascii_lowercase();
    let unsent = format!("<unsent.{uniq}@sender.test>");
    let foreign = [
        (unsent.clone(), mark_of(&app, &unsent, true)),
        (
            format!("<plain.{uniq}@friend.test>"),
            (String::new(), "Hello.\n".to_owned()),
        ),
    ];
    let places = [
        ("Warmup", "seed1@yahoo.test", filed),
        ("Junk Email", "spam1@outlook.test", in_spam),
    ];
    for (folder, user, real) in places {
        let forged = (real.clone(), mark_of(&app, real, false));
        for (id, (headers, body)) in foreign.iter().chain([&forged]) {
            let raw = format!(
                "From: someone@friend.test\nTo: {user}\nSubject: keep me\nMessage-ID: {id}\n{headers}\n{body}"
            );
            imap_util::append(&lab, user, folder, old, &raw).await;
        }
    }

    // 29 days on, nothing of Hearth's is old enough yet.
    clock.set(t0 + 29 * 86_400);
    for seed in [yahoo, outlook] {
        let r = retention::retain_seed(&app, seed).await.unwrap();
        assert_eq!(r.deleted, 0, "{r:?}");
        // This run's forged and unsent marks (and whatever earlier runs, other installs
        // with other secrets, left in the shared lab mailboxes).
        assert!(r.left_alone >= 2, "forged and unsent marks: {r:?}");
    }
    // 31 days on, the warm-up mail goes, batched per folder, each deletion recorded.
    clock.set(t0 + 31 * 86_400);
    let results = retention::retain_pending(&app).await.unwrap();
    assert_eq!(results.len(), 2, "both seeds visited");
    for (seed, r) in results {
        let r = r.unwrap();
        assert_eq!(r.deleted, 1, "{seed}: {r:?}");
    }
    for (folder, user, real) in places {
        // Of the real Message-ID, only the forgery is left.
        for id in foreign.iter().map(|f| &f.0).chain([real]) {
            let copies = imap_util::where_is(&lab, user, id).await;
            assert_eq!(copies.len(), 1, "{user}: {id} kept");
            assert_eq!(copies[0].0, folder);
            assert!(
                !copies[0].1.iter().any(|f| f.contains("Deleted")),
                "not even flagged: {copies:?}"
            );
        }
        let left = imap_util::fetch_message(&lab, user, real).await.unwrap();
        let left = mail_parser::MessageParser::default().parse(&left).unwrap();
        assert_eq!(left.subject(), Some("keep me"), "{user}: the forgery");
    }
    for (_, id) in &sends {
        let p = store::ledger::get_by_message_id(&pool, id)
            .await
            .unwrap()
            .unwrap();
        let events = store::engagement::list_for_placement(&pool, p.id)
            .await
            .unwrap();
        assert_eq!(
            events
                .iter()
                .filter(|e| e.action == EngagementAction::Delete)
                .count(),
            1
        );
    }
    // Nothing left to do: the seeds are not visited again.
    assert!(retention::retain_pending(&app).await.unwrap().is_empty());
}

/// Waits until the reply has arrived in the sender's mailbox (real delivery takes a moment).
async fn wait_arrived(lab: &Path, reply_id: &str) {
    for _ in 0..100 {
        if imap_util::fetch_message(lab, SENDER, reply_id)
            .await
            .is_some()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("reply {reply_id} never arrived");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sender_opens_and_rescues_replies_and_lost_ones_are_recorded_missing() {
    the_sender_opens_and_rescues_replies_marked(MarkMode::Header).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sender_opens_and_rescues_body_marked_replies() {
    the_sender_opens_and_rescues_replies_marked(MarkMode::Body).await;
}

/// Placement, opening and rescue of replies in the sender's mailbox, and the lost one
/// recorded `missing`, with the replies marked in the given form.
async fn the_sender_opens_and_rescues_replies_marked(mark: MarkMode) {
    let _serial = SERIAL.lock().await;
    let Some(lab) = lab::lab_dir("reply lab tests", &[5587, 1993]) else {
        return;
    };
    hearth::tls::install_crypto_provider();
    let data = tempfile::tempdir().unwrap();
    let rates = "{ open = 1.0, star = 0.0, important = 0.0, rescue = 1.0, reply = 1.0 }";
    let clock = ManualClock::new(hearth::clock::SystemClock.now());
    let app = start(&lab, data.path(), rates, mark, &clock).await;
    let pool = app.store.pool().clone();
    let sends = send_and_find(&app, &["seed1@gmail.test", "spam1@gmail.test"]).await;
    clock.advance(86_400);
    for (seed, _) in &sends {
        act::engage_seed(&app, seed).await.unwrap();
    }
    let r = replies::run_once(&app).await.unwrap();
    assert_eq!(r.sent, 2, "{r:?}");
    let spammed = replies_to(&app, &sends[0].1)
        .await
        .remove(0)
        .message_id
        .unwrap();
    let lost = replies_to(&app, &sends[1].1)
        .await
        .remove(0)
        .message_id
        .unwrap();
    // The sender's provider files one reply as spam; the other never reaches the sender's
    // mailbox (deleted before any scan, as a provider that dropped it would leave it).
    wait_arrived(&lab, &spammed).await;
    wait_arrived(&lab, &lost).await;
    assert_eq!(
        imap_util::move_message(&lab, SENDER, &spammed, "Junk").await,
        1
    );
    assert_eq!(imap_util::delete_message(&lab, SENDER, &lost).await, 1);

    // The scan places the spammed reply, opens it and moves it to the inbox, once.
    let p = wait_reply_placed(&app, &spammed).await;
    assert_eq!(p.record.placement, Placement::Spam);
    assert_eq!(p.record.folder.as_deref(), Some("Junk"));
    let copies = imap_util::where_is(&lab, SENDER, &spammed).await;
    assert_eq!(copies.len(), 1, "{copies:?}");
    assert_eq!(copies[0].0, "INBOX", "{copies:?}");
    assert!(copies[0].1.iter().any(|f| f.contains("Seen")), "{copies:?}");
    let events = |id: i64| {
        let pool = pool.clone();
        async move {
            store::engagement::list_for_placement(&pool, id)
                .await
                .unwrap()
                .into_iter()
                .map(|e| (e.action, e.detail.unwrap_or_default()))
                .collect::<Vec<_>>()
        }
    };
    let first = events(p.id).await;
    assert_eq!(
        first,
        vec![
            (EngagementAction::Open, "opened by the sender".to_owned()),
            (EngagementAction::Rescue, "Junk → INBOX".to_owned()),
        ]
    );
    // Not yet overdue: the lost reply is still awaited.
    assert_eq!(
        store::ledger::get_by_message_id(&pool, &lost)
            .await
            .unwrap(),
        None
    );

    // Past warmup.missing_after_minutes, a successful scan records it missing, once.
    clock.advance(app.config.warmup.missing_after_minutes as i64 * 60 + 60);
    let sender = store::senders::get(&pool, p_sender(&app).await)
        .await
        .unwrap()
        .unwrap();
    let r = sender_scan::scan_sender(&app, &sender).await.unwrap();
    assert_eq!((r.missing, r.engaged, r.recorded), (1, 0, 0), "{r:?}");
    let missing = store::ledger::get_by_message_id(&pool, &lost)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(missing.record.placement, Placement::Missing);
    assert_eq!(missing.record.folder, None);
    let r = sender_scan::scan_sender(&app, &sender).await.unwrap();
    assert_eq!((r.missing, r.engaged, r.recorded), (0, 0, 0), "{r:?}");
    // Nothing left to wait for: the sender is not scanned any more.
    assert!(sender_scan::scan_pending(&app).await.unwrap().is_empty());
    assert_eq!(events(p.id).await, first, "nothing done twice");
    assert_eq!(imap_util::where_is(&lab, SENDER, &spammed).await.len(), 1);
}

async fn p_sender(app: &App) -> i64 {
    store::campaigns::get_by_name(app.store.pool(), "lab-warmup")
        .await
        .unwrap()
        .unwrap()
        .sender_id
}
