//! Storage: one `AnyPool` whose driver is chosen at run time from the URL. SQLite is the
//! embedded default, PostgreSQL the multi-node backend; both get the same logical schema
//! from their own migration directory.
//!
//! Conventions every submodule follows:
//! - Store functions are free functions taking an executor (`&AnyPool`, `&mut AnyConnection`
//!   or `&mut *tx`), so the caller chooses the transaction scope. The few that must pick
//!   backend-specific SQL take the [`Store`].
//! - Times are BIGINT unix epoch seconds, passed in by the caller (`now`); booleans are
//!   BIGINT 0/1; ids are BIGINT.
//! - Lifecycle words are bound as parameters from the enums' `as_str()`, never spelled in
//!   SQL, and each status column has a CHECK listing exactly the enum's words.
//! - A stored value that does not parse back is [`StoreError::Corrupt`].

pub mod campaigns;
pub mod cursors;
pub mod engagement;
mod error;
pub mod events;
pub mod holds;
pub mod ledger;
pub mod outbox;
pub mod outbox_bulk;
pub mod preflight;
pub mod reconcile;
pub mod replies;
pub mod rollup;
mod row;
pub mod scan_batch;
#[cfg(test)]
mod schema_check;
pub mod seeds;
pub mod senders;
pub mod settings;
pub mod stats;

use std::fmt;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use sqlx::{Any, AnyPool, ConnectOptions as _, Connection as _, Executor as _, Transaction};

pub use error::{StoreError, redact_url};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections in a PostgreSQL pool (per node).
const PG_MAX_CONNECTIONS: u32 = 16;
/// Connections in a file-backed SQLite pool: readers run in parallel under WAL, writers
/// queue on the database lock.
const SQLITE_MAX_CONNECTIONS: u32 = 4;
/// How long a caller waits for a pooled connection before giving up (a transient error).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long SQLite waits on a locked database before returning SQLITE_BUSY.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 5_000;

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// The backend a URL names: `sqlite:` or `postgres:`/`postgresql:`.
    pub fn from_url(url: &str) -> Option<Backend> {
        let scheme = url.split_once(':')?.0.to_ascii_lowercase();
        match scheme.as_str() {
            "sqlite" => Some(Backend::Sqlite),
            "postgres" | "postgresql" => Some(Backend::Postgres),
            _ => None,
        }
    }
}

/// The database: a pool plus which backend it is. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// How to open a native PostgreSQL connection beside the pool (bulk writes by `COPY`,
    /// which the `Any` driver cannot do). Holds the password: never printed.
    pg_options: Option<std::sync::Arc<sqlx::postgres::PgConnectOptions>>,
    /// How to open a native connection to a SQLite file beside the pool (bulk writes bind
    /// their values without the `Any` driver's two copies of every text). None in memory:
    /// another connection would be another database.
    sqlite_options: Option<std::sync::Arc<sqlx::sqlite::SqliteConnectOptions>>,
    /// On a SQLite file, the one native connection that records folder scans' placements
    /// ([`scan_batch::record_sightings_on`]), opened on first use and kept: its page cache
    /// stays warm from chunk to chunk (a pooled connection's is dropped whenever another
    /// connection wrote, and the pool hands out its connections in turn), and its values are
    /// bound without the `Any` driver's copies. SQLite writes one transaction at a time
    /// anyway, so one writer costs scans no parallelism. Emptied after an error, to be
    /// opened again.
    ledger_writer: Option<std::sync::Arc<tokio::sync::Mutex<Option<sqlx::SqliteConnection>>>>,
}

impl fmt::Debug for Store {
    // Written by hand so that no connection option (a password) can end up in a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .field("connections", &self.pool.size())
            .finish()
    }
}

impl Store {
    /// Connects to `url` and applies the embedded migrations.
    ///
    /// `sqlite://path/to.db` creates the file if it is missing and uses WAL; `sqlite::memory:`
    /// is one private database on a single connection (tests); `postgres://…` is a pool.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let connect_err = |source| StoreError::Connect {
            url_redacted: redact_url(url),
            source,
        };
        let backend = Backend::from_url(url).ok_or_else(|| {
            connect_err(sqlx::Error::Configuration(
                "unsupported database URL: expected sqlite:… or postgres://…".into(),
            ))
        })?;
        let pool = match backend {
            Backend::Sqlite => connect_sqlite(url).await,
            Backend::Postgres => {
                // One direct attempt first: a refused or misaddressed server fails at once
                // with its real reason, instead of after the pool's acquire timeout.
                match tokio::time::timeout(ACQUIRE_TIMEOUT, sqlx::AnyConnection::connect(url)).await
                {
                    Ok(Ok(conn)) => {
                        let _ = sqlx::Connection::close(conn).await;
                    }
                    Ok(Err(e)) => return Err(connect_err(e)),
                    Err(_) => return Err(connect_err(sqlx::Error::PoolTimedOut)),
                }
                AnyPoolOptions::new()
                    .max_connections(PG_MAX_CONNECTIONS)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect(url)
                    .await
            }
        }
        .map_err(connect_err)?;
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&pool).await?;
        let pg_options = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(std::sync::Arc::new(
                url.parse::<sqlx::postgres::PgConnectOptions>()
                    .map_err(connect_err)?,
            )),
        };
        let sqlite_options = match backend {
            Backend::Sqlite if !sqlite_is_memory(url) => Some(std::sync::Arc::new(
                sqlite_with_create(url)
                    .parse::<sqlx::sqlite::SqliteConnectOptions>()
                    .map_err(connect_err)?
                    .busy_timeout(Duration::from_millis(SQLITE_BUSY_TIMEOUT_MS.into()))
                    .foreign_keys(true)
                    .synchronous(sqlx::sqlite::SqliteSynchronous::Normal),
            )),
            _ => None,
        };
        let ledger_writer = sqlite_options
            .as_ref()
            .map(|_| std::sync::Arc::new(tokio::sync::Mutex::new(None)));
        Ok(Store {
            pool,
            backend,
            pg_options,
            sqlite_options,
            ledger_writer,
        })
    }

    /// A native connection to the SQLite file, outside the pool, with the pool's settings.
    /// None for PostgreSQL and for an in-memory database.
    pub async fn sqlite_connection(&self) -> Result<Option<sqlx::SqliteConnection>, StoreError> {
        let Some(options) = &self.sqlite_options else {
            return Ok(None);
        };
        Ok(Some(options.connect().await?))
    }

    /// A native PostgreSQL connection to the same database, outside the pool (for `COPY`).
    /// None on SQLite.
    pub async fn pg_connection(&self) -> Result<Option<sqlx::PgConnection>, StoreError> {
        let Some(options) = &self.pg_options else {
            return Ok(None);
        };
        let conn = tokio::time::timeout(ACQUIRE_TIMEOUT, options.connect())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)??;
        Ok(Some(conn))
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A round trip to the database (for `/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Starts a transaction on a pooled connection.
    pub async fn begin(&self) -> Result<Transaction<'static, Any>, StoreError> {
        Ok(self.pool.begin().await?)
    }

    /// The ledger writer's connection (see the field), locked for one statement; None for
    /// PostgreSQL and for an in-memory database, where callers use the pool.
    pub(crate) async fn ledger_writer(
        &self,
    ) -> Option<tokio::sync::MutexGuard<'_, Option<sqlx::SqliteConnection>>> {
        Some(self.ledger_writer.as_ref()?.lock().await)
    }

    /// Closes the pool, waiting for connections in use to be returned, and the ledger
    /// writer's connection.
    pub async fn close(&self) {
        if let Some(mut writer) = self.ledger_writer().await
            && let Some(conn) = writer.take()
        {
            let _ = conn.close().await;
        }
        self.pool.close().await;
    }
}

fn sqlite_is_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// The database file of a `sqlite:` URL (percent-escapes are left as they are).
fn sqlite_path(url: &str) -> Option<&std::path::Path> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty()).then(|| std::path::Path::new(path))
}

/// Adds `mode=rwc` (create if missing) unless the URL already chooses a mode.
fn sqlite_with_create(url: &str) -> String {
    match url.split_once('?') {
        None => format!("{url}?mode=rwc"),
        Some((_, query)) if query.split('&').any(|kv| kv.starts_with("mode=")) => url.to_owned(),
        Some(_) => format!("{url}&mode=rwc"),
    }
}

async fn connect_sqlite(url: &str) -> Result<AnyPool, sqlx::Error> {
    if sqlite_is_memory(url) {
        // Every connection to `:memory:` is its own database: keep exactly one, forever.
        return AnyPoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .after_connect(|conn, _| Box::pin(async move { sqlite_pragmas(conn, false).await }))
            .connect(url)
            .await;
    }
    if let Some(dir) = sqlite_path(url).and_then(|p| p.parent())
        && !dir.as_os_str().is_empty()
    {
        tokio::fs::create_dir_all(dir).await?;
    }
    let url = sqlite_with_create(url);
    // WAL is a property of the file. Switching to it takes an exclusive lock that the busy
    // timeout does not cover, so do it once on a lone connection before the pool opens more.
    let mut conn = sqlx::AnyConnection::connect(&url).await?;
    conn.execute("PRAGMA journal_mode = WAL").await?;
    conn.close().await?;
    AnyPoolOptions::new()
        .max_connections(SQLITE_MAX_CONNECTIONS)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        // A file connection does not go stale as a network one does; the ping sqlx sends on
        // every acquire by default is a round trip to the connection's thread each time (a
        // scan acquires once per chunk).
        .test_before_acquire(false)
        .after_connect(|conn, _| Box::pin(async move { sqlite_pragmas(conn, true).await }))
        .connect(&url)
        .await
}

/// Per-connection settings (sqlx sets the first two by default; stating them keeps them
/// true if that default ever changes).
async fn sqlite_pragmas(conn: &mut sqlx::AnyConnection, wal: bool) -> Result<(), sqlx::Error> {
    conn.execute(sqlx::AssertSqlSafe(format!(
        "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}"
    )))
    .await?;
    conn.execute("PRAGMA foreign_keys = ON").await?;
    if wal {
        // The usual pairing with WAL: durable at checkpoints, no fsync per commit.
        conn.execute("PRAGMA synchronous = NORMAL").await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_from_url() {
        assert_eq!(Backend::from_url("sqlite::memory:"), Some(Backend::Sqlite));
        assert_eq!(Backend::from_url("sqlite://a.db"), Some(Backend::Sqlite));
        assert_eq!(
            Backend::from_url("postgres://h/db"),
            Some(Backend::Postgres)
        );
        assert_eq!(
            Backend::from_url("postgresql://h/db"),
            Some(Backend::Postgres)
        );
        assert_eq!(Backend::from_url("mysql://h/db"), None);
        assert_eq!(Backend::from_url("hearth.db"), None);
    }

    #[test]
    fn sqlite_urls_create_the_file() {
        assert_eq!(
            sqlite_with_create("sqlite://a.db"),
            "sqlite://a.db?mode=rwc"
        );
        assert_eq!(
            sqlite_with_create("sqlite://a.db?cache=shared"),
            "sqlite://a.db?cache=shared&mode=rwc"
        );
        assert_eq!(
            sqlite_with_create("sqlite://a.db?mode=ro"),
            "sqlite://a.db?mode=ro"
        );
        let path = |u| sqlite_path(u).map(|p| p.to_str().unwrap().to_owned());
        assert_eq!(
            path("sqlite:///var/lib/h.db?mode=rwc").as_deref(),
            Some("/var/lib/h.db")
        );
        assert_eq!(path("sqlite://data/h.db").as_deref(), Some("data/h.db"));
        assert_eq!(path("sqlite:h.db").as_deref(), Some("h.db"));
        assert_eq!(path("postgres://h/db"), None);
        assert!(sqlite_is_memory("sqlite::memory:"));
        assert!(!sqlite_is_memory("sqlite:///var/lib/hearth/hearth.db"));
    }

    #[tokio::test]
    async fn memory_store_migrates_and_pings() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        assert_eq!(store.backend(), Backend::Sqlite);
        store.ping().await.unwrap();
        let err = Store::connect("mysql://u:pw@h/db").await.unwrap_err();
        assert!(matches!(err, StoreError::Connect { .. }));
        assert!(err.to_string().contains("u:***@h") && !err.to_string().contains("pw"));
    }

    #[tokio::test]
    async fn sqlite_busy_is_transient_and_a_constraint_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("h.db").display());
        let store = Store::connect(&url).await.unwrap();
        let mut holder = store.pool().acquire().await.unwrap();
        holder.execute("BEGIN IMMEDIATE").await.unwrap();
        let mut other = store.pool().acquire().await.unwrap();
        other.execute("PRAGMA busy_timeout = 0").await.unwrap();
        let busy: StoreError = other
            .execute("INSERT INTO settings (key, value) VALUES ('a', 'b')")
            .await
            .unwrap_err()
            .into();
        assert!(busy.is_transient(), "{busy}");
        holder.execute("ROLLBACK").await.unwrap();
        drop(other);

        settings::set(store.pool(), "a", "b").await.unwrap();
        let dup: StoreError = holder
            .execute("INSERT INTO settings (key, value) VALUES ('a', 'c')")
            .await
            .unwrap_err()
            .into();
        assert!(dup.is_unique_violation() && !dup.is_transient(), "{dup}");
    }

    #[tokio::test]
    async fn sqlite_file_and_its_directory_are_created() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("nested/state/hearth.db");
        let store = Store::connect(&format!("sqlite://{}", file.display()))
            .await
            .unwrap();
        store.ping().await.unwrap();
        assert!(file.exists());
        store.close().await;
    }
}
