//! The seed workers against the lab's Dovecot: IDLE wakes a scan as soon as mail is delivered;
//! a wrong password marks the seed broken with Dovecot's own words, and the corrected config
//! restores it; the session limits per provider and overall hold while every seed still gets
//! its turn.
//!
//! These seeds log in as the lab's `seed2@…` users, which no other test reads.

#[path = "common/lab.rs"]
mod lab;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hearth::clock::{Clock as _, ManualClock};
use hearth::config::Config;
use hearth::domain::{CampaignStatus, EmailAddress, Provider, SeedStatus, SendKind};
use hearth::engagement::imap;
use hearth::engagement::pool::SessionLimits;
use hearth::engagement::seed_worker::{SeedWorker, StepOutcome, Wake};
use hearth::sender::Dispatcher;
use hearth::startup::App;
use hearth::store::{self, outbox::NewSend};
use tokio_util::sync::CancellationToken;

/// One test at a time: the limits test reads the process-wide session gauge.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `[[seeds]]` entries: (seed address, provider, IMAP user, port, password).
fn seeds_toml(lab: &Path, seeds: &[(&str, &str, &str, u16, &str)]) -> String {
    let ca = lab.join("tls/ca.pem");
    seeds
        .iter()
        .map(|(address, provider, user, port, password)| {
            let tls = if *port == 1993 {
                "implicit"
            } else {
                "starttls"
            };
            format!(
                "\n[[seeds]]\naddress = \"{address}\"\nprovider = \"{provider}\"\n\
                 imap = {{ host = \"127.0.0.1\", port = {port}, tls = \"{tls}\", \
                 ca_file = {ca:?}, username = \"{user}\", password = \"{password}\" }}\n"
            )
        })
        .collect()
}

async fn app_with(lab: &Path, data: &Path, extra: &str, clock: &ManualClock) -> App {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = lab::lab_config_text(lab, data) + extra;
    let config = Config::from_toml(&text, Some(&root.join("config/lab.toml")), &[]).unwrap();
    App::build(config, Arc::new(clock.clone())).await.unwrap()
}

async fn seed_id(app: &App, address: &str) -> i64 {
    store::seeds::get_by_address(app.store.pool(), &EmailAddress::parse(address).unwrap())
        .await
        .unwrap()
        .unwrap()
        .id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_wakes_the_scan_when_mail_arrives() {
    let _serial = SERIAL.lock().await;
    let Some(lab) = lab::lab_dir("IMAP worker lab tests", &[5587, 1143]) else {
        return;
    };
    hearth::tls::install_crypto_provider();
    let data = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(hearth::clock::SystemClock.now());
    let seed = seeds_toml(
        &lab,
        &[(
            "seed2@gmail.test",
            "gmail",
            "seed2@gmail.test",
            1143,
            "lab-pass-1",
        )],
    );
    // A poll interval of 15 minutes: only IDLE can explain a prompt wake-up.
    let app = {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let text = lab::lab_config_text(&lab, data.path())
            .replace("scan_interval_secs = 10", "scan_interval_secs = 900")
            + &seed;
        let config = Config::from_toml(&text, Some(&root.join("config/lab.toml")), &[]).unwrap();
        App::build(config, Arc::new(clock.clone())).await.unwrap()
    };
    let pool = app.store.pool().clone();
    let c = store::campaigns::get_by_name(&pool, "lab-warmup")
        .await
        .unwrap()
        .unwrap();
    store::campaigns::set_status(&pool, c.id, CampaignStatus::Active, None, None, clock.now())
        .await
        .unwrap();
    let id = seed_id(&app, "seed2@gmail.test").await;
    let limits = SessionLimits::new(&app.config.imap);
    let mut worker = SeedWorker::new(app.clone(), limits.clone(), id);
    let first = worker.step().await;
    assert!(matches!(first, StepOutcome::Scanned { .. }), "{first:?}");
    assert!(worker.uses_idle(), "Dovecot offers IDLE");

    let mut idling = worker.idling();
    let shutdown = CancellationToken::new();
    let waiting = {
        let s = shutdown.clone();
        tokio::spawn(async move {
            let wake = worker.wait(&first, &s).await;
            (worker, wake)
        })
    };
    idling.wait_for(|on| *on).await.unwrap();

    // Delivered through the lab's relay and MX while the worker idles.
    let message_id = hearth::sender::message::new_message_id(
        &hearth::domain::DomainName::parse("sender.test").unwrap(),
    );
    store::outbox::enqueue(
        &pool,
        &NewSend {
            campaign_id: c.id,
            seed_id: id,
            kind: SendKind::Warmup,
            message_id: Some(message_id.clone()),
            subject: "idle".into(),
            in_reply_to: None,
            plan_day: None,
            run_at: 0,
        },
        clock.now(),
    )
    .await
    .unwrap();
    let sent_at = std::time::Instant::now();
    assert_eq!(
        Dispatcher::new(app.clone()).run_once(1).await.unwrap().sent,
        1
    );
    let (mut worker, wake) = tokio::time::timeout(Duration::from_secs(60), waiting)
        .await
        .expect("IDLE woke the worker within a minute (the poll interval is 15)")
        .unwrap();
    assert_eq!(wake, Wake::NewMail);
    let woke_after = sent_at.elapsed();
    match worker.step().await {
        StepOutcome::Scanned { scan, .. } => {
            assert_eq!((scan.found, scan.recorded), (1, 1), "{scan:?}")
        }
        other => panic!("{other:?}"),
    }
    let p = store::ledger::get_by_message_id(&pool, &message_id)
        .await
        .unwrap()
        .expect("placement recorded");
    assert_eq!(p.record.placement, hearth::domain::Placement::Inbox);
    eprintln!("woken by IDLE {woke_after:?} after the send");
    assert_eq!(limits.open(Some(Provider::Gmail)), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_marks_the_seed_broken_until_the_config_is_fixed() {
    let _serial = SERIAL.lock().await;
    let Some(lab) = lab::lab_dir("IMAP worker lab tests", &[1993]) else {
        return;
    };
    hearth::tls::install_crypto_provider();
    let data = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(hearth::clock::SystemClock.now());
    let seed = |password| {
        seeds_toml(
            &lab,
            &[(
                "locked@yahoo.test",
                "yahoo",
                "seed2@yahoo.test",
                1993,
                password,
            )],
        )
    };
    let app = app_with(&lab, data.path(), &seed("not-the-password"), &clock).await;
    let id = seed_id(&app, "locked@yahoo.test").await;
    let limits = SessionLimits::new(&app.config.imap);
    let mut worker = SeedWorker::new(app.clone(), limits.clone(), id);
    let reason = match worker.step().await {
        StepOutcome::LoginRefused { reason } => reason,
        other => panic!("{other:?}"),
    };
    // Dovecot's own words, as the seed's status reason and on the status board.
    assert!(reason.contains("[AUTHENTICATIONFAILED]"), "{reason}");
    let row = store::seeds::get(app.store.pool(), id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.status, SeedStatus::Broken);
    assert_eq!(row.status_reason.as_deref(), Some(reason.as_str()));
    let board = app.status.snapshot();
    assert_eq!(board["seed locked@yahoo.test"].detail, reason);
    assert!(
        !reason.contains("not-the-password"),
        "no secret in the reason"
    );
    assert_eq!(limits.open(None), 0, "a refused login holds no room");
    app.store.close().await;

    // The owner fixes the password in the config; the next login restores the seed.
    let app = app_with(&lab, data.path(), &seed("lab-pass-1"), &clock).await;
    let mut worker = SeedWorker::new(app.clone(), limits, id);
    let outcome = worker.step().await;
    assert!(
        matches!(outcome, StepOutcome::Scanned { .. }),
        "{outcome:?}"
    );
    let row = store::seeds::get(app.store.pool(), id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((row.status, row.status_reason), (SeedStatus::Active, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_limits_hold_and_every_seed_gets_its_turn() {
    let _serial = SERIAL.lock().await;
    let Some(lab) = lab::lab_dir("IMAP worker lab tests", &[1993, 1143]) else {
        return;
    };
    hearth::tls::install_crypto_provider();
    let data = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(hearth::clock::SystemClock.now());
    let mut seeds = Vec::new();
    let names: Vec<String> = (1..=5)
        .map(|i| format!("g{i}@gmail.test"))
        .chain((1..=3).map(|i| format!("o{i}@outlook.test")))
        .collect();
    for n in &names {
        let (provider, user, port) = if n.contains("gmail") {
            ("gmail", "seed2@gmail.test", 1993)
        } else {
            ("outlook", "seed2@outlook.test", 1143)
        };
        seeds.push((n.as_str(), provider, user, port, "lab-pass-1"));
    }
    let extra = format!(
        "{}\n[imap]\nmax_sessions = 3\nprovider_sessions = {{ gmail = 2, outlook = 2 }}\n",
        seeds_toml(&lab, &seeds)
    );
    let app = {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let text = lab::lab_config_text(&lab, data.path())
            .replace("scan_interval_secs = 10", "scan_interval_secs = 1")
            + &extra;
        let config = Config::from_toml(&text, Some(&root.join("config/lab.toml")), &[]).unwrap();
        App::build(config, Arc::new(clock.clone())).await.unwrap()
    };
    let limits = SessionLimits::new(&app.config.imap);
    let base = imap::stats().sessions_open;
    let shutdown = CancellationToken::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut tasks = Vec::new();
    for n in &names {
        let id = seed_id(&app, n).await;
        let mut worker = SeedWorker::new(app.clone(), limits.clone(), id);
        let (tx, shutdown, n) = (tx.clone(), shutdown.clone(), n.clone());
        // The production loop's two calls, reporting each step.
        tasks.push(tokio::spawn(async move {
            loop {
                let outcome = worker.step().await;
                let scanned = matches!(outcome, StepOutcome::Scanned { .. });
                let _ = tx.send((n.clone(), scanned, format!("{outcome:?}")));
                if worker.wait(&outcome, &shutdown).await == Wake::Shutdown {
                    break;
                }
            }
        }));
    }
    let mut scanned = HashSet::new();
    let mut max_open = 0;
    let all_turns = tokio::time::timeout(Duration::from_secs(90), async {
        while scanned.len() < names.len() {
            let (n, ok, outcome) = rx.recv().await.unwrap();
            assert!(ok, "{n}: {outcome}");
            scanned.insert(n);
            max_open = max_open.max(imap::stats().sessions_open - base);
        }
    })
    .await;
    shutdown.cancel();
    for t in tasks {
        t.await.unwrap();
    }
    all_turns.unwrap_or_else(|_| panic!("only {scanned:?} got a turn"));
    assert_eq!(limits.peak(Some(Provider::Gmail)), 2);
    assert!(limits.peak(Some(Provider::Outlook)) <= 2);
    assert_eq!(limits.peak(None), 3);
    // The sockets themselves, counted below the pool: never more than the overall cap.
    assert!(
        (1..=3).contains(&max_open),
        "{max_open} sessions open at once"
    );
    assert_eq!(limits.open(None), 0, "all logged out at shutdown");
}
