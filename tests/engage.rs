//! Engagement against the lab's Dovecot: mail that Sieve filed as spam is rescued to the inbox,
//! opened, and finally filed into the warm-up folder; flags are set on the server; a second
//! pass does nothing twice, even when its record of an action was lost; a Dovecot restart in
//! the middle is survived.

#[path = "common/imap.rs"]
mod imap_util;
#[path = "common/lab.rs"]
mod lab;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt as _;
use hearth::clock::{Clock as _, ManualClock};
use hearth::config::Config;
use hearth::domain::{CampaignStatus, EngagementAction, SendKind};
use hearth::engagement::{act, scan};
use hearth::sender::Dispatcher;
use hearth::startup::App;
use hearth::store::{self, outbox::NewSend};

/// The tests of this file run one at a time: one of them stops Dovecot for a moment.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rescue_open_file_idempotently() {
    let _serial = SERIAL.lock().await;
    let Some(lab) = lab::lab_dir("engagement lab tests", &[5587, 1993]) else {
        return;
    };
    hearth::tls::install_crypto_provider();
    let data = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Every message opened and starred, so the server state is fully predictable.
    let text = lab::lab_config_text(&lab, data.path())
        .replace("min_gap_secs = 60", "min_gap_secs = 60\nrates = { open = 1.0, star = 1.0, important = 0.0, rescue = 1.0, reply = 0.0 }");
    let config = Config::from_toml(&text, Some(&root.join("config/lab.toml")), &[]).unwrap();
    let clock = ManualClock::new(hearth::clock::SystemClock.now());
    let app = App::build(config, Arc::new(clock.clone())).await.unwrap();
    let pool = app.store.pool().clone();
    let c = store::campaigns::get_by_name(&pool, "lab-warmup")
        .await
        .unwrap()
        .unwrap();
    store::campaigns::set_status(&pool, c.id, CampaignStatus::Active, None, None, clock.now())
        .await
        .unwrap();
    let domain = hearth::domain::DomainName::parse("sender.test").unwrap();
    let users = [
        "seed1@gmail.test",
        "spam1@gmail.test",
        "spam1@outlook.test",
        "spam1@yahoo.test",
    ];
    let mut sends = Vec::new();
    for u in users {
        let seed =
            store::seeds::get_by_address(&pool, &hearth::domain::EmailAddress::parse(u).unwrap())
                .await
                .unwrap()
                .unwrap();
        let message_id = hearth::sender::message::new_message_id(&domain);
        store::outbox::enqueue(
            &pool,
            &NewSend {
                campaign_id: c.id,
                seed_id: seed.id,
                kind: SendKind::Warmup,
                message_id: Some(message_id.clone()),
                subject: "engage".into(),
                in_reply_to: None,
                plan_day: None,
                run_at: 0,
            },
            clock.now(),
        )
        .await
        .unwrap();
        sends.push((seed, message_id));
    }
    assert_eq!(
        Dispatcher::new(app.clone())
            .run_once(10)
            .await
            .unwrap()
            .sent,
        4
    );
    for (seed, _) in &sends {
        let mut found = 0;
        for _ in 0..100 {
            found += scan::scan_seed(&app, seed).await.unwrap().found;
            if found > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(found, 1, "{}", seed.record.address);
    }

    // Nothing is due right after arrival: a person takes a while.
    for (seed, _) in &sends {
        assert_eq!(
            act::engage_seed(&app, seed).await.unwrap(),
            act::EngageReport::default()
        );
    }
    // A day later everything is due. The first pass rescues, opens and stars; mail that was
    // in the inbox is filed too. The second pass files what the first rescued.
    clock.advance(86_400);
    for (seed, _) in &sends {
        let r = act::engage_seed(&app, seed).await.unwrap();
        assert!(r.performed >= 2, "{}: {r:?}", seed.record.address);
    }
    for (seed, _) in &sends {
        act::engage_seed(&app, seed).await.unwrap();
    }
    for (seed, id) in &sends {
        let user = seed.record.address.to_string();
        let copies = imap_util::where_is(&lab, &user, id).await;
        assert_eq!(copies.len(), 1, "{user}: {copies:?}");
        let (folder, flags) = &copies[0];
        assert_eq!(folder, "Warmup", "{user}");
        assert!(
            flags.iter().any(|f| f.contains("Seen")) && flags.iter().any(|f| f.contains("Flagged")),
            "{user}: {flags:?}"
        );
        let p = store::ledger::get_by_message_id(&pool, id)
            .await
            .unwrap()
            .unwrap();
        let events: Vec<EngagementAction> = store::engagement::list_for_placement(&pool, p.id)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.action)
            .collect();
        let spam = user.starts_with("spam");
        assert_eq!(
            events.contains(&EngagementAction::Rescue),
            spam,
            "{user}: {events:?}"
        );
        for a in [
            EngagementAction::Open,
            EngagementAction::Star,
            EngagementAction::File,
        ] {
            assert!(events.contains(&a), "{user}: {events:?}");
        }
    }

    // Nothing left: a third pass does nothing.
    for (seed, _) in &sends {
        assert_eq!(
            act::engage_seed(&app, seed).await.unwrap(),
            act::EngageReport::default()
        );
    }

    // A pass that did its work but died before recording it: the next pass sees the effect
    // and records it without doing anything again.
    let (seed, id) = &sends[1];
    let p = store::ledger::get_by_message_id(&pool, id)
        .await
        .unwrap()
        .unwrap();
    sqlx::query("DELETE FROM engagement_events WHERE placement_id = $1 AND action IN ($2, $3)")
        .bind(p.id)
        .bind(EngagementAction::Rescue.as_str())
        .bind(EngagementAction::File.as_str())
        .execute(&pool)
        .await
        .unwrap();
    let r = act::engage_seed(&app, seed).await.unwrap();
    assert_eq!((r.performed, r.recognised), (0, 2), "{r:?}");
    assert_eq!(
        imap_util::where_is(&lab, &seed.record.address.to_string(), id)
            .await
            .len(),
        1
    );

    // Dovecot goes away mid-engagement and comes back: the pass fails as a transient error and
    // the next one completes. (In this same test: nothing else may run while Dovecot is down.)
    struct Start;
    impl Drop for Start {
        fn drop(&mut self) {
            lab_cmd(&["start", "dovecot"]);
        }
    }
    let _guard = Start;
    sqlx::query("DELETE FROM engagement_events WHERE placement_id = $1 AND action = $2")
        .bind(p.id)
        .bind(EngagementAction::File.as_str())
        .execute(&pool)
        .await
        .unwrap();
    lab_cmd(&["stop", "dovecot"]);
    let err = act::engage_seed(&app, seed)
        .await
        .expect_err("Dovecot is down");
    assert!(
        err.is_transient(),
        "a server that is down is a transient failure: {err}"
    );
    lab_cmd(&["start", "dovecot"]);
    let r = act::engage_seed(&app, seed)
        .await
        .expect("recovers once Dovecot is back");
    assert_eq!((r.performed, r.recognised), (0, 1), "{r:?}");
    assert_eq!(
        imap_util::where_is(&lab, &seed.record.address.to_string(), id)
            .await
            .len(),
        1
    );
}

/// A message the seed's owner deletes before Hearth sees it is recorded as `missing` once
/// `warmup.missing_after_minutes` has passed — and never counted twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_before_seen_is_missing_after_the_timeout() {
    let _serial = SERIAL.lock().await;
    let Some(lab) = lab::lab_dir("engagement lab tests", &[5587, 1993]) else {
        return;
    };
    hearth::tls::install_crypto_provider();
    let data = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = Config::from_toml(
        &lab::lab_config_text(&lab, data.path()),
        Some(&root.join("config/lab.toml")),
        &[],
    )
    .unwrap();
    let clock = ManualClock::new(hearth::clock::SystemClock.now());
    let app = App::build(config, Arc::new(clock.clone())).await.unwrap();
    let pool = app.store.pool().clone();
    let c = store::campaigns::get_by_name(&pool, "lab-warmup")
        .await
        .unwrap()
        .unwrap();
    store::campaigns::set_status(&pool, c.id, CampaignStatus::Active, None, None, clock.now())
        .await
        .unwrap();
    let user = "seed1@yahoo.test";
    let seed =
        store::seeds::get_by_address(&pool, &hearth::domain::EmailAddress::parse(user).unwrap())
            .await
            .unwrap()
            .unwrap();
    let id = hearth::sender::message::new_message_id(
        &hearth::domain::DomainName::parse("sender.test").unwrap(),
    );
    store::outbox::enqueue(
        &pool,
        &NewSend {
            campaign_id: c.id,
            seed_id: seed.id,
            kind: SendKind::Warmup,
            message_id: Some(id.clone()),
            subject: "gone".into(),
            in_reply_to: None,
            plan_day: None,
            run_at: 0,
        },
        clock.now(),
    )
    .await
    .unwrap();
    assert_eq!(
        Dispatcher::new(app.clone())
            .run_once(10)
            .await
            .unwrap()
            .sent,
        1
    );
    // The owner deletes it as soon as it arrives.
    let mut s = imap_util::session(&lab, user).await;
    s.select("INBOX").await.unwrap();
    let bare = id.trim_matches(['<', '>']);
    let mut uids = Vec::new();
    for _ in 0..100 {
        uids = s
            .uid_search(format!("HEADER Message-ID \"{bare}\""))
            .await
            .unwrap()
            .into_iter()
            .collect();
        if !uids.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let set = uids
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    assert!(!set.is_empty(), "never arrived");
    let _: Vec<_> = s
        .uid_store(&set, "+FLAGS.SILENT (\\Deleted)")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let _: Vec<_> = s.expunge().await.unwrap().try_collect().await.unwrap();
    let _ = s.logout().await;

    // Before the timeout: nothing recorded. After it: missing, once.
    hearth::worker::scan_pending(&app).await;
    assert!(
        store::ledger::get_by_message_id(&pool, &id)
            .await
            .unwrap()
            .is_none()
    );
    clock.advance(121 * 60);
    hearth::worker::scan_pending(&app).await;
    hearth::worker::scan_pending(&app).await;
    let p = store::ledger::get_by_message_id(&pool, &id)
        .await
        .unwrap()
        .expect("recorded");
    assert_eq!(p.record.placement, hearth::domain::Placement::Missing);
    assert_eq!(
        store::ledger::list_for_campaign(&pool, c.id)
            .await
            .unwrap()
            .len(),
        1
    );
}
