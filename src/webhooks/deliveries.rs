//! `webhook_deliveries`: one row per event and endpoint, claimed with a lease.

use sqlx::{AnyPool, AssertSqlSafe};

use crate::domain::WebhookStatus;
use crate::store::{Backend, Store, StoreError};

/// How long a claimed delivery is leased (longer than any attempt's timeout).
const LEASE_SECS: i64 = 600;

pub struct Due {
    pub id: i64,
    pub event_id: i64,
    pub endpoint: String,
    pub attempts: i64,
}

/// A pending delivery to `endpoint` for every event since `since` that has none yet.
pub async fn fan_out(pool: &AnyPool, endpoint: &str, since: i64) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "INSERT INTO webhook_deliveries (event_id, endpoint, status, run_at) \
         SELECT e.id, $1, $2, e.at FROM state_events e \
         WHERE e.at >= $3 AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d \
           WHERE d.event_id = e.id AND d.endpoint = $1) \
         ON CONFLICT (event_id, endpoint) DO NOTHING",
    )
    .bind(endpoint)
    .bind(WebhookStatus::Pending.as_str())
    .bind(since)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Leases up to `limit` due deliveries (oldest first) and counts the attempt.
pub async fn claim_due(store: &Store, now: i64, limit: i64) -> Result<Vec<Due>, StoreError> {
    let lock = match store.backend() {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let sql = format!(
        "UPDATE webhook_deliveries SET lease_until = $1, attempts = attempts + 1 \
         WHERE id IN (SELECT id FROM webhook_deliveries WHERE status = $2 AND run_at <= $3 \
           AND (lease_until IS NULL OR lease_until < $3) ORDER BY id LIMIT $4{lock}) \
         RETURNING id, event_id, endpoint, attempts"
    );
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(now + LEASE_SECS)
        .bind(WebhookStatus::Pending.as_str())
        .bind(now)
        .bind(limit)
        .fetch_all(store.pool())
        .await?;
    use sqlx::Row as _;
    let mut out = rows
        .iter()
        .map(|r| {
            Ok(Due {
                id: r.try_get("id")?,
                event_id: r.try_get("event_id")?,
                endpoint: r.try_get("endpoint")?,
                attempts: r.try_get("attempts")?,
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    out.sort_by_key(|d| d.id);
    Ok(out)
}

pub async fn finish(
    pool: &AnyPool,
    id: i64,
    status: WebhookStatus,
    error: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE webhook_deliveries SET status = $2, last_error = $3, lease_until = NULL, \
         done_at = $4 WHERE id = $1",
    )
    .bind(id)
    .bind(status.as_str())
    .bind(error)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn retry(pool: &AnyPool, id: i64, error: &str, run_at: i64) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE webhook_deliveries SET last_error = $2, run_at = $3, lease_until = NULL \
         WHERE id = $1",
    )
    .bind(id)
    .bind(error)
    .bind(run_at)
    .execute(pool)
    .await?;
    Ok(())
}

/// (endpoint, event id, status, attempts) of every delivery, for tests and the CLI.
pub async fn list(pool: &AnyPool) -> Result<Vec<(String, i64, String, i64)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT endpoint, event_id, status, attempts FROM webhook_deliveries ORDER BY id",
    )
    .fetch_all(pool)
    .await?)
}
