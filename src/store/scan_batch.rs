//! What a folder scan reads and writes, a batch at a time: the outbox rows behind a batch of
//! Message-IDs (one `IN (…)` per chunk instead of a lookup per message), and the batch's
//! placements in multi-row `INSERT … ON CONFLICT DO NOTHING RETURNING`. A scan of 1,000 new
//! messages costs two statements instead of 2,000 (`hearth bench imap-scan`).
//!
//! Chunks hold as many parameters as the backend allows (see [`super::outbox_bulk`]). The
//! statements are not kept prepared: their size follows the batch, and a cached statement of
//! thousands of parameters is large. Callers pass a connection, or their transaction's.

use std::collections::HashMap;

use sqlx::{AnyConnection, AssertSqlSafe};

use crate::domain::OutboxStatus;

use super::ledger::NewPlacement;
use super::outbox_bulk::{backend, max_params, values_sql};
use super::{StoreError, row};

/// The part of an outbox row a scan needs to attribute a message it found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentRef {
    pub id: i64,
    pub seed_id: i64,
    pub status: OutboxStatus,
    pub run_at: i64,
    pub sent_at: Option<i64>,
}

/// The outbox rows of those Message-IDs that are in the outbox, by Message-ID.
pub async fn sent_by_message_ids(
    conn: &mut AnyConnection,
    message_ids: &[&str],
) -> Result<HashMap<String, SentRef>, StoreError> {
    let backend = backend(conn);
    let mut out = HashMap::with_capacity(message_ids.len());
    for part in message_ids.chunks(max_params(backend)) {
        let sql = values_sql(
            backend,
            "SELECT id, seed_id, message_id, status, run_at, sent_at FROM outbox \
             WHERE message_id IN ",
            1,
            part.len(),
            "",
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(false);
        for id in part {
            q = q.bind(*id);
        }
        for r in q.fetch_all(&mut *conn).await? {
            out.insert(
                row::text(&r, "message_id")?,
                SentRef {
                    id: row::int(&r, "id")?,
                    seed_id: row::int(&r, "seed_id")?,
                    status: row::parsed(&r, "outbox", "status")?,
                    run_at: row::int(&r, "run_at")?,
                    sent_at: row::int_opt(&r, "sent_at")?,
                },
            );
        }
    }
    Ok(out)
}

const PLACEMENT_HEAD: &str = "INSERT INTO placements (outbox_id, seed_id, message_id, placement, \
     folder, provider, seen_at, latency_secs, auth_spf, auth_dkim, auth_dmarc, auth_results, \
     imap_uidvalidity, imap_uid, created_at) VALUES ";
const PLACEMENT_COLUMNS: usize = 15;

/// Records every placement of the batch that has none yet, as [`super::ledger::record`] does
/// one (the first sighting wins; a message twice in the batch is recorded once). Returns how
/// many this call recorded.
pub async fn record_placements(
    conn: &mut AnyConnection,
    placements: &[NewPlacement],
    now: i64,
) -> Result<u64, StoreError> {
    let backend = backend(conn);
    let mut recorded = 0;
    for part in placements.chunks(max_params(backend) / PLACEMENT_COLUMNS) {
        let sql = values_sql(
            backend,
            PLACEMENT_HEAD,
            part.len(),
            PLACEMENT_COLUMNS,
            " ON CONFLICT DO NOTHING",
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(false);
        for p in part {
            q = q
                .bind(p.outbox_id)
                .bind(p.seed_id)
                .bind(p.message_id.as_str())
                .bind(p.placement.as_str())
                .bind(p.folder.as_deref())
                .bind(p.provider.as_str())
                .bind(p.seen_at)
                .bind(p.latency_secs)
                .bind(p.auth_spf.as_deref())
                .bind(p.auth_dkim.as_deref())
                .bind(p.auth_dmarc.as_deref())
                .bind(p.auth_results.as_deref())
                .bind(p.imap_uidvalidity)
                .bind(p.imap_uid)
                .bind(now);
        }
        recorded += q.execute(&mut *conn).await?.rows_affected();
    }
    Ok(recorded)
}
