//! The HTTP surface. `router()` builds it (tests call it with `oneshot`); `serve()` binds it.
//! This is the only module that knows status codes and JSON shapes.
//!
//! Every route is declared once, in [`routes`], which both builds the router and lets a test
//! check that the OpenAPI document (`openapi.rs`) describes each of them.
//!
//! - `auth.rs`: bearer tokens, the non-loopback guard
//! - `errors.rs`: `ApiError` (`{"error":{"code","message"}}`) and extractors that use it
//! - `senders.rs`, `seeds.rs`, `campaigns.rs`, `preflight.rs`, `ledger.rs`: `/api/v1/…`
//! - `views.rs`: the JSON shapes of rows (secrets shown as their kind only)
//! - `metrics.rs`: `/metrics`; `openapi.rs`: `/openapi.json`
//! - `ui/`: the web dashboard under `/ui/` (HTML, its own session login and CSRF checks)

pub mod auth;
mod campaigns;
pub mod errors;
mod ledger;
mod metrics;
pub mod openapi;
mod preflight;
mod reports;
mod seeds;
mod senders;
pub mod ui;
mod views;

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::Router;
use axum::extract::State;
use axum::handler::Handler;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Json};
use axum::routing::{MethodFilter, MethodRouter, on};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::startup::App;
use crate::status::Health;

pub use auth::{OpenBindError, Tokens, check_bind};
pub use metrics::CONTENT_TYPE as METRICS_CONTENT_TYPE;

/// What every handler gets: the application and the accepted API tokens.
#[derive(Clone)]
pub struct AppState {
    pub app: App,
    pub tokens: Tokens,
}

impl AppState {
    /// The state for `app`, with the tokens of its config.
    pub fn new(app: App) -> Self {
        let tokens = Tokens::new(&app.config.server.api_tokens);
        AppState { app, tokens }
    }

    /// Relative file paths given to the API (`ca_file`, DKIM `key_file`) are relative to the
    /// config file's directory, as in the config file itself.
    fn base_dir(&self) -> PathBuf {
        self.app
            .config
            .path
            .as_deref()
            .and_then(std::path::Path::parent)
            .map(PathBuf::from)
            .unwrap_or_default()
    }
}

/// One route: method, path (axum syntax, `{id}`), and whether it needs the bearer token.
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub authenticated: bool,
    handler: MethodRouter<AppState>,
}

fn route<H, T>(method: Method, path: &'static str, authenticated: bool, handler: H) -> Route
where
    H: Handler<T, AppState>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone()).expect("a standard method");
    Route {
        method,
        path,
        authenticated,
        handler: on(filter, handler),
    }
}

/// Every route the server answers.
pub fn routes() -> Vec<Route> {
    use Method as M;
    const OPEN: bool = false;
    const AUTH: bool = true;
    vec![
        route(M::GET, "/healthz", OPEN, healthz),
        route(M::GET, "/readyz", OPEN, readyz),
        route(M::GET, "/openapi.json", OPEN, openapi::document),
        route(M::GET, "/metrics", AUTH, metrics::metrics),
        route(M::GET, "/api/v1/senders", AUTH, senders::list),
        route(M::POST, "/api/v1/senders", AUTH, senders::create),
        route(M::GET, "/api/v1/senders/{id}", AUTH, senders::get),
        route(M::PUT, "/api/v1/senders/{id}", AUTH, senders::update),
        route(M::DELETE, "/api/v1/senders/{id}", AUTH, senders::delete),
        route(
            M::POST,
            "/api/v1/senders/{id}/preflight",
            AUTH,
            preflight::run,
        ),
        route(
            M::GET,
            "/api/v1/senders/{id}/preflight",
            AUTH,
            preflight::history,
        ),
        route(M::GET, "/api/v1/seeds", AUTH, seeds::list),
        route(M::POST, "/api/v1/seeds", AUTH, seeds::create),
        route(M::GET, "/api/v1/seeds/{id}", AUTH, seeds::get),
        route(M::PUT, "/api/v1/seeds/{id}", AUTH, seeds::update),
        route(M::DELETE, "/api/v1/seeds/{id}", AUTH, seeds::delete),
        route(M::GET, "/api/v1/campaigns", AUTH, campaigns::list),
        route(M::POST, "/api/v1/campaigns", AUTH, campaigns::create),
        route(M::GET, "/api/v1/campaigns/{id}", AUTH, campaigns::get),
        route(M::PUT, "/api/v1/campaigns/{id}", AUTH, campaigns::update),
        route(M::DELETE, "/api/v1/campaigns/{id}", AUTH, campaigns::delete),
        route(
            M::POST,
            "/api/v1/campaigns/{id}/start",
            AUTH,
            campaigns::start,
        ),
        route(
            M::POST,
            "/api/v1/campaigns/{id}/pause",
            AUTH,
            campaigns::pause,
        ),
        route(
            M::POST,
            "/api/v1/campaigns/{id}/resume",
            AUTH,
            campaigns::resume,
        ),
        route(
            M::GET,
            "/api/v1/campaigns/{id}/report",
            AUTH,
            reports::campaign_report,
        ),
        route(M::GET, "/api/v1/ledger", AUTH, ledger::ledger),
        route(M::GET, "/api/v1/outbox", AUTH, ledger::outbox),
    ]
}

pub fn router(state: AppState) -> Router {
    let mut open = Router::new();
    let mut protected = Router::new();
    for r in routes() {
        if r.authenticated {
            protected = protected.route(r.path, r.handler);
        } else {
            open = open.route(r.path, r.handler);
        }
    }
    let protected = protected.route_layer(axum::middleware::from_fn_with_state(
        state.tokens.clone(),
        auth::require_token,
    ));
    let dashboard = ui::router(&state);
    open.merge(protected)
        .merge(dashboard)
        .fallback(not_found)
        .with_state(state)
}

async fn not_found() -> errors::ApiError {
    errors::ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint; see /openapi.json",
    )
}

/// Liveness: the process answers.
async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, Json(json!({ "status": "ok" })))
}

/// Readiness: the database answers. Mail servers that fail are reported, not fatal: the
/// service is ready to do what it can, and says what it cannot.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let app = &state.app;
    let db = app.store.ping().await;
    let components = app.status.snapshot();
    let degraded = components.values().any(|c| c.health != Health::Ok);
    let (code, status) = match (&db, degraded) {
        (Err(_), _) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        (Ok(()), true) => (StatusCode::OK, "degraded"),
        (Ok(()), false) => (StatusCode::OK, "ready"),
    };
    if let Err(e) = &db {
        tracing::warn!(error = %e, "readiness: database unreachable");
    }
    let body = json!({
        "status": status,
        "database": if db.is_ok() { "ok" } else { "unreachable" },
        "backend": app.store.backend().as_str(),
        "components": components,
        "now": app.clock.now(),
    });
    (code, Json(body))
}

/// Binds `addr` and serves until `shutdown` fires. Returns the bound address through `bound`.
/// Refuses (before binding) a non-loopback address when no API token is configured.
pub async fn serve(
    addr: SocketAddr,
    state: AppState,
    shutdown: CancellationToken,
    bound: tokio::sync::oneshot::Sender<SocketAddr>,
) -> std::io::Result<()> {
    check_bind(addr, &state.tokens)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::PermissionDenied, e))?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tracing::info!(%local, auth = !state.tokens.is_empty(), "HTTP listening");
    let _ = bound.send(local);
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
