//! Sending identities: who mails the seeds, from where, with which DKIM key.

use std::net::IpAddr;
use std::path::PathBuf;

use sqlx::any::AnyRow;
use sqlx::{Any, Executor};

use crate::domain::{DomainName, EmailAddress, Endpoint, HeloName, Source};

use super::StoreError;
use super::row::{self, IMAP, SMTP};

const TABLE: &str = "senders";

/// DKIM signing settings of a sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkimRecord {
    pub domain: DomainName,
    pub selector: String,
    pub key_file: PathBuf,
}

/// A sender as configured (config file, import or API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderRecord {
    /// Unique, stable name (the config key).
    pub name: String,
    pub address: EmailAddress,
    pub display_name: Option<String>,
    pub helo: HeloName,
    /// Source IPs the sender may use (checked by preflight against SPF and PTR).
    pub ips: Vec<IpAddr>,
    pub smtp: Endpoint,
    pub dkim: Option<DkimRecord>,
    /// Mailbox of the sender, for reading replies.
    pub imap: Option<Endpoint>,
    pub source: Source,
}

/// A stored sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderRow {
    pub id: i64,
    pub record: SenderRecord,
    pub created_at: i64,
    pub updated_at: i64,
}

macro_rules! sender_cols {
    () => {
        "id, name, address, display_name, helo, ips, \
         smtp_host, smtp_port, smtp_tls, smtp_ca_file, smtp_username, smtp_secret, \
         dkim_domain, dkim_selector, dkim_key_file, \
         imap_host, imap_port, imap_tls, imap_ca_file, imap_username, imap_secret, \
         source, created_at, updated_at"
    };
}

/// Inserts the sender, or updates every field of the one with the same name. Returns its id.
pub async fn upsert<'c, E>(ex: E, rec: &SenderRecord, now: i64) -> Result<i64, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let ips = rec
        .ips
        .iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let q = sqlx::query(
        "INSERT INTO senders (name, address, display_name, helo, ips, \
           smtp_host, smtp_port, smtp_tls, smtp_ca_file, smtp_username, smtp_secret, \
           dkim_domain, dkim_selector, dkim_key_file, \
           imap_host, imap_port, imap_tls, imap_ca_file, imap_username, imap_secret, \
           source, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
           $15, $16, $17, $18, $19, $20, $21, $22, $22) \
         ON CONFLICT (name) DO UPDATE SET \
           address = excluded.address, display_name = excluded.display_name, \
           helo = excluded.helo, ips = excluded.ips, \
           smtp_host = excluded.smtp_host, smtp_port = excluded.smtp_port, \
           smtp_tls = excluded.smtp_tls, smtp_ca_file = excluded.smtp_ca_file, \
           smtp_username = excluded.smtp_username, smtp_secret = excluded.smtp_secret, \
           dkim_domain = excluded.dkim_domain, dkim_selector = excluded.dkim_selector, \
           dkim_key_file = excluded.dkim_key_file, \
           imap_host = excluded.imap_host, imap_port = excluded.imap_port, \
           imap_tls = excluded.imap_tls, imap_ca_file = excluded.imap_ca_file, \
           imap_username = excluded.imap_username, imap_secret = excluded.imap_secret, \
           source = excluded.source, updated_at = excluded.updated_at \
         RETURNING id",
    )
    .bind(rec.name.clone())
    .bind(rec.address.to_string())
    .bind(rec.display_name.clone())
    .bind(rec.helo.as_str().to_owned())
    .bind(ips);
    let q = row::bind_endpoint(q, Some(&rec.smtp));
    let dkim = rec.dkim.as_ref();
    let q = q
        .bind(dkim.map(|d| d.domain.as_str().to_owned()))
        .bind(dkim.map(|d| d.selector.clone()))
        .bind(dkim.map(|d| row::path_text(&d.key_file)));
    let q = row::bind_endpoint(q, rec.imap.as_ref());
    let id: i64 = sqlx::Row::try_get(
        &q.bind(rec.source.as_str()).bind(now).fetch_one(ex).await?,
        0,
    )?;
    Ok(id)
}

/// All senders, by name.
pub async fn list<'c, E>(ex: E) -> Result<Vec<SenderRow>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    sqlx::query(concat!(
        "SELECT ",
        sender_cols!(),
        " FROM senders ORDER BY name"
    ))
    .fetch_all(ex)
    .await?
    .iter()
    .map(decode)
    .collect()
}

pub async fn get<'c, E>(ex: E, id: i64) -> Result<Option<SenderRow>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    sqlx::query(concat!(
        "SELECT ",
        sender_cols!(),
        " FROM senders WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(ex)
    .await?
    .as_ref()
    .map(decode)
    .transpose()
}

pub async fn get_by_name<'c, E>(ex: E, name: &str) -> Result<Option<SenderRow>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    sqlx::query(concat!(
        "SELECT ",
        sender_cols!(),
        " FROM senders WHERE name = $1"
    ))
    .bind(name)
    .fetch_optional(ex)
    .await?
    .as_ref()
    .map(decode)
    .transpose()
}

/// Deletes the sender and its preflight history (the results go with their runs). Returns
/// false when no sender has this id. Campaigns referring to it make the database refuse (a
/// foreign-key violation): check [`super::campaigns::count_for_sender`] first.
pub async fn delete(conn: &mut sqlx::AnyConnection, id: i64) -> Result<bool, StoreError> {
    sqlx::query(
        "DELETE FROM preflight_results WHERE run_id IN \
           (SELECT id FROM preflight_runs WHERE sender_id = $1)",
    )
    .bind(id)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM preflight_runs WHERE sender_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    let done = sqlx::query("DELETE FROM senders WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

fn decode(r: &AnyRow) -> Result<SenderRow, StoreError> {
    let ips_text = row::text(r, "ips")?;
    let ips = ips_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpAddr>()
                .map_err(|e| StoreError::corrupt(TABLE, "ips", format!("{s:?}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let dkim = match row::parsed_opt::<DomainName>(r, TABLE, "dkim_domain")? {
        None => None,
        Some(domain) => Some(DkimRecord {
            domain,
            selector: row::text_opt(r, "dkim_selector")?
                .ok_or_else(|| StoreError::corrupt(TABLE, "dkim_selector", "NULL"))?,
            key_file: row::text_opt(r, "dkim_key_file")?
                .map(PathBuf::from)
                .ok_or_else(|| StoreError::corrupt(TABLE, "dkim_key_file", "NULL"))?,
        }),
    };
    Ok(SenderRow {
        id: row::int(r, "id")?,
        record: SenderRecord {
            name: row::text(r, "name")?,
            address: row::parsed(r, TABLE, "address")?,
            display_name: row::text_opt(r, "display_name")?,
            helo: row::parsed(r, TABLE, "helo")?,
            ips,
            smtp: row::endpoint(r, TABLE, &SMTP)?,
            dkim,
            imap: row::endpoint_opt(r, TABLE, &IMAP)?,
            source: row::parsed(r, TABLE, "source")?,
        },
        created_at: row::int(r, "created_at")?,
        updated_at: row::int(r, "updated_at")?,
    })
}
