//! What a folder scan writes, a chunk of messages at a time. The messages of one folder share
//! most of their placement's columns (seed, folder, class, provider, times, UIDVALIDITY), so
//! these are bound once; each message adds only what is its own (Message-ID, arrival,
//! Authentication-Results, UID). The outbox rows are joined in SQL, not read back: a chunk of
//! 1,000 messages is one `INSERT … SELECT … ON CONFLICT DO NOTHING`, where a lookup and an
//! insert per message cost 2,000 statements (`hearth bench imap-scan`). The insert's row
//! count says how many were this seed's mail unless some went in before: only then does the
//! scan `COUNT` them ([`attribute`]).
//!
//! Statements hold as many parameters as the backend allows (see [`super::outbox_bulk`]).
//! Only those for the scan's chunk sizes ([`CHUNK_SIZES`]) are kept prepared: the others'
//! size follows the batch, and a cached statement of thousands of parameters is large.
//! Callers pass a connection, or their transaction's.

use std::collections::HashSet;
use std::sync::Arc;

use sqlx::{AnyConnection, AssertSqlSafe, Connection as _};

use crate::domain::{OutboxStatus, Placement, Provider};

use super::outbox_bulk::{backend, max_params, push_tuples};
use super::{Backend, Store, StoreError, row};

/// Messages per statement that scans use and whose statements stay prepared. Each statement
/// costs a fixed part besides its rows (a round trip to the connection's thread, a commit):
/// on SQLite, recording 1,000 messages took 6.3 ms of the database thread's CPU in chunks
/// of 50, 5.0–5.2 in chunks of 100 and 4.4–4.9 in chunks of 200 (`hearth bench imap-scan`,
/// two cores); larger chunks start later beside the FETCH and leave more for after it.
pub const CHUNK: usize = 200;

/// The chunk sizes a scan uses, largest first ([`next_chunk`]); their statements are kept
/// prepared. The smallest is where a chunk's rows cost about as much as its fixed part.
pub const CHUNK_SIZES: [usize; 4] = [CHUNK, CHUNK / 2, CHUNK / 4, CHUNK / 8];

/// How many of the `ready` sightings to record now, or None to wait for more. `to_come` is
/// how many more the FETCH should bring (an estimate), `over` whether it has ended.
///
/// While plenty are to come, chunks are full ([`CHUNK`]): each statement has a fixed cost.
/// Towards the end, whatever is ready goes as soon as the database is free, in the largest
/// size with a prepared statement ([`CHUNK_SIZES`]), so that when the last response comes the
/// database is not still busy with a full chunk: what is left to write then is small.
pub fn next_chunk(ready: usize, to_come: usize, over: bool) -> Option<usize> {
    let smallest = CHUNK_SIZES[CHUNK_SIZES.len() - 1];
    let prepared = CHUNK_SIZES.into_iter().find(|size| *size <= ready);
    if over {
        return (ready > 0).then(|| prepared.unwrap_or(ready));
    }
    if to_come > 2 * CHUNK {
        return (ready >= CHUNK).then_some(CHUNK);
    }
    prepared.filter(|size| *size >= smallest)
}

/// The columns every placement of one folder's chunk shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderSighting<'a> {
    pub seed_id: i64,
    pub provider: Provider,
    pub placement: Placement,
    pub folder: &'a str,
    pub imap_uidvalidity: i64,
    /// When the scan saw the folder (also the rows' `created_at`).
    pub seen_at: i64,
}

/// One message found in the folder, its mark verified. Its text is shared (`Arc<str>`): on
/// SQLite, binding it to the chunk's statement copies nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sighting {
    pub message_id: Arc<str>,
    /// The message's INTERNALDATE: the latency is from the outbox row's `sent_at` (or its
    /// `run_at` if the send was never confirmed) to this, never negative.
    pub arrived: i64,
    pub auth_spf: Option<Arc<str>>,
    pub auth_dkim: Option<Arc<str>>,
    pub auth_dmarc: Option<Arc<str>>,
    pub auth_results: Option<Arc<str>>,
    pub imap_uid: Option<i64>,
}

/// How many of a chunk's Message-IDs are this seed's outbox rows, and which of those are
/// still `sending` (seen in the mailbox before the send was confirmed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attribution {
    pub found: u64,
    pub sending: Vec<String>,
}

// `+seed_id`: the Message-ID's unique index finds the rows; SQLite would otherwise walk every
// outbox row of the seed (its seed_id index), the seed's whole history, for each chunk.
const COUNT_HEAD: &str = "SELECT COUNT(*) AS found, \
       COALESCE(SUM(CASE WHEN status = $1 THEN 1 ELSE 0 END), 0) AS sending \
     FROM outbox WHERE +seed_id = $2 AND message_id IN ";
const SENDING_HEAD: &str =
    "SELECT message_id FROM outbox WHERE status = $1 AND +seed_id = $2 AND message_id IN ";

/// Counts the seed's outbox rows among `message_ids` and lists the ones still `sending`.
pub async fn attribute(
    conn: &mut AnyConnection,
    seed_id: i64,
    message_ids: &[&str],
) -> Result<Attribution, StoreError> {
    let backend = backend(conn);
    let mut out = Attribution::default();
    for part in message_ids.chunks(max_params(backend) - 2) {
        let query = |head: &str| {
            let mut sql = String::from(head);
            push_tuples(&mut sql, backend, 3, 1, part.len());
            let mut q = sqlx::query(AssertSqlSafe(placeholders(backend, &sql)))
                .persistent(part.len() == CHUNK)
                .bind(OutboxStatus::Sending.as_str())
                .bind(seed_id);
            for id in part {
                q = q.bind(*id);
            }
            q
        };
        let r = query(COUNT_HEAD).fetch_one(&mut *conn).await?;
        out.found += u64::try_from(row::int(&r, "found")?).unwrap_or(0);
        if row::int(&r, "sending")? > 0 {
            // Rare (a crash between SMTP and the database): name them.
            let rows = query(SENDING_HEAD).fetch_all(&mut *conn).await?;
            for r in rows {
                out.sending.push(row::text(&r, "message_id")?);
            }
        }
    }
    Ok(out)
}

const SENDING_OF_SEED: &str =
    "SELECT message_id FROM outbox WHERE status = 'sending' AND +seed_id = $1";

/// The Message-IDs of this seed's outbox rows still `sending` (a send not yet confirmed: few,
/// and nearly always none). A scan reads them once per folder, beside its SELECT, instead of
/// looking for them in every chunk. `status = 'sending'` is spelled out for the partial index
/// `outbox_leased`; `+seed_id` keeps SQLite off the seed's whole history (its seed_id index).
pub async fn sending(conn: &mut AnyConnection, seed_id: i64) -> Result<Vec<String>, StoreError> {
    let sql = placeholders(backend(conn), SENDING_OF_SEED);
    let rows = sqlx::query(AssertSqlSafe(sql))
        .bind(seed_id)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(|r| row::text(r, "message_id")).collect()
}

/// `$1` and `$2` of a hand-written head as SQLite's anonymous `?` (see
/// [`super::outbox_bulk`] on why they are anonymous there).
fn placeholders(backend: Backend, sql: &str) -> String {
    match backend {
        Backend::Sqlite => sql.replace("$1", "?").replace("$2", "?"),
        Backend::Postgres => sql.to_owned(),
    }
}

const SHARED_COLUMNS: usize = 6;
const OWN_COLUMNS: usize = 7;

/// The insert for `rows` sightings: the shared columns as one CTE row, the sightings as
/// another, joined with the outbox on the Message-ID and the seed (only this seed's mail is
/// attributed).
fn insert_sql(backend: Backend, rows: usize) -> String {
    let mut sql = String::with_capacity(900 + rows * OWN_COLUMNS * 7);
    sql.push_str(
        "WITH f (seed_id, provider, placement, folder, imap_uidvalidity, seen_at) AS (VALUES ",
    );
    push_tuples(&mut sql, backend, 1, 1, SHARED_COLUMNS);
    sql.push_str(
        "), s (message_id, arrived, auth_spf, auth_dkim, auth_dmarc, auth_results, imap_uid) \
         AS (VALUES ",
    );
    push_tuples(&mut sql, backend, 1 + SHARED_COLUMNS, rows, OWN_COLUMNS);
    // CROSS JOIN keeps SQLite's join order (each sighting, then the outbox by its unique
    // Message-ID index); the conditions are in `WHERE`, which SQLite needs before an upsert's
    // `ON CONFLICT` (else it reads it as part of a join constraint).
    sql.push_str(
        ") INSERT INTO placements (outbox_id, seed_id, message_id, placement, folder, provider, \
           seen_at, latency_secs, auth_spf, auth_dkim, auth_dmarc, auth_results, \
           imap_uidvalidity, imap_uid, created_at) \
         SELECT o.id, f.seed_id, o.message_id, f.placement, f.folder, f.provider, f.seen_at, \
           CASE WHEN s.arrived > COALESCE(o.sent_at, o.run_at) \
             THEN s.arrived - COALESCE(o.sent_at, o.run_at) ELSE 0 END, \
           s.auth_spf, s.auth_dkim, s.auth_dmarc, s.auth_results, f.imap_uidvalidity, \
           s.imap_uid, f.seen_at \
         FROM s CROSS JOIN f CROSS JOIN outbox o \
         WHERE o.message_id = s.message_id AND o.seed_id = f.seed_id \
         ON CONFLICT DO NOTHING",
    );
    sql
}

/// Binds a chunk's values to its insert ([`insert_sql`]): the shared columns, then each
/// sighting's own, each text as `$text(value)` (borrowed for the `Any` driver, the shared
/// `Arc` itself for the native SQLite one). A macro, for both drivers' queries.
macro_rules! bind_chunk {
    ($q:expr, $folder:expr, $part:expr, $text:expr) => {{
        let mut q = $q
            .bind($folder.seed_id)
            .bind($folder.provider.as_str())
            .bind($folder.placement.as_str())
            .bind($folder.folder)
            .bind($folder.imap_uidvalidity)
            .bind($folder.seen_at);
        for s in $part {
            q = q
                .bind($text(&s.message_id))
                .bind(s.arrived)
                .bind(s.auth_spf.as_ref().map($text))
                .bind(s.auth_dkim.as_ref().map($text))
                .bind(s.auth_dmarc.as_ref().map($text))
                .bind(s.auth_results.as_ref().map($text))
                .bind(s.imap_uid);
        }
        q
    }};
}

/// A sighting's text as the `Any` driver binds it.
fn borrowed(text: &Arc<str>) -> &str {
    text
}

/// The sightings to insert: each Message-ID once, as first seen. (Within one statement the
/// order rows are inserted in is the planner's.)
fn first_sightings(sightings: &[Sighting]) -> Vec<&Sighting> {
    let mut seen = HashSet::with_capacity(sightings.len());
    sightings
        .iter()
        .filter(|s| seen.insert(&*s.message_id))
        .collect()
}

/// Records a placement for every sighting that is this seed's outbox row and has none yet,
/// as [`super::ledger::record`] does one: the first sighting wins (also within the chunk),
/// other seeds' and unknown Message-IDs are skipped. Returns how many were recorded.
pub async fn record_sightings(
    conn: &mut AnyConnection,
    folder: &FolderSighting<'_>,
    sightings: &[Sighting],
) -> Result<u64, StoreError> {
    let backend = backend(conn);
    let mut recorded = 0;
    let firsts = first_sightings(sightings);
    for part in firsts.chunks((max_params(backend) - SHARED_COLUMNS) / OWN_COLUMNS) {
        let q = sqlx::query(AssertSqlSafe(insert_sql(backend, part.len())))
            .persistent(CHUNK_SIZES.contains(&part.len()));
        recorded += bind_chunk!(q, folder, part, borrowed)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    }
    Ok(recorded)
}

/// The SQLite insert for `CHUNK_SIZES[i]` sightings, built once.
fn prepared_insert(i: usize) -> &'static str {
    static SQL: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        CHUNK_SIZES
            .iter()
            .map(|size| insert_sql(Backend::Sqlite, *size))
            .collect()
    })[i]
        .as_str()
}

/// [`record_sightings`] as a folder scan calls it: on a SQLite file through the store's one
/// ledger writer connection ([`Store::ledger_writer`], each statement atomic on its own),
/// elsewhere on a pooled connection.
pub async fn record_sightings_on(
    store: &Store,
    folder: &FolderSighting<'_>,
    sightings: &[Sighting],
) -> Result<u64, StoreError> {
    let Some(mut writer) = store.ledger_writer().await else {
        let mut conn = store.pool().acquire().await?;
        return record_sightings(&mut conn, folder, sightings).await;
    };
    let conn = writer_connection(store, &mut writer).await?;
    let mut recorded = 0;
    let firsts = first_sightings(sightings);
    for part in firsts.chunks((max_params(Backend::Sqlite) - SHARED_COLUMNS) / OWN_COLUMNS) {
        let q = match CHUNK_SIZES.iter().position(|size| *size == part.len()) {
            // Kept prepared: their text is built once, and looked up in the statement cache.
            Some(i) => sqlx::query::<sqlx::Sqlite>(prepared_insert(i)),
            None => sqlx::query(AssertSqlSafe(insert_sql(Backend::Sqlite, part.len())))
                .persistent(false),
        };
        match bind_chunk!(q, folder, part, Arc::clone)
            .execute(&mut *conn)
            .await
        {
            Ok(done) => recorded += done.rows_affected(),
            Err(e) => {
                close_writer(&mut writer).await;
                return Err(e.into());
            }
        }
    }
    Ok(recorded)
}

/// Moves the cursor of the scanned folder to `last_uid` ([`super::cursors::set`]), on the
/// connection that wrote the folder's chunks: on a SQLite file the ledger writer, whose
/// cache holds the pages just written and which needs no second connection.
pub async fn set_cursor_on(
    store: &Store,
    folder: &FolderSighting<'_>,
    last_uid: i64,
    now: i64,
) -> Result<(), StoreError> {
    let Some(mut writer) = store.ledger_writer().await else {
        return super::cursors::set(
            store.pool(),
            folder.seed_id,
            folder.folder,
            folder.imap_uidvalidity,
            last_uid,
            now,
        )
        .await;
    };
    let conn = writer_connection(store, &mut writer).await?;
    let done = sqlx::query::<sqlx::Sqlite>(super::cursors::SEED_SET_SQL)
        .bind(folder.seed_id)
        .bind(folder.folder)
        .bind(folder.imap_uidvalidity)
        .bind(last_uid)
        .bind(now)
        .execute(&mut *conn)
        .await;
    if let Err(e) = done {
        close_writer(&mut writer).await;
        return Err(e.into());
    }
    Ok(())
}

/// The ledger writer's connection, opened on first use (and again after an error closed it).
async fn writer_connection<'w>(
    store: &Store,
    writer: &'w mut Option<sqlx::SqliteConnection>,
) -> Result<&'w mut sqlx::SqliteConnection, StoreError> {
    Ok(match writer {
        Some(conn) => conn,
        None => writer.insert(
            store
                .sqlite_connection()
                .await?
                .expect("a store with a ledger writer is a SQLite file"),
        ),
    })
}

/// After an error, whatever state the connection is in: the next statement gets a new one.
async fn close_writer(writer: &mut Option<sqlx::SqliteConnection>) {
    if let Some(conn) = writer.take() {
        let _ = conn.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    #[tokio::test]
    async fn sqlite_finds_the_outbox_rows_by_message_id() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let mut conn = store.pool().acquire().await.unwrap();
        let mut count = placeholders(Backend::Sqlite, COUNT_HEAD);
        push_tuples(&mut count, Backend::Sqlite, 3, 1, 3);
        let mut sending = placeholders(Backend::Sqlite, SENDING_HEAD);
        push_tuples(&mut sending, Backend::Sqlite, 3, 1, 3);
        for sql in [count, sending, insert_sql(Backend::Sqlite, 3)] {
            let plan = sqlx::query(AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                .fetch_all(&mut *conn)
                .await
                .unwrap();
            let detail: Vec<String> = plan
                .iter()
                .map(|r| row::text(r, "detail").unwrap())
                .collect();
            let outbox: Vec<_> = detail
                .iter()
                .filter(|d| d.contains(" o ") || d.contains("outbox"))
                .collect();
            assert!(
                outbox.len() == 1 && outbox[0].contains("(message_id=?)"),
                "{sql}: {detail:?}"
            );
        }
    }

    /// SQLite compiles `CHECK (column IN ('a', 'b', …))` into a temporary B-tree filled for
    /// every row written (migration 20261130000020): the chunk insert of a scan may build a
    /// temporary table only once per statement, never per row.
    #[tokio::test]
    async fn sqlite_chunk_insert_builds_no_table_per_row() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let mut conn = store.pool().acquire().await.unwrap();
        let program = sqlx::query(AssertSqlSafe(format!(
            "EXPLAIN {}",
            insert_sql(Backend::Sqlite, 3)
        )))
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        let opcodes: Vec<String> = program
            .iter()
            .map(|r| row::text(r, "opcode").unwrap())
            .collect();
        assert!(opcodes.iter().any(|o| o == "Insert"), "{opcodes:?}");
        // A table built once per statement (the shared columns' CTE) follows `Once`.
        let per_row = opcodes
            .windows(2)
            .filter(|w| w[1] == "OpenEphemeral" && w[0] != "Once")
            .count();
        assert_eq!(per_row, 0, "{opcodes:?}");
    }

    #[tokio::test]
    async fn sqlite_lists_sending_rows_without_the_seeds_history() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let mut conn = store.pool().acquire().await.unwrap();
        let plan = sqlx::query(AssertSqlSafe(format!(
            "EXPLAIN QUERY PLAN {}",
            placeholders(Backend::Sqlite, SENDING_OF_SEED)
        )))
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        let detail: Vec<String> = plan
            .iter()
            .map(|r| row::text(r, "detail").unwrap())
            .collect();
        assert!(
            detail.len() == 1 && detail[0].contains("INDEX") && !detail[0].contains("seed_id"),
            "{detail:?}"
        );
    }

    #[test]
    fn chunks_are_full_until_the_end_of_the_fetch_nears() {
        // Plenty to come: full chunks only.
        assert_eq!(next_chunk(199, 800, false), None);
        assert_eq!(next_chunk(200, 800, false), Some(200));
        assert_eq!(next_chunk(350, 401, false), Some(200));
        // Near the end: what is ready, in a prepared size.
        assert_eq!(next_chunk(199, 400, false), Some(100));
        assert_eq!(next_chunk(60, 100, false), Some(50));
        assert_eq!(next_chunk(24, 10, false), None);
        assert_eq!(next_chunk(25, 10, false), Some(25));
        // Over: everything, prepared sizes first.
        assert_eq!(next_chunk(37, 0, true), Some(25));
        assert_eq!(next_chunk(12, 0, true), Some(12));
        assert_eq!(next_chunk(450, 0, true), Some(200));
        assert_eq!(next_chunk(0, 0, true), None);
        // Whatever the counts, a chunk is never empty nor more than is ready.
        for ready in 0..500 {
            for to_come in [0, 1, 50, 400, 401, 5000] {
                for over in [false, true] {
                    if let Some(n) = next_chunk(ready, to_come, over) {
                        assert!(
                            n > 0 && n <= ready && n <= CHUNK,
                            "{ready} {to_come} {over}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn the_insert_numbers_every_parameter_once() {
        let pg = insert_sql(Backend::Postgres, 2);
        let last = SHARED_COLUMNS + 2 * OWN_COLUMNS;
        for n in 1..=last {
            assert_eq!(
                pg.matches(&format!("${n},")).count() + pg.matches(&format!("${n})")).count(),
                1,
                "${n}"
            );
        }
        assert!(!pg.contains(&format!("${}", last + 1)));
        let lite = insert_sql(Backend::Sqlite, 2);
        assert_eq!(lite.matches('?').count(), last);
        assert_eq!(
            placeholders(Backend::Sqlite, "a = $1 AND b = $2 IN ("),
            "a = ? AND b = ? IN ("
        );
    }
}
