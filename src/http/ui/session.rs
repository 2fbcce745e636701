//! Who may use the dashboard, and proof that a form came from it.
//!
//! **Sessions.** Without API tokens the dashboard is open, like the API (which `serve` allows
//! only on a loopback bind). With tokens, `/ui/login` takes one of them and answers with a
//! session cookie `hearth_session` (HttpOnly, SameSite=Strict, Path=/ui, 12 hours; Secure when
//! the request came through a proxy that says `X-Forwarded-Proto: https`). The cookie is
//! `expires.nonce.mac`, the MAC an HMAC-SHA256 keyed by the digest of the token used to log
//! in, so it holds nothing secret, needs no server-side table (every node of a shared
//! database accepts it, and it survives restarts), and removing a token from the config ends
//! every session opened with it. Expiry is wall-clock time, not the plan's clock (which
//! `--time-scale` speeds up).
//!
//! **CSRF.** Every form carries a hidden `csrf` field equal to the `hearth_csrf` cookie (a
//! random 256-bit value, HttpOnly, SameSite=Strict, set on the first page served): the
//! double-submit pattern. A POST whose field is missing or differs from the cookie (compared in
//! constant time) is refused with 403 before anything else happens. SameSite=Strict already
//! keeps other sites' requests from carrying the cookies; the token also covers same-site
//! origins and older browsers.

use axum::body::Body;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use hmac::{Hmac, Mac as _};
use maud::html;
use rand::RngExt as _;
use sha2::Sha256;

use super::{UiError, layout_bare};
use crate::clock::{Clock as _, SystemClock};
use crate::http::AppState;
use crate::http::auth::{Tokens, secrets_equal};

pub const SESSION_COOKIE: &str = "hearth_session";
pub const CSRF_COOKIE: &str = "hearth_csrf";
/// How long a dashboard login lasts.
pub const SESSION_SECS: i64 = 12 * 3600;
/// The form field that carries the CSRF token.
pub const CSRF_FIELD: &str = "csrf";
/// The largest form body the dashboard reads (its forms are a few fields).
const MAX_FORM_BYTES: usize = 16 * 1024;

/// The request's CSRF token, for the forms a page renders.
#[derive(Debug, Clone)]
pub struct Csrf(pub String);

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

fn random_hex() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    hex::encode(bytes)
}

fn is_token_shaped(v: &str) -> bool {
    v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit())
}

fn set_cookie(headers: &HeaderMap, name: &str, value: &str, max_age: Option<i64>) -> HeaderValue {
    let secure = headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let mut c = format!("{name}={value}; Path=/ui; HttpOnly; SameSite=Strict");
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        c.push_str("; Secure");
    }
    HeaderValue::from_str(&c).expect("cookie values are hex and digits")
}

/// Middleware on every dashboard route: hands the page its CSRF token (issuing the cookie on
/// first sight) and sets the headers that keep the pages from running scripts or being framed.
pub async fn csrf_and_headers(mut req: Request, next: Next) -> Response {
    let existing = cookie(req.headers(), CSRF_COOKIE)
        .filter(|v| is_token_shaped(v))
        .map(str::to_owned);
    let fresh = existing.is_none();
    let token = existing.unwrap_or_else(random_hex);
    let set = fresh.then(|| set_cookie(req.headers(), CSRF_COOKIE, &token, None));
    req.extensions_mut().insert(Csrf(token));
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    if let Some(c) = set {
        h.append(header::SET_COOKIE, c);
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

type HmacSha256 = Hmac<Sha256>;

fn session_mac(key: &[u8; 32], expires: i64, nonce: &str) -> String {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(b"hearth-ui-session\0");
    mac.update(format!("{expires}.{nonce}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// A session cookie value for the token at `index`, valid until `expires`.
fn issue(tokens: &Tokens, index: usize, expires: i64) -> String {
    let nonce = random_hex();
    let mac = session_mac(&tokens.digests()[index], expires, &nonce);
    format!("{expires}.{nonce}.{mac}")
}

/// Whether `value` is a session issued under one of `tokens` that has not expired at `now`.
pub fn session_valid(tokens: &Tokens, value: &str, now: i64) -> bool {
    let mut parts = value.splitn(3, '.');
    let (Some(expires), Some(nonce), Some(mac)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let Ok(expires) = expires.parse::<i64>() else {
        return false;
    };
    if expires <= now || expires > now + SESSION_SECS || !is_token_shaped(nonce) {
        return false;
    }
    tokens.digests().iter().fold(false, |ok, key| {
        ok | secrets_equal(session_mac(key, expires, nonce).as_bytes(), mac.as_bytes())
    })
}

fn now() -> i64 {
    SystemClock.now()
}

/// Middleware on every dashboard page but the login: with tokens configured, a request
/// without a valid session goes to the login form (a page) or is refused (a form post).
pub async fn require_session(State(st): State<AppState>, req: Request, next: Next) -> Response {
    if st.tokens.is_empty() {
        return next.run(req).await;
    }
    let ok =
        cookie(req.headers(), SESSION_COOKIE).is_some_and(|v| session_valid(&st.tokens, v, now()));
    if ok {
        return next.run(req).await;
    }
    if req.method() == axum::http::Method::GET {
        let next_path = req.uri().path_and_query().map_or("/ui/", |p| p.as_str());
        let target = form_urlencoded::Serializer::new(String::new())
            .append_pair("next", next_path)
            .finish();
        Redirect::to(&format!("/ui/login?{target}")).into_response()
    } else {
        UiError::new(
            StatusCode::UNAUTHORIZED,
            "Your session has ended: log in again.",
        )
        .into_response()
    }
}

/// A POSTed form whose CSRF field matched the cookie; the other fields, in order.
pub struct CheckedForm(pub Vec<(String, String)>);

impl CheckedForm {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

impl<S: Send + Sync> FromRequest<S> for CheckedForm {
    type Rejection = UiError;

    async fn from_request(req: Request<Body>, _state: &S) -> Result<Self, UiError> {
        let cookie_token = cookie(req.headers(), CSRF_COOKIE).map(str::to_owned);
        let body = axum::body::to_bytes(req.into_body(), MAX_FORM_BYTES)
            .await
            .map_err(|_| UiError::new(StatusCode::PAYLOAD_TOO_LARGE, "The form is too large."))?;
        let fields: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
        let sent = fields
            .iter()
            .find(|(k, _)| k == CSRF_FIELD)
            .map(|(_, v)| v.as_str());
        match (cookie_token.as_deref(), sent) {
            (Some(c), Some(f))
                if is_token_shaped(c) && secrets_equal(c.as_bytes(), f.as_bytes()) =>
            {
                Ok(CheckedForm(fields))
            }
            _ => {
                tracing::warn!("dashboard: a form without a matching CSRF token was refused");
                Err(UiError::new(
                    StatusCode::FORBIDDEN,
                    "This form has expired or did not come from this dashboard. Reload the page and try again.",
                ))
            }
        }
    }
}

/// A same-site path to go back to after logging in (never another host).
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n) if n.starts_with("/ui/") && !n.contains("//") && !n.contains('\\') => n,
        _ => "/ui/",
    }
}

#[derive(serde::Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

fn login_form(csrf: &str, next: &str, problem: Option<&str>) -> maud::Markup {
    layout_bare(
        "Log in",
        html! {
            h1 { "Hearth dashboard" }
            @if let Some(p) = problem { p.flash.error { (p) } }
            form.login method="post" action="/ui/login" {
                input type="hidden" name=(CSRF_FIELD) value=(csrf);
                input type="hidden" name="next" value=(next);
                label for="token" { "API token (" code { "server.api_token" } ")" }
                input #token type="password" name="token" autocomplete="current-password" required;
                button type="submit" { "Log in" }
            }
        },
    )
}

pub async fn login_page(
    State(st): State<AppState>,
    axum::Extension(Csrf(csrf)): axum::Extension<Csrf>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<LoginQuery>,
) -> Response {
    let next = safe_next(q.next.as_deref());
    let logged_in =
        cookie(&headers, SESSION_COOKIE).is_some_and(|v| session_valid(&st.tokens, v, now()));
    if st.tokens.is_empty() || logged_in {
        return Redirect::to(next).into_response();
    }
    login_form(&csrf, next, None).into_response()
}

pub async fn login(
    State(st): State<AppState>,
    axum::Extension(Csrf(csrf)): axum::Extension<Csrf>,
    headers: HeaderMap,
    form: CheckedForm,
) -> Response {
    let next = safe_next(form.get("next")).to_owned();
    if st.tokens.is_empty() {
        return Redirect::to(&next).into_response();
    }
    let presented = form.get("token").unwrap_or_default().trim();
    match st.tokens.position(presented.as_bytes()) {
        Some(i) => {
            let value = issue(&st.tokens, i, now() + SESSION_SECS);
            let mut resp = Redirect::to(&next).into_response();
            resp.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(&headers, SESSION_COOKIE, &value, Some(SESSION_SECS)),
            );
            tracing::info!("dashboard: logged in");
            resp
        }
        None => {
            tracing::warn!("dashboard: a login with a wrong token was refused");
            (
                StatusCode::UNAUTHORIZED,
                login_form(
                    &csrf,
                    &next,
                    Some("That is not one of the configured API tokens."),
                ),
            )
                .into_response()
        }
    }
}

pub async fn logout(headers: HeaderMap, _form: CheckedForm) -> Response {
    let mut resp = Redirect::to("/ui/login").into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&headers, SESSION_COOKIE, "", Some(0)),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn tokens() -> Tokens {
        Tokens::new(&[
            SecretString::from("first-token-0123456789".to_owned()),
            SecretString::from("second-token-0123456789".to_owned()),
        ])
    }

    #[test]
    fn sessions_verify_until_they_expire() {
        let t = tokens();
        let now = 1_800_000_000;
        let s = issue(&t, 1, now + SESSION_SECS);
        assert!(session_valid(&t, &s, now));
        assert!(session_valid(&t, &s, now + SESSION_SECS - 1));
        assert!(!session_valid(&t, &s, now + SESSION_SECS), "expired");
        // Signed by a token that is no longer configured.
        let only_first = Tokens::new(&[SecretString::from("first-token-0123456789".to_owned())]);
        assert!(!session_valid(&only_first, &s, now));
        // Tampered: a later expiry, another nonce, garbage.
        let (exp, rest) = s.split_once('.').unwrap();
        let later = format!("{}.{rest}", exp.parse::<i64>().unwrap() - 10);
        assert!(!session_valid(&t, &later, now));
        assert!(!session_valid(&t, "", now));
        assert!(!session_valid(&t, "1.2.3", now));
        assert!(!session_valid(&Tokens::default(), &s, now));
    }

    #[test]
    fn cookies_parse_from_several_headers() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; hearth_csrf=xyz"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&h, CSRF_COOKIE), Some("xyz"));
        assert_eq!(cookie(&h, "b"), Some("2"));
        assert_eq!(cookie(&h, "c"), None);
    }

    #[test]
    fn next_stays_on_the_dashboard() {
        for (given, want) in [
            (Some("/ui/seeds"), "/ui/seeds"),
            (Some("https://evil.test/"), "/ui/"),
            (Some("//evil.test/ui/"), "/ui/"),
            (Some("/ui//evil.test"), "/ui/"),
            (Some("/api/v1/seeds"), "/ui/"),
            (None, "/ui/"),
        ] {
            assert_eq!(safe_next(given), want, "{given:?}");
        }
    }
}
