//! A fresh PostgreSQL database per test, created through the admin URL in `DATABASE_URL`
//! and dropped afterwards.
//!
//! Without `DATABASE_URL` the PostgreSQL half of a suite is skipped with one clear line on
//! stderr, unless `HEARTH_TEST_REQUIRE_PG=1`, in which case it fails (set that in CI).

use std::io::Write as _;
use std::sync::Once;

use sqlx::{AnyConnection, AssertSqlSafe, Connection as _, Executor as _};

/// The admin URL, or `None` when PostgreSQL tests are to be skipped.
pub fn admin_url() -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if std::env::var("HEARTH_TEST_REQUIRE_PG").as_deref() == Ok("1") => {
            panic!(
                "HEARTH_TEST_REQUIRE_PG=1 but DATABASE_URL is unset: cannot run the PostgreSQL tests"
            )
        }
        _ => {
            static SKIP_NOTICE: Once = Once::new();
            // Straight to stderr: the test harness captures print!/eprint! of passing tests.
            SKIP_NOTICE.call_once(|| {
                let _ = writeln!(
                    std::io::stderr(),
                    "store tests: PostgreSQL skipped (DATABASE_URL unset)"
                );
            });
            None
        }
    }
}

/// A database that exists for one test.
pub struct TestDb {
    admin_url: String,
    name: String,
    /// URL of the test database (same server and credentials as the admin URL).
    pub url: String,
}

impl TestDb {
    /// Creates `hearth_test_<uuid>` on the admin URL's server.
    pub async fn create(admin_url: &str) -> TestDb {
        sqlx::any::install_default_drivers();
        let name = format!("hearth_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = AnyConnection::connect(admin_url)
            .await
            .expect("connect to DATABASE_URL (the PostgreSQL admin URL)");
        // The name is generated above from a UUID: nothing to inject.
        admin
            .execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("CREATE DATABASE");
        let _ = admin.close().await;
        TestDb {
            url: with_database(admin_url, &name),
            admin_url: admin_url.to_owned(),
            name,
        }
    }

    /// Drops the database, best effort (a failure only leaves a stray test database).
    pub async fn drop_db(self) {
        let Ok(mut admin) = AnyConnection::connect(&self.admin_url).await else {
            return;
        };
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(e) = admin.execute(AssertSqlSafe(sql)).await {
            let _ = writeln!(std::io::stderr(), "could not drop {}: {e}", self.name);
        }
        let _ = admin.close().await;
    }
}

/// Runs `body` with the URL of a fresh database: a SQLite file in `dir`, or (`postgres`) a new
/// PostgreSQL database, dropped afterwards even when `body` panics (the panic goes on). Without
/// PostgreSQL configured the PostgreSQL run is skipped (see [`admin_url`]).
#[allow(dead_code)]
pub async fn on_fresh_db<F, Fut>(postgres: bool, dir: &std::path::Path, body: F)
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    use futures::FutureExt as _;
    let db = if postgres {
        let Some(admin) = admin_url() else { return };
        Some(TestDb::create(&admin).await)
    } else {
        None
    };
    let url = match &db {
        Some(db) => db.url.clone(),
        None => format!("sqlite://{}", dir.join("hearth.db").display()),
    };
    let outcome = std::panic::AssertUnwindSafe(body(url)).catch_unwind().await;
    if let Some(db) = db {
        db.drop_db().await;
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// `url` pointing at database `name` instead (keeps scheme, credentials, host, parameters).
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let (scheme, rest) = base.split_once("://").expect("DATABASE_URL has a scheme");
    // The authority ends at the first '/' after the last '@' (passwords may hold '/').
    let host_start = rest.rfind('@').map_or(0, |i| i + 1);
    let authority_end = rest[host_start..]
        .find('/')
        .map_or(rest.len(), |i| host_start + i);
    let mut out = format!("{scheme}://{}/{name}", &rest[..authority_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

#[test]
fn database_urls() {
    let cases = [
        (
            "postgres://postgres@127.0.0.1:5432/postgres",
            "postgres://postgres@127.0.0.1:5432/t",
        ),
        (
            "postgres://u:p/w@db/admin?sslmode=disable",
            "postgres://u:p/w@db/t?sslmode=disable",
        ),
        ("postgres://localhost", "postgres://localhost/t"),
    ];
    for (url, want) in cases {
        assert_eq!(with_database(url, "t"), want);
    }
}
