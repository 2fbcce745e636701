//! The HTTP surface. `router()` builds it (tests call it with `oneshot`); `serve()` binds it.
//! This is the only module that knows status codes and JSON shapes.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::status::{Health, StatusBoard};
use crate::store::Store;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub status: StatusBoard,
    pub clock: SharedClock,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// Liveness: the process answers.
async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, Json(json!({ "status": "ok" })))
}

/// Readiness: the database answers. Mail servers that fail are reported, not fatal: the
/// service is ready to do what it can, and says what it cannot.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let db = state.store.ping().await;
    let components = state.status.snapshot();
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
        "backend": state.store.backend().as_str(),
        "components": components,
        "now": state.clock.now(),
    });
    (code, Json(body))
}

/// Binds `addr` and serves until `shutdown` fires. Returns the bound address through `bound`.
pub async fn serve(
    addr: SocketAddr,
    state: AppState,
    shutdown: CancellationToken,
    bound: tokio::sync::oneshot::Sender<SocketAddr>,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tracing::info!(%local, "HTTP listening");
    let _ = bound.send(local);
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
