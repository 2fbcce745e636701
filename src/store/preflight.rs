//! Preflight runs (one per check of a sender's identity) and their per-check results.

use sqlx::any::AnyRow;
use sqlx::{Any, Executor};

use crate::domain::{PreflightTrigger, Verdict};

use super::StoreError;
use super::row;

const RUNS: &str = "preflight_runs";
const RESULTS: &str = "preflight_results";

/// The outcome of one check within a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCheckResult {
    /// Stable id of the check (`spf`, `dkim`, `ptr`, …).
    pub check_id: String,
    pub verdict: Verdict,
    /// What was observed (records, replies), for people.
    pub evidence: String,
    /// What to change, when the verdict is not a pass.
    pub remediation: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResultRow {
    pub id: i64,
    pub result: NewCheckResult,
}

/// A run with its results in the order they were added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreflightRun {
    pub id: i64,
    pub sender_id: i64,
    pub trigger: PreflightTrigger,
    /// `None` until the run has finished.
    pub verdict: Option<Verdict>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub results: Vec<CheckResultRow>,
}

// The run and its results in one statement (so any executor will do).
macro_rules! run_with_results {
    ($which_run:literal) => {
        concat!(
            "SELECT r.id, r.sender_id, r.trigger, r.verdict, r.started_at, r.finished_at, \
               x.id AS result_id, x.check_id, x.verdict AS result_verdict, x.evidence, \
               x.remediation \
             FROM preflight_runs r LEFT JOIN preflight_results x ON x.run_id = r.id \
             WHERE r.id = (",
            $which_run,
            ") ORDER BY x.id"
        )
    };
}

/// Opens a run for the sender. Returns its id.
pub async fn start_run<'c, E>(
    ex: E,
    sender_id: i64,
    trigger: PreflightTrigger,
    now: i64,
) -> Result<i64, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let r = sqlx::query(
        "INSERT INTO preflight_runs (sender_id, trigger, started_at) VALUES ($1, $2, $3) \
         RETURNING id",
    )
    .bind(sender_id)
    .bind(trigger.as_str())
    .bind(now)
    .fetch_one(ex)
    .await?;
    row::int(&r, "id")
}

/// Adds one check's result to the run. Returns its id.
pub async fn add_result<'c, E>(
    ex: E,
    run_id: i64,
    result: &NewCheckResult,
) -> Result<i64, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let r = sqlx::query(
        "INSERT INTO preflight_results (run_id, check_id, verdict, evidence, remediation) \
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(run_id)
    .bind(result.check_id.clone())
    .bind(result.verdict.as_str())
    .bind(result.evidence.clone())
    .bind(result.remediation.clone())
    .fetch_one(ex)
    .await?;
    row::int(&r, "id")
}

/// Closes the run with its overall verdict. Returns false if it was unknown or already
/// finished.
pub async fn finish_run<'c, E>(
    ex: E,
    run_id: i64,
    verdict: Verdict,
    now: i64,
) -> Result<bool, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let done = sqlx::query(
        "UPDATE preflight_runs SET verdict = $2, finished_at = $3 \
         WHERE id = $1 AND finished_at IS NULL",
    )
    .bind(run_id)
    .bind(verdict.as_str())
    .bind(now)
    .execute(ex)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The sender's most recent run (finished or not), with its results.
pub async fn latest_run<'c, E>(ex: E, sender_id: i64) -> Result<Option<PreflightRun>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let rows = sqlx::query(run_with_results!(
        "SELECT id FROM preflight_runs WHERE sender_id = $1 ORDER BY id DESC LIMIT 1"
    ))
    .bind(sender_id)
    .fetch_all(ex)
    .await?;
    decode(&rows)
}

/// The sender's most recent finished run, with its results (what a gate should look at).
pub async fn latest_finished_run<'c, E>(
    ex: E,
    sender_id: i64,
) -> Result<Option<PreflightRun>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let rows = sqlx::query(run_with_results!(
        "SELECT id FROM preflight_runs WHERE sender_id = $1 AND finished_at IS NOT NULL \
         ORDER BY id DESC LIMIT 1"
    ))
    .bind(sender_id)
    .fetch_all(ex)
    .await?;
    decode(&rows)
}

pub async fn get_run<'c, E>(ex: E, run_id: i64) -> Result<Option<PreflightRun>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let rows = sqlx::query(run_with_results!("$1"))
        .bind(run_id)
        .fetch_all(ex)
        .await?;
    decode(&rows)
}

fn decode(rows: &[AnyRow]) -> Result<Option<PreflightRun>, StoreError> {
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let mut run = PreflightRun {
        id: row::int(first, "id")?,
        sender_id: row::int(first, "sender_id")?,
        trigger: row::parsed(first, RUNS, "trigger")?,
        verdict: row::parsed_opt(first, RUNS, "verdict")?,
        started_at: row::int(first, "started_at")?,
        finished_at: row::int_opt(first, "finished_at")?,
        results: Vec::with_capacity(rows.len()),
    };
    for r in rows {
        // A run without results comes back as one row with NULL result columns.
        let Some(id) = row::int_opt(r, "result_id")? else {
            continue;
        };
        run.results.push(CheckResultRow {
            id,
            result: NewCheckResult {
                check_id: row::text(r, "check_id")?,
                verdict: row::parsed(r, RESULTS, "result_verdict")?,
                evidence: row::text(r, "evidence")?,
                remediation: row::text_opt(r, "remediation")?,
            },
        });
    }
    Ok(Some(run))
}

/// Verdicts of the latest finished runs of a sender, newest first: `(verdict, started_at)`.
pub async fn recent_verdicts<'c, E>(
    ex: E,
    sender_id: i64,
    limit: i64,
) -> Result<Vec<(Verdict, i64)>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let rows = sqlx::query(
        "SELECT verdict, started_at FROM preflight_runs \
         WHERE sender_id = $1 AND finished_at IS NOT NULL ORDER BY id DESC LIMIT $2",
    )
    .bind(sender_id)
    .bind(limit)
    .fetch_all(ex)
    .await?;
    rows.iter()
        .map(|r| {
            let v: String = sqlx::Row::try_get(r, "verdict")?;
            let at: i64 = sqlx::Row::try_get(r, "started_at")?;
            let verdict = v.parse::<Verdict>().map_err(|e| StoreError::Corrupt {
                table: "preflight_runs",
                column: "verdict",
                detail: e.to_string(),
            })?;
            Ok((verdict, at))
        })
        .collect()
}

/// One page of the sender's runs, newest first, with their results: runs with an id below
/// `before` (all when `None`), at most `limit`.
pub async fn list_runs(
    pool: &sqlx::AnyPool,
    sender_id: i64,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<PreflightRun>, StoreError> {
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM preflight_runs WHERE sender_id = $1 AND id < $2 \
         ORDER BY id DESC LIMIT $3",
    )
    .bind(sender_id)
    .bind(before.unwrap_or(i64::MAX))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let mut runs = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(run) = get_run(pool, id).await? {
            runs.push(run);
        }
    }
    Ok(runs)
}
