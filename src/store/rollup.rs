//! Daily roll-ups of the placement ledger: one row per campaign, plan day and provider
//! (`placement_rollups`) plus its latency histogram (`rollup_latency`).
//!
//! How they stay true: triggers on `engagement_events` and outbox status changes (and, on
//! PostgreSQL, a statement trigger on `placements`) mark the campaign day dirty
//! (`rollup_dirty`) in the writer's own transaction, so no write path can forget to; the
//! outbox's inserts are marked by their writers with [`mark_days`] (planning writes a million
//! rows a day: a trigger per row cost more than the rest of the insert, see migration
//! 20261129000100). On SQLite, which has only row triggers, new placements are found by the
//! refresh itself, by id above a watermark (see `mark_new_placements` and migration
//! 20261130000010): a folder scan records a thousand at a time. [`refresh`] then recomputes each dirty day from its source rows and replaces
//! its roll-up rows, all in one transaction, and clears the mark only if no write bumped its
//! `gen` meanwhile. Recomputing a whole day is idempotent, so a refresh that dies half-way,
//! or runs on two nodes at once (PostgreSQL skips keys another node holds), is harmless.

use std::fmt::Write as _;
use std::sync::LazyLock;

use chrono::NaiveDate;
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row as _};

use crate::domain::{EngagementAction, OutboxStatus, Placement, Provider, SendKind};
use crate::report::latency::{self, Histogram};
use crate::report::model::{Counts, DayRollup};

use super::{Backend, Store, StoreError, row};

const TABLE: &str = "placement_rollups";
/// Campaign days recomputed per transaction.
pub const DEFAULT_BATCH: usize = 256;
/// The receivers' word for a passing SPF, DKIM or DMARC result (RFC 8601).
const PASS: &str = "pass";

/// What a refresh did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Refreshed {
    /// Campaign days recomputed.
    pub days: u64,
    /// Roll-up rows written.
    pub rows: u64,
}

/// Marks campaign days dirty (their outbox rows changed), in the caller's transaction: the
/// statement's part of the outbox insert trigger this replaces. Sorted and deduplicated, so
/// concurrent writers take the keys' locks in one order.
pub async fn mark_days(
    conn: &mut sqlx::AnyConnection,
    days: &[(i64, &str)],
) -> Result<(), StoreError> {
    let mut days = days.to_vec();
    days.sort_unstable();
    days.dedup();
    let backend = super::outbox_bulk::backend(conn);
    for part in days.chunks(super::outbox_bulk::max_params(backend) / 2) {
        let mut q = sqlx::query(AssertSqlSafe(super::outbox_bulk::dirty_sql(
            backend,
            part.len(),
        )));
        for (campaign_id, day) in part {
            q = q.bind(*campaign_id).bind(*day);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Recomputes every dirty campaign day (of one campaign, or all), `batch` days per
/// transaction, until none is left.
pub async fn refresh(
    store: &Store,
    campaign_id: Option<i64>,
    batch: usize,
) -> Result<Refreshed, StoreError> {
    let mut done = Refreshed::default();
    loop {
        let step = refresh_batch(store, campaign_id, batch.max(1)).await?;
        if step.days == 0 {
            return Ok(done);
        }
        done.days += step.days;
        done.rows += step.rows;
    }
}

/// One transaction's worth of [`refresh`].
pub async fn refresh_batch(
    store: &Store,
    campaign_id: Option<i64>,
    batch: usize,
) -> Result<Refreshed, StoreError> {
    let mut tx = store.pool().begin().await?;
    if store.backend() == Backend::Sqlite {
        mark_new_placements(&mut tx).await?;
    }
    let lock = match store.backend() {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let filter = if campaign_id.is_some() {
        "WHERE campaign_id = $2 "
    } else {
        ""
    };
    let sql = format!(
        "SELECT campaign_id, plan_day, gen FROM rollup_dirty {filter}\
         ORDER BY campaign_id, plan_day LIMIT $1{lock}"
    );
    let mut q = sqlx::query(AssertSqlSafe(sql)).bind(batch as i64);
    if let Some(id) = campaign_id {
        q = q.bind(id);
    }
    let keys: Vec<(i64, String, i64)> = q
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| {
            Ok((
                row::int(r, "campaign_id")?,
                row::text(r, "plan_day")?,
                row::int(r, "gen")?,
            ))
        })
        .collect::<Result<_, StoreError>>()?;
    if keys.is_empty() {
        return Ok(Refreshed::default());
    }
    let n = keys.len();
    for table in ["placement_rollups", "rollup_latency"] {
        let sql = format!(
            "{}DELETE FROM {table} WHERE (campaign_id, day) IN (SELECT c, d FROM k)",
            keys_cte(n, 0, false)
        );
        bind_keys(sqlx::query(AssertSqlSafe(sql)), &keys, false)
            .execute(&mut *tx)
            .await?;
    }
    let sql = format!("{}{INSERT_ROLLUPS}", keys_cte(n, 11, false));
    let q = sqlx::query(AssertSqlSafe(sql))
        .bind(SendKind::Warmup.as_str())
        .bind(OutboxStatus::Sent.as_str())
        .bind(OutboxStatus::Failed.as_str())
        .bind(Placement::Inbox.as_str())
        .bind(Placement::Spam.as_str())
        .bind(Placement::Promotions.as_str())
        .bind(Placement::Other.as_str())
        .bind(Placement::Missing.as_str())
        .bind(EngagementAction::Rescue.as_str())
        .bind(EngagementAction::Reply.as_str())
        .bind(PASS);
    let rows = bind_keys(q, &keys, false)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    let sql = format!("{}{}", keys_cte(n, 1, false), *INSERT_LATENCY);
    let q = sqlx::query(AssertSqlSafe(sql)).bind(SendKind::Warmup.as_str());
    bind_keys(q, &keys, false).execute(&mut *tx).await?;
    let sql = format!(
        // Row-value IN, not a correlated EXISTS: SQLite then probes the primary key per key
        // instead of scanning the table per batch.
        "{}DELETE FROM rollup_dirty WHERE (campaign_id, plan_day, gen) IN (SELECT c, d, g FROM k)",
        keys_cte(n, 0, true)
    );
    bind_keys(sqlx::query(AssertSqlSafe(sql)), &keys, true)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Refreshed {
        days: n as u64,
        rows,
    })
}

/// SQLite: the campaign days (with a plan day) of the placements above the watermark, which
/// the refresh has not marked yet.
macro_rules! new_placement_days {
    () => {
        "SELECT o.campaign_id, o.plan_day FROM placements p \
         JOIN outbox o ON o.id = p.outbox_id \
         WHERE p.id > (SELECT last_id FROM rollup_watermark WHERE name = 'placements') \
           AND o.plan_day IS NOT NULL"
    };
}

/// SQLite: marks dirty the campaign days of the placements inserted since the last refresh
/// (ids above `rollup_watermark`), and moves the watermark past them, first thing in the
/// refresh's transaction. SQLite has one writer at a time and hands out placement ids in
/// commit order, so every placement above the watermark is new and none below it can still
/// appear. (PostgreSQL's sequences promise no such order: there a statement trigger marks.)
async fn mark_new_placements(conn: &mut sqlx::AnyConnection) -> Result<(), StoreError> {
    sqlx::query(concat!(
        "INSERT INTO rollup_dirty (campaign_id, plan_day) SELECT DISTINCT * FROM (",
        new_placement_days!(),
        ") ORDER BY 1, 2 \
         ON CONFLICT (campaign_id, plan_day) DO UPDATE SET gen = rollup_dirty.gen + 1"
    ))
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE rollup_watermark SET last_id = (SELECT MAX(id) FROM placements) \
         WHERE name = 'placements' AND last_id < (SELECT MAX(id) FROM placements)",
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// `WITH k(c, d[, g]) AS (VALUES ($a, $b[, $c]), …) ` for `n` keys whose placeholders start
/// after the first `skip` ones. Only placeholders are generated; every value is bound.
fn keys_cte(n: usize, skip: usize, with_gen: bool) -> String {
    let width = if with_gen { 3 } else { 2 };
    let mut s = String::from(if with_gen {
        "WITH k(c, d, g) AS (VALUES "
    } else {
        "WITH k(c, d) AS (VALUES "
    });
    for i in 0..n {
        let first = skip + i * width + 1;
        let _ = write!(
            s,
            "{}(${first}, ${}",
            if i > 0 { ", " } else { "" },
            first + 1
        );
        if with_gen {
            let _ = write!(s, ", ${}", first + 2);
        }
        s.push(')');
    }
    s.push_str(") ");
    s
}

fn bind_keys<'q>(
    mut q: row::AnyQuery<'q>,
    keys: &[(i64, String, i64)],
    with_gen: bool,
) -> row::AnyQuery<'q> {
    for (c, d, g) in keys {
        q = q.bind(*c).bind(d.clone());
        if with_gen {
            q = q.bind(*g);
        }
    }
    q
}

/// The roll-up rows of the keys in `k`. Parameters: $1 warm-up kind, $2 sent, $3 failed,
/// $4..$8 the placements, $9 rescue, $10 reply, $11 the word `pass`.
const INSERT_ROLLUPS: &str = "\
INSERT INTO placement_rollups (campaign_id, day, provider, planned, sent, failed, placed, \
  inbox, spam, promotions, other, missing, rescued, replied, spf_pass, spf_seen, \
  dkim_pass, dkim_seen, dmarc_pass, dmarc_seen) \
SELECT o.campaign_id, o.plan_day, s.provider, COUNT(*), \
  SUM(CASE WHEN o.status = $2 THEN 1 ELSE 0 END), \
  SUM(CASE WHEN o.status = $3 THEN 1 ELSE 0 END), \
  SUM(CASE WHEN p.id IS NOT NULL THEN 1 ELSE 0 END), \
  SUM(CASE WHEN p.placement = $4 THEN 1 ELSE 0 END), \
  SUM(CASE WHEN p.placement = $5 THEN 1 ELSE 0 END), \
  SUM(CASE WHEN p.placement = $6 THEN 1 ELSE 0 END), \
  SUM(CASE WHEN p.placement = $7 THEN 1 ELSE 0 END), \
  SUM(CASE WHEN p.placement = $8 THEN 1 ELSE 0 END), \
  SUM(CASE WHEN p.id IS NOT NULL AND EXISTS (SELECT 1 FROM engagement_events e \
    WHERE e.placement_id = p.id AND e.action = $9) THEN 1 ELSE 0 END), \
  SUM(CASE WHEN p.id IS NOT NULL AND EXISTS (SELECT 1 FROM engagement_events e \
    WHERE e.placement_id = p.id AND e.action = $10) THEN 1 ELSE 0 END), \
  SUM(CASE WHEN LOWER(p.auth_spf) = $11 THEN 1 ELSE 0 END), \
  SUM(CASE WHEN p.auth_spf IS NOT NULL THEN 1 ELSE 0 END), \
  SUM(CASE WHEN LOWER(p.auth_dkim) = $11 THEN 1 ELSE 0 END), \
  SUM(CASE WHEN p.auth_dkim IS NOT NULL THEN 1 ELSE 0 END), \
  SUM(CASE WHEN LOWER(p.auth_dmarc) = $11 THEN 1 ELSE 0 END), \
  SUM(CASE WHEN p.auth_dmarc IS NOT NULL THEN 1 ELSE 0 END) \
FROM k JOIN outbox o ON o.campaign_id = k.c AND o.plan_day = k.d \
JOIN seeds s ON s.id = o.seed_id \
LEFT JOIN placements p ON p.outbox_id = o.id \
WHERE o.kind = $1 \
GROUP BY o.campaign_id, o.plan_day, s.provider";

/// The latency histograms of the keys in `k`. Parameter: $1 warm-up kind.
static INSERT_LATENCY: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO rollup_latency (campaign_id, day, provider, bucket, n) \
         SELECT o.campaign_id, o.plan_day, s.provider, {}, COUNT(*) \
         FROM k JOIN outbox o ON o.campaign_id = k.c AND o.plan_day = k.d \
         JOIN seeds s ON s.id = o.seed_id \
         JOIN placements p ON p.outbox_id = o.id \
         WHERE o.kind = $1 AND p.latency_secs IS NOT NULL \
         GROUP BY 1, 2, 3, 4",
        latency::bucket_sql("p.latency_secs")
    )
});

/// How many campaign days wait for a refresh (on SQLite also the days of placements the
/// refresh has not looked at yet).
pub async fn dirty_count(store: &Store) -> Result<i64, StoreError> {
    let sql = match store.backend() {
        Backend::Postgres => "SELECT COUNT(*) FROM rollup_dirty",
        Backend::Sqlite => concat!(
            "SELECT COUNT(*) FROM (SELECT campaign_id, plan_day FROM rollup_dirty UNION ",
            new_placement_days!(),
            ")"
        ),
    };
    Ok(sqlx::query_scalar(sql).fetch_one(store.pool()).await?)
}

/// The campaign's roll-up rows (with their histograms) for plan days `from..=to`.
pub async fn rows_for_campaign(
    pool: &sqlx::AnyPool,
    campaign_id: i64,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<DayRollup>, StoreError> {
    let (from, to) = (day_text(from), day_text(to));
    let rows = sqlx::query(
        "SELECT day, provider, planned, sent, failed, placed, inbox, spam, promotions, other, \
           missing, rescued, replied, spf_pass, spf_seen, dkim_pass, dkim_seen, dmarc_pass, \
           dmarc_seen \
         FROM placement_rollups WHERE campaign_id = $1 AND day >= $2 AND day <= $3 \
         ORDER BY day, provider",
    )
    .bind(campaign_id)
    .bind(from.clone())
    .bind(to.clone())
    .fetch_all(pool)
    .await?;
    let mut out = rows.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
    let buckets = sqlx::query(
        "SELECT day, provider, bucket, n FROM rollup_latency \
         WHERE campaign_id = $1 AND day >= $2 AND day <= $3",
    )
    .bind(campaign_id)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?;
    for b in &buckets {
        let day = parse_day(b, "day")?;
        let provider: Provider = row::parsed(b, "rollup_latency", "provider")?;
        if let Some(r) = out
            .iter_mut()
            .find(|r| r.day == day && r.provider == provider)
        {
            r.latency.add(
                usize::try_from(row::int(b, "bucket")?).unwrap_or(0),
                count(b, "n")?,
            );
        }
    }
    Ok(out)
}

/// The volume planned per day (`campaign_days`) for `from..=to`.
pub async fn planned_days(
    pool: &sqlx::AnyPool,
    campaign_id: i64,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<(NaiveDate, u64)>, StoreError> {
    sqlx::query(
        "SELECT plan_day, sends FROM campaign_days \
         WHERE campaign_id = $1 AND plan_day >= $2 AND plan_day <= $3 ORDER BY plan_day",
    )
    .bind(campaign_id)
    .bind(day_text(from))
    .bind(day_text(to))
    .fetch_all(pool)
    .await?
    .iter()
    .map(|r| Ok((parse_day(r, "plan_day")?, count(r, "sends")?)))
    .collect()
}

pub(crate) fn day_text(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

fn parse_day(r: &AnyRow, col: &'static str) -> Result<NaiveDate, StoreError> {
    let raw = row::text(r, col)?;
    NaiveDate::parse_from_str(&raw, "%Y-%m-%d")
        .map_err(|e| StoreError::corrupt(TABLE, col, format!("{raw:?}: {e}")))
}

fn count(r: &AnyRow, col: &'static str) -> Result<u64, StoreError> {
    let v: i64 = r.try_get(col)?;
    u64::try_from(v).map_err(|_| StoreError::corrupt(TABLE, col, format!("negative count {v}")))
}

fn decode(r: &AnyRow) -> Result<DayRollup, StoreError> {
    Ok(DayRollup {
        day: parse_day(r, "day")?,
        provider: row::parsed(r, TABLE, "provider")?,
        counts: Counts {
            planned: count(r, "planned")?,
            sent: count(r, "sent")?,
            failed: count(r, "failed")?,
            placed: count(r, "placed")?,
            inbox: count(r, "inbox")?,
            spam: count(r, "spam")?,
            promotions: count(r, "promotions")?,
            other: count(r, "other")?,
            missing: count(r, "missing")?,
            rescued: count(r, "rescued")?,
            replied: count(r, "replied")?,
            spf_pass: count(r, "spf_pass")?,
            spf_seen: count(r, "spf_seen")?,
            dkim_pass: count(r, "dkim_pass")?,
            dkim_seen: count(r, "dkim_seen")?,
            dmarc_pass: count(r, "dmarc_pass")?,
            dmarc_seen: count(r, "dmarc_seen")?,
        },
        latency: Histogram::default(),
    })
}

/// Sending days planned so far (with at least one send) and the last plan day with its
/// volume.
pub async fn plan_day_summary(
    pool: &sqlx::AnyPool,
    campaign_id: i64,
) -> Result<(u32, Option<(NaiveDate, u64)>), StoreError> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM campaign_days WHERE campaign_id = $1 AND sends > 0",
    )
    .bind(campaign_id)
    .fetch_one(pool)
    .await?;
    let last = sqlx::query(
        "SELECT plan_day, sends FROM campaign_days WHERE campaign_id = $1 \
         ORDER BY plan_day DESC LIMIT 1",
    )
    .bind(campaign_id)
    .fetch_optional(pool)
    .await?
    .as_ref()
    .map(|r| Ok::<_, StoreError>((parse_day(r, "plan_day")?, count(r, "sends")?)))
    .transpose()?;
    Ok((u32::try_from(n).unwrap_or(u32::MAX), last))
}
