//! The REST API, `/metrics` and `/openapi.json` through `tower::ServiceExt::oneshot` on the
//! real router, on a real SQLite file **and** a fresh PostgreSQL database each (see
//! `common/pg.rs`). The lifecycle tests that need a real identity verdict run against the lab's
//! DNS and relay (`common/lab.rs`).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use futures::FutureExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

#[path = "common/lab.rs"]
mod lab;
#[path = "common/ledger.rs"]
mod ledger_fixture;
#[path = "common/pg.rs"]
mod pg;

use hearth::config::Config;
use hearth::domain::{CampaignStatus, OutboxStatus, PauseReason, Placement, Provider, SendKind};
use hearth::http::{AppState, router, routes};
use hearth::startup::App;
use hearth::store;

const TOKEN: &str = "test-token-0123456789abcdef";

// ---------------------------------------------------------------------------------------
// Harness

/// A built application and its router.
struct TestApp {
    app: App,
    router: Router,
    /// With a token configured, requests send it unless told otherwise.
    token: Option<&'static str>,
}

struct Reply {
    status: StatusCode,
    content_type: String,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// The error code of an error answer (and that it has the documented shape).
    fn code(&self) -> String {
        let v = self.json();
        let e = &v["error"];
        assert!(e["message"].is_string(), "error without a message: {v}");
        e["code"].as_str().expect("error code").to_owned()
    }
}

impl TestApp {
    async fn call(&self, method: Method, uri: &str, body: Option<Value>) -> Reply {
        self.call_as(self.token, method, uri, body).await
    }

    async fn call_as(
        &self,
        token: Option<&str>,
        method: Method,
        uri: &str,
        body: Option<Value>,
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let content_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        Reply {
            status,
            content_type,
            text: String::from_utf8(bytes.to_vec()).unwrap(),
        }
    }
}

/// A config on `url` with one sender, seed and campaign declared in the file. Its DNS and
/// servers are loopback ports where nothing answers, so preflight cannot verify anything.
fn config_text(url: &str, data: &Path, token: bool) -> String {
    format!(
        r#"
[server]
bind = "127.0.0.1:0"
data_dir = {data:?}
database_url = {url:?}
secret_key = "api-test-passphrase"
{token}

[dns]
nameservers = ["127.0.0.1:9"]
timeout_ms = 200
attempts = 1

[preflight]
ip_blocklists = ["bl.lab.test"]
domain_blocklists = ["dbl.lab.test"]
smtp_timeout_secs = 2

[[senders]]
name = "declared"
address = "hello@declared.test"
helo = "mta.declared.test"
smtp = {{ host = "127.0.0.1", port = 9, tls = "none", password = "declared-smtp-pass" }}

[[seeds]]
address = "declared@gmail.test"
provider = "gmail"
imap = {{ host = "127.0.0.1", port = 9, tls = "none", password = "declared-imap-pass" }}

[[campaigns]]
name = "declared-warmup"
sender = "declared"
"#,
        data = data.to_str().unwrap(),
        token = if token {
            format!("api_token = {TOKEN:?}")
        } else {
            String::new()
        },
    )
}

async fn build(text: &str) -> TestApp {
    let config = Config::from_toml(text, None, &[]).expect("valid config");
    let token = (!config.server.api_tokens.is_empty()).then_some(TOKEN);
    let app = App::build(config, Arc::new(hearth::clock::SystemClock))
        .await
        .expect("App::build");
    TestApp {
        router: router(AppState::new(app.clone())),
        app,
        token,
    }
}

/// Runs `body` on a fresh SQLite file, then on a fresh PostgreSQL database (dropped after).
async fn on_backend<F, Fut>(postgres: bool, token: bool, body: F)
where
    F: FnOnce(TestApp) -> Fut,
    Fut: Future<Output = ()>,
{
    hearth::tls::install_crypto_provider();
    let data = tempfile::tempdir().unwrap();
    let dir = data.path();
    pg::on_fresh_db(postgres, dir, |url| async move {
        let t = build(&config_text(&url, dir, token)).await;
        let store = t.app.store.clone();
        body(t).await;
        store.close().await;
    })
    .await;
}

/// Declares each `async fn name(t: TestApp)` as `sqlite::name` and `postgres::name`; the
/// `token` list runs with `server.api_token` set.
macro_rules! on_both_backends {
    ($token:expr => $($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    crate::on_backend(false, $token, crate::$name).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    crate::on_backend(true, $token, crate::$name).await;
                }
            }
        )+
    };
}

on_both_backends!(false =>
    crud_senders_seeds_campaigns,
    config_declared_rows_are_read_only,
    validation_errors_are_json_with_keys,
    pause_and_the_rules_of_resume,
    ledger_filters_and_pagination,
    outbox_depth_and_metrics,
    campaign_report_as_json_and_csv,
);
on_both_backends!(true => tokens_guard_everything_but_health);

// ---------------------------------------------------------------------------------------
// Bodies

fn sender_body(name: &str, helo: &str) -> Value {
    json!({
        "name": name,
        "address": format!("hello@{name}.test"),
        "helo": helo,
        "ips": ["192.0.2.77"],
        "smtp": { "host": "127.0.0.1", "port": 9, "tls": "none", "password": "s3cret-smtp-pw" },
    })
}

fn seed_body(address: &str) -> Value {
    json!({
        "address": address,
        "daily_cap": 3,
        "imap": { "host": "127.0.0.1", "port": 9, "tls": "none", "password": "s3cret-imap-pw" },
    })
}

fn campaign_body(name: &str, sender: &str, max: u32) -> Value {
    json!({
        "name": name,
        "sender": sender,
        "auto_resume": false,
        "plan": { "start_per_day": 2, "max_per_day": max, "timezone": "Europe/Berlin" },
    })
}

// ---------------------------------------------------------------------------------------
// Tests

async fn crud_senders_seeds_campaigns(t: TestApp) {
    // Senders: create, read, list, replace.
    let r = t
        .call(
            Method::POST,
            "/api/v1/senders",
            Some(sender_body("api", "mta.api.test")),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert!(!r.text.contains("s3cret"), "a secret leaked: {}", r.text);
    let sender = r.json();
    assert_eq!(sender["source"], "api");
    assert_eq!(sender["read_only"], false);
    assert_eq!(sender["smtp"]["secret"], "sealed");
    assert_eq!(sender["smtp"]["username"], "hello@api.test");
    let sid = sender["id"].as_i64().unwrap();
    let r = t
        .call(Method::GET, &format!("/api/v1/senders/{sid}"), None)
        .await;
    assert_eq!(r.json()["helo"], "mta.api.test");
    let r = t.call(Method::GET, "/api/v1/senders", None).await;
    let names: Vec<String> = r.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["api", "declared"]);
    assert!(!r.text.contains("pass"), "a secret leaked: {}", r.text);
    let r = t
        .call(
            Method::PUT,
            &format!("/api/v1/senders/{sid}"),
            Some(sender_body("api", "mta2.api.test")),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["helo"], "mta2.api.test");
    // The stored password is sealed, and opens to what was given.
    let row = store::senders::get(t.app.store.pool(), sid)
        .await
        .unwrap()
        .unwrap();
    let stored = row.record.smtp.secret.to_stored();
    assert!(stored.starts_with("enc:v1:") && !stored.contains("s3cret"));
    assert_eq!(
        secrecy::ExposeSecret::expose_secret(&row.record.smtp.secret.resolve(&t.app.key).unwrap()),
        "s3cret-smtp-pw"
    );
    // A second sender of that name is refused.
    let r = t
        .call(
            Method::POST,
            "/api/v1/senders",
            Some(sender_body("api", "mta.api.test")),
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::CONFLICT, "already_exists")
    );

    // Seeds.
    let r = t
        .call(
            Method::POST,
            "/api/v1/seeds",
            Some(seed_body("box1@outlook.com")),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let seed = r.json();
    assert_eq!(seed["provider"], "outlook", "guessed from the domain");
    assert_eq!(seed["imap"]["secret"], "sealed");
    assert_eq!(seed["status"], "active");
    let seed_id = seed["id"].as_i64().unwrap();
    let mut changed = seed_body("box1@outlook.com");
    changed["daily_cap"] = json!(5);
    let r = t
        .call(
            Method::PUT,
            &format!("/api/v1/seeds/{seed_id}"),
            Some(changed),
        )
        .await;
    assert_eq!(r.json()["daily_cap"], 5, "{}", r.text);

    // Campaigns: the plan is validated and stored; restricted to a seed of the pool.
    let mut body = campaign_body("api-warmup", "api", 20);
    body["seeds"] = json!(["box1@outlook.com"]);
    let r = t.call(Method::POST, "/api/v1/campaigns", Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let c = r.json();
    assert_eq!(c["status"], "draft");
    assert_eq!(c["sender"], "api");
    assert_eq!(c["auto_resume"], false);
    assert_eq!(c["spec"]["plan"]["max_per_day"], 20);
    assert_eq!(c["spec"]["seeds"], json!(["box1@outlook.com"]));
    let cid = c["id"].as_i64().unwrap();
    let r = t
        .call(
            Method::PUT,
            &format!("/api/v1/campaigns/{cid}"),
            Some(campaign_body("api-warmup", "api", 30)),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["spec"]["plan"]["max_per_day"], 30);
    assert!(r.json()["spec"]["seeds"].is_null());

    // A sender in use cannot go; a campaign with history cannot go; then they can.
    let r = t
        .call(Method::DELETE, &format!("/api/v1/senders/{sid}"), None)
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::CONFLICT, "in_use")
    );
    let pool = t.app.store.pool();
    store::outbox::claim_plan_day(pool, cid, "2026-11-29", 0, 1)
        .await
        .unwrap();
    let r = t
        .call(Method::DELETE, &format!("/api/v1/campaigns/{cid}"), None)
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::CONFLICT, "has_history")
    );
    sqlx::query("DELETE FROM campaign_days WHERE campaign_id = $1")
        .bind(cid)
        .execute(pool)
        .await
        .unwrap();
    for uri in [
        format!("/api/v1/campaigns/{cid}"),
        format!("/api/v1/seeds/{seed_id}"),
        format!("/api/v1/senders/{sid}"),
    ] {
        let r = t.call(Method::DELETE, &uri, None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{uri}: {}", r.text);
        let r = t.call(Method::GET, &uri, None).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::NOT_FOUND, "not_found")
        );
    }
}

async fn config_declared_rows_are_read_only(t: TestApp) {
    let pool = t.app.store.pool();
    let sender = store::senders::get_by_name(pool, "declared")
        .await
        .unwrap()
        .unwrap();
    let seed = store::seeds::list(pool).await.unwrap().remove(0);
    let campaign = store::campaigns::get_by_name(pool, "declared-warmup")
        .await
        .unwrap()
        .unwrap();
    let r = t
        .call(Method::GET, &format!("/api/v1/senders/{}", sender.id), None)
        .await;
    assert_eq!(r.json()["read_only"], true);
    assert_eq!(r.json()["source"], "config");

    let attempts = [
        (
            Method::PUT,
            format!("/api/v1/senders/{}", sender.id),
            Some(sender_body("declared", "mta.x.test")),
        ),
        (
            Method::DELETE,
            format!("/api/v1/senders/{}", sender.id),
            None,
        ),
        (
            Method::POST,
            "/api/v1/senders".to_owned(),
            Some(sender_body("declared", "mta.x.test")),
        ),
        (
            Method::PUT,
            format!("/api/v1/seeds/{}", seed.id),
            Some(seed_body("declared@gmail.test")),
        ),
        (Method::DELETE, format!("/api/v1/seeds/{}", seed.id), None),
        (
            Method::POST,
            "/api/v1/seeds".to_owned(),
            Some(seed_body("declared@gmail.test")),
        ),
        (
            Method::PUT,
            format!("/api/v1/campaigns/{}", campaign.id),
            Some(campaign_body("declared-warmup", "declared", 9)),
        ),
        (
            Method::DELETE,
            format!("/api/v1/campaigns/{}", campaign.id),
            None,
        ),
        (
            Method::POST,
            "/api/v1/campaigns".to_owned(),
            Some(campaign_body("declared-warmup", "declared", 9)),
        ),
    ];
    for (method, uri, body) in attempts {
        let r = t.call(method.clone(), &uri, body).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::CONFLICT, "declared_in_config"),
            "{method} {uri}: {}",
            r.text
        );
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains("config file")
        );
    }
    // Nothing changed.
    let after = store::senders::get(pool, sender.id).await.unwrap().unwrap();
    assert_eq!(after, sender);
    assert_eq!(store::campaigns::list(pool).await.unwrap().len(), 1);
}

async fn validation_errors_are_json_with_keys(t: TestApp) {
    let cases: Vec<(&str, Value, StatusCode, &str, &str)> = vec![
        (
            "/api/v1/senders",
            json!({ "name": "x", "address": "not-an-address", "helo": "localhost",
                    "smtp": { "host": "127.0.0.1", "tls": "none" } }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "address: \"not-an-address\"",
        ),
        (
            "/api/v1/senders",
            json!({ "name": "x", "address": "a@x.test", "helo": "localhost",
                    "smtp": { "host": "127.0.0.1", "tls": "none" } }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "helo: \"localhost\"",
        ),
        (
            "/api/v1/senders",
            json!({ "name": "x", "address": "a@x.test", "helo": "mta.x.test",
                    "smtp": { "host": "smtp.example.com", "tls": "none" } }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "smtp.tls: \"none\" (plain text) is only allowed for loopback hosts",
        ),
        (
            "/api/v1/senders",
            json!({ "name": "x", "address": "a@x.test", "helo": "mta.x.test",
                    "smtp": { "host": "127.0.0.1", "password": { "env": "HOME" } } }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "secret_reference_not_allowed",
            "smtp.password",
        ),
        (
            "/api/v1/senders",
            json!({ "name": "x", "colour": "red" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "unknown field `colour`",
        ),
        (
            "/api/v1/seeds",
            json!({ "address": "s@gmail.test", "provider": "gmial",
                    "imap": { "host": "127.0.0.1", "tls": "none" } }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "provider: unknown provider \"gmial\"",
        ),
        (
            "/api/v1/campaigns",
            json!({ "name": "c", "sender": "declared",
                    "plan": { "start_per_day": 10, "max_per_day": 5, "timezone": "Mars/Base" } }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "plan.max_per_day: expected at least start_per_day (10), got 5",
        ),
        (
            "/api/v1/campaigns",
            json!({ "name": "c", "sender": "declared", "seeds": ["stranger@gmail.test"] }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "seeds[0]: stranger@gmail.test is not a seed of the pool",
        ),
        (
            "/api/v1/campaigns",
            json!({ "name": "c", "sender": "nobody" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            "sender: no sender named \"nobody\"",
        ),
    ];
    for (uri, body, status, code, message) in cases {
        let r = t.call(Method::POST, uri, Some(body.clone())).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (status, code),
            "{body}: {}",
            r.text
        );
        let m = r.json()["error"]["message"].as_str().unwrap().to_owned();
        assert!(m.contains(message), "{body}: {m}");
    }
    // Every problem of a body is reported at once.
    let r = t
        .call(
            Method::POST,
            "/api/v1/campaigns",
            Some(json!({ "name": "c", "sender": "declared",
                "plan": { "start_per_day": 10, "max_per_day": 5, "timezone": "Mars/Base" } })),
        )
        .await;
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("plan.timezone")
    );

    // Malformed requests.
    let r = t.call_as(None, Method::POST, "/api/v1/senders", None).await;
    assert_eq!(r.code(), "unsupported_media_type");
    let r = t.call(Method::GET, "/api/v1/senders/abc", None).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "bad_request")
    );
    let r = t
        .call(Method::GET, "/api/v1/ledger?folder_class=attic", None)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.text.contains("inbox, spam, promotions, other, missing"),
        "{}",
        r.text
    );
    let r = t.call(Method::GET, "/api/v2/nothing", None).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
    assert_eq!(
        store::senders::list(t.app.store.pool())
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn pause_and_the_rules_of_resume(t: TestApp) {
    let pool = t.app.store.pool();
    let c = store::campaigns::get_by_name(pool, "declared-warmup")
        .await
        .unwrap()
        .unwrap();
    let uri = |verb: &str| format!("/api/v1/campaigns/{}/{verb}", c.id);

    // A draft cannot be paused or resumed.
    for verb in ["pause", "resume"] {
        let r = t.call(Method::POST, &uri(verb), None).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::CONFLICT, "invalid_state"),
            "{verb}"
        );
    }
    // Start runs preflight; this identity cannot be verified (no DNS answers), so it is refused.
    let r = t.call(Method::POST, &uri("start"), None).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::CONFLICT, "preflight_failed"),
        "{}",
        r.text
    );
    assert!(r.text.contains("does not pass"), "{}", r.text);
    let runs = t
        .call(
            Method::GET,
            &format!("/api/v1/senders/{}/preflight", c.sender_id),
            None,
        )
        .await
        .json();
    assert_eq!(runs["items"][0]["trigger"], "start");
    // Nothing answers on its DNS or relay ports: checks are unknown, the probe fails.
    assert_eq!(runs["items"][0]["verdict"], "fail");
    assert!(runs["items"][0]["checks"].as_array().unwrap().len() >= 10);

    // Running (set as the scheduler would have): a manual pause.
    store::campaigns::set_status(pool, c.id, CampaignStatus::Active, None, None, 1)
        .await
        .unwrap();
    let r = t.call(Method::POST, &uri("pause"), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["campaign"]["status"], "paused");
    assert_eq!(r.json()["campaign"]["pause_reason"], "manual");
    let r = t.call(Method::POST, &uri("pause"), None).await;
    assert_eq!(r.code(), "invalid_state");

    // Resume also runs preflight, whatever the reason: refused while it does not pass, and
    // the pause (manual, placement, preflight) stays as it was.
    for reason in [
        PauseReason::Manual,
        PauseReason::Placement,
        PauseReason::Preflight,
    ] {
        store::campaigns::set_status(
            pool,
            c.id,
            CampaignStatus::Paused,
            Some(reason),
            Some("test"),
            2,
        )
        .await
        .unwrap();
        let r = t.call(Method::POST, &uri("resume"), None).await;
        assert_eq!(r.code(), "preflight_failed", "{reason}: {}", r.text);
        let now = store::campaigns::get(pool, c.id).await.unwrap().unwrap();
        assert_eq!(
            (now.status, now.pause_reason),
            (CampaignStatus::Paused, Some(reason))
        );
    }
}

/// `n` sent warm-up messages of the campaign to the seed, each with a placement.
async fn ledger_rows(
    t: &TestApp,
    campaign_id: i64,
    seed_id: i64,
    provider: Provider,
    rows: &[(Placement, i64)],
    tag: &str,
) {
    let pool = t.app.store.pool();
    for (i, (placement, sent_at)) in rows.iter().enumerate() {
        let message_id = format!("<{tag}-{i}@api.test>");
        let oid = store::outbox::enqueue(
            pool,
            &store::outbox::NewSend {
                campaign_id,
                seed_id,
                kind: SendKind::Warmup,
                message_id: Some(message_id.clone()),
                subject: "hello".into(),
                in_reply_to: None,
                plan_day: None,
                run_at: *sent_at,
            },
            *sent_at,
        )
        .await
        .unwrap();
        sqlx::query("UPDATE outbox SET status = $1, sent_at = $2 WHERE id = $3")
            .bind(OutboxStatus::Sent.as_str())
            .bind(*sent_at)
            .bind(oid)
            .execute(pool)
            .await
            .unwrap();
        let seen = (*placement != Placement::Missing).then_some(sent_at + 30);
        store::ledger::record(
            pool,
            &store::ledger::NewPlacement {
                outbox_id: oid,
                seed_id,
                message_id,
                placement: *placement,
                folder: seen.map(|_| placement.as_str().to_owned()),
                provider,
                seen_at: seen,
                latency_secs: seen.map(|_| 30),
                auth_spf: Some("pass".into()),
                auth_dkim: Some("pass".into()),
                auth_dmarc: None,
                auth_results: None,
                imap_uidvalidity: None,
                imap_uid: None,
                gmail: None,
            },
            sent_at + 31,
        )
        .await
        .unwrap();
    }
}

/// Two campaigns, two seeds (gmail and outlook), 25 ledger rows.
async fn ledger_fixture(t: &TestApp) -> (i64, i64) {
    let r = t
        .call(
            Method::POST,
            "/api/v1/seeds",
            Some(seed_body("box@outlook.com")),
        )
        .await;
    let outlook = r.json()["id"].as_i64().unwrap();
    let pool = t.app.store.pool();
    let gmail = store::seeds::list(pool).await.unwrap()[0].id;
    let declared = store::campaigns::get_by_name(pool, "declared-warmup")
        .await
        .unwrap()
        .unwrap()
        .id;
    let r = t
        .call(
            Method::POST,
            "/api/v1/campaigns",
            Some(campaign_body("second", "declared", 10)),
        )
        .await;
    let second = r.json()["id"].as_i64().unwrap();
    let day = 1_764_374_400; // 2025-11-29T00:00:00Z
    let mut a = Vec::new();
    for i in 0..12 {
        let p = if i % 3 == 0 {
            Placement::Spam
        } else {
            Placement::Inbox
        };
        a.push((p, day + i * 3600));
    }
    ledger_rows(t, declared, gmail, Provider::Gmail, &a, "a").await;
    let mut b = Vec::new();
    for i in 0..8 {
        let p = if i % 2 == 0 {
            Placement::Promotions
        } else {
            Placement::Missing
        };
        b.push((p, day + 86_400 + i * 3600));
    }
    ledger_rows(t, declared, outlook, Provider::Outlook, &b, "b").await;
    ledger_rows(
        t,
        second,
        gmail,
        Provider::Gmail,
        &[(Placement::Inbox, day); 5],
        "c",
    )
    .await;
    (declared, second)
}

/// Every item of every page, following `next_cursor`, with the page size checked.
async fn all_pages(t: &TestApp, query: &str, limit: usize) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut uri = format!("/api/v1/ledger?limit={limit}{query}");
        if let Some(c) = &cursor {
            uri.push_str(&format!("&cursor={c}"));
        }
        let r = t.call(Method::GET, &uri, None).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}: {}", r.text);
        let page = r.json();
        let got = page["items"].as_array().unwrap().clone();
        assert!(got.len() <= limit);
        items.extend(got.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => {
                assert_eq!(got.len(), limit, "a page before the last is full");
                cursor = Some(c.to_owned());
            }
            None => break,
        }
    }
    items
}

async fn ledger_filters_and_pagination(t: TestApp) {
    let (declared, second) = ledger_fixture(&t).await;
    let all = all_pages(&t, "", 7).await;
    assert_eq!(all.len(), 25);
    let ids: Vec<i64> = all.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] > w[1]),
        "newest first, no repeats: {ids:?}"
    );
    assert_eq!(
        all_pages(&t, "", 25).await,
        all,
        "page size does not change the result"
    );

    let count = |q: &'static str| {
        let t = &t;
        async move { all_pages(t, q, 4).await }
    };
    let c = count("&provider=outlook").await;
    assert_eq!(c.len(), 8);
    assert!(
        c.iter()
            .all(|e| e["provider"] == "outlook" && e["seed"] == "box@outlook.com")
    );
    let c = count("&folder_class=spam").await;
    assert_eq!(c.len(), 4);
    assert!(
        c.iter()
            .all(|e| e["folder_class"] == "spam" && e["auth"]["spf"] == "pass")
    );
    let c = count("&folder_class=missing").await;
    assert!(
        c.iter()
            .all(|e| e["seen_at"].is_null() && e["folder"].is_null())
    );
    assert_eq!(c.len(), 4);
    let c = all_pages(&t, &format!("&campaign={second}"), 2).await;
    assert_eq!(c.len(), 5);
    assert!(c.iter().all(|e| e["campaign"] == "second"));
    // Dates: the first day only (12 + 5), as a date and as RFC 3339 / unix seconds.
    assert_eq!(count("&since=2025-11-29&until=2025-11-30").await.len(), 17);
    assert_eq!(
        count("&since=2025-11-30T00:00:00Z&until=1764547200")
            .await
            .len(),
        8
    );
    let c = all_pages(
        &t,
        &format!(
            "&campaign={declared}&provider=gmail&folder_class=inbox&since=2025-11-29T06:00:00Z"
        ),
        3,
    )
    .await;
    // Gmail inbox rows of the first campaign sent from 06:00: hours 7, 8, 10, 11.
    assert_eq!(c.len(), 4, "{c:?}");

    let r = t.call(Method::GET, "/api/v1/ledger?limit=0", None).await;
    assert_eq!(r.code(), "bad_request");
    let r = t.call(Method::GET, "/api/v1/ledger?cursor=abc", None).await;
    assert_eq!(r.code(), "bad_request");
    let r = t.call(Method::GET, "/api/v1/ledger?since=soon", None).await;
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("since:")
    );
}

/// `GET /api/v1/campaigns/{id}/report`: the roll-ups of what the ledger holds, as JSON and
/// CSV; bad parameters are 422, an unknown campaign 404.
async fn campaign_report_as_json_and_csv(t: TestApp) {
    let pool = t.app.store.pool();
    let seed = store::seeds::list(pool).await.unwrap()[0].id;
    let c = store::campaigns::get_by_name(pool, "declared-warmup")
        .await
        .unwrap()
        .unwrap();
    // Three messages planned two days ago (in UTC and in any zone within a day of it):
    // two found in the inbox, one in spam.
    let now = t.app.clock.now();
    let at = now - 2 * 86_400;
    let day = chrono::DateTime::from_timestamp(at, 0)
        .unwrap()
        .format("%Y-%m-%d")
        .to_string();
    for (i, placement) in [Placement::Inbox, Placement::Inbox, Placement::Spam]
        .into_iter()
        .enumerate()
    {
        ledger_fixture::delivered(
            pool,
            ledger_fixture::Delivered {
                campaign_id: c.id,
                seed_id: seed,
                provider: Provider::Gmail,
                message_id: format!("<report-{i}@api.test>"),
                plan_day: Some(day.clone()),
                sent_at: at,
                placement,
                folder: Some(placement.as_str().to_owned()),
                latency: Some(60),
                auth: [Some("pass"), Some("pass"), Some("pass")],
            },
        )
        .await;
    }
    let uri = format!("/api/v1/campaigns/{}/report?days=7", c.id);
    let r = t.call(Method::GET, &uri, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let v = r.json();
    assert_eq!(v["campaign"]["name"], "declared-warmup");
    assert_eq!(v["totals"]["sent"], 3, "{v}");
    assert_eq!(v["totals"]["inbox"], 2, "{v}");
    assert_eq!(v["totals"]["spam"], 1, "{v}");
    assert_eq!(v["totals"]["spf_pass_pct"], 100.0, "{v}");

    let r = t
        .call(Method::GET, &format!("{uri}&format=csv"), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.content_type.starts_with("text/csv"), "{}", r.content_type);
    let mut lines = r.text.lines();
    assert!(lines.next().unwrap().contains("provider"), "{}", r.text);
    assert!(
        lines.any(|l| l.contains(&day) && l.contains("gmail")),
        "{}",
        r.text
    );

    for bad in ["days=0", "days=99999", "format=xml", "dayz=3"] {
        let r = t
            .call(
                Method::GET,
                &format!("/api/v1/campaigns/{}/report?{bad}", c.id),
                None,
            )
            .await;
        assert!(r.status.is_client_error(), "{bad}: {}", r.status);
        r.code();
    }
    let r = t
        .call(Method::GET, "/api/v1/campaigns/999999/report", None)
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
}

async fn outbox_depth_and_metrics(t: TestApp) {
    let (declared, _) = ledger_fixture(&t).await;
    let pool = t.app.store.pool();
    let gmail = store::seeds::list(pool).await.unwrap()[1].id;
    let now = t.app.clock.now();
    for (i, run_at) in [now - 60, now - 30, now + 3600].iter().enumerate() {
        store::outbox::enqueue(
            pool,
            &store::outbox::NewSend {
                campaign_id: declared,
                seed_id: gmail,
                kind: SendKind::Warmup,
                message_id: Some(format!("<planned-{i}@api.test>")),
                subject: "later".into(),
                in_reply_to: None,
                plan_day: None,
                run_at: *run_at,
            },
            now,
        )
        .await
        .unwrap();
    }
    let r = t.call(Method::GET, "/api/v1/outbox", None).await;
    let o = r.json();
    assert_eq!(o["depth"], 3, "{o}");
    assert_eq!(o["due"], 2);
    assert_eq!(o["by_status"]["sent"], 25);
    assert_eq!(o["by_status"]["failed"], 0);
    let r = t
        .call(
            Method::GET,
            &format!("/api/v1/outbox?campaign={declared}"),
            None,
        )
        .await;
    assert_eq!(r.json()["by_status"]["sent"], 20);

    store::campaigns::set_status(
        pool,
        declared,
        CampaignStatus::Paused,
        Some(PauseReason::Placement),
        Some("spam"),
        5,
    )
    .await
    .unwrap();
    let r = t.call(Method::GET, "/metrics", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.content_type.starts_with("text/plain; version=0.0.4"),
        "{}",
        r.content_type
    );
    let m = r.text;
    for line in [
        "# TYPE hearth_sends gauge",
        "hearth_sends{status=\"sent\"} 25",
        "hearth_sends{status=\"planned\"} 3",
        "hearth_sends{status=\"failed\"} 0",
        "hearth_outbox_depth 3",
        "hearth_outbox_due 2",
        "hearth_placements{provider=\"gmail\",folder_class=\"inbox\"} 13",
        "hearth_placements{provider=\"gmail\",folder_class=\"spam\"} 4",
        "hearth_placements{provider=\"outlook\",folder_class=\"promotions\"} 4",
        "hearth_placements{provider=\"outlook\",folder_class=\"missing\"} 4",
        "hearth_placements{provider=\"yahoo\",folder_class=\"inbox\"} 0",
        "hearth_campaigns{status=\"draft\",reason=\"\"} 1",
        "hearth_campaigns{status=\"paused\",reason=\"placement\"} 1",
        "hearth_campaigns{status=\"paused\",reason=\"manual\"} 0",
        "hearth_seeds{status=\"active\"} 2",
        "# TYPE hearth_preflight_runs_total counter",
        "hearth_preflight_runs_total{verdict=\"fail\"} 0",
        "# TYPE hearth_imap_sessions_total counter",
    ] {
        assert!(m.lines().any(|l| l == line), "missing {line:?} in:\n{m}");
    }
    // Every sample line is `name{labels} value` with a numeric value.
    for l in m.lines().filter(|l| !l.starts_with('#')) {
        let value = l.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "{l}");
    }
    // A preflight run shows up with its verdict, per sender too.
    let sender = store::senders::get_by_name(pool, "declared")
        .await
        .unwrap()
        .unwrap();
    let r = t
        .call(
            Method::POST,
            &format!("/api/v1/senders/{}/preflight", sender.id),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json()["run"]["verdict"], "fail");
    let m = t.call(Method::GET, "/metrics", None).await.text;
    assert!(
        m.contains("hearth_preflight_runs_total{verdict=\"fail\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("hearth_sender_preflight_verdict{sender=\"declared\",verdict=\"fail\"} 1"),
        "{m}"
    );
}

async fn tokens_guard_everything_but_health(t: TestApp) {
    for uri in ["/healthz", "/readyz", "/openapi.json"] {
        let r = t.call_as(None, Method::GET, uri, None).await;
        assert_eq!(r.status, StatusCode::OK, "{uri} stays open");
    }
    for uri in [
        "/metrics",
        "/api/v1/senders",
        "/api/v1/ledger",
        "/api/v1/outbox",
    ] {
        let r = t.call_as(None, Method::GET, uri, None).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::UNAUTHORIZED, "unauthorized"),
            "{uri}"
        );
        let r = t
            .call_as(Some("test-token-0123456789abcdeX"), Method::GET, uri, None)
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "{uri} with a wrong token"
        );
        let r = t.call_as(Some(TOKEN), Method::GET, uri, None).await;
        assert_eq!(r.status, StatusCode::OK, "{uri} with the token: {}", r.text);
    }
    // A write without the token changes nothing.
    let r = t
        .call_as(
            None,
            Method::POST,
            "/api/v1/seeds",
            Some(seed_body("x@gmail.test")),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        store::seeds::list(t.app.store.pool()).await.unwrap().len(),
        1
    );
    // The 401 says how to authenticate.
    let req = Request::builder()
        .uri("/metrics")
        .body(Body::empty())
        .unwrap();
    let resp = t.router.clone().oneshot(req).await.unwrap();
    assert!(
        resp.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
}

// ---------------------------------------------------------------------------------------
// Without a backend loop: the bind guard and the OpenAPI document.

#[tokio::test]
async fn non_loopback_bind_needs_a_token() {
    let data = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", data.path().join("h.db").display());
    // The config refuses it, naming the key…
    let text = config_text(&url, data.path(), false).replace("127.0.0.1:0", "0.0.0.0:8080");
    let err = Config::from_toml(&text, None, &[]).unwrap_err().to_string();
    assert!(
        err.contains(
            "server.api_token: required when server.bind (0.0.0.0:8080) is not a loopback address"
        ),
        "{err}"
    );
    // …and so does the server itself, before binding anything.
    let t = build(&config_text(&url, data.path(), false)).await;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let err = hearth::http::serve(
        "0.0.0.0:0".parse().unwrap(),
        AppState::new(t.app.clone()),
        tokio_util::sync::CancellationToken::new(),
        tx,
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
    assert!(err.to_string().contains("set server.api_token"), "{err}");
    assert!(rx.await.is_err(), "nothing was bound");
    // Short tokens are refused.
    let text = config_text(&url, data.path(), false)
        .replace("secret_key =", "api_token = [\"short\"]\nsecret_key =");
    let err = Config::from_toml(&text, None, &[]).unwrap_err().to_string();
    assert!(
        err.contains("server.api_token[0]: expected a token of at least 16"),
        "{err}"
    );
}

#[tokio::test]
async fn openapi_describes_every_route_and_only_those() {
    let data = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", data.path().join("h.db").display());
    let t = build(&config_text(&url, data.path(), false)).await;
    let r = t.call(Method::GET, "/openapi.json", None).await;
    let doc = r.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let mut routed = std::collections::BTreeSet::new();
    for route in routes() {
        let method = route.method.as_str().to_ascii_lowercase();
        let op = &paths
            .get(route.path)
            .unwrap_or_else(|| panic!("{} is not in /openapi.json", route.path))[&method];
        assert!(
            op.is_object(),
            "{} {} is not in /openapi.json",
            route.method,
            route.path
        );
        assert!(
            op["responses"].is_object(),
            "{} {} has no responses",
            route.method,
            route.path
        );
        // Open routes say so; the others carry the global bearer requirement.
        assert_eq!(
            op.get("security") == Some(&json!([])),
            !route.authenticated,
            "{} {}",
            route.method,
            route.path
        );
        routed.insert((method, route.path.to_owned()));
    }
    let verbs = ["get", "put", "post", "delete", "patch"];
    for (path, item) in paths {
        for (key, _) in item.as_object().unwrap() {
            if verbs.contains(&key.as_str()) {
                assert!(
                    routed.contains(&(key.clone(), path.clone())),
                    "/openapi.json describes {key} {path}, which the router does not serve"
                );
            }
        }
    }
    // Every $ref resolves.
    let text = r.text;
    for part in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = &part[..part.find('"').unwrap()];
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "dangling $ref {name}"
        );
    }
    // And the router answers each route itself (not the 404 fallback, not 405).
    for route in routes() {
        let uri = route.path.replace("{id}", "999999");
        let body = matches!(route.method, Method::POST | Method::PUT).then(|| json!({}));
        let r = t.call(route.method.clone(), &uri, body).await;
        assert_ne!(
            r.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{} {uri}",
            route.method
        );
        assert!(
            !r.text.contains("no such endpoint"),
            "{} {uri}: {}",
            route.method,
            r.text
        );
    }
}

// ---------------------------------------------------------------------------------------
// Against the lab: a real passing identity and a real failing one.

fn lab_config(lab: &Path, data: &Path, url: &str) -> Config {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut text = lab::lab_config_text(lab, data);
    text = text.replace(
        "[server]\n",
        &format!("[server]\ndatabase_url = {url:?}\nsecret_key = \"api-lab\"\n"),
    );
    for (name, ip) in [("ok", "192.0.2.101"), ("spffail", "192.0.2.107")] {
        text.push_str(&format!(
            r#"
[[senders]]
name = "{name}"
address = "hello@{name}.pf.test"
helo = "mta.{name}.pf.test"
ips = ["{ip}"]
smtp = {{ host = "127.0.0.1", port = 5587, ca_file = "{lab}/tls/ca.pem", username = "hello@sender.test", password = "lab-pass-1" }}
dkim = {{ domain = "{name}.pf.test", selector = "hearth", key_file = "{lab}/dkim/sender.test.hearth.key" }}

[[campaigns]]
name = "{name}-warmup"
sender = "{name}"
"#,
            lab = lab.display()
        ));
    }
    Config::from_toml(&text, Some(&root.join("config/lab.toml")), &[]).expect("valid lab config")
}

async fn lab_lifecycle(postgres: bool) {
    let Some(lab) = lab::lab_dir("api lab tests", &[5353, 5587]) else {
        return;
    };
    hearth::tls::install_crypto_provider();
    let data = tempfile::tempdir().unwrap();
    let db = if postgres {
        let Some(admin) = pg::admin_url() else { return };
        Some(pg::TestDb::create(&admin).await)
    } else {
        None
    };
    let url = match &db {
        Some(db) => db.url.clone(),
        None => format!("sqlite://{}", data.path().join("hearth.db").display()),
    };
    let app = App::build(
        lab_config(&lab, data.path(), &url),
        Arc::new(hearth::clock::SystemClock),
    )
    .await
    .unwrap();
    let t = TestApp {
        router: router(AppState::new(app.clone())),
        app,
        token: None,
    };
    let store = t.app.store.clone();
    let outcome = AssertUnwindSafe(async {
        let pool = t.app.store.pool();
        let id = |name: &'static str| async move {
            store::campaigns::get_by_name(pool, name)
                .await
                .unwrap()
                .unwrap()
                .id
        };
        let (ok, bad) = (id("ok-warmup").await, id("spffail-warmup").await);

        // A failing identity cannot start; the refusal names the failing check.
        let r = t
            .call(
                Method::POST,
                &format!("/api/v1/campaigns/{bad}/start"),
                None,
            )
            .await;
        assert_eq!(r.code(), "preflight_failed", "{}", r.text);
        assert!(r.text.contains("spf.mail_from"), "{}", r.text);
        let c = store::campaigns::get(pool, bad).await.unwrap().unwrap();
        assert_eq!(c.status, CampaignStatus::Draft);

        // A passing one starts, pauses by hand and resumes.
        let r = t
            .call(Method::POST, &format!("/api/v1/campaigns/{ok}/start"), None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json()["campaign"]["status"], "active");
        assert!(r.json()["campaign"]["started_at"].is_i64());
        let r = t
            .call(Method::POST, &format!("/api/v1/campaigns/{ok}/pause"), None)
            .await;
        assert_eq!(r.json()["campaign"]["pause_reason"], "manual");
        let r = t
            .call(
                Method::POST,
                &format!("/api/v1/campaigns/{ok}/resume"),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.json()["campaign"]["status"], "active");

        // A preflight run lifts a preflight pause (auto_resume is on) and nothing else.
        let sender = store::senders::get_by_name(pool, "ok")
            .await
            .unwrap()
            .unwrap();
        store::campaigns::set_status(
            pool,
            ok,
            CampaignStatus::Paused,
            Some(PauseReason::Placement),
            Some("spam"),
            1,
        )
        .await
        .unwrap();
        let uri = format!("/api/v1/senders/{}/preflight", sender.id);
        let r = t.call(Method::POST, &uri, None).await;
        assert_eq!(r.json()["run"]["verdict"], "pass", "{}", r.text);
        assert_eq!(r.json()["resumed"], json!([]));
        let c = store::campaigns::get(pool, ok).await.unwrap().unwrap();
        assert_eq!(
            c.pause_reason,
            Some(PauseReason::Placement),
            "placement pauses need a person"
        );
        store::campaigns::set_status(
            pool,
            ok,
            CampaignStatus::Paused,
            Some(PauseReason::Preflight),
            Some("dns"),
            1,
        )
        .await
        .unwrap();
        let r = t.call(Method::POST, &uri, None).await;
        assert_eq!(r.json()["resumed"], json!(["ok-warmup"]), "{}", r.text);

        // The history: newest first, paginated, each run with its checks.
        let h = t
            .call(Method::GET, &format!("{uri}?limit=2"), None)
            .await
            .json();
        assert_eq!(h["items"].as_array().unwrap().len(), 2);
        assert_eq!(h["items"][0]["trigger"], "manual");
        let cursor = h["next_cursor"].as_str().expect("more runs: start, resume");
        let rest = t
            .call(
                Method::GET,
                &format!("{uri}?limit=10&cursor={cursor}"),
                None,
            )
            .await
            .json();
        let triggers: Vec<&str> = rest["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["trigger"].as_str().unwrap())
            .collect();
        assert_eq!(
            triggers,
            ["start", "start"],
            "resume's run is a start run too"
        );
        assert!(rest["next_cursor"].is_null());
        let checks = h["items"][0]["checks"].as_array().unwrap();
        assert!(
            checks
                .iter()
                .any(|c| c["check"] == "smtp.probe" && c["verdict"] == "pass")
        );
    })
    .catch_unwind()
    .await;
    store.close().await;
    if let Some(db) = db {
        db.drop_db().await;
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

mod lab_lifecycle {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        crate::lab_lifecycle(false).await;
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        crate::lab_lifecycle(true).await;
    }
}
