//! What follows a scan and engagement pass: sending the seeds' queued replies, reading the
//! senders' own mailboxes for where those replies landed, and deleting warm-up mail past its
//! retention. One call from the worker loop (`worker::scan_pending`), each part a step of its
//! own that the tests call directly.

use crate::startup::App;

/// Runs each part once; a failure is logged and does not stop the others.
pub async fn run_once(app: &App) {
    match crate::sender::replies::run_once(app).await {
        Ok(r) if r == Default::default() => {}
        Ok(r) => tracing::info!(report = ?r, "replies"),
        Err(e) => tracing::error!(error = %format!("{e:#}"), "sending replies failed"),
    }
    match super::sender_scan::scan_pending(app).await {
        Ok(results) => {
            for (sender, r) in results {
                if let Err(e) = r {
                    tracing::warn!(%sender, error = %e, "sender mailbox scan failed");
                }
            }
        }
        Err(e) => tracing::error!(error = %e, "cannot list sender mailboxes to scan"),
    }
    match super::retention::retain_pending(app).await {
        Ok(results) => {
            for (seed, r) in results {
                match r {
                    Ok(r) if r.deleted > 0 => tracing::info!(%seed, report = ?r, "retention"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(%seed, error = %e, "retention failed"),
                }
            }
        }
        Err(e) => tracing::error!(error = %e, "cannot list seeds for retention"),
    }
}
