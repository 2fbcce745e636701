//! `/api/v1/campaigns`: campaigns and their lifecycle. Rows declared in the config file are
//! read-only in what they are (sender, plan, seeds); their state is the database's, so they
//! start, pause and resume through the API like any other.
//!
//! The lifecycle follows the gate's rules (`preflight/gate.rs`): `start` and `resume` run
//! preflight for the campaign's sender first and refuse while a check fails or cannot be
//! verified; `pause` is a manual pause. A campaign paused by placement, bounces or a sender
//! error stays paused until a person resumes it here; one paused by preflight is lifted only
//! by a passing preflight (the one `resume` runs, or a re-check with `auto_resume`).

use std::collections::HashSet;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppState;
use super::errors::{ApiError, ApiJson, ApiPath, ApiResult};
use super::views::CampaignView;
use crate::config::RawCampaign;
use crate::domain::{CampaignStatus, EmailAddress, PauseReason, Source};
use crate::store::{self, campaigns::CampaignRow};

pub async fn list(State(st): State<AppState>) -> ApiResult<Json<Value>> {
    let rows = store::campaigns::list(st.app.store.pool()).await?;
    let items: Vec<CampaignView> = rows.iter().map(Into::into).collect();
    Ok(Json(json!({ "items": items })))
}

pub async fn get(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<CampaignView>> {
    Ok(Json((&find(&st, id).await?).into()))
}

pub async fn create(
    State(st): State<AppState>,
    ApiJson(raw): ApiJson<RawCampaign>,
) -> ApiResult<(StatusCode, Json<CampaignView>)> {
    if let Some(existing) = store::campaigns::get_by_name(st.app.store.pool(), &raw.name).await? {
        return Err(if existing.source == Source::Config {
            ApiError::read_only(format!("campaign {:?}", existing.name))
        } else {
            ApiError::conflict(
                "already_exists",
                format!(
                    "a campaign named {:?} exists (id {}); PUT /api/v1/campaigns/{} changes it",
                    existing.name, existing.id, existing.id
                ),
            )
        });
    }
    let row = save(&st, &raw).await?;
    tracing::info!(campaign = %row.name, id = row.id, "campaign created through the API");
    Ok((StatusCode::CREATED, Json((&row).into())))
}

pub async fn update(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(raw): ApiJson<RawCampaign>,
) -> ApiResult<Json<CampaignView>> {
    let current = find(&st, id).await?;
    if current.source == Source::Config {
        return Err(ApiError::read_only(format!("campaign {:?}", current.name)));
    }
    if raw.name != current.name {
        return Err(ApiError::invalid(format!(
            "name: a campaign's name is its stable key and cannot change (expected {:?})",
            current.name
        )));
    }
    Ok(Json((&save(&st, &raw).await?).into()))
}

pub async fn delete(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    let current = find(&st, id).await?;
    if current.source == Source::Config {
        return Err(ApiError::read_only(format!("campaign {:?}", current.name)));
    }
    let mut tx = st.app.store.begin().await?;
    if store::campaigns::has_history(&mut *tx, id).await? {
        return Err(ApiError::conflict(
            "has_history",
            format!(
                "campaign {:?} has planned or sent mail and the ledger refers to it; pause it instead",
                current.name
            ),
        ));
    }
    store::campaigns::delete(&mut *tx, id).await?;
    tx.commit().await.map_err(store::StoreError::from)?;
    tracing::info!(campaign = %current.name, id, "campaign deleted through the API");
    Ok(StatusCode::NO_CONTENT)
}

pub async fn start(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Value>> {
    const STARTABLE: &[CampaignStatus] = &[CampaignStatus::Draft, CampaignStatus::Completed];
    let c = find(&st, id).await?;
    if !STARTABLE.contains(&c.status) {
        return Err(invalid_state(
            &c,
            "start applies to a draft or completed campaign (resume a paused one)",
        ));
    }
    gate(&st, &c, "start").await?;
    let now = st.app.clock.now();
    let pool = st.app.store.pool();
    if !store::campaigns::transition(pool, id, STARTABLE, CampaignStatus::Active, None, None, now)
        .await?
    {
        let c = find(&st, id).await?;
        return Err(invalid_state(&c, "it changed while preflight ran"));
    }
    tracing::info!(campaign = %c.name, "campaign started through the API");
    lifecycle_answer(&st, id).await
}

pub async fn pause(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Value>> {
    let c = pause_campaign(&st, id, Via::Api).await?;
    Ok(Json(json!({ "campaign": CampaignView::from(&c) })))
}

pub async fn resume(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<Value>> {
    resume_campaign(&st, id, Via::Api).await?;
    lifecycle_answer(&st, id).await
}

/// Where a person changed a campaign's state: said in its pause detail and in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Via {
    Api,
    Dashboard,
}

impl Via {
    fn as_str(self) -> &'static str {
        match self {
            Via::Api => "the API",
            Via::Dashboard => "the dashboard",
        }
    }
}

/// A manual pause of an active campaign. The API and the dashboard both call this.
pub(super) async fn pause_campaign(st: &AppState, id: i64, via: Via) -> ApiResult<CampaignRow> {
    let c = find(st, id).await?;
    let detail = format!("paused through {}", via.as_str());
    let moved = store::campaigns::transition(
        st.app.store.pool(),
        id,
        &[CampaignStatus::Active],
        CampaignStatus::Paused,
        Some(PauseReason::Manual),
        Some(&detail),
        st.app.clock.now(),
    )
    .await?;
    if !moved {
        let c = find(st, id).await?;
        return Err(invalid_state(&c, "only an active campaign can be paused"));
    }
    tracing::info!(campaign = %c.name, via = via.as_str(), "campaign paused");
    find(st, id).await
}

/// Resumes a paused campaign once its sender passes preflight (whatever the pause reason).
/// The API and the dashboard both call this; the caller plans today's sends after it.
pub(super) async fn resume_campaign(st: &AppState, id: i64, via: Via) -> ApiResult<CampaignRow> {
    let c = find(st, id).await?;
    if c.status != CampaignStatus::Paused {
        return Err(invalid_state(&c, "only a paused campaign can be resumed"));
    }
    // Whatever the reason, the identity must pass before mail flows again; for a preflight
    // pause this passing run is what lifts it.
    gate(st, &c, "resume").await?;
    let moved = store::campaigns::transition(
        st.app.store.pool(),
        id,
        &[CampaignStatus::Paused],
        CampaignStatus::Active,
        None,
        None,
        st.app.clock.now(),
    )
    .await?;
    if !moved {
        let c = find(st, id).await?;
        return Err(invalid_state(&c, "it changed while preflight ran"));
    }
    tracing::info!(campaign = %c.name, reason = ?c.pause_reason, via = via.as_str(), "campaign resumed");
    find(st, id).await
}

/// The campaign after a start or resume, with what the scheduler planned for today.
async fn lifecycle_answer(st: &AppState, id: i64) -> ApiResult<Json<Value>> {
    let planned = plan_today(st).await;
    let c = find(st, id).await?;
    Ok(Json(
        json!({ "campaign": CampaignView::from(&c), "planned_today": planned }),
    ))
}

/// Plans today's sends after a start or resume. The state change is done; a planning failure
/// is logged and retried by the scheduler's own tick, so it does not turn the answer into an
/// error.
pub(super) async fn plan_today(st: &AppState) -> Option<usize> {
    match crate::scheduler::run_once(&st.app).await {
        Ok(n) => Some(n),
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "planning after a lifecycle change failed; the scheduler retries");
            None
        }
    }
}

/// Runs preflight for the campaign's sender; a failing or unverifiable identity refuses.
async fn gate(st: &AppState, c: &CampaignRow, verb: &str) -> ApiResult<()> {
    let sender = super::senders::find(st, c.sender_id).await?;
    match crate::preflight::gate::check_before_start(&st.app, &sender).await? {
        Ok(_) => Ok(()),
        Err((blocked, _)) => Err(ApiError::conflict(
            "preflight_failed",
            format!(
                "campaign {:?} cannot {verb}: preflight of sender {:?} does not pass ({blocked}); the checks and fixes are at GET /api/v1/senders/{}/preflight",
                c.name, sender.record.name, sender.id
            ),
        )),
    }
}

fn invalid_state(c: &CampaignRow, why: &str) -> ApiError {
    let reason = c
        .pause_reason
        .map(|r| format!(" ({r})"))
        .unwrap_or_default();
    ApiError::conflict(
        "invalid_state",
        format!("campaign {:?} is {}{reason}: {why}", c.name, c.status),
    )
}

pub(super) async fn find(st: &AppState, id: i64) -> ApiResult<CampaignRow> {
    store::campaigns::get(st.app.store.pool(), id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("campaign {id}")))
}

/// Validates the plan exactly as the config file's, resolves the sender and seeds in the
/// store, and writes the campaign (status untouched) in one transaction.
async fn save(st: &AppState, raw: &RawCampaign) -> ApiResult<CampaignRow> {
    let pool = st.app.store.pool();
    let pool_seeds: HashSet<EmailAddress> = store::seeds::list(pool)
        .await?
        .into_iter()
        .map(|s| s.record.address)
        .collect();
    let cfg =
        crate::config::validate_campaign(raw, &pool_seeds).map_err(|p| ApiError::problems(&p))?;
    let sender = store::senders::get_by_name(pool, &cfg.sender)
        .await?
        .ok_or_else(|| ApiError::invalid(format!("sender: no sender named {:?}", cfg.sender)))?;
    let spec = serde_json::to_string(&crate::startup::campaign_spec(&cfg))
        .map_err(|e| ApiError::internal("campaign spec does not serialize", &e))?;
    let now = st.app.clock.now();
    let mut tx = st.app.store.begin().await?;
    let id =
        store::campaigns::upsert(&mut *tx, &cfg.name, sender.id, &spec, Source::Api, now).await?;
    store::campaigns::set_auto_resume(&mut *tx, id, cfg.auto_resume, now).await?;
    tx.commit().await.map_err(store::StoreError::from)?;
    find(st, id).await
}
