//! Logs through tracing, as text or JSON. `RUST_LOG` overrides the configured filter.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

pub fn init(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(filter))
        .unwrap_or_else(|_| EnvFilter::new("info"))
        // lettre logs every line it writes at debug level, AUTH lines (passwords, XOAUTH2
        // tokens) included: its logs stop at info, whatever the filter says.
        .add_directive("lettre=info".parse().expect("a valid directive"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    // A second init (tests) is harmless: the first subscriber stays.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// In-process counters for what the database does not record (shown by `/metrics`). They
/// count this process only, since it started, as Prometheus counters do.
pub mod counters {
    use std::sync::atomic::{AtomicU64, Ordering};

    static IMAP_SESSIONS_OK: AtomicU64 = AtomicU64::new(0);
    static IMAP_SESSIONS_FAILED: AtomicU64 = AtomicU64::new(0);

    /// An IMAP session was opened (logged in), or the attempt failed.
    pub fn imap_session(ok: bool) {
        let c = if ok {
            &IMAP_SESSIONS_OK
        } else {
            &IMAP_SESSIONS_FAILED
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// `(opened, failed)` IMAP sessions since this process started.
    pub fn imap_sessions() -> (u64, u64) {
        (
            IMAP_SESSIONS_OK.load(Ordering::Relaxed),
            IMAP_SESSIONS_FAILED.load(Ordering::Relaxed),
        )
    }
}
