//! `hearth seeds import FILE.csv`: a seed pool in bulk. The whole file is checked first; a
//! file with any bad row imports nothing, and every bad row is reported by line number.
//!
//! Columns (header row required, any order): `address` (required), `provider`,
//! `daily_cap`, `imap_host` (required), `imap_port`, `imap_tls`, `imap_username`, `imap_password`,
//! `imap_ca_file`, `smtp_host`, `smtp_port`, `smtp_tls`, `smtp_username`, `smtp_password`,
//! `smtp_ca_file`, `inbox_folder`, `spam_folder`, `sent_folder`, `warmup_folder`.
//! Passwords are `env:NAME`, `file:PATH` or the password itself (sealed before it is stored).

use std::collections::HashMap;
use std::path::Path;

use crate::config::{RawConn, RawFolders, RawSeed, SeedConfig, validate_seed};

const COLUMNS: &[&str] = &[
    "address",
    "provider",
    "daily_cap",
    "imap_host",
    "imap_port",
    "imap_tls",
    "imap_username",
    "imap_password",
    "imap_ca_file",
    "smtp_host",
    "smtp_port",
    "smtp_tls",
    "smtp_username",
    "smtp_password",
    "smtp_ca_file",
    "inbox_folder",
    "spam_folder",
    "sent_folder",
    "warmup_folder",
];

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{}", .0.iter().map(|p| format!("{p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<RowProblem>),
}

/// One problem in the file, at a line (1 = the header row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowProblem {
    pub path: String,
    pub line: u64,
    pub message: String,
}

impl std::fmt::Display for RowProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: line {}: {}", self.path, self.line, self.message)
    }
}

/// Reads and validates the whole file.
pub fn parse_file(path: &Path) -> Result<Vec<SeedConfig>, ImportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ImportError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let base = path.parent().unwrap_or(Path::new(""));
    parse(&text, &path.display().to_string(), base)
}

pub fn parse(text: &str, shown: &str, base: &Path) -> Result<Vec<SeedConfig>, ImportError> {
    let mut problems = Vec::new();
    let bad = |problems: &mut Vec<RowProblem>, line: u64, message: String| {
        problems.push(RowProblem {
            path: shown.to_owned(),
            line,
            message,
        })
    };
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(text.as_bytes());
    let headers: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(|c| c.to_ascii_lowercase()).collect(),
        Err(e) => {
            bad(&mut problems, 1, format!("cannot read the header row: {e}"));
            return Err(ImportError::Invalid(problems));
        }
    };
    for h in &headers {
        if !COLUMNS.contains(&h.as_str()) {
            bad(
                &mut problems,
                1,
                format!(
                    "unknown column {h:?} (expected some of: {})",
                    COLUMNS.join(", ")
                ),
            );
        }
    }
    for required in ["address", "imap_host"] {
        if !headers.iter().any(|h| h == required) {
            bad(
                &mut problems,
                1,
                format!("missing required column {required:?}"),
            );
        }
    }
    if !problems.is_empty() {
        return Err(ImportError::Invalid(problems));
    }
    let mut seeds: Vec<SeedConfig> = Vec::new();
    let mut seen: HashMap<String, u64> = HashMap::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                bad(&mut problems, line, format!("malformed CSV: {e}"));
                continue;
            }
        };
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        let row: HashMap<&str, &str> = headers
            .iter()
            .map(String::as_str)
            .zip(record.iter())
            .filter(|(_, v)| !v.is_empty())
            .collect();
        let raw = match to_raw(&row) {
            Ok(r) => r,
            Err(msg) => {
                bad(&mut problems, line, msg);
                continue;
            }
        };
        match validate_seed(&raw, base) {
            Ok(seed) => {
                let key = seed.address.to_string().to_ascii_lowercase();
                if let Some(first) = seen.insert(key, line) {
                    bad(
                        &mut problems,
                        line,
                        format!("duplicate address {} (first on line {first})", seed.address),
                    );
                } else {
                    seeds.push(seed);
                }
            }
            Err(ps) => {
                for p in ps {
                    let column = p.key.trim_start_matches('.').replace('.', "_");
                    let msg = if column.is_empty() {
                        p.message
                    } else {
                        format!("{column}: {}", p.message)
                    };
                    bad(&mut problems, line, msg);
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(seeds)
    } else {
        Err(ImportError::Invalid(problems))
    }
}

fn secret(v: &str) -> toml::Value {
    if let Some(name) = v.strip_prefix("env:") {
        let mut t = toml::Table::new();
        t.insert("env".into(), toml::Value::String(name.into()));
        toml::Value::Table(t)
    } else if let Some(path) = v.strip_prefix("file:") {
        let mut t = toml::Table::new();
        t.insert("file".into(), toml::Value::String(path.into()));
        toml::Value::Table(t)
    } else {
        toml::Value::String(v.into())
    }
}

fn to_raw(row: &HashMap<&str, &str>) -> Result<RawSeed, String> {
    let port = |col: &str| -> Result<Option<u16>, String> {
        row.get(col)
            .map(|v| {
                v.parse::<u16>()
                    .map_err(|_| format!("{col}: expected a port from 1 to 65535, got {v:?}"))
            })
            .transpose()
    };
    let conn = |prefix: &str| -> Result<Option<RawConn>, String> {
        let get = |c: &str| {
            row.get(format!("{prefix}_{c}").as_str())
                .map(|v| v.to_string())
        };
        let Some(host) = get("host") else {
            let stray = ["port", "tls", "username", "password", "ca_file"]
                .iter()
                .find(|c| get(c).is_some());
            return match stray {
                Some(c) => Err(format!("{prefix}_{c} is set but {prefix}_host is empty")),
                None => Ok(None),
            };
        };
        Ok(Some(RawConn {
            host: Some(host),
            port: port(&format!("{prefix}_port"))?,
            tls: get("tls"),
            ca_file: get("ca_file").map(Into::into),
            username: get("username"),
            password: get("password").map(|p| secret(&p)),
            // CSV imports carry passwords only; OAuth2 seeds are configured in the file.
            oauth2: None,
        }))
    };
    let imap = conn("imap")?.ok_or_else(|| "imap_host: required".to_owned())?;
    let folder = |c: &str| row.get(c).map(|v| v.to_string());
    Ok(RawSeed {
        address: row
            .get("address")
            .map(|v| v.to_string())
            .ok_or_else(|| "address: required".to_owned())?,
        provider: row.get("provider").map(|v| v.to_string()),
        daily_cap: row
            .get("daily_cap")
            .map(|v| {
                v.parse::<u32>().map_err(|_| {
                    format!("daily_cap: expected messages a day (0 to 1000), got {v:?}")
                })
            })
            .transpose()?,
        imap,
        smtp: conn("smtp")?,
        folders: Some(RawFolders {
            inbox: folder("inbox_folder"),
            spam: folder("spam_folder"),
            sent: folder("sent_folder"),
            warmup: folder("warmup_folder"),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_file() {
        let csv = "address,provider,imap_host,imap_port,imap_tls,imap_password\n\
                   a@gmail.test,gmail,127.0.0.1,1993,implicit,pw1\n\
                   b@outlook.test,,imap.example.com,,,env:B_PW\n";
        // SAFETY: tests in this module are the only readers of this variable.
        unsafe { std::env::set_var("B_PW", "x") };
        let seeds = parse(csv, "t.csv", Path::new("")).unwrap();
        assert_eq!(seeds.len(), 2);
        assert_eq!(seeds[0].imap.port, 1993);
        assert_eq!(seeds[1].imap.port, 143);
    }

    #[test]
    fn bad_rows_are_all_reported_by_line() {
        let csv = "address,imap_host,imap_port,imap_tls\n\
                   ok@gmail.test,127.0.0.1,1143,starttls\n\
                   not-an-address,127.0.0.1,1143,starttls\n\
                   c@gmail.test,imap.example.com,99999,starttls\n\
                   d@gmail.test,imap.example.com,143,none\n\
                   ok@gmail.test,127.0.0.1,1143,starttls\n";
        let err = parse(csv, "t.csv", Path::new("")).unwrap_err();
        let ImportError::Invalid(ps) = err else {
            panic!()
        };
        let lines: Vec<u64> = ps.iter().map(|p| p.line).collect();
        assert_eq!(lines, [3, 4, 5, 6], "{ps:#?}");
        assert!(ps[0].message.contains("address"), "{}", ps[0]);
        assert!(ps[1].message.contains("imap_port"), "{}", ps[1]);
        assert!(ps[2].message.contains("loopback"), "{}", ps[2]);
        assert!(ps[3].message.contains("duplicate"), "{}", ps[3]);
    }

    #[test]
    fn unknown_column() {
        let err = parse("address,imap_host,colour\n", "t.csv", Path::new("")).unwrap_err();
        assert!(
            err.to_string().contains("unknown column \"colour\""),
            "{err}"
        );
    }
}
