//! `/api/v1/ledger` (placements with filters, cursor-paginated) and `/api/v1/outbox`
//! (queue depth).

use axum::Json;
use axum::extract::State;
use chrono::{NaiveDate, NaiveTime};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::errors::{ApiError, ApiQuery, ApiResult};
use super::views::LedgerView;
use crate::domain::{OutboxStatus, Placement, Provider};
use crate::store;
use crate::store::ledger::LedgerFilter;

/// The largest page the API returns.
pub const MAX_PAGE: i64 = 500;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerQuery {
    pub campaign: Option<i64>,
    pub provider: Option<String>,
    pub folder_class: Option<String>,
    /// Sent at or after: RFC 3339, a date (`2026-11-29`, midnight UTC) or unix seconds.
    pub since: Option<String>,
    /// Sent before; same forms.
    pub until: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

pub async fn ledger(
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<LedgerQuery>,
) -> ApiResult<Json<Value>> {
    let filter = LedgerFilter {
        campaign_id: q.campaign,
        provider: q
            .provider
            .as_deref()
            .map(|p| {
                p.parse::<Provider>()
                    .map_err(|e| ApiError::bad_request(format!("provider: {e}")))
            })
            .transpose()?,
        placement: q
            .folder_class
            .as_deref()
            .map(|p| {
                p.parse::<Placement>()
                    .map_err(|e| ApiError::bad_request(format!("folder_class: {e}")))
            })
            .transpose()?,
        sent_from: q
            .since
            .as_deref()
            .map(|t| parse_time("since", t))
            .transpose()?,
        sent_until: q
            .until
            .as_deref()
            .map(|t| parse_time("until", t))
            .transpose()?,
    };
    let limit = page_limit(q.limit, 100)?;
    let before = parse_cursor(q.cursor.as_deref())?;
    let mut rows = store::ledger::page(st.app.store.pool(), &filter, before, limit + 1).await?;
    let next = next_cursor(&mut rows, limit, |r| r.placement.id);
    let items: Vec<LedgerView> = rows.iter().map(Into::into).collect();
    Ok(Json(json!({ "items": items, "next_cursor": next })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxQuery {
    pub campaign: Option<i64>,
}

/// Rows per status, how many are due now, and the depth (planned + sending).
pub async fn outbox(
    State(st): State<AppState>,
    ApiQuery(q): ApiQuery<OutboxQuery>,
) -> ApiResult<Json<Value>> {
    let pool = st.app.store.pool();
    let counts = store::stats::outbox_by_status(pool, q.campaign).await?;
    let due = store::stats::outbox_due(pool, q.campaign, st.app.clock.now()).await?;
    let count = |s: OutboxStatus| {
        counts
            .iter()
            .find(|(k, _)| *k == s)
            .map(|(_, n)| *n)
            .unwrap_or(0)
    };
    let by_status: serde_json::Map<String, Value> = OutboxStatus::ALL
        .iter()
        .map(|s| (s.as_str().to_owned(), json!(count(*s))))
        .collect();
    Ok(Json(json!({
        "campaign": q.campaign,
        "depth": count(OutboxStatus::Planned) + count(OutboxStatus::Sending),
        "due": due,
        "by_status": by_status,
    })))
}

pub(super) fn page_limit(limit: Option<i64>, default: i64) -> ApiResult<i64> {
    match limit {
        None => Ok(default),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::bad_request(format!(
            "limit: expected 1 to {MAX_PAGE}, got {n}"
        ))),
    }
}

/// A cursor is the id of the last row of the previous page; rows come newest first.
pub(super) fn parse_cursor(cursor: Option<&str>) -> ApiResult<Option<i64>> {
    cursor
        .map(|c| {
            c.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                ApiError::bad_request("cursor: expected the next_cursor of a previous page")
            })
        })
        .transpose()
}

/// Given `limit + 1` rows, drops the extra one and returns the cursor of the next page
/// (`None` on the last page).
pub(super) fn next_cursor<T>(
    rows: &mut Vec<T>,
    limit: i64,
    id: impl Fn(&T) -> i64,
) -> Option<String> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|r| id(r).to_string())
    } else {
        None
    }
}

/// RFC 3339, a UTC date, or unix seconds.
pub(super) fn parse_time(key: &str, text: &str) -> ApiResult<i64> {
    let t = text.trim();
    if let Ok(n) = t.parse::<i64>() {
        return Ok(n);
    }
    if let Ok(d) = chrono::DateTime::parse_from_rfc3339(t) {
        return Ok(d.timestamp());
    }
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(d.and_time(NaiveTime::MIN).and_utc().timestamp());
    }
    Err(ApiError::bad_request(format!(
        "{key}: expected RFC 3339 (2026-11-29T12:00:00Z), a date (2026-11-29) or unix seconds, got {text:?}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_in_three_forms() {
        assert_eq!(parse_time("t", "1764374400").unwrap(), 1_764_374_400);
        assert_eq!(parse_time("t", "2025-11-29").unwrap(), 1_764_374_400);
        assert_eq!(
            parse_time("t", "2025-11-29T01:00:00+01:00").unwrap(),
            1_764_374_400
        );
        assert!(parse_time("t", "yesterday").is_err());
    }

    #[test]
    fn cursors() {
        let mut rows = vec![9, 8, 7];
        assert_eq!(next_cursor(&mut rows, 2, |r| *r), Some("8".into()));
        assert_eq!(rows, vec![9, 8]);
        let mut rows = vec![9, 8];
        assert_eq!(next_cursor(&mut rows, 2, |r| *r), None);
        assert_eq!(parse_cursor(Some("8")).unwrap(), Some(8));
        assert!(parse_cursor(Some("x")).is_err());
        assert!(page_limit(Some(0), 10).is_err());
        assert_eq!(page_limit(None, 10).unwrap(), 10);
    }
}
