//! XOAUTH2 against the lab: Dovecot validates HS256 JWTs signed with the lab's key (its oauth2
//! passdb, local validation), and Postfix "out" authenticates through Dovecot, so one token
//! endpoint here (axum on 127.0.0.1, answering refresh-token grants with such JWTs) serves the
//! sender's SMTP and the seed's IMAP. Also: the cache refreshes before expiry, a token the
//! server refuses is replaced once, and a revoked grant is a permanent error with its reason.

#[path = "common/lab.rs"]
#[allow(dead_code)]
mod lab;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use hearth::clock::{Clock as _, SystemClock};
use hearth::config::Config;
use hearth::domain::{CampaignStatus, EmailAddress, PauseReason, SeedStatus, SendKind};
use hearth::engagement::scan;
use hearth::oauth2::{Grant, OAuth2Error, OAuth2Provider, OAuth2Ref, TokenCache, TokenUrl};
use hearth::secrets::{SecretKey, SecretRef};
use hearth::sender::Dispatcher;
use hearth::startup::App;
use hearth::store::{self, outbox::NewSend};
use hmac::Mac as _;

const CLIENT_ID: &str = "hearth-test";
const CLIENT_SECRET: &str = "s3cret";

/// A token endpoint. Refresh tokens say what to do: `ok:USER` gets a valid token for USER,
/// `stale:USER` first gets a token that has already expired (while `expires_in` claims an
/// hour: a token revoked early, or clocks that disagree) and valid ones after that,
/// `revoked:USER` gets `invalid_grant`.
struct Endpoint {
    key: Option<Vec<u8>>,
    expires_in: AtomicU64,
    requests: Mutex<HashMap<String, usize>>,
}

impl Endpoint {
    fn requests(&self, refresh_token: &str) -> usize {
        self.requests
            .lock()
            .unwrap()
            .get(refresh_token)
            .copied()
            .unwrap_or(0)
    }
}

fn b64url(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

/// An HS256 JWT for `user` as Dovecot's oauth2 passdb checks it (sub, email, exp).
fn jwt(key: &[u8], user: &str, exp: i64, jti: usize) -> String {
    let header = b64url(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = serde_json::json!({ "sub": user, "email": user, "exp": exp, "jti": jti });
    let body = b64url(claims.to_string().as_bytes());
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(format!("{header}.{body}").as_bytes());
    let sig = b64url(&mac.finalize().into_bytes());
    format!("{header}.{body}.{sig}")
}

async fn token(
    State(ep): State<Arc<Endpoint>>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let error = |status: StatusCode, code: &str| {
        (
            status,
            axum::Json(serde_json::json!({ "error": code, "error_description": "test endpoint" })),
        )
            .into_response()
    };
    if f.get("grant_type").map(String::as_str) != Some("refresh_token") {
        return error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    if f.get("client_id").map(String::as_str) != Some(CLIENT_ID)
        || f.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET)
    {
        return error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    let rt = f.get("refresh_token").cloned().unwrap_or_default();
    let n = {
        let mut r = ep.requests.lock().unwrap();
        let n = r.entry(rt.clone()).or_default();
        *n += 1;
        *n
    };
    let Some((kind, user)) = rt.split_once(':') else {
        return error(StatusCode::BAD_REQUEST, "invalid_grant");
    };
    let now = SystemClock.now();
    let expires_in = ep.expires_in.load(Ordering::SeqCst);
    let exp = match kind {
        "ok" => now + expires_in as i64,
        "stale" if n == 1 => now - 120,
        "stale" => now + expires_in as i64,
        _ => return error(StatusCode::BAD_REQUEST, "invalid_grant"),
    };
    let key = ep.key.clone().unwrap_or_else(|| b"no lab".to_vec());
    axum::Json(serde_json::json!({
        "access_token": jwt(&key, user, exp, n),
        "token_type": "Bearer",
        "expires_in": expires_in,
    }))
    .into_response()
}

async fn endpoint(lab: Option<&Path>) -> (String, Arc<Endpoint>) {
    let key = lab.map(|l| {
        let text = std::fs::read_to_string(l.join("dovecot/oauth2/hs256.key"))
            .expect("the lab's OAuth2 key (scripts/lab up creates it)");
        base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .unwrap()
    });
    let ep = Arc::new(Endpoint {
        key,
        expires_in: AtomicU64::new(3600),
        requests: Mutex::default(),
    });
    let app = axum::Router::new()
        .route("/token", axum::routing::post(token))
        .with_state(ep.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/token", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, ep)
}

fn config_text(lab: &Path, data: &Path, token_url: &str, sender_rt: &str, seed_rt: &str) -> String {
    let ca = lab.join("tls/ca.pem");
    let oauth = |rt: &str, provider: &str| {
        format!(
            "oauth2 = {{ provider = \"{provider}\", token_url = \"{token_url}\", client_id = \"{CLIENT_ID}\", client_secret = \"{CLIENT_SECRET}\", refresh_token = \"{rt}\" }}"
        )
    };
    format!(
        r#"
[server]
bind = "127.0.0.1:0"
data_dir = {data:?}
database_url = "sqlite::memory:"
[dns]
nameservers = ["127.0.0.1:5353"]
[[senders]]
name = "oauth"
address = "hello@sender.test"
helo = "mta1.sender.test"
smtp = {{ host = "127.0.0.1", port = 5587, tls = "starttls", ca_file = {ca:?}, {sender} }}
[[seeds]]
address = "seed2@gmail.test"
provider = "gmail"
imap = {{ host = "127.0.0.1", port = 1993, tls = "implicit", ca_file = {ca:?}, {seed} }}
[[campaigns]]
name = "oauth"
sender = "oauth"
plan = {{ start_per_day = 1, max_per_day = 10 }}
"#,
        data = data.to_str().unwrap(),
        ca = ca.to_str().unwrap(),
        sender = oauth(sender_rt, "custom"),
        seed = oauth(seed_rt, "google"),
    )
}

/// An app on that config, its campaign active and one message queued to the seed.
async fn app_with_one_send(text: &str) -> (App, store::seeds::SeedRow, String) {
    let config = Config::from_toml(text, None, &[]).unwrap();
    let app = App::build(config, Arc::new(SystemClock)).await.unwrap();
    let pool = app.store.pool().clone();
    let c = store::campaigns::get_by_name(&pool, "oauth")
        .await
        .unwrap()
        .unwrap();
    let now = app.clock.now();
    store::campaigns::set_status(&pool, c.id, CampaignStatus::Active, None, None, now)
        .await
        .unwrap();
    let seed =
        store::seeds::get_by_address(&pool, &EmailAddress::parse("seed2@gmail.test").unwrap())
            .await
            .unwrap()
            .unwrap();
    let domain = hearth::domain::DomainName::parse("sender.test").unwrap();
    let message_id = hearth::sender::message::new_message_id(&domain);
    store::outbox::enqueue(
        &pool,
        &NewSend {
            campaign_id: c.id,
            seed_id: seed.id,
            kind: SendKind::Warmup,
            message_id: Some(message_id.clone()),
            subject: "oauth".into(),
            in_reply_to: None,
            plan_day: None,
            run_at: 0,
        },
        now,
    )
    .await
    .unwrap();
    (app, seed, message_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xoauth2_sends_and_scans_through_the_lab_replacing_a_refused_token_once() {
    let Some(lab) = lab::lab_dir("oauth2 lab tests", &[5587, 1993]) else {
        return;
    };
    hearth::tls::install_crypto_provider();
    let (url, ep) = endpoint(Some(&lab)).await;
    let data = tempfile::tempdir().unwrap();
    let text = config_text(
        &lab,
        data.path(),
        &url,
        "stale:hello@sender.test",
        "stale:seed2@gmail.test",
    );
    let (app, seed, message_id) = app_with_one_send(&text).await;

    // SMTP: the first token is refused by the relay (535), a new one is fetched, the send goes.
    let report = Dispatcher::new(app.clone()).run_once(10).await.unwrap();
    assert_eq!(report.sent, 1, "{report:?}");
    assert_eq!(ep.requests("stale:hello@sender.test"), 2);

    // IMAP: the same for the seed, then the message is found and attributed.
    let mut found = 0;
    for _ in 0..100 {
        found += scan::scan_seed(&app, &seed).await.unwrap().found;
        if found > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(found, 1, "{message_id} not found in seed2@gmail.test");
    assert_eq!(ep.requests("stale:seed2@gmail.test"), 2);
    let placement = store::ledger::get_by_message_id(app.store.pool(), &message_id)
        .await
        .unwrap();
    assert!(placement.is_some());

    // Later logins reuse the cached token: no further refresh.
    scan::scan_seed(&app, &seed).await.unwrap();
    assert_eq!(ep.requests("stale:seed2@gmail.test"), 2);
    let seed = store::seeds::get(app.store.pool(), seed.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seed.status, SeedStatus::Active);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_grant_breaks_the_seed_and_pauses_the_campaign_with_the_reason() {
    let Some(lab) = lab::lab_dir("oauth2 lab tests", &[5587, 1993]) else {
        return;
    };
    hearth::tls::install_crypto_provider();
    let (url, ep) = endpoint(Some(&lab)).await;
    let data = tempfile::tempdir().unwrap();
    let text = config_text(
        &lab,
        data.path(),
        &url,
        "revoked:hello@sender.test",
        "revoked:seed2@gmail.test",
    );
    let (app, seed, message_id) = app_with_one_send(&text).await;
    let pool = app.store.pool().clone();

    let report = Dispatcher::new(app.clone()).run_once(10).await.unwrap();
    assert_eq!(report.sent, 0);
    let c = store::campaigns::get_by_name(&pool, "oauth")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.status, CampaignStatus::Paused);
    assert_eq!(c.pause_reason, Some(PauseReason::SenderError));
    let detail = c.pause_detail.unwrap();
    assert!(detail.contains("invalid_grant"), "{detail}");
    assert!(!detail.contains(CLIENT_SECRET), "{detail}");
    // The message is kept for when a person has fixed the grant.
    let rows = store::outbox::list_for_campaign(&pool, c.id).await.unwrap();
    let row = rows
        .iter()
        .find(|r| r.message_id.as_ref() == Some(&message_id))
        .unwrap();
    assert_eq!(row.status, hearth::domain::OutboxStatus::Planned);

    let err = scan::scan_seed(&app, &seed).await.unwrap_err();
    assert!(!err.is_transient(), "{err}");
    let seed = store::seeds::get(&pool, seed.id).await.unwrap().unwrap();
    assert_eq!(seed.status, SeedStatus::Broken);
    let reason = seed.status_reason.unwrap();
    assert!(reason.contains("invalid_grant"), "{reason}");
    // Refused grants are asked once per attempt, not retried in a loop.
    assert_eq!(ep.requests("revoked:seed2@gmail.test"), 1);
}

fn grant(url: &str, cache: &TokenCache, key: &Arc<SecretKey>, rt: &str, secret: &str) -> Grant {
    Grant {
        oauth: Arc::new(OAuth2Ref {
            provider: OAuth2Provider::Microsoft,
            token_url: TokenUrl::parse(url).unwrap(),
            client_id: CLIENT_ID.into(),
            client_secret: key.seal(&secrecy::SecretString::from(secret.to_owned())),
            refresh_token: key.seal(&secrecy::SecretString::from(rt.to_owned())),
            scope: Some("https://outlook.office.com/IMAP.AccessAsUser.All offline_access".into()),
            ca_file: None,
        }),
        cache: cache.clone(),
        key: key.clone(),
    }
}

#[tokio::test]
async fn tokens_are_cached_refreshed_before_expiry_and_failures_classified() {
    let (url, ep) = endpoint(None).await;
    let key = Arc::new(SecretKey::from_passphrase("oauth2 test"));
    let cache = TokenCache::new(Duration::from_secs(120));

    // An hour left: the cached token is used.
    let long = grant(&url, &cache, &key, "ok:a@b.test", CLIENT_SECRET);
    let t1 = long.token().await.unwrap();
    let t2 = long.token().await.unwrap();
    assert_eq!(t1.expose(), t2.expose());
    assert_eq!(ep.requests("ok:a@b.test"), 1);

    // 100 s left is inside the 120 s margin: refreshed before it expires.
    ep.expires_in.store(100, Ordering::SeqCst);
    let short = grant(&url, &cache, &key, "ok:c@b.test", CLIENT_SECRET);
    short.token().await.unwrap();
    short.token().await.unwrap();
    assert_eq!(ep.requests("ok:c@b.test"), 2);

    // A token the server refused is replaced, once, even though it has not expired.
    ep.expires_in.store(3600, Ordering::SeqCst);
    let t3 = long.replace(&t1).await.unwrap();
    assert_eq!(ep.requests("ok:a@b.test"), 2);
    let t4 = long.replace(&t1).await.unwrap();
    assert_eq!(t3.expose(), t4.expose(), "another task's refresh is reused");
    assert_eq!(ep.requests("ok:a@b.test"), 2);

    // Revoked grant and wrong client secret: permanent. A dead endpoint: transient.
    let revoked = grant(&url, &cache, &key, "revoked:a@b.test", CLIENT_SECRET);
    let e = revoked.token().await.unwrap_err();
    assert!(
        matches!(&e, OAuth2Error::Permanent { code, .. } if code == "invalid_grant"),
        "{e}"
    );
    let bad_client = grant(&url, &cache, &key, "ok:a@b.test", "wrong");
    let e = bad_client.token().await.unwrap_err();
    assert!(
        matches!(&e, OAuth2Error::Permanent { code, .. } if code == "invalid_client"),
        "{e}"
    );
    assert!(!e.to_string().contains("wrong"));
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/token", l.local_addr().unwrap())
    };
    let e = grant(&dead, &cache, &key, "ok:a@b.test", CLIENT_SECRET)
        .token()
        .await
        .unwrap_err();
    assert!(e.is_transient(), "{e}");

    // Secrets stay out of what is printed.
    let shown = format!(
        "{:?} {:?}",
        long,
        SecretRef::OAuth2(Box::new((*long.oauth).clone()))
    );
    assert!(
        !shown.contains(CLIENT_SECRET) && !shown.contains("ok:a@b.test"),
        "{shown}"
    );
}
