//! The placement guard and the webhooks together, on SQLite and PostgreSQL: bad placement
//! pauses a campaign (or holds one provider), a manual resume starts a clean slate, and each
//! pause, resume and preflight failure reaches a real HTTP receiver on 127.0.0.1 with a valid
//! HMAC-SHA256 signature — after a retry when the receiver first answers 503.

#[path = "common/ledger.rs"]
mod ledger_fixture;
#[path = "common/pg.rs"]
#[allow(dead_code)]
mod pg;

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hearth::clock::{Clock as _, ManualClock};
use hearth::config::Config;
use hearth::domain::{CampaignStatus, PauseReason, Placement, PreflightTrigger, Provider, Verdict};
use hearth::startup::App;
use hearth::store::{campaigns, holds, preflight, seeds};

const SECRET: &str = "hook-secret";
/// 2026-11-29 12:00 UTC.
const NOW: i64 = 1_795_953_600;

/// The requests received: headers and body.
type Received = Vec<(HeaderMap, Vec<u8>)>;

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Received>>,
    refused_once: Arc<Mutex<bool>>,
}

async fn hook(
    State(r): State<Receiver>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    {
        let mut refused = r.refused_once.lock().unwrap();
        if !*refused {
            *refused = true;
            return StatusCode::SERVICE_UNAVAILABLE;
        }
    }
    r.got.lock().unwrap().push((headers, body.to_vec()));
    StatusCode::NO_CONTENT
}

async fn receiver() -> (String, Receiver) {
    let r = Receiver::default();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(hook))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), r)
}

fn config(db: &str, url: &str) -> Config {
    let text = format!(
        r#"
[server]
bind = "127.0.0.1:0"
database_url = "{db}"
secret_key = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
[dns]
nameservers = ["127.0.0.1:5353"]
[guard]
window = 4
[[webhooks]]
name = "ops"
url = "{url}"
secret = "{SECRET}"
[[senders]]
name = "main"
address = "hello@sender.test"
helo = "mta1.sender.test"
smtp = {{ host = "127.0.0.1", port = 1, password = "pw" }}
[[seeds]]
address = "a@gmail.test"
provider = "gmail"
imap = {{ host = "127.0.0.1", port = 1, password = "pw" }}
[[seeds]]
address = "b@outlook.test"
provider = "outlook"
imap = {{ host = "127.0.0.1", port = 1, password = "pw" }}
[[campaigns]]
name = "warm"
sender = "main"
"#
    );
    Config::from_toml(&text, None, &[]).unwrap()
}

/// `n` messages to the provider's seed, scheduled now, sent and found where `placement` says.
async fn placed(app: &App, campaign_id: i64, provider: Provider, placement: Placement, n: usize) {
    let pool = app.store.pool();
    let now = app.clock.now();
    let seed = seeds::list(pool)
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.record.provider == provider)
        .unwrap();
    for _ in 0..n {
        ledger_fixture::delivered(
            pool,
            ledger_fixture::Delivered {
                campaign_id,
                seed_id: seed.id,
                provider,
                message_id: format!("<{}@sender.test>", uuid::Uuid::new_v4()),
                plan_day: Some("2026-11-29".into()),
                sent_at: now,
                placement,
                folder: None,
                latency: Some(30),
                auth: [None, None, None],
            },
        )
        .await;
    }
}

async fn scenario(db: String) {
    let (url, rx) = receiver().await;
    let clock = Arc::new(ManualClock::new(NOW));
    let app = App::build(config(&db, &url), clock.clone()).await.unwrap();
    let pool = app.store.pool().clone();
    let c = campaigns::get_by_name(&pool, "warm")
        .await
        .unwrap()
        .unwrap();
    campaigns::set_status(&pool, c.id, CampaignStatus::Active, None, None, NOW)
        .await
        .unwrap();
    clock.advance(60);

    // Two spam at each provider: too few per provider (4), enough for the campaign.
    placed(&app, c.id, Provider::Gmail, Placement::Spam, 2).await;
    placed(&app, c.id, Provider::Outlook, Placement::Spam, 1).await;
    placed(&app, c.id, Provider::Outlook, Placement::Inbox, 1).await;
    let r = hearth::report::guard::run_once(&app).await.unwrap();
    assert_eq!(r.paused.len(), 1, "{r:?}");
    let c1 = campaigns::get(&pool, c.id).await.unwrap().unwrap();
    assert_eq!(
        (c1.status, c1.pause_reason),
        (CampaignStatus::Paused, Some(PauseReason::Placement))
    );
    assert!(
        c1.pause_detail
            .unwrap()
            .contains("spam 75.0 % of the last 4")
    );
    // A paused campaign is not judged again; a person resumes it.
    assert_eq!(
        hearth::report::guard::run_once(&app).await.unwrap(),
        Default::default()
    );
    clock.advance(60);
    campaigns::transition(
        &pool,
        c.id,
        &[CampaignStatus::Paused],
        CampaignStatus::Active,
        None,
        None,
        clock.now(),
    )
    .await
    .unwrap();
    clock.advance(60);
    // The old mail does not count after the resume.
    let r = hearth::report::guard::run_once(&app).await.unwrap();
    assert!(r.paused.is_empty() && r.held.is_empty(), "{r:?}");

    // Gmail alone turns bad: it is held, outlook goes on, the campaign stays active.
    placed(&app, c.id, Provider::Gmail, Placement::Spam, 4).await;
    placed(&app, c.id, Provider::Outlook, Placement::Inbox, 4).await;
    let r = hearth::report::guard::run_once(&app).await.unwrap();
    assert_eq!(r.held.len(), 1, "{r:?}");
    assert!(r.paused.is_empty(), "{r:?}");
    assert_eq!(
        holds::held_providers(&pool, c.id).await.unwrap(),
        vec![Provider::Gmail]
    );
    let report = hearth::report::campaign_report(&app.store, "warm", 1, clock.now())
        .await
        .unwrap();
    let gmail = report
        .providers
        .iter()
        .find(|p| p.provider == Provider::Gmail)
        .unwrap();
    assert_eq!(gmail.held.as_ref().unwrap().reason, PauseReason::Placement);
    assert_eq!(
        campaigns::get(&pool, c.id).await.unwrap().unwrap().status,
        CampaignStatus::Active
    );
    // Released by a person: judged again only on what is sent afterwards.
    assert!(
        holds::release(&pool, c.id, Provider::Gmail, clock.now())
            .await
            .unwrap()
    );
    clock.advance(60);
    let r = hearth::report::guard::run_once(&app).await.unwrap();
    assert!(r.held.is_empty(), "{r:?}");

    // A failed preflight run.
    let run = preflight::start_run(&pool, c.sender_id, PreflightTrigger::Schedule, clock.now())
        .await
        .unwrap();
    preflight::finish_run(&pool, run, Verdict::Fail, clock.now())
        .await
        .unwrap();

    // Deliver: the first POST meets a 503 and is retried after its backoff.
    let first = hearth::webhooks::run_once(&app).await.unwrap();
    assert_eq!(
        (first.delivered, first.retrying, first.failed),
        (2, 1, 0),
        "{first:?}"
    );
    assert!(
        first.skipped >= 1,
        "the draft → active start is not announced: {first:?}"
    );
    assert_eq!(hearth::webhooks::run_once(&app).await.unwrap().delivered, 0);
    clock.advance(31);
    let second = hearth::webhooks::run_once(&app).await.unwrap();
    assert_eq!(second.delivered, 1, "{second:?}");

    let got = rx.got.lock().unwrap().clone();
    let mut kinds = Vec::new();
    for (headers, body) in &got {
        let ts: i64 = headers["x-hearth-timestamp"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let sig = headers["x-hearth-signature"].to_str().unwrap();
        // Verify independently of the sender's code.
        use hmac::Mac as _;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(format!("{ts}.").as_bytes());
        mac.update(body);
        let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(sig, want);
        let v: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(v["event"], headers["x-hearth-event"].to_str().unwrap());
        kinds.push(v["event"].as_str().unwrap().to_owned());
        match v["event"].as_str().unwrap() {
            "pause" => {
                assert_eq!(v["campaign"]["name"], "warm");
                assert_eq!(v["campaign"]["pause_reason"], "placement");
            }
            "resume" => assert_eq!(v["campaign"]["previous_status"], "paused"),
            "preflight_failure" => assert_eq!(v["preflight"]["sender"], "main"),
            other => panic!("unexpected event {other}"),
        }
    }
    kinds.sort();
    assert_eq!(kinds, ["pause", "preflight_failure", "resume"]);
    let deliveries = hearth::webhooks::deliveries::list(&pool).await.unwrap();
    assert_eq!(deliveries.iter().filter(|d| d.2 == "delivered").count(), 3);
    assert!(
        deliveries.iter().any(|d| d.2 == "delivered" && d.3 == 2),
        "{deliveries:?}"
    );
    app.store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guard_and_webhooks_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    scenario(format!("sqlite://{}", dir.path().join("h.db").display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guard_and_webhooks_on_postgres() {
    let Some(admin) = pg::admin_url() else {
        return;
    };
    let db = pg::TestDb::create(&admin).await;
    let url = db.url.clone();
    let outcome = tokio::spawn(scenario(url)).await;
    db.drop_db().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
