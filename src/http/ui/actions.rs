//! The pause and resume forms. They go through the same lifecycle code as
//! `POST /api/v1/campaigns/{id}/pause|resume` (`http/campaigns.rs`, which follows the gate's
//! rules): a pause is manual, a resume runs preflight first. Success redirects to the campaign
//! page (POST, redirect, GET); a refusal renders the campaign page with the reason and the
//! API's status code.

use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};

use super::pages::{Flash, campaign_page};
use super::session::{CheckedForm, Csrf};
use crate::http::AppState;
use crate::http::campaigns::{Via, pause_campaign, plan_today, resume_campaign};
use crate::http::errors::{ApiError, ApiPath};

pub async fn pause(
    State(st): State<AppState>,
    Extension(Csrf(csrf)): Extension<Csrf>,
    ApiPath(id): ApiPath<i64>,
    _form: CheckedForm,
) -> Response {
    match pause_campaign(&st, id, Via::Dashboard).await {
        Ok(_) => Redirect::to(&format!("/ui/campaigns/{id}?done=paused")).into_response(),
        Err(e) => refused(&st, &csrf, id, e).await,
    }
}

pub async fn resume(
    State(st): State<AppState>,
    Extension(Csrf(csrf)): Extension<Csrf>,
    ApiPath(id): ApiPath<i64>,
    _form: CheckedForm,
) -> Response {
    match resume_campaign(&st, id, Via::Dashboard).await {
        Ok(_) => {
            plan_today(&st).await;
            Redirect::to(&format!("/ui/campaigns/{id}?done=resumed")).into_response()
        }
        Err(e) => refused(&st, &csrf, id, e).await,
    }
}

/// The campaign page with why the change was refused, under the API's status code.
async fn refused(st: &AppState, csrf: &str, id: i64, e: ApiError) -> Response {
    let status = e.status;
    match campaign_page(st, csrf, id, None, Some(Flash::Failed(e.message))).await {
        Ok(page) => (status, page).into_response(),
        Err(page_error) => page_error.into_response(),
    }
}
