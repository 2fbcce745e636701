//! The walking skeleton against the real lab (scripts/lab): a campaign plans its first day,
//! the sender delivers through Postfix with STARTTLS, AUTH and the configured HELO name,
//! Dovecot's Sieve files each message, and the IMAP scan records the placement. Every ledger
//! row is checked against the real mailbox, through an independent IMAP session.
//!
//! Needs `scripts/lab up`. Without the lab the tests say so and pass, unless
//! HEARTH_TEST_REQUIRE_LAB=1 (as scripts/test sets), where a missing lab is a failure.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[path = "common/lab.rs"]
mod lab;

use futures::TryStreamExt as _;
use hearth::clock::{Clock as _, ManualClock};
use hearth::config::Config;
use hearth::domain::{OutboxStatus, Placement, TlsMode};
use hearth::engagement::{imap, scan};
use hearth::sender::Dispatcher;
use hearth::startup::App;
use hearth::store;
use secrecy::SecretString;

fn lab_dir() -> Option<PathBuf> {
    lab::lab_dir("lab tests", &[5587, 1143])
}

/// config/lab.toml, pointed at this lab dir and a fresh SQLite database.
fn lab_config(lab: &Path, data: &Path) -> Config {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    Config::from_toml(
        &lab::lab_config_text(lab, data),
        Some(&root.join("config/lab.toml")),
        &[],
    )
    .expect("config/lab.toml is valid")
}

/// Messages with this Message-ID in a folder (their raw headers), through our own IMAP session.
async fn find_in_folder(lab: &Path, user: &str, folder: &str, message_id: &str) -> Vec<String> {
    let endpoint = hearth::domain::Endpoint {
        host: "127.0.0.1".into(),
        port: 1993,
        tls: TlsMode::Implicit,
        ca_file: Some(lab.join("tls/ca.pem")),
        username: user.into(),
        secret: hearth::secrets::SecretRef::None,
    };
    let pw = SecretString::from("lab-pass-1".to_owned());
    let mut s = imap::connect(&endpoint, &pw, Duration::from_secs(10))
        .await
        .unwrap();
    s.select(folder).await.unwrap();
    let bare = message_id.trim_matches(['<', '>']);
    let uids: Vec<String> = s
        .uid_search(format!("HEADER Message-ID \"{bare}\""))
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.to_string())
        .collect();
    let mut headers = Vec::new();
    if !uids.is_empty() {
        let fetches: Vec<_> = s
            .uid_fetch(uids.join(","), "BODY.PEEK[HEADER]")
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        headers = fetches
            .iter()
            .map(|f| String::from_utf8_lossy(f.header().unwrap_or_default()).into_owned())
            .collect();
    }
    let _ = s.logout().await;
    headers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn campaign_day_one_lands_in_inbox_and_spam_as_the_ledger_says() {
    let Some(lab) = lab_dir() else { return };
    hearth::tls::install_crypto_provider();
    let data = tempfile::tempdir().unwrap();
    let config = lab_config(&lab, data.path());
    // The start of today's sending window (UTC, 00:00–23:59), not the time the test runs:
    // late in the day the rest of the window holds fewer sends than the plan's six.
    let now = hearth::clock::SystemClock.now();
    let real_now = now - now.rem_euclid(86_400) + 60;
    let clock = ManualClock::new(real_now);
    let app = App::build(config, Arc::new(clock.clone())).await.unwrap();
    let pool = app.store.pool().clone();

    // Start the campaign and plan today: one message per seed (start_per_day = 6, 6 seeds).
    let c = store::campaigns::get_by_name(&pool, "lab-warmup")
        .await
        .unwrap()
        .unwrap();
    assert!(
        store::campaigns::transition(
            &pool,
            c.id,
            &[hearth::domain::CampaignStatus::Draft],
            hearth::domain::CampaignStatus::Active,
            None,
            None,
            real_now
        )
        .await
        .unwrap()
    );
    let planned = hearth::scheduler::run_once(&app).await.unwrap();
    assert_eq!(planned, 6);
    assert_eq!(
        hearth::scheduler::run_once(&app).await.unwrap(),
        0,
        "planning is idempotent"
    );

    // Nothing is due yet unless the window says so; move to the end of the day's window.
    clock.advance(24 * 3600);
    let dispatcher = Dispatcher::new(app.clone());
    let report = dispatcher.run_once(50).await.unwrap();
    assert_eq!((report.claimed, report.sent), (6, 6), "{report:?}");
    assert_eq!(
        dispatcher.run_once(50).await.unwrap().claimed,
        0,
        "sent once only"
    );

    // Scan each seed until its message is in the ledger (delivery through two MTAs is async).
    let seeds = store::seeds::list(&pool).await.unwrap();
    for seed in &seeds {
        let mut found = false;
        for _ in 0..100 {
            let r = scan::scan_seed(&app, seed).await.unwrap();
            if r.found > 0 {
                found = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(found, "message to {} never seen", seed.record.address);
    }

    let ledger = store::ledger::list_for_campaign(&pool, c.id).await.unwrap();
    assert_eq!(ledger.len(), 6, "one ledger row per message");
    let expected_spam = |provider: &str| match provider {
        "gmail" => "[Gmail]/Spam",
        "outlook" => "Junk Email",
        "yahoo" => "Bulk",
        other => panic!("unexpected provider {other}"),
    };
    for row in &ledger {
        let p = &row.record;
        let seed = seeds.iter().find(|s| s.id == p.seed_id).unwrap();
        let user = seed.record.address.to_string();
        let want = if user.starts_with("spam") {
            Placement::Spam
        } else {
            Placement::Inbox
        };
        assert_eq!(p.placement, want, "{user}");
        // The lab MX (rspamd) judged the message as a receiver would, and the ledger kept it.
        assert_eq!(
            (
                p.auth_spf.as_deref(),
                p.auth_dkim.as_deref(),
                p.auth_dmarc.as_deref()
            ),
            (Some("pass"), Some("pass"), Some("pass")),
            "{user}: {:?}",
            p.auth_results
        );
        let folder = p.folder.clone().unwrap();
        let other = if want == Placement::Spam {
            "INBOX".to_owned()
        } else {
            expected_spam(p.provider.as_str()).to_owned()
        };
        if want == Placement::Spam {
            assert_eq!(folder, expected_spam(p.provider.as_str()));
        } else {
            assert_eq!(folder, "INBOX");
        }
        // The real mailbox agrees: exactly one copy, in the ledger's folder, none elsewhere.
        let here = find_in_folder(&lab, &user, &folder, &p.message_id).await;
        assert_eq!(here.len(), 1, "{user} {folder}");
        assert!(
            find_in_folder(&lab, &user, &other, &p.message_id)
                .await
                .is_empty(),
            "{user} {other}"
        );
        // The relay's Received header shows our HELO name, the TLS session and the AUTH user.
        let h = here[0].replace("\r\n\t", " ").replace("\r\n ", " ");
        assert!(
            h.contains("from mta1.sender.test"),
            "HELO name not seen by the relay:\n{h}"
        );
        assert!(
            h.contains("using TLS"),
            "submission was not encrypted:\n{h}"
        );
        assert!(
            h.contains("Authenticated sender: hello@sender.test"),
            "no AUTH seen:\n{h}"
        );
        assert!(
            h.contains("DKIM-Signature:") && h.contains("s=hearth"),
            "not DKIM-signed:\n{h}"
        );
    }

    // A second scan records nothing new: the ledger never double-counts.
    for seed in &seeds {
        let r = scan::scan_seed(&app, seed).await.unwrap();
        assert_eq!(r.recorded, 0);
    }
    let sent = store::outbox::list_for_campaign(&pool, c.id).await.unwrap();
    assert!(sent.iter().all(|r| r.status == OutboxStatus::Sent));
}
