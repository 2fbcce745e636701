//! Bulk writes for planning: a day's sends (or many campaigns' days) in multi-row INSERTs.
//!
//! Each statement binds as many rows as the backend allows parameters (SQLite 32766,
//! PostgreSQL 65535). Callers pass the connection of their transaction (`&mut *tx`), so the
//! claim of a day and its sends commit together.
//!
//! On SQLite the placeholders are anonymous (`?`): sqlx binds SQLite parameters by looking
//! up each one's name, and SQLite finds a name by walking a list, so numbered placeholders
//! make a statement of n parameters cost O(n²) (about a minute for a million rows). An
//! anonymous placeholder has no name to look up.

use std::fmt::Write as _;
use std::sync::OnceLock;

use sqlx::{AnyConnection, AssertSqlSafe};

use std::collections::{HashMap, HashSet};

use crate::domain::{OutboxStatus, Provider, SendKind};

use super::outbox::NewSend;
use super::{Backend, StoreError, row};

pub(super) fn backend(conn: &AnyConnection) -> Backend {
    if conn.backend_name().eq_ignore_ascii_case("sqlite") {
        Backend::Sqlite
    } else {
        Backend::Postgres
    }
}

/// Parameters one statement may bind: SQLite's `SQLITE_MAX_VARIABLE_NUMBER` (since 3.32),
/// PostgreSQL's protocol limit.
pub(super) fn max_params(backend: Backend) -> usize {
    match backend {
        Backend::Sqlite => 32_766,
        Backend::Postgres => 65_535,
    }
}

/// `head` then `rows` tuples of `per_row` placeholders, then `tail`.
pub(super) fn values_sql(
    backend: Backend,
    head: &str,
    rows: usize,
    per_row: usize,
    tail: &str,
) -> String {
    values_sql_from(backend, head, rows, per_row, 0, tail)
}

/// As [`values_sql`], numbering PostgreSQL's placeholders after the `before` in `head`.
fn values_sql_from(
    backend: Backend,
    head: &str,
    rows: usize,
    per_row: usize,
    before: usize,
    tail: &str,
) -> String {
    let mut sql = String::with_capacity(head.len() + rows * per_row * 7 + tail.len());
    sql.push_str(head);
    push_tuples(&mut sql, backend, before + 1, rows, per_row);
    sql.push_str(tail);
    sql
}

/// Appends `rows` tuples of `per_row` placeholders, numbered from `first` on PostgreSQL
/// (SQLite's are anonymous: they take their number from their place in the statement).
pub(super) fn push_tuples(
    sql: &mut String,
    backend: Backend,
    first: usize,
    rows: usize,
    per_row: usize,
) {
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ",(" });
        for c in 0..per_row {
            if c > 0 {
                sql.push(',');
            }
            match backend {
                Backend::Sqlite => sql.push('?'),
                Backend::Postgres => {
                    let _ = write!(sql, "${}", first + r * per_row + c);
                }
            }
        }
        sql.push(')');
    }
}

const OUTBOX_HEAD: &str = "INSERT INTO outbox (campaign_id, seed_id, kind, message_id, subject, \
     in_reply_to, status, plan_day, run_at, created_at) VALUES ";
const OUTBOX_COLUMNS: usize = 10;

/// Rows in one full statement.
fn outbox_chunk(backend: Backend) -> usize {
    max_params(backend) / OUTBOX_COLUMNS
}

/// The statement for a full chunk, built once per backend.
fn full_outbox_sql(backend: Backend) -> &'static str {
    static SQLITE: OnceLock<String> = OnceLock::new();
    static POSTGRES: OnceLock<String> = OnceLock::new();
    let cell = match backend {
        Backend::Sqlite => &SQLITE,
        Backend::Postgres => &POSTGRES,
    };
    cell.get_or_init(|| {
        values_sql(
            backend,
            OUTBOX_HEAD,
            outbox_chunk(backend),
            OUTBOX_COLUMNS,
            "",
        )
    })
}

/// The columns a planning batch shares: every row of one campaign day's plan has the same
/// kind, plan day, no `In-Reply-To` and no Message-ID yet (the claim gives it one), so a
/// statement binds them once instead of per row.
const UNIFORM_HEAD: &str = "INSERT INTO outbox (campaign_id, seed_id, subject, run_at, \
     kind, status, plan_day, in_reply_to, message_id, created_at) \
     SELECT column1, column2, column3, column4, ";
/// Per-row parameters of the uniform statement, and the shared ones bound once before them.
const UNIFORM_COLUMNS: usize = 4;
const UNIFORM_SHARED: usize = 4;

/// Rows in one full uniform statement.
fn uniform_chunk(backend: Backend) -> usize {
    (max_params(backend) - UNIFORM_SHARED) / UNIFORM_COLUMNS
}

/// `INSERT … SELECT column1…column4, <shared> FROM (VALUES …)` for `rows` rows. A VALUES
/// list names its columns `column1`, `column2`, … on SQLite and on PostgreSQL alike.
fn uniform_sql(backend: Backend, rows: usize) -> String {
    let shared = match backend {
        Backend::Sqlite => "?, ?, ?, NULL, NULL, ? FROM (VALUES ".to_owned(),
        Backend::Postgres => "$1, $2, $3, NULL, NULL, $4 FROM (VALUES ".to_owned(),
    };
    let mut sql = values_sql_from(
        backend,
        &format!("{UNIFORM_HEAD}{shared}"),
        rows,
        UNIFORM_COLUMNS,
        UNIFORM_SHARED,
        ") AS v",
    );
    sql.shrink_to_fit();
    sql
}

/// The uniform statement for a full chunk, built once per backend.
fn full_uniform_sql(backend: Backend) -> &'static str {
    static SQLITE: OnceLock<String> = OnceLock::new();
    static POSTGRES: OnceLock<String> = OnceLock::new();
    let cell = match backend {
        Backend::Sqlite => &SQLITE,
        Backend::Postgres => &POSTGRES,
    };
    cell.get_or_init(|| uniform_sql(backend, uniform_chunk(backend)))
}

/// The kind and plan day every send shares, when they all share them, none replies and none
/// has a Message-ID yet.
fn shared_columns(sends: &[NewSend]) -> Option<(SendKind, &str)> {
    let first = sends.first()?;
    let plan_day = first.plan_day.as_deref()?;
    sends
        .iter()
        .all(|s| {
            s.kind == first.kind
                && s.in_reply_to.is_none()
                && s.message_id.is_none()
                && s.plan_day.as_deref() == Some(plan_day)
        })
        .then_some((first.kind, plan_day))
}

/// Enqueues every send (the same columns as [`super::outbox::enqueue`], status `planned`)
/// in as few statements as the backend's parameter limit allows, and marks their campaign
/// days for the roll-ups. Returns the rows inserted. The seeds' loads are the caller's
/// ([`add_seed_loads`]; planning writes both with [`write_batch`]).
///
/// Sends that share their kind and plan day, reply to nothing and have no Message-ID yet (a
/// day's planning) bind four parameters a row instead of ten.
pub async fn enqueue_many(
    conn: &mut AnyConnection,
    sends: &[NewSend],
    now: i64,
) -> Result<u64, StoreError> {
    let backend = backend(conn);
    if let Some((kind, plan_day)) = shared_columns(sends) {
        let chunk = uniform_chunk(backend);
        let mut inserted = 0;
        for part in sends.chunks(chunk) {
            let owned;
            let sql = if part.len() == chunk {
                full_uniform_sql(backend)
            } else {
                owned = uniform_sql(backend, part.len());
                &owned
            };
            let mut q = sqlx::query(AssertSqlSafe(sql))
                .bind(kind.as_str())
                .bind(OutboxStatus::Planned.as_str())
                .bind(plan_day)
                .bind(now);
            for s in part {
                q = q
                    .bind(s.campaign_id)
                    .bind(s.seed_id)
                    .bind(s.subject.as_str())
                    .bind(s.run_at);
            }
            inserted += q.execute(&mut *conn).await?.rows_affected();
        }
        super::rollup::mark_days(conn, &plan_days(sends)).await?;
        return Ok(inserted);
    }
    let chunk = outbox_chunk(backend);
    let mut inserted = 0;
    for part in sends.chunks(chunk) {
        let owned;
        let sql = if part.len() == chunk {
            full_outbox_sql(backend)
        } else {
            owned = values_sql(backend, OUTBOX_HEAD, part.len(), OUTBOX_COLUMNS, "");
            &owned
        };
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for s in part {
            q = q
                .bind(s.campaign_id)
                .bind(s.seed_id)
                .bind(s.kind.as_str())
                .bind(s.message_id.as_deref())
                .bind(s.subject.as_str())
                .bind(s.in_reply_to.as_deref())
                .bind(OutboxStatus::Planned.as_str())
                .bind(s.plan_day.as_deref())
                .bind(s.run_at)
                .bind(now);
        }
        inserted += q.execute(&mut *conn).await?.rows_affected();
    }
    super::rollup::mark_days(conn, &plan_days(sends)).await?;
    Ok(inserted)
}

/// The campaign days the sends count against (once each, sorted).
fn plan_days(sends: &[NewSend]) -> Vec<(i64, &str)> {
    let mut days: Vec<(i64, &str)> = sends
        .iter()
        .filter_map(|s| Some((s.campaign_id, s.plan_day.as_deref()?)))
        .collect();
    days.sort_unstable();
    days.dedup();
    days
}

/// A campaign's plan day to claim, with the number of sends it plans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayClaim {
    pub campaign_id: i64,
    /// `YYYY-MM-DD` in the campaign's time zone.
    pub plan_day: String,
    pub sends: i64,
    /// The day's sends per provider (see [`format_by_provider`]).
    pub by_provider: String,
}

/// Sends per provider as stored in `campaign_days.by_provider`: `gmail=3 outlook=2`,
/// providers with none left out.
pub fn format_by_provider(counts: &[(Provider, u32)]) -> String {
    let mut out = String::new();
    for (p, n) in counts.iter().filter(|(_, n)| *n > 0) {
        if !out.is_empty() {
            out.push(' ');
        }
        let _ = write!(out, "{p}={n}");
    }
    out
}

/// Adds the counts of a stored `by_provider` to `into`. Unreadable parts are skipped: the
/// column only steers the mix, and a provider unknown to this version has no seeds anyway.
pub fn add_by_provider(stored: &str, into: &mut Vec<(Provider, u32)>) {
    for part in stored.split_ascii_whitespace() {
        let Some((p, n)) = part.split_once('=') else {
            continue;
        };
        let (Ok(p), Ok(n)) = (p.parse::<Provider>(), n.parse::<u32>()) else {
            continue;
        };
        match into.iter_mut().find(|(q, _)| *q == p) {
            Some((_, m)) => *m += n,
            None => into.push((p, n)),
        }
    }
}

/// What `campaign_days` tells the scheduler about the campaigns planning `plan_day`.
#[derive(Debug, Default)]
pub struct DaysSoFar {
    /// Campaigns whose `plan_day` is already claimed.
    pub claimed: HashSet<i64>,
    /// Sending days (days with sends) before `plan_day`, per campaign: the ramp's position.
    pub sending_days_before: HashMap<i64, u32>,
    /// Sends per provider on the days in `[since, plan_day)`, per campaign.
    pub recent_by_provider: HashMap<i64, Vec<(Provider, u32)>>,
}

/// Reads [`DaysSoFar`] for every campaign in two statements. `since` is the first day
/// (`YYYY-MM-DD`) of the provider mix's look-back.
pub async fn days_so_far(
    conn: &mut AnyConnection,
    plan_day: &str,
    since: &str,
) -> Result<DaysSoFar, StoreError> {
    let mut out = DaysSoFar::default();
    let counts = sqlx::query(
        "SELECT campaign_id, COUNT(*) AS n FROM campaign_days \
         WHERE plan_day < $1 AND sends > 0 GROUP BY campaign_id",
    )
    .bind(plan_day)
    .fetch_all(&mut *conn)
    .await?;
    for r in &counts {
        let n = u32::try_from(row::int(r, "n")?).unwrap_or(u32::MAX);
        out.sending_days_before
            .insert(row::int(r, "campaign_id")?, n);
    }
    let recent = sqlx::query(
        "SELECT campaign_id, plan_day, by_provider FROM campaign_days \
         WHERE plan_day >= $1 AND plan_day <= $2",
    )
    .bind(since)
    .bind(plan_day)
    .fetch_all(&mut *conn)
    .await?;
    for r in &recent {
        let id = row::int(r, "campaign_id")?;
        if row::text(r, "plan_day")? == plan_day {
            out.claimed.insert(id);
        } else {
            add_by_provider(
                &row::text(r, "by_provider")?,
                out.recent_by_provider.entry(id).or_default(),
            );
        }
    }
    Ok(out)
}

const CLAIMS_HEAD: &str =
    "INSERT INTO campaign_days (campaign_id, plan_day, sends, by_provider, planned_at) VALUES ";
const CLAIMS_TAIL: &str = " ON CONFLICT DO NOTHING RETURNING campaign_id";

/// Marks `rows` campaign days dirty for the roll-ups (see [`super::rollup::mark_days`]).
pub(super) fn dirty_sql(backend: Backend, rows: usize) -> String {
    values_sql(
        backend,
        "INSERT INTO rollup_dirty (campaign_id, plan_day) VALUES ",
        rows,
        2,
        " ON CONFLICT (campaign_id, plan_day) DO UPDATE SET gen = rollup_dirty.gen + 1",
    )
}

// The statements every planning writer runs beside its sends: the day claims, the roll-up
// marks and the seeds' loads. The writers hold three kinds of connection (`Any`, native
// SQLite, native PostgreSQL) whose queries differ only in their types, so each statement is
// one macro rather than one function per kind.

/// Claims `$claims` (`&[DayClaim]`) on `$conn`; evaluates to the claimed campaign ids.
macro_rules! claim_days {
    ($conn:expr, $backend:expr, $claims:expr, $now:expr) => {{
        let mut claimed: Vec<i64> = Vec::new();
        for part in $claims.chunks(max_params($backend) / 5) {
            let sql = values_sql($backend, CLAIMS_HEAD, part.len(), 5, CLAIMS_TAIL);
            let mut q = sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql));
            for c in part {
                q = q
                    .bind(c.campaign_id)
                    .bind(c.plan_day.as_str())
                    .bind(c.sends)
                    .bind(c.by_provider.as_str())
                    .bind($now);
            }
            claimed.extend(q.fetch_all(&mut *$conn).await?);
        }
        claimed
    }};
}

/// Marks `$days` (`(campaign id, plan day)` pairs, sorted and distinct) dirty on `$conn`.
macro_rules! mark_dirty {
    ($conn:expr, $backend:expr, $days:expr) => {
        for part in $days.chunks(max_params($backend) / 2) {
            let mut q = sqlx::query(AssertSqlSafe(dirty_sql($backend, part.len())));
            for (campaign_id, day) in part {
                let day: &str = day.as_ref();
                q = q.bind(*campaign_id).bind(day);
            }
            q.execute(&mut *$conn).await?;
        }
    };
}

/// Adds `$loads` (`&[SeedLoad]`) to the seeds' `seed_days` rows of `$window` on `$conn`.
macro_rules! add_loads {
    ($conn:expr, $backend:expr, $window:expr, $loads:expr) => {
        for part in $loads.chunks(max_params($backend) / SEED_DAYS_COLUMNS) {
            let mut q = sqlx::query(AssertSqlSafe(seed_days_sql($backend, part.len())));
            for l in part {
                q = q
                    .bind(l.seed_id)
                    .bind($window.sender_id)
                    .bind($window.day_start)
                    .bind($window.day_end)
                    .bind(l.planned)
                    .bind(l.last_run_at);
            }
            q.execute(&mut *$conn).await?;
        }
    };
}

/// Claims many plan days at once (as [`super::outbox::claim_plan_day`] does one). Returns
/// the campaign ids whose day this call claimed; days already claimed are skipped.
pub async fn claim_plan_days(
    conn: &mut AnyConnection,
    claims: &[DayClaim],
    now: i64,
) -> Result<Vec<i64>, StoreError> {
    let backend = backend(conn);
    let claimed = claim_days!(conn, backend, claims, now);
    Ok(claimed)
}

/// The planning day a batch of sends counts against, for the seeds' loads: the sender and
/// the day's bounds (unix seconds, the planning campaigns' local day).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayWindow {
    pub sender_id: i64,
    pub day_start: i64,
    pub day_end: i64,
}

/// One seed's load from one sender on one planning day (a `seed_days` row, or what to add
/// to it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedLoad {
    pub seed_id: i64,
    pub planned: i64,
    pub last_run_at: i64,
}

/// The sends' load per seed, by seed id (the order concurrent writers lock the rows in).
pub fn seed_loads(sends: &[NewSend]) -> Vec<SeedLoad> {
    let mut by_seed: HashMap<i64, SeedLoad> = HashMap::new();
    for s in sends {
        let e = by_seed.entry(s.seed_id).or_insert(SeedLoad {
            seed_id: s.seed_id,
            planned: 0,
            last_run_at: s.run_at,
        });
        e.planned += 1;
        e.last_run_at = e.last_run_at.max(s.run_at);
    }
    let mut loads: Vec<SeedLoad> = by_seed.into_values().collect();
    loads.sort_unstable_by_key(|l| l.seed_id);
    loads
}

const SEED_DAYS_HEAD: &str = "INSERT INTO seed_days \
     (seed_id, sender_id, day_start, day_end, planned, last_run_at) VALUES ";
const SEED_DAYS_COLUMNS: usize = 6;

fn seed_days_sql(backend: Backend, rows: usize) -> String {
    values_sql(
        backend,
        SEED_DAYS_HEAD,
        rows,
        SEED_DAYS_COLUMNS,
        concat!(" ", super::outbox::seed_days_upsert!()),
    )
}

/// Adds the loads to the seeds' `seed_days` rows of `window`.
pub async fn add_seed_loads(
    conn: &mut AnyConnection,
    window: DayWindow,
    loads: &[SeedLoad],
) -> Result<(), StoreError> {
    let backend = backend(conn);
    add_loads!(conn, backend, window, loads);
    Ok(())
}

/// Some campaigns' day claims with their sends: what one planning transaction writes.
#[derive(Debug, Default)]
pub struct PlanBatch {
    pub claims: Vec<DayClaim>,
    pub sends: Vec<NewSend>,
}

impl PlanBatch {
    /// Keeps the sends of the campaigns in `claimed` (another node planned the others).
    fn keep_claimed(&mut self, claimed: &HashSet<i64>) {
        if claimed.len() != self.claims.len() {
            self.sends.retain(|s| claimed.contains(&s.campaign_id));
        }
    }
}

/// Writes a planning batch in one transaction: first the day claims, then the sends of
/// exactly the days this claimed (a day another node claimed meanwhile is skipped, never
/// doubled), the seeds' loads and the roll-up marks. Returns the sends written.
pub async fn write_batch(
    conn: &mut AnyConnection,
    mut batch: PlanBatch,
    window: DayWindow,
    now: i64,
) -> Result<usize, StoreError> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    let claimed: HashSet<i64> = claim_plan_days(&mut tx, &batch.claims, now)
        .await?
        .into_iter()
        .collect();
    batch.keep_claimed(&claimed);
    enqueue_many(&mut tx, &batch.sends, now).await?;
    add_seed_loads(&mut tx, window, &seed_loads(&batch.sends)).await?;
    tx.commit().await?;
    Ok(batch.sends.len())
}

/// [`write_batch`] on a native connection to a SQLite file: the same statements, with the
/// sends' texts moved into the statement's arguments instead of copied twice on the way
/// through the `Any` driver (planning binds five million values a day). The connection may
/// run with `foreign_keys = OFF`: the batch's references are checked once instead.
pub async fn write_batch_sqlite(
    conn: &mut sqlx::SqliteConnection,
    mut batch: PlanBatch,
    window: DayWindow,
    now: i64,
) -> Result<usize, StoreError> {
    use sqlx::Connection as _;
    const B: Backend = Backend::Sqlite;
    let mut tx = conn.begin().await?;
    let claimed: HashSet<i64> = claim_days!(tx, B, batch.claims, now).into_iter().collect();
    batch.keep_claimed(&claimed);
    check_references(&mut tx, &claimed, &batch.sends).await?;
    let written = batch.sends.len();
    let days: Vec<(i64, String)> = plan_days(&batch.sends)
        .into_iter()
        .map(|(c, d)| (c, d.to_owned()))
        .collect();
    let loads = seed_loads(&batch.sends);
    let shared = shared_columns(&batch.sends).map(|(k, d)| (k, d.to_owned()));
    let chunk = match shared {
        Some(_) => uniform_chunk(B),
        None => outbox_chunk(B),
    };
    let mut sends = batch.sends.into_iter().peekable();
    while sends.peek().is_some() {
        let part: Vec<NewSend> = sends.by_ref().take(chunk).collect();
        let owned;
        let q = if let Some((kind, plan_day)) = &shared {
            let sql = if part.len() == chunk {
                full_uniform_sql(B)
            } else {
                owned = uniform_sql(B, part.len());
                &owned
            };
            let mut q = sqlx::query(AssertSqlSafe(sql))
                .bind(kind.as_str())
                .bind(OutboxStatus::Planned.as_str())
                .bind(plan_day.clone())
                .bind(now);
            for s in part {
                q = q
                    .bind(s.campaign_id)
                    .bind(s.seed_id)
                    .bind(s.subject)
                    .bind(s.run_at);
            }
            q
        } else {
            let sql = if part.len() == chunk {
                full_outbox_sql(B)
            } else {
                owned = values_sql(B, OUTBOX_HEAD, part.len(), OUTBOX_COLUMNS, "");
                &owned
            };
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for s in part {
                q = q
                    .bind(s.campaign_id)
                    .bind(s.seed_id)
                    .bind(s.kind.as_str())
                    .bind(s.message_id)
                    .bind(s.subject)
                    .bind(s.in_reply_to)
                    .bind(OutboxStatus::Planned.as_str())
                    .bind(s.plan_day)
                    .bind(s.run_at)
                    .bind(now);
            }
            q
        };
        q.execute(&mut *tx).await?;
    }
    mark_dirty!(tx, B, days);
    add_loads!(tx, B, window, loads);
    tx.commit().await?;
    Ok(written)
}

/// What the foreign keys of the batch's rows would check, checked once for the batch: the
/// planning writer's connection runs with `foreign_keys = OFF` (SQLite checks a key per row,
/// about 10 % of a million-row day). Its transaction holds the database's write lock from its
/// first insert on, so no delete can come between this check and the commit.
async fn check_references(
    tx: &mut sqlx::SqliteConnection,
    campaigns: &HashSet<i64>,
    sends: &[NewSend],
) -> Result<(), StoreError> {
    let mut seeds: Vec<i64> = sends.iter().map(|s| s.seed_id).collect();
    seeds.sort_unstable();
    seeds.dedup();
    let campaigns: Vec<i64> = campaigns.iter().copied().collect();
    for (table, ids) in [("campaigns", &campaigns), ("seeds", &seeds)] {
        for part in ids.chunks(max_params(Backend::Sqlite)) {
            let mut sql = format!("SELECT COUNT(*) FROM {table} WHERE id IN (");
            for i in 0..part.len() {
                sql.push_str(if i == 0 { "?" } else { ",?" });
            }
            sql.push(')');
            let mut q = sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql));
            for id in part {
                q = q.bind(*id);
            }
            let found = q.fetch_one(&mut *tx).await?;
            if usize::try_from(found).ok() != Some(part.len()) {
                return Err(StoreError::NotFound {
                    what: format!(
                        "{} of the {table} this plan refers to (deleted while the day was \
                         being planned)",
                        part.len() - usize::try_from(found).unwrap_or(0)
                    ),
                });
            }
        }
    }
    Ok(())
}

/// [`write_batch`] on a native PostgreSQL connection: the same statements, but the sends go
/// in by `COPY … FROM STDIN` (text format), which PostgreSQL takes several times faster than
/// multi-row INSERTs of bound parameters.
pub async fn write_batch_pg(
    conn: &mut sqlx::PgConnection,
    mut batch: PlanBatch,
    window: DayWindow,
    now: i64,
) -> Result<usize, StoreError> {
    use sqlx::Connection as _;
    let mut tx = conn.begin().await?;
    const B: Backend = Backend::Postgres;
    let claimed: HashSet<i64> = claim_days!(tx, B, batch.claims, now).into_iter().collect();
    batch.keep_claimed(&claimed);
    if !batch.sends.is_empty() {
        // A day's planning: no Message-IDs yet, no replies; the columns the rows leave out
        // take their defaults (NULL, and `status` 'planned'), which the server applies more
        // cheaply than it parses them.
        let lean = batch
            .sends
            .iter()
            .all(|s| s.message_id.is_none() && s.in_reply_to.is_none());
        let mut data = Vec::with_capacity(batch.sends.len() * 96);
        for s in &batch.sends {
            copy_row(&mut data, s, now, lean);
        }
        let mut copy = tx
            .copy_in_raw(if lean {
                "COPY outbox (campaign_id, seed_id, kind, subject, plan_day, run_at, created_at) \
                 FROM STDIN"
            } else {
                "COPY outbox (campaign_id, seed_id, kind, message_id, subject, in_reply_to, \
                 status, plan_day, run_at, created_at) FROM STDIN"
            })
            .await?;
        copy.send(data).await?;
        copy.finish().await?;
        mark_dirty!(tx, B, plan_days(&batch.sends));
        add_loads!(tx, B, window, seed_loads(&batch.sends));
    }
    tx.commit().await?;
    Ok(batch.sends.len())
}

/// One row of `COPY … FROM STDIN` in PostgreSQL's text format: tab-separated, `\N` for
/// NULL, and backslash, tab, newline and carriage return escaped in text. `lean` leaves out
/// the columns a planned warm-up row leaves to their defaults (`message_id`, `in_reply_to`,
/// `status`).
fn copy_row(out: &mut Vec<u8>, s: &NewSend, now: i64, lean: bool) {
    use std::io::Write as _;
    let _ = write!(
        out,
        "{}\t{}\t{}\t",
        s.campaign_id,
        s.seed_id,
        s.kind.as_str()
    );
    if !lean {
        copy_text(out, s.message_id.as_deref());
        out.push(b'\t');
    }
    copy_text(out, Some(&s.subject));
    out.push(b'\t');
    if !lean {
        copy_text(out, s.in_reply_to.as_deref());
        out.push(b'\t');
        out.extend_from_slice(OutboxStatus::Planned.as_str().as_bytes());
        out.push(b'\t');
    }
    copy_text(out, s.plan_day.as_deref());
    let _ = writeln!(out, "\t{}\t{}", s.run_at, now);
}

fn copy_text(out: &mut Vec<u8>, text: Option<&str>) {
    let Some(text) = text else {
        out.extend_from_slice(b"\\N");
        return;
    };
    for &b in text.as_bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_counts_round_trip() {
        let counts = [
            (Provider::Gmail, 3),
            (Provider::Outlook, 0),
            (Provider::Yahoo, 2),
        ];
        let text = format_by_provider(&counts);
        assert_eq!(text, "gmail=3 yahoo=2");
        let mut sum = Vec::new();
        add_by_provider(&text, &mut sum);
        add_by_provider("gmail=1 nonsense fastmail=4 yahoo=x", &mut sum);
        assert_eq!(sum, vec![(Provider::Gmail, 4), (Provider::Yahoo, 2)]);
        assert_eq!(format_by_provider(&[]), "");
    }

    #[test]
    fn statements_hold_their_rows_within_the_limit() {
        let tuples = |b| values_sql(b, "V ", 2, 3, " T");
        assert_eq!(tuples(Backend::Sqlite), "V (?,?,?),(?,?,?) T");
        assert_eq!(tuples(Backend::Postgres), "V ($1,$2,$3),($4,$5,$6) T");
        let mut after_two = String::from("($1,$2),");
        push_tuples(&mut after_two, Backend::Postgres, 3, 1, 2);
        assert_eq!(after_two, "($1,$2),($3,$4)");
        for b in [Backend::Sqlite, Backend::Postgres] {
            let sql = full_outbox_sql(b);
            let params = match b {
                Backend::Sqlite => sql.matches('?').count(),
                Backend::Postgres => sql.matches('$').count(),
            };
            assert_eq!(params, outbox_chunk(b) * OUTBOX_COLUMNS);
            assert!(params <= max_params(b) && params + OUTBOX_COLUMNS > max_params(b));
            let sql = full_uniform_sql(b);
            let params = match b {
                Backend::Sqlite => sql.matches('?').count(),
                Backend::Postgres => sql.matches('$').count(),
            };
            assert_eq!(params, UNIFORM_SHARED + uniform_chunk(b) * UNIFORM_COLUMNS);
            assert!(params <= max_params(b) && params + UNIFORM_COLUMNS > max_params(b));
        }
        assert_eq!(
            uniform_sql(Backend::Postgres, 2),
            format!(
                "{UNIFORM_HEAD}$1, $2, $3, NULL, NULL, $4 FROM (VALUES ($5,$6,$7,$8),($9,$10,$11,$12)) AS v"
            )
        );
    }

    #[test]
    fn the_migration_pair_differs_in_nothing() {
        // Only id types may differ between backends; this migration has none.
        let sqlite = include_str!("../../migrations/sqlite/20261129000002_seed_daily_cap.sql");
        let pg = include_str!("../../migrations/postgres/20261129000002_seed_daily_cap.sql");
        assert_eq!(sqlite, pg);
        let sqlite =
            include_str!("../../migrations/sqlite/20261129000003_outbox_partial_indexes.sql");
        let pg =
            include_str!("../../migrations/postgres/20261129000003_outbox_partial_indexes.sql");
        assert_eq!(sqlite, pg);
        let sqlite =
            include_str!("../../migrations/sqlite/20261129000004_campaign_days_providers.sql");
        let pg =
            include_str!("../../migrations/postgres/20261129000004_campaign_days_providers.sql");
        assert_eq!(sqlite, pg);
    }
}
