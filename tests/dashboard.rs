//! The web dashboard (`/ui/`): through `tower::ServiceExt::oneshot` on the real router, on a
//! real SQLite file **and** a fresh PostgreSQL database each (pages, escaping, CSRF, the login,
//! pause and resume), and in headless Chromium against a real server on 127.0.0.1 with the
//! lab's DNS and relay behind preflight (log in, charts, click Pause then Resume). The
//! browser's screenshots are kept under `target/dashboard-artifacts/`.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use futures::FutureExt as _;
use tower::ServiceExt as _;

#[path = "common/lab.rs"]
mod lab;
#[path = "common/pg.rs"]
mod pg;
#[path = "common/webdriver.rs"]
mod webdriver;

use hearth::config::Config;
use hearth::domain::{CampaignStatus, OutboxStatus, PauseReason, Placement, SeedStatus, SendKind};
use hearth::http::{AppState, router};
use hearth::startup::App;
use hearth::store;

const TOKEN: &str = "dash-token-0123456789abcdef";
const EVIL: &str = "<script>alert(1)</script>";

// ---------------------------------------------------------------------------------------
// Harness: a router and a tiny cookie jar, like a browser without a renderer.

struct Client {
    app: App,
    router: Router,
    cookies: BTreeMap<String, String>,
}

struct Page {
    status: StatusCode,
    location: Option<String>,
    set_cookies: Vec<String>,
    content_type: String,
    text: String,
}

impl Page {
    /// The value of the hidden CSRF field of the page's forms.
    fn csrf_field(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let at = self
            .text
            .find(marker)
            .unwrap_or_else(|| panic!("no CSRF field in: {}", self.text))
            + marker.len();
        self.text[at..at + 64].to_owned()
    }
}

impl Client {
    async fn send(&mut self, method: Method, uri: &str, form: Option<&[(&str, &str)]>) -> Page {
        let mut req = Request::builder().method(method).uri(uri);
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            req = req.header(header::COOKIE, jar.join("; "));
        }
        let req = match form {
            Some(fields) => {
                let body = form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(fields.iter())
                    .finish();
                req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(Body::from(body))
            }
            None => req.body(Body::empty()),
        }
        .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let header_text = |name| {
            resp.headers()
                .get(name)
                .map(|v: &header::HeaderValue| v.to_str().unwrap().to_owned())
        };
        let location = header_text(header::LOCATION);
        let content_type = header_text(header::CONTENT_TYPE).unwrap_or_default();
        let set_cookies: Vec<String> = resp
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        for c in &set_cookies {
            let pair = c.split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            if c.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), v.to_owned());
            }
        }
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        Page {
            status,
            location,
            set_cookies,
            content_type,
            text: String::from_utf8(bytes.to_vec()).unwrap(),
        }
    }

    async fn get(&mut self, uri: &str) -> Page {
        self.send(Method::GET, uri, None).await
    }

    async fn post(&mut self, uri: &str, form: &[(&str, &str)]) -> Page {
        self.send(Method::POST, uri, Some(form)).await
    }

    async fn campaign(&self, name: &str) -> store::campaigns::CampaignRow {
        store::campaigns::get_by_name(self.app.store.pool(), name)
            .await
            .unwrap()
            .unwrap()
    }
}

/// A config on `url` with one sender, two seeds and a campaign. Its DNS and relay are
/// loopback ports where nothing answers, so preflight cannot pass.
fn config_text(url: &str, data: &Path, token: bool) -> String {
    format!(
        r#"
[server]
bind = "127.0.0.1:0"
data_dir = {data:?}
database_url = {url:?}
secret_key = "dashboard-test-passphrase"
{token}

[dns]
nameservers = ["127.0.0.1:9"]
timeout_ms = 200
attempts = 1

[preflight]
smtp_timeout_secs = 2

[[senders]]
name = "declared"
address = "hello@declared.test"
helo = "mta.declared.test"
smtp = {{ host = "127.0.0.1", port = 9, tls = "none", password = "declared-smtp-pass" }}

[[seeds]]
address = "box@gmail.test"
provider = "gmail"
imap = {{ host = "127.0.0.1", port = 9, tls = "none", password = "declared-imap-pass" }}

[[seeds]]
address = "box@outlook.test"
provider = "outlook"
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

/// Runs `body` on a fresh SQLite file or a fresh PostgreSQL database (dropped after).
async fn on_backend<F, Fut>(postgres: bool, config: impl FnOnce(&str, &Path) -> Config, body: F)
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = ()>,
{
    hearth::tls::install_crypto_provider();
    let data = tempfile::tempdir().unwrap();
    let dir = data.path();
    pg::on_fresh_db(postgres, dir, |url| async move {
        let app = App::build(config(&url, dir), Arc::new(hearth::clock::SystemClock))
            .await
            .expect("App::build");
        let store = app.store.clone();
        let client = Client {
            router: router(AppState::new(app.clone())),
            app,
            cookies: BTreeMap::new(),
        };
        body(client).await;
        store.close().await;
    })
    .await;
}

fn plain(token: bool) -> impl FnOnce(&str, &Path) -> Config {
    move |url, data| Config::from_toml(&config_text(url, data, token), None, &[]).unwrap()
}

macro_rules! on_both_backends {
    ($config:expr => $($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    crate::on_backend(false, $config, crate::$name).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    crate::on_backend(true, $config, crate::$name).await;
                }
            }
        )+
    };
}

on_both_backends!(crate::plain(false) =>
    pages_render_with_charts_and_escape_names,
    forms_need_the_csrf_token,
);
on_both_backends!(crate::plain(true) => tokens_require_a_login);
on_both_backends!(crate::lab_or_skip() => resume_from_the_dashboard_runs_preflight);

// ---------------------------------------------------------------------------------------
// Data: a week of ramp and placements, as the scheduler, sender and seed scans leave it.

fn day(now: i64, back: i64) -> (String, i64) {
    let t = now - back * 86_400;
    let d = chrono::DateTime::from_timestamp(t, 0).unwrap().date_naive();
    (d.format("%Y-%m-%d").to_string(), t)
}

/// Seven plan days of `campaign_id` ending today: planned 4, 6, … 16; most of each sent; each
/// sent message placed at its seed's provider (inbox mostly, some spam, promotions, missing).
async fn chart_fixture(app: &App, campaign_id: i64, tag: &str) {
    let pool = app.store.pool();
    let seeds = store::seeds::list(pool).await.unwrap();
    let now = app.clock.now();
    let classes = [
        Placement::Inbox,
        Placement::Inbox,
        Placement::Spam,
        Placement::Inbox,
        Placement::Promotions,
        Placement::Inbox,
        Placement::Missing,
    ];
    for back in (0..7).rev() {
        let (plan_day, at) = day(now, back);
        let planned = 4 + 2 * (6 - back);
        store::outbox::claim_plan_day(pool, campaign_id, &plan_day, planned, at)
            .await
            .unwrap();
        for i in 0..planned - 1 {
            let seed = &seeds[(i as usize) % seeds.len()];
            let message_id = format!("<{tag}-{plan_day}-{i}@dash.test>");
            let oid = store::outbox::enqueue(
                pool,
                &store::outbox::NewSend {
                    campaign_id,
                    seed_id: seed.id,
                    kind: SendKind::Warmup,
                    message_id: Some(message_id.clone()),
                    subject: "hello".into(),
                    in_reply_to: None,
                    plan_day: Some(plan_day.clone()),
                    run_at: at,
                },
                at,
            )
            .await
            .unwrap();
            sqlx::query("UPDATE outbox SET status = $1, sent_at = $2 WHERE id = $3")
                .bind(OutboxStatus::Sent.as_str())
                .bind(at)
                .bind(oid)
                .execute(pool)
                .await
                .unwrap();
            let placement = classes[(i as usize + back as usize) % classes.len()];
            let seen = (placement != Placement::Missing).then_some(at + 60);
            store::ledger::record(
                pool,
                &store::ledger::NewPlacement {
                    outbox_id: oid,
                    seed_id: seed.id,
                    message_id,
                    placement,
                    folder: seen.map(|_| placement.as_str().to_owned()),
                    provider: seed.record.provider,
                    seen_at: seen,
                    latency_secs: seen.map(|_| 60),
                    auth_spf: Some("pass".into()),
                    auth_dkim: Some("pass".into()),
                    auth_dmarc: Some("pass".into()),
                    auth_results: None,
                    imap_uidvalidity: None,
                    imap_uid: None,
                    gmail: None,
                },
                at + 61,
            )
            .await
            .unwrap();
        }
    }
    // The first message was deferred once before it went out.
    sqlx::query(
        "UPDATE outbox SET last_error = $1, attempts = 1 \
         WHERE id = (SELECT MIN(id) FROM outbox WHERE campaign_id = $2)",
    )
    .bind(DEFERRED)
    .bind(campaign_id)
    .execute(pool)
    .await
    .unwrap();
}

/// A relay's deferral, as the sender records it (with markup-like text to escape).
const DEFERRED: &str = "451 4.7.1 <greylisted> try again later";

// ---------------------------------------------------------------------------------------
// Tests through the router

async fn pages_render_with_charts_and_escape_names(mut c: Client) {
    let pool = c.app.store.pool().clone();
    let declared = c.campaign("declared-warmup").await;
    // A campaign whose name is markup, and a broken seed whose reason is markup.
    let evil = store::campaigns::upsert(
        &pool,
        EVIL,
        declared.sender_id,
        &declared.plan,
        hearth::domain::Source::Api,
        1,
    )
    .await
    .unwrap();
    store::campaigns::set_status(
        &pool,
        evil,
        CampaignStatus::Paused,
        Some(PauseReason::Placement),
        Some("spam at <b>gmail</b> over 40 %"),
        2,
    )
    .await
    .unwrap();
    let gmail = store::seeds::get_by_address(&pool, &"box@gmail.test".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    store::seeds::set_status(
        &pool,
        gmail.id,
        SeedStatus::Broken,
        Some("IMAP login refused: <i>AUTHENTICATIONFAILED</i>"),
        3,
    )
    .await
    .unwrap();
    chart_fixture(&c.app, declared.id, "d").await;
    // The placement guard holds outlook for this campaign.
    store::holds::hold(
        &pool,
        declared.id,
        hearth::domain::Provider::Outlook,
        PauseReason::Placement,
        Some("spam 45 % of the last 20 <msgs>"),
        4,
    )
    .await
    .unwrap();

    // `/` leads to the campaigns.
    let p = c.get("/").await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert_eq!(p.location.as_deref(), Some("/ui/"));
    assert!(p.set_cookies.iter().any(|c| c.starts_with("hearth_csrf=")
        && c.contains("HttpOnly")
        && c.contains("SameSite=Strict")));

    let p = c.get("/ui/").await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.text);
    assert!(
        p.content_type.starts_with("text/html"),
        "{}",
        p.content_type
    );
    assert!(!p.text.contains(EVIL), "unescaped name: {}", p.text);
    assert!(p.text.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(
        p.text
            .contains("spam at &lt;b&gt;gmail&lt;/b&gt; over 40 %")
    );
    assert!(p.text.contains("needs a person to resume"));
    assert!(
        p.text.contains(
            "held at <strong>outlook</strong> (placement): spam 45 % of the last 20 &lt;msgs&gt;"
        ),
        "{}",
        p.text
    );
    assert!(p.text.contains("<th>Ramp day</th>"));

    let p = c.get(&format!("/ui/campaigns/{evil}")).await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(!p.text.contains(EVIL));
    assert!(p.text.contains("&lt;script&gt;"));
    // No script can run on these pages whatever slipped through.
    let p_headers = c
        .router
        .clone()
        .oneshot(Request::get("/ui/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let csp = p_headers.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(
        csp.starts_with("default-src 'none'") && !csp.contains("script-src"),
        "{csp}"
    );

    // The campaign with data: the ramp (7 days, planned and sent) and a placement chart per
    // provider (gmail, outlook), every placed message a segment of its day.
    let p = c.get(&format!("/ui/campaigns/{}", declared.id)).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.text);
    assert_eq!(p.text.matches("<svg class=\"linechart\"").count(), 1);
    assert_eq!(p.text.matches("<svg class=\"sharechart\"").count(), 2);
    assert_eq!(
        p.text.matches("<circle").count(),
        14,
        "7 planned + 7 sent points"
    );
    let (today, _) = day(c.app.clock.now(), 0);
    assert!(
        p.text.contains(&format!("planned {today}: 16")),
        "today's plan: {}",
        p.text
    );
    assert!(p.text.contains(&format!("sent {today}: 15")));
    assert!(p.text.contains("<figcaption>gmail · health "), "{}", p.text);
    assert!(p.text.contains("<figcaption>outlook · health "));
    assert!(p.text.contains(" · held (placement)</figcaption>"));
    assert!(!p.text.contains("<figcaption>yahoo"));
    assert!(p.text.contains("<dd id=\"health\">"));
    assert!(p.text.contains(&format!("{today} spam: ")));
    // ?days=1 narrows the charts to today.
    let p = c
        .get(&format!("/ui/campaigns/{}?days=1", declared.id))
        .await;
    assert_eq!(p.text.matches("<circle").count(), 2);

    // The seed pool: health, reason (escaped), what was found.
    let p = c.get("/ui/seeds").await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.text.contains("&lt;i&gt;AUTHENTICATIONFAILED&lt;/i&gt;"));
    assert!(p.text.contains("badge s-broken"));
    assert!(p.text.contains("box@outlook.test"));
    assert!(
        p.text
            .contains("451 4.7.1 &lt;greylisted&gt; try again later")
    );

    // A sender's preflight: a refused start stores a run; its checks show with fixes.
    let r = c
        .router
        .clone()
        .oneshot(
            Request::post(format!("/api/v1/campaigns/{evil}/resume"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let p = c.get(&format!("/ui/senders/{}", declared.sender_id)).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.text);
    assert!(
        p.text
            .contains("Latest run: <span class=\"badge v-fail\">fail</span>"),
        "{}",
        p.text
    );
    assert!(p.text.contains("data-check=\"smtp.probe\""));
    assert!(p.text.contains("data-check=\"spf.mail_from\""));
    assert!(
        p.text.contains("badge v-unknown"),
        "DNS does not answer: unknown"
    );

    // Unknown ids are pages, not errors.
    let p = c.get("/ui/campaigns/999999").await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);
    assert!(p.text.contains("campaign 999999 not found"));
    let p = c.get("/ui/nowhere").await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);
    assert!(p.content_type.starts_with("text/html"));
    // A mistyped period shows the default one.
    let p = c
        .get(&format!("/ui/campaigns/{}?days=week", declared.id))
        .await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(p.text.matches("<circle").count(), 14);
}

async fn forms_need_the_csrf_token(mut c: Client) {
    let pool = c.app.store.pool().clone();
    let camp = c.campaign("declared-warmup").await;
    store::campaigns::set_status(&pool, camp.id, CampaignStatus::Active, None, None, 1)
        .await
        .unwrap();
    let pause = format!("/ui/campaigns/{}/pause", camp.id);
    let resume = format!("/ui/campaigns/{}/resume", camp.id);

    // No cookie, no field: refused, nothing changes.
    let p = c.post(&pause, &[]).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN, "{}", p.text);
    // The page hands out the cookie and the field.
    let page = c.get(&format!("/ui/campaigns/{}", camp.id)).await;
    let token = page.csrf_field();
    assert_eq!(c.cookies["hearth_csrf"], token);
    assert!(page.text.contains(&format!("action=\"{pause}\"")));
    // The cookie without the field, the field without the cookie, a wrong field.
    let p = c.post(&pause, &[]).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    let wrong = "0".repeat(64);
    let p = c.post(&pause, &[("csrf", &wrong)]).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    let jar = std::mem::take(&mut c.cookies);
    let p = c.post(&pause, &[("csrf", &token)]).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    c.cookies = jar;
    assert_eq!(
        c.campaign("declared-warmup").await.status,
        CampaignStatus::Active
    );

    // Cookie and field agree: paused by hand, through the dashboard.
    let p = c
        .post(&pause, &[("csrf", &token), ("action", "pause")])
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.text);
    assert_eq!(
        p.location.as_deref(),
        Some(format!("/ui/campaigns/{}?done=paused", camp.id).as_str())
    );
    let now = c.campaign("declared-warmup").await;
    assert_eq!(
        (now.status, now.pause_reason, now.pause_detail.as_deref()),
        (
            CampaignStatus::Paused,
            Some(PauseReason::Manual),
            Some("paused through the dashboard")
        )
    );
    let p = c.get(p.location.as_deref().unwrap()).await;
    assert!(
        p.text
            .contains("<p class=\"flash\" id=\"flash\">Paused.</p>"),
        "{}",
        p.text
    );
    assert!(p.text.contains(&format!("action=\"{resume}\"")));

    // Pausing twice is the API's refusal, shown on the page with its status.
    let p = c.post(&pause, &[("csrf", &token)]).await;
    assert_eq!(p.status, StatusCode::CONFLICT);
    assert!(
        p.text.contains("only an active campaign can be paused"),
        "{}",
        p.text
    );

    // Resume runs preflight first; this identity cannot pass, so it stays paused and says why.
    let p = c.post(&resume, &[("csrf", &token)]).await;
    assert_eq!(p.status, StatusCode::CONFLICT, "{}", p.text);
    assert!(p.text.contains("flash error"), "{}", p.text);
    assert!(p.text.contains("does not pass"), "{}", p.text);
    let now = c.campaign("declared-warmup").await;
    assert_eq!(now.status, CampaignStatus::Paused);
}

async fn tokens_require_a_login(mut c: Client) {
    let camp = c.campaign("declared-warmup").await;
    store::campaigns::set_status(
        c.app.store.pool(),
        camp.id,
        CampaignStatus::Active,
        None,
        None,
        1,
    )
    .await
    .unwrap();
    // Every page sends to the login, remembering where it was going.
    for uri in ["/ui/", "/ui/seeds", &format!("/ui/campaigns/{}", camp.id)] {
        let p = c.get(uri).await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{uri}");
        let next = form_urlencoded::Serializer::new(String::new())
            .append_pair("next", uri)
            .finish();
        assert_eq!(p.location, Some(format!("/ui/login?{next}")), "{uri}");
    }
    // A form without a session is refused before anything happens.
    let login = c.get("/ui/login?next=%2Fui%2Fseeds").await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(login.text.contains("type=\"password\" name=\"token\""));
    let token = login.csrf_field();
    let pause = format!("/ui/campaigns/{}/pause", camp.id);
    let p = c.post(&pause, &[("csrf", &token)]).await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED);
    // The API's bearer token is no dashboard session.
    let r = c
        .router
        .clone()
        .oneshot(
            Request::get("/ui/")
                .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);

    // The login form is CSRF-checked too, then refuses a wrong token.
    let p = c.post("/ui/login", &[("token", TOKEN)]).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    let p = c
        .post(
            "/ui/login",
            &[("csrf", &token), ("token", "not-the-token-0000000")],
        )
        .await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED);
    assert!(p.text.contains("not one of the configured API tokens"));
    assert!(!c.cookies.contains_key("hearth_session"));
    // The right token: a session cookie, and back to where it was going.
    let p = c
        .post(
            "/ui/login",
            &[("csrf", &token), ("token", TOKEN), ("next", "/ui/seeds")],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.text);
    assert_eq!(p.location.as_deref(), Some("/ui/seeds"));
    let session = p
        .set_cookies
        .iter()
        .find(|c| c.starts_with("hearth_session="))
        .expect("a session cookie");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age=43200"] {
        assert!(session.contains(attr), "{attr}: {session}");
    }
    assert!(
        !session.contains(TOKEN),
        "the token itself is never in the cookie"
    );
    let p = c.get("/ui/seeds").await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.text.contains("Log out"));
    let p = c.get("/ui/login").await;
    assert_eq!(
        (p.status, p.location.as_deref()),
        (StatusCode::SEE_OTHER, Some("/ui/")),
        "logged in already"
    );
    // With the session, forms still need the CSRF field.
    let p = c.post(&pause, &[]).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    let p = c.post(&pause, &[("csrf", &token)]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert_eq!(
        c.campaign("declared-warmup").await.status,
        CampaignStatus::Paused
    );
    // A forged session is no session.
    let real = c.cookies["hearth_session"].clone();
    let last = if real.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{last}", &real[..real.len() - 1]);
    c.cookies.insert("hearth_session".into(), forged);
    assert_eq!(c.get("/ui/").await.status, StatusCode::SEE_OTHER);
    c.cookies.insert("hearth_session".into(), real);
    // Logging out ends it.
    let p = c.post("/ui/logout", &[("csrf", &token)]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert!(!c.cookies.contains_key("hearth_session"));
    assert_eq!(c.get("/ui/").await.status, StatusCode::SEE_OTHER);
}

// ---------------------------------------------------------------------------------------
// Against the lab: a sender whose preflight passes, so resume goes through.

/// config/lab.toml with a passing identity "ok" and its campaign "ok-warmup"; `token` adds
/// an API token.
fn lab_config(lab: &Path, data: &Path, url: &str, token: bool) -> Config {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut text = lab::lab_config_text(lab, data);
    let token_line = if token {
        format!("api_token = {TOKEN:?}\n")
    } else {
        String::new()
    };
    text = text.replace(
        "[server]\n",
        &format!("[server]\ndatabase_url = {url:?}\nsecret_key = \"dash-lab\"\n{token_line}"),
    );
    text.push_str(&format!(
        r#"
[[senders]]
name = "ok"
address = "hello@ok.pf.test"
helo = "mta.ok.pf.test"
ips = ["192.0.2.101"]
smtp = {{ host = "127.0.0.1", port = 5587, ca_file = "{lab}/tls/ca.pem", username = "hello@sender.test", password = "lab-pass-1" }}
dkim = {{ domain = "ok.pf.test", selector = "hearth", key_file = "{lab}/dkim/sender.test.hearth.key" }}

[[campaigns]]
name = "ok-warmup"
sender = "ok"
"#,
        lab = lab.display()
    ));
    Config::from_toml(&text, Some(&root.join("config/lab.toml")), &[]).expect("valid lab config")
}

/// The lab config, or (without the lab, and not required) the plain one with a note; the
/// test then checks that it was skipped.
fn lab_or_skip() -> impl FnOnce(&str, &Path) -> Config {
    |url, data| match lab::lab_dir("dashboard lab tests", &[5353, 5587]) {
        Some(lab) => lab_config(&lab, data, url, false),
        None => Config::from_toml(&config_text(url, data, false), None, &[]).unwrap(),
    }
}

async fn resume_from_the_dashboard_runs_preflight(mut c: Client) {
    let Some(camp) = store::campaigns::get_by_name(c.app.store.pool(), "ok-warmup")
        .await
        .unwrap()
    else {
        return; // the lab is not running (lab_dir said so)
    };
    store::campaigns::set_status(
        c.app.store.pool(),
        camp.id,
        CampaignStatus::Paused,
        Some(PauseReason::Placement),
        Some("spam over 40 %"),
        1,
    )
    .await
    .unwrap();
    let page = c.get(&format!("/ui/campaigns/{}", camp.id)).await;
    let token = page.csrf_field();
    let p = c
        .post(
            &format!("/ui/campaigns/{}/resume", camp.id),
            &[("csrf", &token)],
        )
        .await;
    assert_eq!(p.status, StatusCode::SEE_OTHER, "{}", p.text);
    let now = c.campaign("ok-warmup").await;
    assert_eq!(
        (now.status, now.pause_reason),
        (CampaignStatus::Active, None)
    );
    let p = c.get(p.location.as_deref().unwrap()).await;
    assert!(p.text.contains("Resumed: preflight passed."), "{}", p.text);
    // The passing run is on the sender's page.
    let p = c.get(&format!("/ui/senders/{}", camp.sender_id)).await;
    assert!(
        p.text
            .contains("Latest run: <span class=\"badge v-pass\">pass</span>"),
        "{}",
        p.text
    );
}

// ---------------------------------------------------------------------------------------
// Headless Chromium against a real server

fn artifacts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/dashboard-artifacts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_logs_in_sees_charts_pauses_and_resumes() {
    let Some(lab) = lab::lab_dir("dashboard in Chromium", &[5353, 5587]) else {
        return;
    };
    let Some((chromium, chromedriver)) = webdriver::browser("dashboard in Chromium") else {
        return;
    };
    hearth::tls::install_crypto_provider();
    let data = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", data.path().join("hearth.db").display());
    let app = App::build(
        lab_config(&lab, data.path(), &url, true),
        Arc::new(hearth::clock::SystemClock),
    )
    .await
    .unwrap();
    let pool = app.store.pool().clone();
    let camp = store::campaigns::get_by_name(&pool, "ok-warmup")
        .await
        .unwrap()
        .unwrap();
    let now = app.clock.now();
    store::campaigns::set_status(&pool, camp.id, CampaignStatus::Active, None, None, now)
        .await
        .unwrap();
    chart_fixture(&app, camp.id, "chromium").await;
    let yahoo = store::seeds::get_by_address(&pool, &"spam1@yahoo.test".parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    store::seeds::set_status(
        &pool,
        yahoo.id,
        SeedStatus::Broken,
        Some("IMAP login refused: [AUTHENTICATIONFAILED] Authentication failed."),
        now,
    )
    .await
    .unwrap();

    // The real server, as `hearth serve` runs it (HTTP only: no workers, so the data stays).
    let shutdown = tokio_util::sync::CancellationToken::new();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(hearth::http::serve(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        AppState::new(app.clone()),
        shutdown.clone(),
        tx,
    ));
    let base = format!("http://{}", rx.await.unwrap());

    let b = webdriver::Browser::start(&chromium, &chromedriver).await;
    let outcome = AssertUnwindSafe(async {
        // Logging in.
        b.goto(&format!("{base}/ui/campaigns/{}", camp.id)).await;
        assert!(
            b.url().await.contains("/ui/login?next="),
            "{}",
            b.url().await
        );
        b.screenshot(&artifacts().join("login.png")).await;
        let field = b.find("input#token").await;
        b.type_into(&field, TOKEN).await;
        b.click(&b.find("form.login button").await).await;
        b.wait_for_url(&format!("/ui/campaigns/{}", camp.id)).await;

        // The charts rendered: the ramp's two lines, a stacked chart per provider.
        assert_eq!(b.find_all("svg.linechart polyline").await.len(), 2);
        assert_eq!(
            b.find_all("svg.sharechart").await.len(),
            3,
            "gmail, outlook, yahoo"
        );
        assert!(b.find_all("svg.sharechart rect").await.len() >= 7 * 3);
        assert_eq!(b.text(&b.find("#status").await).await, "active");
        b.screenshot(&artifacts().join("campaign.png")).await;

        // Pause, then resume (which runs preflight against the lab).
        b.click(&b.find("button.pause").await).await;
        b.wait_for_url("?done=paused").await;
        assert_eq!(b.text(&b.find("#status").await).await, "paused");
        assert_eq!(b.text(&b.find("#flash").await).await, "Paused.");
        let c = store::campaigns::get(&pool, camp.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.pause_reason, Some(PauseReason::Manual));
        b.screenshot(&artifacts().join("campaign-paused.png")).await;
        b.click(&b.find("button.resume").await).await;
        b.wait_for_url("?done=resumed").await;
        assert_eq!(
            b.text(&b.find("#status").await).await,
            "active",
            "{}",
            b.source().await
        );
        let c = store::campaigns::get(&pool, camp.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.status, CampaignStatus::Active);

        // The other pages.
        b.goto(&format!("{base}/ui/")).await;
        assert!(b.find_all("#campaigns tbody tr").await.len() >= 2);
        b.screenshot(&artifacts().join("campaigns.png")).await;
        b.goto(&format!("{base}/ui/senders/{}", camp.sender_id))
            .await;
        assert!(!b.find_all("table.checks tr[data-check]").await.is_empty());
        b.screenshot(&artifacts().join("preflight.png")).await;
        b.goto(&format!("{base}/ui/seeds")).await;
        assert_eq!(b.find_all("#seeds tbody tr").await.len(), 6);
        assert_eq!(b.find_all("#seeds .s-broken").await.len(), 1);
        b.screenshot(&artifacts().join("seeds.png")).await;
    })
    .catch_unwind()
    .await;
    b.quit().await;
    shutdown.cancel();
    let _ = server.await;
    app.store.close().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
