//! Seed inboxes: the mailboxes Hearth sends to and reads placement from.

use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Transaction};

use crate::domain::{EmailAddress, Endpoint, OutboxStatus, Provider, SeedStatus, SendKind, Source};

use super::StoreError;
use super::row::{self, AnyQuery, IMAP, SMTP};

const TABLE: &str = "seeds";

/// A seed as configured. The config (or import) is the source of truth for these fields;
/// the seed's health ([`SeedRow::status`]) is Hearth's own and survives upserts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedRecord {
    pub address: EmailAddress,
    pub provider: Provider,
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
         folders, source, created_at, updated_at"
    };
}

macro_rules! seed_insert {
    () => {
        "INSERT INTO seeds (address, provider, \
           imap_host, imap_port, imap_tls, imap_ca_file, imap_username, imap_secret, \
           smtp_host, smtp_port, smtp_tls, smtp_ca_file, smtp_username, smtp_secret, \
           folders, source, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $17)"
    };
}

fn bind_record<'q>(q: AnyQuery<'q>, rec: &SeedRecord, now: i64) -> AnyQuery<'q> {
    let q = q.bind(rec.address.to_string()).bind(rec.provider.as_str());
    let q = row::bind_endpoint(q, Some(&rec.imap));
    let q = row::bind_endpoint(q, rec.smtp.as_ref());
    q.bind(rec.folders.clone())
        .bind(rec.source.as_str())
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
/// address (see [`super::ledger::seeds_awaiting_placement`]).
pub(super) async fn awaiting_placement<'c, E>(ex: E) -> Result<Vec<SeedRow>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    sqlx::query(concat!(
        "SELECT ",
        seed_cols!(),
        " FROM seeds WHERE status <> $1 AND EXISTS (SELECT 1 FROM outbox o \
           WHERE o.seed_id = seeds.id AND o.status = $2 AND o.kind = $3 \
             AND NOT EXISTS (SELECT 1 FROM placements p WHERE p.outbox_id = o.id)) \
         ORDER BY address"
    ))
    .bind(SeedStatus::Disabled.as_str())
    .bind(OutboxStatus::Sent.as_str())
    .bind(SendKind::Warmup.as_str())
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
        },
        status: row::parsed(r, TABLE, "status")?,
        status_reason: row::text_opt(r, "status_reason")?,
        created_at: row::int(r, "created_at")?,
        updated_at: row::int(r, "updated_at")?,
    })
}
