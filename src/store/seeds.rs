//! Seed inboxes: the mailboxes Hearth sends to and reads placement from.

use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Transaction};

use crate::domain::{EmailAddress, Endpoint, Provider, SeedStatus, Source};

use super::StoreError;
use super::row::{self, AnyQuery, IMAP, SMTP};

const TABLE: &str = "seeds";

/// How many messages a seed receives in a day, from every campaign together, unless its
/// `daily_cap` says otherwise (the column's default).
pub const DEFAULT_DAILY_CAP: u32 = 2;

/// A seed as configured. The config (or import) is the source of truth for these fields;
/// the seed's health ([`SeedRow::status`]) is Hearth's own and survives upserts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedRecord {
    pub address: EmailAddress,
    pub provider: Provider,
    /// Most messages a day, from every campaign together ([`DEFAULT_DAILY_CAP`] unless set).
    pub daily_cap: u32,
    pub imap: Endpoint,
    /// For sending replies from the seed (optional).
    pub smtp: Option<Endpoint>,
    /// JSON object of folder-name overrides, opaque to the store (`{}` for none).
    pub folders: String,
    pub source: Source,
}

/// A stored seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedRow {
    pub id: i64,
    pub record: SeedRecord,
    pub status: SeedStatus,
    pub status_reason: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

macro_rules! seed_cols {
    () => {
        "id, address, provider, status, status_reason, \
         imap_host, imap_port, imap_tls, imap_ca_file, imap_username, imap_secret, \
         smtp_host, smtp_port, smtp_tls, smtp_ca_file, smtp_username, smtp_secret, \
         folders, source, daily_cap, created_at, updated_at"
    };
}

macro_rules! seed_insert {
    () => {
        "INSERT INTO seeds (address, provider, \
           imap_host, imap_port, imap_tls, imap_ca_file, imap_username, imap_secret, \
           smtp_host, smtp_port, smtp_tls, smtp_ca_file, smtp_username, smtp_secret, \
           folders, source, daily_cap, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $18)"
    };
}

fn bind_record<'q>(q: AnyQuery<'q>, rec: &SeedRecord, now: i64) -> AnyQuery<'q> {
    let q = q.bind(rec.address.to_string()).bind(rec.provider.as_str());
    let q = row::bind_endpoint(q, Some(&rec.imap));
    let q = row::bind_endpoint(q, rec.smtp.as_ref());
    q.bind(rec.folders.clone())
        .bind(rec.source.as_str())
        .bind(i64::from(rec.daily_cap))
        .bind(now)
}

/// Inserts the seed, or updates the connection fields of the one with the same address.
/// Never touches `status` / `status_reason`. Returns the id.
pub async fn upsert<'c, E>(ex: E, rec: &SeedRecord, now: i64) -> Result<i64, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let q = sqlx::query(concat!(
        seed_insert!(),
        " ON CONFLICT (address) DO UPDATE SET \
           provider = excluded.provider, \
           imap_host = excluded.imap_host, imap_port = excluded.imap_port, \
           imap_tls = excluded.imap_tls, imap_ca_file = excluded.imap_ca_file, \
           imap_username = excluded.imap_username, imap_secret = excluded.imap_secret, \
           smtp_host = excluded.smtp_host, smtp_port = excluded.smtp_port, \
           smtp_tls = excluded.smtp_tls, smtp_ca_file = excluded.smtp_ca_file, \
           smtp_username = excluded.smtp_username, smtp_secret = excluded.smtp_secret, \
           folders = excluded.folders, source = excluded.source, \
           daily_cap = excluded.daily_cap, \
           updated_at = excluded.updated_at \
         RETURNING id"
    ));
    let r = bind_record(q, rec, now).fetch_one(ex).await?;
    row::int(&r, "id")
}

/// Inserts every record inside the caller's transaction (a CSV import is all-or-nothing:
/// on an error, roll the transaction back). An address that already exists is an error
/// ([`StoreError::is_unique_violation`]). Returns how many rows were inserted.
pub async fn insert_many_in_tx(
    tx: &mut Transaction<'_, Any>,
    records: &[SeedRecord],
    now: i64,
) -> Result<usize, StoreError> {
    for rec in records {
        bind_record(sqlx::query(seed_insert!()), rec, now)
            .execute(&mut **tx)
            .await?;
    }
    Ok(records.len())
}

/// All seeds, by address.
pub async fn list<'c, E>(ex: E) -> Result<Vec<SeedRow>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    sqlx::query(concat!(
        "SELECT ",
        seed_cols!(),
        " FROM seeds ORDER BY address"
    ))
    .fetch_all(ex)
    .await?
    .iter()
    .map(decode)
    .collect()
}

pub async fn get<'c, E>(ex: E, id: i64) -> Result<Option<SeedRow>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    sqlx::query(concat!(
        "SELECT ",
        seed_cols!(),
        " FROM seeds WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(ex)
    .await?
    .as_ref()
    .map(decode)
    .transpose()
}

pub async fn get_by_address<'c, E>(
    ex: E,
    address: &EmailAddress,
) -> Result<Option<SeedRow>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    sqlx::query(concat!(
        "SELECT ",
        seed_cols!(),
        " FROM seeds WHERE address = $1"
    ))
    .bind(address.to_string())
    .fetch_optional(ex)
    .await?
    .as_ref()
    .map(decode)
    .transpose()
}

/// Seeds that are not disabled and have sent warm-up mail without a placement yet, by
/// address (see [`super::ledger::seeds_awaiting_placement`]). The status and kind are
/// literals so that the partial index `outbox_seed_sent` can serve the look-up.
pub(super) async fn awaiting_placement<'c, E>(ex: E) -> Result<Vec<SeedRow>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    sqlx::query(concat!(
        "SELECT ",
        seed_cols!(),
        " FROM seeds WHERE status <> $1 AND EXISTS (SELECT 1 FROM outbox o \
           WHERE o.seed_id = seeds.id AND o.status = 'sent' AND o.kind = 'warmup' \
             AND NOT EXISTS (SELECT 1 FROM placements p WHERE p.outbox_id = o.id)) \
         ORDER BY address"
    ))
    .bind(SeedStatus::Disabled.as_str())
    .fetch_all(ex)
    .await?
    .iter()
    .map(decode)
    .collect()
}

/// Sets the seed's health. Returns false when no seed has this id.
pub async fn set_status<'c, E>(
    ex: E,
    id: i64,
    status: SeedStatus,
    reason: Option<&str>,
    now: i64,
) -> Result<bool, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let done = sqlx::query(
        "UPDATE seeds SET status = $2, status_reason = $3, updated_at = $4 WHERE id = $1",
    )
    .bind(id)
    .bind(status.as_str())
    .bind(reason)
    .bind(now)
    .execute(ex)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether any message was ever queued for the seed (its ledger must then be kept).
pub async fn has_history<'c, E>(ex: E, id: i64) -> Result<bool, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    // Planned warm-up mail always has its `seed_days` row (cheap to look up); the outbox has
    // no index by seed for planned rows, so it is read only when that says nothing.
    let n: i64 = sqlx::query_scalar(
        "SELECT CASE WHEN EXISTS (SELECT 1 FROM seed_days WHERE seed_id = $1) THEN 1 \
                     WHEN EXISTS (SELECT 1 FROM outbox WHERE seed_id = $1) THEN 1 ELSE 0 END",
    )
    .bind(id)
    .fetch_one(ex)
    .await?;
    Ok(n > 0)
}

/// Deletes the seed (its IMAP cursors go with it). Returns false when no seed has this id.
/// Outbox rows referring to it make the database refuse (a foreign-key violation).
pub async fn delete<'c, E>(ex: E, id: i64) -> Result<bool, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let done = sqlx::query("DELETE FROM seeds WHERE id = $1")
        .bind(id)
        .execute(ex)
        .await?;
    Ok(done.rows_affected() == 1)
}

fn decode(r: &AnyRow) -> Result<SeedRow, StoreError> {
    Ok(SeedRow {
        id: row::int(r, "id")?,
        record: SeedRecord {
            address: row::parsed(r, TABLE, "address")?,
            provider: row::parsed(r, TABLE, "provider")?,
            imap: row::endpoint(r, TABLE, &IMAP)?,
            smtp: row::endpoint_opt(r, TABLE, &SMTP)?,
            folders: row::text(r, "folders")?,
            source: row::parsed(r, TABLE, "source")?,
            daily_cap: cap(r, "daily_cap")?,
        },
        status: row::parsed(r, TABLE, "status")?,
        status_reason: row::text_opt(r, "status_reason")?,
        created_at: row::int(r, "created_at")?,
        updated_at: row::int(r, "updated_at")?,
    })
}

fn cap(r: &AnyRow, col: &'static str) -> Result<u32, StoreError> {
    let v = row::int(r, col)?;
    u32::try_from(v).map_err(|_| StoreError::corrupt(TABLE, col, format!("{v} is not a count")))
}

/// Sets how many messages the seed may receive in a day, from every campaign together.
/// Returns false when no seed has this address.
pub async fn set_daily_cap<'c, E>(
    ex: E,
    address: &EmailAddress,
    cap: u32,
    now: i64,
) -> Result<bool, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let done = sqlx::query("UPDATE seeds SET daily_cap = $2, updated_at = $3 WHERE address = $1")
        .bind(address.to_string())
        .bind(i64::from(cap))
        .bind(now)
        .execute(ex)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// An active seed as the planner sees it on one local day of one sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedDay {
    pub id: i64,
    pub address: EmailAddress,
    pub provider: Provider,
    pub daily_cap: u32,
    /// Warm-up messages planned for the seed on the day, from every campaign.
    pub planned_today: u32,
    /// The same, from campaigns of this sender only.
    pub pair_today: u32,
    /// The latest `run_at` of a warm-up message from this sender to the seed within
    /// [`ROTATION_LOOKBACK_SECS`] before the day (longer ago counts as never).
    pub last_sent_at: Option<i64>,
}

/// How far back [`planning_day`] looks for a seed's last message from the sender: enough for
/// rotation (a seed unused that long comes first anyway), and it keeps the look-up an index
/// range instead of the seed's whole history.
pub const ROTATION_LOOKBACK_SECS: i64 = 30 * 86_400;

/// Every active seed with what is already planned for it on the day `[day_start, day_end)`
/// (unix seconds: a local day of the planning campaigns), from `seed_days`: its load from
/// every sender, its load from `sender_id`, and the time of the sender's last message to it
/// in the last [`ROTATION_LOOKBACK_SECS`]. A `seed_days` row counts on the day when its own
/// day overlaps it (see migration 20261129000100). By id.
pub async fn planning_day<'c, E>(
    ex: E,
    sender_id: i64,
    day_start: i64,
    day_end: i64,
) -> Result<Vec<SeedDay>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    sqlx::query(
        "SELECT s.id, s.address, s.provider, s.daily_cap, \
           COALESCE(d.planned, 0) AS planned_today, COALESCE(d.pair, 0) AS pair_today, \
           d.last_run_at AS last_sent_at \
         FROM seeds s LEFT JOIN ( \
           SELECT seed_id, \
             CAST(SUM(CASE WHEN day_start < $2 AND day_end > $1 THEN planned ELSE 0 END) \
               AS BIGINT) AS planned, \
             CAST(SUM(CASE WHEN sender_id = $3 AND day_start < $2 AND day_end > $1 \
               THEN planned ELSE 0 END) AS BIGINT) AS pair, \
             MAX(CASE WHEN sender_id = $3 AND last_run_at >= $4 THEN last_run_at END) \
               AS last_run_at \
           FROM seed_days WHERE day_end > $4 GROUP BY seed_id) d ON d.seed_id = s.id \
         WHERE s.status = $5 ORDER BY s.id",
    )
    .bind(day_start)
    .bind(day_end)
    .bind(sender_id)
    .bind(day_start - ROTATION_LOOKBACK_SECS)
    .bind(SeedStatus::Active.as_str())
    .fetch_all(ex)
    .await?
    .iter()
    .map(|r| {
        Ok(SeedDay {
            id: row::int(r, "id")?,
            address: row::parsed(r, TABLE, "address")?,
            provider: row::parsed(r, TABLE, "provider")?,
            daily_cap: cap(r, "daily_cap")?,
            planned_today: cap(r, "planned_today")?,
            pair_today: cap(r, "pair_today")?,
            last_sent_at: row::int_opt(r, "last_sent_at")?,
        })
    })
    .collect()
}
