//! The web dashboard under `/ui/`: server-rendered HTML (maud, escaped by default), inline CSS,
//! server-side SVG charts, no script at all (the CSP forbids it), so it works offline.
//!
//! - `session.rs`: login with an API token → session cookie; CSRF double-submit; security headers
//! - `pages.rs`: campaigns, a campaign (ramp and placement charts), a sender's preflight, seeds
//! - `actions.rs`: the pause and resume forms, through the API's own lifecycle code
//! - `charts.rs`: pure SVG renderers over plain series; `data.rs`: the queries that feed them
//!
//! These routes are not in [`super::routes`]: that table is the JSON API that `/openapi.json`
//! documents. They are guarded by the dashboard session instead of the bearer token.

mod actions;
pub mod charts;
mod data;
mod pages;
pub mod session;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::AppState;
use super::errors::ApiError;
use crate::store::StoreError;

/// The dashboard's routes (merged into [`super::router`]).
pub fn router(state: &AppState) -> Router<AppState> {
    let protected = Router::new()
        .route("/ui/", get(pages::campaigns))
        .route("/ui/campaigns/{id}", get(pages::campaign))
        .route("/ui/campaigns/{id}/pause", post(actions::pause))
        .route("/ui/campaigns/{id}/resume", post(actions::resume))
        .route("/ui/senders/{id}", get(pages::sender))
        .route("/ui/seeds", get(pages::seeds))
        .route("/ui/logout", post(session::logout))
        .route("/ui/{*rest}", get(pages::not_found))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            session::require_session,
        ));
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/login", get(session::login_page).post(session::login))
        .merge(protected)
        .route_layer(axum::middleware::from_fn(session::csrf_and_headers))
}

/// A failure shown as a page: the status and a message for people (never internals: those
/// are logged by the [`ApiError`] conversions).
#[derive(Debug)]
pub struct UiError {
    pub status: StatusCode,
    pub message: String,
}

impl UiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        UiError {
            status,
            message: message.into(),
        }
    }
}

impl From<ApiError> for UiError {
    fn from(e: ApiError) -> Self {
        UiError::new(e.status, e.message)
    }
}

impl From<StoreError> for UiError {
    fn from(e: StoreError) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error");
        let page = layout_bare(
            title,
            html! {
                h1 { (title) }
                p.flash.error { (self.message) }
                p { a href="/ui/" { "Back to the campaigns" } }
            },
        );
        (self.status, page).into_response()
    }
}

pub type UiResult<T> = Result<T, UiError>;

const STYLE: &str = r#"
:root { --fg:#1d232a; --muted:#5f6b77; --line:#d8dee4; --bg:#f7f8fa; --accent:#1565c0; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color:var(--fg); background:var(--bg); }
header { background:#20303f; color:#fff; padding:.6rem 1.2rem; display:flex; gap:1.2rem; align-items:center; }
header a { color:#fff; text-decoration:none; } header .brand { font-weight:700; margin-right:1rem; }
header form { margin-left:auto; }
main { max-width:1100px; margin:0 auto; padding:1rem 1.2rem 3rem; }
h1 { font-size:1.5rem; margin:.8rem 0; } h2 { font-size:1.15rem; margin:1.6rem 0 .6rem; }
table { border-collapse:collapse; width:100%; background:#fff; border:1px solid var(--line); }
th, td { text-align:left; padding:.4rem .6rem; border-bottom:1px solid var(--line); vertical-align:top; }
th { background:#eef1f4; font-weight:600; font-size:.9rem; }
a { color:var(--accent); }
.badge { display:inline-block; padding:.05rem .5rem; border-radius:1rem; font-size:.85rem; font-weight:600; background:#e0e0e0; }
.s-active, .v-pass { background:#d7f0d8; color:#1b5e20; }
.s-paused, .v-warn { background:#fff1c2; color:#7a5600; }
.s-draft, .s-completed { background:#e3e8ee; color:#37474f; }
.v-fail, .s-broken { background:#fbd5d5; color:#8e1b1b; }
.v-unknown, .s-disabled { background:#e6dcf5; color:#4a2b7a; }
.muted { color:var(--muted); } .small { font-size:.85rem; }
.flash { padding:.6rem .8rem; border-radius:.3rem; background:#e3f2fd; border:1px solid #90caf9; }
.flash.error { background:#fdecea; border-color:#f5a3a3; }
form.inline { display:inline; }
.actions { margin:.5rem 0 1rem; }
button { font:inherit; padding:.3rem .9rem; border-radius:.3rem; border:1px solid #8a97a3; background:#fff; cursor:pointer; }
button.pause { border-color:#c77700; color:#8a5200; } button.resume { border-color:#2e7d32; color:#1b5e20; }
.facts { display:grid; grid-template-columns:max-content 1fr; gap:.2rem 1rem; margin:.5rem 0 1rem; }
.facts dt { color:var(--muted); } .facts dd { margin:0; }
figure.chart { margin:1rem 0; background:#fff; border:1px solid var(--line); padding:.6rem; }
figure.chart figcaption { font-weight:600; margin-bottom:.3rem; }
figure.chart svg { width:100%; height:auto; display:block; }
svg text { font:11px system-ui, sans-serif; fill:#444; }
ul.legend { list-style:none; padding:0; margin:.3rem 0 0; display:flex; gap:1rem; flex-wrap:wrap; font-size:.9rem; }
.swatch { display:inline-block; width:.8rem; height:.8rem; margin-right:.3rem; vertical-align:-1px; border-radius:2px; }
.grid2 { display:grid; grid-template-columns:repeat(auto-fit, minmax(460px, 1fr)); gap:0 1rem; }
pre.evidence { white-space:pre-wrap; margin:0; font-size:.85rem; }
form.login { display:flex; flex-direction:column; gap:.5rem; max-width:24rem; }
form.login input { font:inherit; padding:.4rem; }
details summary { cursor:pointer; }
"#;

/// A page without the navigation (login, errors).
pub fn layout_bare(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Hearth" }
                style { (PreEscaped(STYLE)) }
            }
            body { main { (body) } }
        }
    }
}

/// A dashboard page: navigation, and a logout button when logins are needed.
pub fn layout(title: &str, csrf: &str, logins: bool, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Hearth" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    a.brand href="/ui/" { "Hearth" }
                    a href="/ui/" { "Campaigns" }
                    a href="/ui/seeds" { "Seeds" }
                    @if logins {
                        form.inline method="post" action="/ui/logout" {
                            input type="hidden" name=(session::CSRF_FIELD) value=(csrf);
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}
