//! The store's error type, and the rules for which failures are worth retrying.

/// Everything that can go wrong between Hearth and its database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or the URL is unusable. The URL is printed with
    /// its password replaced by `***`.
    #[error("cannot connect to database {url_redacted}: {source}")]
    Connect {
        url_redacted: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot apply database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database query failed: {0}")]
    Query(#[from] sqlx::Error),
    /// A stored value does not parse back into its domain type (hand-edited row, or a
    /// schema change without a migration).
    #[error("corrupt value in {table}.{column}: {detail}")]
    Corrupt {
        table: &'static str,
        column: &'static str,
        detail: String,
    },
    #[error("{what} not found")]
    NotFound { what: String },
}

impl StoreError {
    /// Whether trying the same thing again later can succeed: pool exhaustion, network or
    /// file IO, a PostgreSQL serialization failure or deadlock, a busy SQLite database.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Connect { source, .. } | StoreError::Query(source) => {
                sqlx_is_transient(source)
            }
            StoreError::Migrate(_) | StoreError::Corrupt { .. } | StoreError::NotFound { .. } => {
                false
            }
        }
    }

    /// Whether this is a UNIQUE violation (for example a name or address already in use).
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Query(sqlx::Error::Database(db)) if db.is_unique_violation())
    }

    /// Whether the database refused because other rows refer to this one (or it refers to
    /// a row that does not exist).
    pub fn is_foreign_key_violation(&self) -> bool {
        matches!(self, StoreError::Query(sqlx::Error::Database(db)) if db.is_foreign_key_violation())
    }

    /// Whether the database refused the row because of a CHECK constraint.
    pub fn is_check_violation(&self) -> bool {
        matches!(self, StoreError::Query(sqlx::Error::Database(db)) if db.is_check_violation())
    }

    pub(crate) fn corrupt(
        table: &'static str,
        column: &'static str,
        detail: impl ToString,
    ) -> Self {
        StoreError::Corrupt {
            table,
            column,
            detail: detail.to_string(),
        }
    }
}

fn sqlx_is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code();
            let code = code.as_deref().unwrap_or_default();
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                // SQLITE_BUSY / SQLITE_LOCKED, or one of their extended codes (which keep
                // the primary code in the low byte).
                code.parse::<i32>().is_ok_and(|c| matches!(c & 0xff, 5 | 6))
            } else {
                // PostgreSQL: serialization_failure, deadlock_detected, the connection
                // exception class, too_many_connections, and a server going down or
                // starting up.
                matches!(
                    code,
                    "40001" | "40P01" | "53300" | "57P01" | "57P02" | "57P03"
                ) || code.starts_with("08")
            }
        }
        _ => false,
    }
}

/// `url` with the password (userinfo or `password=` parameter) replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut out = match base.split_once("://") {
        // SQLite URLs hold a path, never credentials (and a path may contain '@').
        Some((scheme, _)) if scheme.starts_with("sqlite") => base.to_owned(),
        // The last '@' ends the userinfo, so a password may contain '@' or '/'.
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((userinfo, host_and_path)) => match userinfo.split_once(':') {
                Some((user, _password)) => format!("{scheme}://{user}:***@{host_and_path}"),
                None => base.to_owned(),
            },
            None => base.to_owned(),
        },
        None => base.to_owned(),
    };
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => kv.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        let cases = [
            (
                "postgres://hearth:s3cr3t@db.example:5432/hearth",
                "postgres://hearth:***@db.example:5432/hearth",
            ),
            (
                "postgres://hearth:p@ss:w0rd@db/hearth?sslmode=require",
                "postgres://hearth:***@db/hearth?sslmode=require",
            ),
            (
                "postgres://postgres@127.0.0.1:5432/postgres",
                "postgres://postgres@127.0.0.1:5432/postgres",
            ),
            (
                "postgres://db/hearth?user=h&password=hunter2",
                "postgres://db/hearth?user=h&password=***",
            ),
            (
                "sqlite://var/hearth.db?mode=rwc",
                "sqlite://var/hearth.db?mode=rwc",
            ),
            ("sqlite::memory:", "sqlite::memory:"),
            ("postgres://u:a/b@db/hearth", "postgres://u:***@db/hearth"),
        ];
        for (url, want) in cases {
            assert_eq!(redact_url(url), want, "{url}");
        }
    }

    #[test]
    fn transient_classification() {
        assert!(StoreError::Query(sqlx::Error::PoolTimedOut).is_transient());
        assert!(StoreError::Query(sqlx::Error::Io(std::io::Error::other("reset"))).is_transient());
        assert!(!StoreError::Query(sqlx::Error::RowNotFound).is_transient());
        assert!(!StoreError::corrupt("t", "c", "bad").is_transient());
        assert!(
            !StoreError::NotFound {
                what: "campaign x".into()
            }
            .is_transient()
        );
    }
}
