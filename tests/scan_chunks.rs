//! A folder scan of more new mail than one chunk holds, against the lab's Dovecot: 250 of
//! this seed's messages (three chunks of the scan's pipeline), five of another seed's and five
//! with a forged mark, all in one inbox. Every genuine message of this seed is recorded once,
//! with the receiver's Authentication-Results; the others are not; the cursor keeps the next
//! scan to the new mail, and a scan from the start again records nothing twice. A rebuilt
//! folder (a new UIDVALIDITY) is scanned again from its start in the same scan; a refused
//! SELECT, SEARCH or database read fails the scan and leaves the session ready for the next.
//!
//! The seed logs in as the lab's `work1@gmail.test`, which no other test reads.

#[path = "common/lab.rs"]
mod lab;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt as _;
use hearth::clock::SystemClock;
use hearth::config::Config;
use hearth::domain::{DomainName, EmailAddress, Endpoint, Placement, SendKind, TlsMode};
use hearth::engagement::{imap, scan};
use hearth::mark::Marker;
use hearth::sender::message::{self, Outgoing};
use hearth::startup::App;
use hearth::store::{self, outbox::NewSend, outbox_bulk};

const USER: &str = "work1@gmail.test";
const AUTH_RESULTS: &str = "Authentication-Results: mx.gmail.test;\r\n\tspf=pass smtp.mailfrom=sender.test;\r\n\tdkim=none (no signature);\r\n\tdmarc=fail header.from=sender.test\r\n";

async fn session(lab: &Path) -> imap::Session {
    let endpoint = Endpoint {
        host: "127.0.0.1".into(),
        port: 1993,
        tls: TlsMode::Implicit,
        ca_file: Some(lab.join("tls/ca.pem")),
        username: USER.into(),
        secret: hearth::secrets::SecretRef::None,
    };
    let pw = secrecy::SecretString::from("lab-pass-1".to_owned());
    imap::connect(&endpoint, &pw, Duration::from_secs(30))
        .await
        .unwrap()
}

/// Queues one send per Message-ID to `seed_id` and returns the Message-IDs.
/// Runs one statement on the test's database (resetting the ledger or the cursors).
async fn sql(pool: &sqlx::AnyPool, statement: &'static str) {
    sqlx::query(statement).execute(pool).await.unwrap();
}

async fn queue(app: &App, campaign_id: i64, seed_id: i64, n: usize) -> Vec<String> {
    let domain = DomainName::parse("sender.test").unwrap();
    let sends: Vec<NewSend> = (0..n)
        .map(|_| NewSend {
            campaign_id,
            seed_id,
            kind: SendKind::Warmup,
            message_id: Some(message::new_message_id(&domain)),
            subject: "chunks".into(),
            in_reply_to: None,
            plan_day: None,
            run_at: 0,
        })
        .collect();
    let mut conn = app.store.pool().acquire().await.unwrap();
    outbox_bulk::enqueue_many(&mut conn, &sends, 0)
        .await
        .unwrap();
    sends.into_iter().filter_map(|s| s.message_id).collect()
}

/// The message as the receiver would store it: its Authentication-Results on top.
fn raw(marker: &Marker, message_id: &str) -> Vec<u8> {
    let (from, to) = (
        EmailAddress::parse("hello@sender.test").unwrap(),
        EmailAddress::parse(USER).unwrap(),
    );
    let built = message::build(
        &Outgoing {
            from: &from,
            from_name: None,
            to: &to,
            message_id,
            subject: "chunks",
            text: "Hello.",
            html: "<p>Hello.</p>",
            in_reply_to: None,
            references: None,
        },
        marker,
        None,
    )
    .unwrap();
    [AUTH_RESULTS.as_bytes(), &built.bytes].concat()
}

/// Scans one folder of the seed alone, searching `how`: the outcome, and the report as the
/// scan left it (also when it failed).
async fn scan_one(
    app: &App,
    seed: &store::seeds::SeedRow,
    session: &mut imap::Session,
    (folder, class): (&str, Placement),
    how: scan::Searching,
) -> (Result<(), scan::ScanError>, scan::ScanReport) {
    let mut report = scan::ScanReport::default();
    let done = scan::scan_folder(app, seed, session, folder, class, how, &mut report).await;
    (done, report)
}

/// Scans the seed's INBOX alone, searching `how`.
async fn scan_inbox(
    app: &App,
    seed: &store::seeds::SeedRow,
    session: &mut imap::Session,
    how: scan::Searching,
) -> Result<scan::ScanReport, scan::ScanError> {
    let (done, report) = scan_one(app, seed, session, ("INBOX", Placement::Inbox), how).await;
    done.map(|()| report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_of_several_chunks_is_recorded_once() {
    let Some(lab) = lab::lab_dir("scan chunk lab tests", &[1993]) else {
        return;
    };
    hearth::tls::install_crypto_provider();
    let data = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = lab::lab_config_text(&lab, data.path())
        + &format!(
            "\n[[seeds]]\naddress = \"{USER}\"\nprovider = \"gmail\"\nimap = {{ host = \
             \"127.0.0.1\", port = 1993, tls = \"implicit\", ca_file = {:?}, password = \
             \"lab-pass-1\" }}\n",
            lab.join("tls/ca.pem")
        );
    let config = Config::from_toml(&text, Some(&root.join("config/lab.toml")), &[]).unwrap();
    let app = App::build(config, Arc::new(SystemClock)).await.unwrap();
    let pool = app.store.pool().clone();
    let campaign = store::campaigns::get_by_name(&pool, "lab-warmup")
        .await
        .unwrap()
        .unwrap();
    let seed = |address: &str| {
        let pool = pool.clone();
        let address = EmailAddress::parse(address).unwrap();
        async move {
            store::seeds::get_by_address(&pool, &address)
                .await
                .unwrap()
                .unwrap()
        }
    };
    let (ours, theirs) = (seed(USER).await, seed("seed1@gmail.test").await);
    let mine = queue(&app, campaign.id, ours.id, 250).await;
    let others = queue(&app, campaign.id, theirs.id, 5).await;
    let forged = queue(&app, campaign.id, ours.id, 5).await;
    let impostor = Marker::new(app.marker.header(), b"not the install's secret".to_vec());

    let mut s = session(&lab).await;
    for folder in ["INBOX", "[Gmail]/Spam"] {
        if s.select(folder).await.unwrap().exists > 0 {
            let _: Vec<_> = s
                .store("1:*", "+FLAGS.SILENT (\\Deleted)")
                .await
                .unwrap()
                .try_collect()
                .await
                .unwrap();
            let _: Vec<_> = s.expunge().await.unwrap().try_collect().await.unwrap();
        }
    }
    for (i, id) in mine.iter().enumerate() {
        s.append("INBOX", None, None, &raw(&app.marker, id))
            .await
            .unwrap();
        // The others among ours, across the chunks.
        if i % 50 == 7 {
            let k = i / 50;
            s.append("INBOX", None, None, &raw(&app.marker, &others[k]))
                .await
                .unwrap();
            s.append("INBOX", None, None, &raw(&impostor, &forged[k]))
                .await
                .unwrap();
        }
    }

    // The lab's Dovecot has SEARCHRES: a pass sends the SEARCH and the FETCH together. The
    // session asks for its capabilities once and keeps them: asked again, nothing is sent.
    let before = imap::stats();
    let caps = imap::capabilities(&mut s).await.unwrap();
    assert_eq!(scan::Searching::of(&caps), scan::Searching::Pipelined);
    assert!(caps.has("searchres") && caps.has("IDLE") && caps.has("IMAP4rev1"));
    assert!(!caps.has("X-GM-EXT-1"));
    let again = imap::capabilities(&mut s).await.unwrap();
    assert_eq!(again, caps);
    assert_eq!(imap::stats().commands - before.commands, 1);
    assert_eq!(imap::stats().round_trips - before.round_trips, 1);
    let report = scan::scan_seed(&app, &ours).await.unwrap();
    assert_eq!(
        (report.found, report.recorded, report.forged),
        (250, 250, 5),
        "{report:?}"
    );
    let rows = store::ledger::list_for_campaign(&pool, campaign.id)
        .await
        .unwrap();
    assert_eq!(rows.len(), 250);
    let mut recorded: Vec<_> = rows.iter().map(|r| r.record.message_id.clone()).collect();
    recorded.sort();
    let mut want = mine.clone();
    want.sort();
    assert_eq!(recorded, want, "this seed's genuine mail, and only that");
    let first = store::ledger::get_by_message_id(&pool, &mine[0])
        .await
        .unwrap()
        .unwrap()
        .record;
    assert_eq!(
        (
            first.placement,
            first.folder.as_deref(),
            first.imap_uid.is_some() && first.imap_uidvalidity.is_some(),
            first.auth_spf.as_deref(),
            first.auth_dkim.as_deref(),
            first.auth_dmarc.as_deref(),
        ),
        (
            Placement::Inbox,
            Some("INBOX"),
            true,
            Some("pass"),
            Some("none"),
            Some("fail")
        )
    );
    assert!(
        first
            .auth_results
            .as_deref()
            .is_some_and(|a| a.starts_with("mx.gmail.test; spf=pass")),
        "{first:?}"
    );

    // One more: the next scan reads only that one.
    let late = queue(&app, campaign.id, ours.id, 1).await;
    s.append("INBOX", None, None, &raw(&app.marker, &late[0]))
        .await
        .unwrap();
    let report = scan::scan_seed(&app, &ours).await.unwrap();
    assert_eq!((report.found, report.recorded, report.forged), (1, 1, 0));

    // From the start again (the cursor forgotten): all found, nothing recorded twice.
    sql(&pool, "DELETE FROM imap_cursors").await;
    let report = scan::scan_seed(&app, &ours).await.unwrap();
    assert_eq!((report.found, report.recorded, report.forged), (251, 0, 5));
    let ledger = |pool: sqlx::AnyPool| async move {
        let mut rows: Vec<_> = store::ledger::list_for_campaign(&pool, campaign.id)
            .await
            .unwrap()
            .into_iter()
            .map(|r| {
                let r = r.record;
                (r.message_id, r.imap_uid, r.auth_results, r.latency_secs)
            })
            .collect();
        rows.sort();
        rows
    };
    let pipelined = ledger(pool.clone()).await;
    assert_eq!(pipelined.len(), 251);

    // Two round trips (a server without SEARCHRES): the same ledger, the same cursor.
    let cursor = || {
        let pool = pool.clone();
        async move {
            store::cursors::get(&pool, ours.id, "INBOX")
                .await
                .unwrap()
                .unwrap()
        }
    };
    let moved_to = cursor().await;
    sql(&pool, "DELETE FROM placements").await;
    sql(&pool, "DELETE FROM imap_cursors").await;
    let mut other = session(&lab).await;
    let report = scan_inbox(&app, &ours, &mut other, scan::Searching::TwoSteps)
        .await
        .unwrap();
    assert_eq!(
        (report.found, report.recorded, report.forged),
        (251, 251, 5)
    );
    assert_eq!(ledger(pool.clone()).await, pipelined);
    let two_steps = cursor().await;
    assert_eq!(
        (two_steps.uidvalidity, two_steps.last_uid),
        (moved_to.uidvalidity, moved_to.last_uid)
    );

    // A SEARCH the server refuses (here a mark header it cannot parse) fails the pipelined
    // scan: the FETCH of its unset result finding nothing is not taken for an empty folder,
    // and the cursor stays.
    let late = queue(&app, campaign.id, ours.id, 1).await;
    s.append("INBOX", None, None, &raw(&app.marker, &late[0]))
        .await
        .unwrap();
    let mut broken = App::build(
        Config::from_toml(&text, Some(&root.join("config/lab.toml")), &[]).unwrap(),
        Arc::new(SystemClock),
    )
    .await
    .unwrap();
    broken.marker = Marker::new("X-Hearth Refused", b"any".to_vec());
    let (done, report) = scan_one(
        &broken,
        &ours,
        &mut other,
        ("INBOX", Placement::Inbox),
        scan::Searching::Pipelined,
    )
    .await;
    let err = done.unwrap_err();
    assert!(
        err.to_string().contains("UID SEARCH refused") && err.is_transient(),
        "{err}"
    );
    assert_eq!(report, scan::ScanReport::default());
    let stayed = cursor().await;
    assert_eq!(stayed.last_uid, two_steps.last_uid);
    // The same session goes on: the next scan finds the new message.
    let report = scan_inbox(&app, &ours, &mut other, scan::Searching::Pipelined)
        .await
        .unwrap();
    assert_eq!((report.found, report.recorded, report.forged), (1, 1, 0));
    assert!(cursor().await.last_uid > stayed.last_uid);

    // The folder rebuilt (its UIDVALIDITY no longer the cursor's): the search from the cursor,
    // sent with the SELECT, is not taken, and the same scan goes through the folder again from
    // its first message. Every message is found and recorded; the cursor takes the folder's
    // UIDVALIDITY and stops where it stood. Both ways of searching.
    let top = cursor().await;
    for how in [scan::Searching::Pipelined, scan::Searching::TwoSteps] {
        sql(&pool, "DELETE FROM placements").await;
        sql(
            &pool,
            "UPDATE imap_cursors SET uidvalidity = uidvalidity + 1",
        )
        .await;
        let report = scan_inbox(&app, &ours, &mut other, how).await.unwrap();
        assert_eq!(
            (report.found, report.recorded, report.forged),
            (252, 252, 5),
            "{how:?}"
        );
        let after = cursor().await;
        assert_eq!(
            (after.uidvalidity, after.last_uid),
            (top.uidvalidity, top.last_uid),
            "{how:?}"
        );
    }

    // A folder the server does not have: the SELECT is refused, and what was sent behind it
    // with it. The error names the SELECT, nothing is recorded, no cursor is kept, and the
    // same session goes on.
    for how in [scan::Searching::Pipelined, scan::Searching::TwoSteps] {
        let (done, report) = scan_one(
            &app,
            &ours,
            &mut other,
            ("No Such Folder", Placement::Spam),
            how,
        )
        .await;
        let err = done.unwrap_err();
        assert!(
            err.to_string().contains("SELECT refused") && err.is_transient(),
            "{how:?}: {err}"
        );
        assert_eq!(report, scan::ScanReport::default());
        let kept = store::cursors::get(&pool, ours.id, "No Such Folder")
            .await
            .unwrap();
        assert!(kept.is_none(), "{kept:?}");
        let report = scan_inbox(&app, &ours, &mut other, how).await.unwrap();
        assert_eq!((report.found, report.recorded), (0, 0), "{how:?}");
    }

    // The database failing while the SELECT is on its way: the error is the database's, the
    // SELECT's answer is read all the same, and the session goes on.
    broken.store.close().await;
    let err = scan_one(
        &broken,
        &ours,
        &mut other,
        ("INBOX", Placement::Inbox),
        scan::Searching::Pipelined,
    )
    .await
    .0
    .unwrap_err();
    assert!(matches!(err, scan::ScanError::Store(_)), "{err}");
    let before = imap::stats();
    let report = scan_inbox(&app, &ours, &mut other, scan::Searching::Pipelined)
        .await
        .unwrap();
    assert_eq!((report.found, report.recorded), (0, 0));
    // The SELECT, the search and the FETCH of its result went out together: one round trip.
    let after = imap::stats();
    assert_eq!(
        (
            after.commands - before.commands,
            after.round_trips - before.round_trips
        ),
        (3, 1)
    );
    assert_eq!(cursor().await.last_uid, top.last_uid);
    let _ = other.logout().await;
    let _ = s.logout().await;
    app.store.close().await;
}
