//! The relay misbehaving, on the real lab relay (`scripts/lab smtp reply`, `scripts/lab stop`):
//! 4xx and a relay that is down are retried with backoff; a rate deferral throttles the whole
//! sender; an unknown recipient takes the seed out of rotation; an identity rejection pauses
//! the campaign with the reason stored — and only that one pauses it.

#[path = "common/lab.rs"]
mod lab;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use hearth::clock::{Clock as _, ManualClock};
use hearth::config::Config;
use hearth::domain::{CampaignStatus, OutboxStatus, PauseReason, SeedStatus, SendKind};
use hearth::sender::Dispatcher;
use hearth::startup::App;
use hearth::store::{self, outbox::NewSend};

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

/// Puts the lab back however the test ends.
struct Restore;
impl Drop for Restore {
    fn drop(&mut self) {
        lab_cmd(&["start", "postfix-out"]);
        lab_cmd(&["smtp", "clear"]);
    }
}

const FAULT_SEEDS: &[&str] = &[
    "tempfail@gmail.test",
    "ratelimit@gmail.test",
    "identity@gmail.test",
    "nosuchuser@gmail.test",
];

fn config(lab: &Path, data: &Path) -> Config {
    let mut text = lab::lab_config_text(lab, data).replace("max_per_day = 12", "max_per_day = 100");
    for s in FAULT_SEEDS {
        text.push_str(&format!(
            "\n[[seeds]]\naddress = \"{s}\"\nimap = {{ host = \"127.0.0.1\", port = 1143, ca_file = \"{lab}/tls/ca.pem\", password = \"lab-pass-1\" }}\n",
            lab = lab.display()
        ));
    }
    // The lab's campaign sends to the ordinary seeds only; this one to whoever the test picks.
    text.push_str(
        "\n[[campaigns]]\nname = \"faults\"\nsender = \"lab\"\nplan = { max_per_day = 100 }\n",
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    Config::from_toml(&text, Some(&root.join("config/lab.toml")), &[]).unwrap()
}

async fn enqueue(app: &App, campaign_id: i64, seed: &str) -> i64 {
    let pool = app.store.pool();
    let seed =
        store::seeds::get_by_address(pool, &hearth::domain::EmailAddress::parse(seed).unwrap())
            .await
            .unwrap()
            .unwrap();
    let domain = hearth::domain::DomainName::parse("sender.test").unwrap();
    store::outbox::enqueue(
        pool,
        &NewSend {
            campaign_id,
            seed_id: seed.id,
            kind: SendKind::Warmup,
            message_id: Some(hearth::sender::message::new_message_id(&domain)),
            subject: "fault".into(),
            in_reply_to: None,
            plan_day: None,
            run_at: app.clock.now(),
        },
        app.clock.now(),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_faults_are_classified_and_only_identity_pauses() {
    let Some(lab) = lab::lab_dir("fault lab tests", &[5587, 5353]) else {
        return;
    };
    hearth::tls::install_crypto_provider();
    let data = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(hearth::clock::SystemClock.now());
    let app = App::build(config(&lab, data.path()), Arc::new(clock.clone()))
        .await
        .unwrap();
    let pool = app.store.pool().clone();
    let c = store::campaigns::get_by_name(&pool, "faults")
        .await
        .unwrap()
        .unwrap();
    store::campaigns::set_status(&pool, c.id, CampaignStatus::Active, None, None, clock.now())
        .await
        .unwrap();
    let d = Dispatcher::new(app.clone());
    let _restore = Restore;
    let row = |id| {
        let pool = pool.clone();
        async move { store::outbox::get(&pool, id).await.unwrap().unwrap() }
    };
    let status = || {
        let pool = pool.clone();
        async move { store::campaigns::get(&pool, c.id).await.unwrap().unwrap() }
    };

    // 451: retried later with backoff; the campaign keeps running.
    let t = enqueue(&app, c.id, "tempfail@gmail.test").await;
    let r = d.run_once(10).await.unwrap();
    assert_eq!(r.retried, 1, "{r:?}");
    let o = row(t).await;
    assert_eq!(o.status, OutboxStatus::Planned);
    assert!(o.run_at >= clock.now() + 60, "backoff of at least a minute");
    assert!(
        o.last_error.as_deref().unwrap_or("").contains("451"),
        "{o:?}"
    );
    assert_eq!(status().await.status, CampaignStatus::Active);
    store::outbox::cancel_planned(&pool, c.id).await.unwrap();

    // A 4xx on an ordinary seed, then the relay recovers: the retry is delivered. Postfix
    // reads a changed reply map in new sessions only (a running smtpd finishes its session on
    // the old one) and a refused recipient no longer costs the sender its connection: each
    // change gets a new dispatcher, with new connections.
    lab_cmd(&["smtp", "reply", "seed1@gmail.test", "451", "4.3.0", "busy"]);
    let d = Dispatcher::new(app.clone());
    let t = enqueue(&app, c.id, "seed1@gmail.test").await;
    assert_eq!(d.run_once(10).await.unwrap().retried, 1);
    lab_cmd(&["smtp", "clear", "seed1@gmail.test"]);
    let d = Dispatcher::new(app.clone());
    clock.advance(3600);
    let r = d.run_once(10).await.unwrap();
    assert_eq!(r.sent, 1, "{r:?}");
    let o = row(t).await;
    assert_eq!((o.status, o.attempts), (OutboxStatus::Sent, 2));

    // The relay is down: connection refused is retried, the campaign keeps running.
    lab_cmd(&["stop", "postfix-out"]);
    let t = enqueue(&app, c.id, "seed1@outlook.test").await;
    assert_eq!(d.run_once(10).await.unwrap().retried, 1);
    assert_eq!(row(t).await.status, OutboxStatus::Planned);
    assert_eq!(status().await.status, CampaignStatus::Active);
    lab_cmd(&["start", "postfix-out"]);
    clock.advance(3600);
    assert_eq!(d.run_once(10).await.unwrap().sent, 1);

    // 450 4.7.28: the whole sender is throttled: its other queued mail moves back too.
    let t = enqueue(&app, c.id, "ratelimit@gmail.test").await;
    let other = {
        let id = enqueue(&app, c.id, "seed1@yahoo.test").await;
        // Due a little later than the deferred one, so it is not in the same batch.
        sqlx_set_run_at(&app, id, clock.now() + 30).await;
        id
    };
    assert_eq!(d.run_once(1).await.unwrap().retried, 1);
    let deferred = row(t).await;
    assert!(
        deferred
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("4.7.28")
    );
    assert!(
        row(other).await.run_at >= deferred.run_at,
        "the sender's queue was pushed back"
    );
    assert_eq!(status().await.status, CampaignStatus::Active);
    store::outbox::cancel_planned(&pool, c.id).await.unwrap();

    // 550 5.1.1: the seed leaves the rotation; nothing is retried; the campaign runs on.
    let t = enqueue(&app, c.id, "nosuchuser@gmail.test").await;
    assert_eq!(d.run_once(10).await.unwrap().failed, 1);
    assert_eq!(row(t).await.status, OutboxStatus::Failed);
    let seed = store::seeds::get_by_address(
        &pool,
        &hearth::domain::EmailAddress::parse("nosuchuser@gmail.test").unwrap(),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(seed.status, SeedStatus::Disabled);
    assert!(seed.status_reason.unwrap_or_default().contains("5.1.1"));
    assert_eq!(status().await.status, CampaignStatus::Active);

    // 550 5.7.26: the identity is refused. Preflight runs at once (the lab identity passes,
    // so it is the receiver's word): paused for a person, with the reason stored.
    let t = enqueue(&app, c.id, "identity@gmail.test").await;
    assert_eq!(d.run_once(10).await.unwrap().retried, 1);
    assert_eq!(
        row(t).await.status,
        OutboxStatus::Planned,
        "the message is kept"
    );
    let c_now = status().await;
    assert_eq!(
        (c_now.status, c_now.pause_reason),
        (CampaignStatus::Paused, Some(PauseReason::SenderError))
    );
    assert!(c_now.pause_detail.unwrap_or_default().contains("5.7.26"));
    let runs = store::preflight::recent_verdicts(&pool, c.sender_id, 5)
        .await
        .unwrap();
    assert!(
        !runs.is_empty(),
        "preflight ran after the identity rejection"
    );
    // A paused campaign's rows are not claimed.
    clock.advance(86_400);
    assert_eq!(d.run_once(10).await.unwrap().claimed, 0);
}

async fn sqlx_set_run_at(app: &App, id: i64, run_at: i64) {
    sqlx::query("UPDATE outbox SET run_at = $1 WHERE id = $2")
        .bind(run_at)
        .bind(id)
        .execute(app.store.pool())
        .await
        .unwrap();
}
