//! `/api/v1/campaigns/{id}/report`: the campaign's report from the daily roll-ups (see
//! `report/`), as JSON or CSV.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use super::errors::{ApiError, ApiPath, ApiQuery, ApiResult};
use crate::report::{self, ReportError};

/// Days a report covers when the query names none.
const DEFAULT_DAYS: u32 = 30;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    /// Plan days ending today (in the plan's time zone), 1 to `report::MAX_DAYS`.
    pub days: Option<u32>,
    /// `json` (default) or `csv`.
    pub format: Option<String>,
}

pub async fn campaign_report(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<ReportQuery>,
) -> ApiResult<Response> {
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "format: expected json or csv, got {other:?}"
            )));
        }
    };
    let c = super::campaigns::find(&st, id).await?;
    let days = q.days.unwrap_or(DEFAULT_DAYS);
    let r = report::report_for(&st.app.store, &c, days, st.app.clock.now())
        .await
        .map_err(|e| match e {
            ReportError::BadDays(_) => ApiError::invalid(format!("days: {e}")),
            ReportError::NoSuchCampaign(_) => ApiError::not_found(format!("campaign {id}")),
            ReportError::Store(e) => e.into(),
        })?;
    if csv {
        let body = r
            .to_csv()
            .map_err(|e| anyhow::anyhow!("writing the report as CSV: {e}"))?;
        Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"report.csv\"",
                ),
            ],
            body,
        )
            .into_response())
    } else {
        Ok(Json(r).into_response())
    }
}
