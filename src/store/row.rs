//! Decoding rows into domain types (a bad stored value is [`StoreError::Corrupt`], never a
//! panic) and binding the column groups several tables share.

use std::fmt::Display;
use std::path::PathBuf;
use std::str::FromStr;

use sqlx::Row as _;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::{Any, query::Query};

use crate::domain::{Endpoint, TlsMode};
use crate::secrets::SecretRef;

use super::StoreError;

pub(crate) type AnyQuery<'q> = Query<'q, Any, AnyArguments>;

pub(crate) fn int(row: &AnyRow, col: &'static str) -> Result<i64, StoreError> {
    Ok(row.try_get::<i64, _>(col)?)
}

pub(crate) fn int_opt(row: &AnyRow, col: &'static str) -> Result<Option<i64>, StoreError> {
    Ok(row.try_get::<Option<i64>, _>(col)?)
}

pub(crate) fn text(row: &AnyRow, col: &'static str) -> Result<String, StoreError> {
    Ok(row.try_get::<String, _>(col)?)
}

pub(crate) fn text_opt(row: &AnyRow, col: &'static str) -> Result<Option<String>, StoreError> {
    Ok(row.try_get::<Option<String>, _>(col)?)
}

/// A TEXT column parsed with `FromStr` (enums, addresses, names).
pub(crate) fn parsed<T>(
    row: &AnyRow,
    table: &'static str,
    col: &'static str,
) -> Result<T, StoreError>
where
    T: FromStr,
    T::Err: Display,
{
    let raw = text(row, col)?;
    raw.parse()
        .map_err(|e: T::Err| StoreError::corrupt(table, col, format!("{raw:?}: {e}")))
}

pub(crate) fn parsed_opt<T>(
    row: &AnyRow,
    table: &'static str,
    col: &'static str,
) -> Result<Option<T>, StoreError>
where
    T: FromStr,
    T::Err: Display,
{
    match text_opt(row, col)? {
        None => Ok(None),
        Some(raw) => raw
            .parse()
            .map(Some)
            .map_err(|e: T::Err| StoreError::corrupt(table, col, format!("{raw:?}: {e}"))),
    }
}

/// A BIGINT 0/1 column.
pub(crate) fn flag(
    row: &AnyRow,
    table: &'static str,
    col: &'static str,
) -> Result<bool, StoreError> {
    match int(row, col)? {
        0 => Ok(false),
        1 => Ok(true),
        n => Err(StoreError::corrupt(
            table,
            col,
            format!("{n} is not 0 or 1"),
        )),
    }
}

fn port(table: &'static str, col: &'static str, n: i64) -> Result<u16, StoreError> {
    u16::try_from(n)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| StoreError::corrupt(table, col, format!("{n} is not a TCP port")))
}

/// The column names of one endpoint group (`smtp_*` or `imap_*`).
pub(crate) struct EndpointCols {
    pub host: &'static str,
    pub port: &'static str,
    pub tls: &'static str,
    pub ca_file: &'static str,
    pub username: &'static str,
    pub secret: &'static str,
}

pub(crate) const SMTP: EndpointCols = EndpointCols {
    host: "smtp_host",
    port: "smtp_port",
    tls: "smtp_tls",
    ca_file: "smtp_ca_file",
    username: "smtp_username",
    secret: "smtp_secret",
};

pub(crate) const IMAP: EndpointCols = EndpointCols {
    host: "imap_host",
    port: "imap_port",
    tls: "imap_tls",
    ca_file: "imap_ca_file",
    username: "imap_username",
    secret: "imap_secret",
};

/// An optional endpoint: absent when its host is NULL; the other required columns must then
/// be present too.
pub(crate) fn endpoint_opt(
    row: &AnyRow,
    table: &'static str,
    cols: &EndpointCols,
) -> Result<Option<Endpoint>, StoreError> {
    let Some(host) = text_opt(row, cols.host)? else {
        return Ok(None);
    };
    let missing = |col: &'static str| StoreError::corrupt(table, col, "NULL beside a host");
    let port = port(
        table,
        cols.port,
        int_opt(row, cols.port)?.ok_or_else(|| missing(cols.port))?,
    )?;
    let tls: TlsMode = parsed_opt(row, table, cols.tls)?.ok_or_else(|| missing(cols.tls))?;
    let username = text_opt(row, cols.username)?.ok_or_else(|| missing(cols.username))?;
    let secret = text_opt(row, cols.secret)?.ok_or_else(|| missing(cols.secret))?;
    let secret =
        SecretRef::from_stored(&secret).map_err(|e| StoreError::corrupt(table, cols.secret, e))?;
    Ok(Some(Endpoint {
        host,
        port,
        tls,
        ca_file: text_opt(row, cols.ca_file)?.map(PathBuf::from),
        username,
        secret,
    }))
}

pub(crate) fn endpoint(
    row: &AnyRow,
    table: &'static str,
    cols: &EndpointCols,
) -> Result<Endpoint, StoreError> {
    endpoint_opt(row, table, cols)?.ok_or_else(|| StoreError::corrupt(table, cols.host, "NULL"))
}

/// Binds host, port, tls, ca_file, username, secret (in that order), all NULL for `None`.
pub(crate) fn bind_endpoint<'q>(q: AnyQuery<'q>, ep: Option<&Endpoint>) -> AnyQuery<'q> {
    q.bind(ep.map(|e| e.host.clone()))
        .bind(ep.map(|e| i64::from(e.port)))
        .bind(ep.map(|e| e.tls.as_str()))
        .bind(ep.and_then(|e| e.ca_file.as_deref()).map(path_text))
        .bind(ep.map(|e| e.username.clone()))
        .bind(ep.map(|e| e.secret.to_stored()))
}

/// How a path is stored. Non-UTF-8 bytes are replaced: config paths are UTF-8 in practice.
pub(crate) fn path_text(p: &std::path::Path) -> String {
    p.to_string_lossy().into_owned()
}
