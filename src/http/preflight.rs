//! `/api/v1/senders/{id}/preflight`: run the identity checks now, and read past runs.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::errors::{ApiError, ApiPath, ApiQuery, ApiResult};
use super::views::RunView;
use crate::domain::PreflightTrigger;
use crate::store;

/// Runs every check for the sender, stores the run, and applies it to the sender's
/// campaigns exactly as a scheduled re-check does (a failure pauses running campaigns with
/// reason `preflight`; a pass resumes those preflight paused, when `auto_resume` is on).
pub async fn run(State(st): State<AppState>, ApiPath(id): ApiPath<i64>) -> ApiResult<Json<Value>> {
    let sender = super::senders::find(&st, id).await?;
    let (_, applied) =
        crate::preflight::gate::recheck_sender(&st.app, &sender, PreflightTrigger::Manual).await?;
    let run = store::preflight::latest_finished_run(st.app.store.pool(), id)
        .await?
        .ok_or_else(|| ApiError::internal("preflight run not stored", &"no finished run"))?;
    Ok(Json(json!({
        "run": RunView::from(&run),
        "paused": applied.paused,
        "resumed": applied.resumed,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Runs per page, 1 to 100 (default 20).
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The sender's runs, newest first, each with its checks.
pub async fn history(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> ApiResult<Json<Value>> {
    super::senders::find(&st, id).await?;
    let limit = super::ledger::page_limit(q.limit, 20)?;
    let before = super::ledger::parse_cursor(q.cursor.as_deref())?;
    let mut runs = store::preflight::list_runs(st.app.store.pool(), id, before, limit + 1).await?;
    let next = super::ledger::next_cursor(&mut runs, limit, |r| r.id);
    let items: Vec<RunView> = runs.iter().map(Into::into).collect();
    Ok(Json(json!({ "items": items, "next_cursor": next })))
}
