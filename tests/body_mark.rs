//! The body form of the warm-up mark (`warmup.mark = "body"`) against the lab: a message sent
//! by Hearth carries a reference line instead of the mark header; the seed scan finds it with
//! IMAP `SEARCH BODY` on the install's prefix and attributes it. A message that carries the
//! prefix with a made-up tag, for a Message-ID that is really in the outbox, is found by the
//! same search but not attributed.

#[path = "common/lab.rs"]
mod lab;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hearth::clock::SystemClock;
use hearth::config::Config;
use hearth::domain::{CampaignStatus, EmailAddress, HeloName, SendKind, TlsMode};
use hearth::engagement::scan;
use hearth::sender::{Dispatcher, transport};
use hearth::startup::App;
use hearth::store::{self, outbox::NewSend};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_marked_message_is_attributed_and_a_forged_one_is_not() {
    let Some(lab) = lab::lab_dir("body mark lab tests", &[5587, 1993]) else {
        return;
    };
    hearth::tls::install_crypto_provider();
    let data = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = lab::lab_config_text(&lab, data.path())
        .replace("[warmup]\n", "[warmup]\nmark = \"body\"\n");
    let config = Config::from_toml(&text, Some(&root.join("config/lab.toml")), &[]).unwrap();
    let app = App::build(config, Arc::new(SystemClock)).await.unwrap();
    let pool = app.store.pool().clone();
    let c = store::campaigns::get_by_name(&pool, "lab-warmup")
        .await
        .unwrap()
        .unwrap();
    let now = app.clock.now();
    store::campaigns::set_status(&pool, c.id, CampaignStatus::Active, None, None, now)
        .await
        .unwrap();
    let address = EmailAddress::parse("seed1@yahoo.test").unwrap();
    let seed = store::seeds::get_by_address(&pool, &address)
        .await
        .unwrap()
        .unwrap();
    let domain = hearth::domain::DomainName::parse("sender.test").unwrap();
    // The genuine message is due now; the other row is planned for next year, so only the
    // forger sends something with its Message-ID.
    let genuine = hearth::sender::message::new_message_id(&domain);
    let forged = hearth::sender::message::new_message_id(&domain);
    for (id, run_at) in [(&genuine, 0), (&forged, now + 365 * 86_400)] {
        store::outbox::enqueue(
            &pool,
            &NewSend {
                campaign_id: c.id,
                seed_id: seed.id,
                kind: SendKind::Warmup,
                message_id: Some(id.clone()),
                subject: "body mark".into(),
                in_reply_to: None,
                plan_day: None,
                run_at,
            },
            now,
        )
        .await
        .unwrap();
    }
    let report = Dispatcher::new(app.clone()).run_once(10).await.unwrap();
    assert_eq!(report.sent, 1, "{report:?}");

    // The forgery: the install's prefix (visible in any warm-up message) with a made-up tag.
    let token = app.marker.body_token(&forged);
    let (prefix, tag) = token.split_once('-').unwrap();
    let fake_tag: String = tag.chars().rev().collect();
    assert_ne!(fake_tag, tag);
    let raw = format!(
        "From: hello@sender.test\r\nTo: seed1@yahoo.test\r\nSubject: body mark\r\n\
         Message-ID: {forged}\r\nDate: Sun, 29 Nov 2026 12:00:00 +0000\r\n\r\n\
         Hi,\r\n\r\nBest,\r\nBo\r\n\r\nRef {prefix}-{fake_tag}\r\n"
    );
    let relay = hearth::domain::Endpoint {
        host: "127.0.0.1".into(),
        port: 5587,
        tls: TlsMode::Starttls,
        ca_file: Some(lab.join("tls/ca.pem")),
        username: "hello@sender.test".into(),
        secret: hearth::secrets::SecretRef::None,
    };
    let password = secrecy::SecretString::from("lab-pass-1".to_owned());
    let client = transport::build(
        &relay,
        &HeloName::parse("mta1.sender.test").unwrap(),
        Some(&password),
        Duration::from_secs(10),
        1,
    )
    .unwrap();
    let envelope = lettre::address::Envelope::new(
        Some("hello@sender.test".parse().unwrap()),
        vec!["seed1@yahoo.test".parse().unwrap()],
    )
    .unwrap();
    client.send_raw(&envelope, raw.as_bytes()).await.unwrap();

    // Both arrive; only the genuine one is attributed.
    let (mut found, mut rejected) = (0, 0);
    for _ in 0..100 {
        let r = scan::scan_seed(&app, &seed).await.unwrap();
        found += r.found;
        rejected += r.forged;
        if found > 0 && rejected > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!((found, rejected), (1, 1));
    assert!(
        store::ledger::get_by_message_id(&pool, &genuine)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store::ledger::get_by_message_id(&pool, &forged)
            .await
            .unwrap()
            .is_none()
    );
    // It arrived once (the unit tests hold that it carries no mark header).
    assert_eq!(
        lab::copies_in_mailbox(&lab, "seed1@yahoo.test", &genuine).await,
        1
    );
}
