//! `hearth bench report`: 10 million ledger rows (1,000 campaigns × 90 days), rolled up by
//! the real roll-up code, then a campaign report over 90 days, timed. A benchmark, not a test:
//!
//! ```text
//! cargo run --release -- bench report
//! cargo run --release -- bench report --database-url postgres://postgres@127.0.0.1/postgres
//! ```
//!
//! Setup (timed apart, not part of the goal): a fresh database (a SQLite file in a temporary
//! directory, or a fresh `hearth_bench_<uuid>` database on the PostgreSQL server, dropped
//! afterwards); one sender, one seed per provider, the campaigns; then outbox rows,
//! placements (one per outbox row) and engagement events generated in SQL (a recursive CTE on
//! SQLite, `generate_series` on PostgreSQL), which fire the real roll-up triggers (on SQLite
//! the refresh finds the placements by id above its watermark instead). Timed:
//! `store::rollup::refresh` of every dirty day, then `report::campaign_report` (which itself
//! refreshes the campaign first) — the first call and the median of the next ones.
//!
//! Measured 2026-11-29 (release build, 2 shared cores under load ~5, 10,054,800 ledger rows):
//! SQLite: generate 202 s, roll-up 105 s, report over 90 days 11.5 ms first, 19.9 ms median,
//! 36 ms max. PostgreSQL: generate 778 s, roll-up 189 s, report 17.1 ms first, 15.6 ms
//! median, 35 ms max.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use sqlx::{AssertSqlSafe, Executor as _};

use crate::domain::{
    CampaignStatus, EmailAddress, EngagementAction, HeloName, OutboxStatus, Placement, Provider,
    SendKind, Source,
};
use crate::store::{Backend, Store, campaigns, rollup, seeds, senders};

#[derive(Debug, Clone, Args)]
pub struct ReportBench {
    #[arg(long, default_value_t = 1_000)]
    pub campaigns: usize,
    #[arg(long, default_value_t = 90)]
    pub days: usize,
    /// Ledger rows in all (split evenly over campaigns and days).
    #[arg(long, default_value_t = 10_000_000)]
    pub rows: usize,
    /// Timed report calls after the first.
    #[arg(long, default_value_t = 20)]
    pub repeat: usize,
    /// A PostgreSQL server URL (a fresh database is created on it and dropped); default: a
    /// SQLite file in a temporary directory. Also read from DATABASE_URL.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,
}

/// 2026-11-29 12:00 UTC: the 90th day, "now" for the report.
const NOW: i64 = 1_795_953_600;

pub async fn run(args: ReportBench) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.campaigns > 0 && args.days > 0 && args.rows >= args.campaigns * args.days,
        "need at least one row per campaign and day"
    );
    let dir = std::env::temp_dir().join(format!("hearth-bench-{}", uuid::Uuid::new_v4().simple()));
    let (url, pg) = match &args.database_url {
        Some(admin) if Backend::from_url(admin) == Some(Backend::Postgres) => {
            let db = super::bench_planning::BenchDb::create(admin).await?;
            (db.url.clone(), Some(db))
        }
        Some(u) if Backend::from_url(u) == Some(Backend::Sqlite) => {
            anyhow::bail!("--database-url: give a postgres:// URL, or none for SQLite")
        }
        Some(_) => anyhow::bail!("--database-url: expected postgres://…"),
        None => {
            std::fs::create_dir_all(&dir)?;
            (format!("sqlite://{}", dir.join("bench.db").display()), None)
        }
    };
    let outcome = bench(&args, &url).await;
    if let Some(db) = pg {
        db.drop_db().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    let o = outcome?;
    println!(
        "report bench ({}): {} ledger rows, {} campaigns x {} days\n  \
         generate {:.1} s; roll-up {:.1} s ({} campaign days, {} roll-up rows)\n  \
         campaign report over {} days: first {:.1} ms, median {:.1} ms, max {:.1} ms ({} runs)",
        o.backend,
        o.rows,
        args.campaigns,
        args.days,
        o.generate.as_secs_f64(),
        o.rollup.as_secs_f64(),
        o.rolled.days,
        o.rolled.rows,
        args.days,
        ms(o.first),
        ms(o.median),
        ms(o.max),
        args.repeat,
    );
    Ok(ExitCode::SUCCESS)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct Outcome {
    backend: &'static str,
    rows: i64,
    generate: Duration,
    rollup: Duration,
    rolled: rollup::Refreshed,
    first: Duration,
    median: Duration,
    max: Duration,
}

async fn bench(args: &ReportBench, url: &str) -> anyhow::Result<Outcome> {
    let store = Store::connect(url).await?;
    let pool = store.pool();
    let sender = senders::SenderRecord {
        name: "bench".into(),
        address: EmailAddress::parse("bench@sender.test")?,
        display_name: None,
        helo: HeloName::parse("mta1.sender.test")?,
        ips: vec![],
        smtp: endpoint(),
        dkim: None,
        imap: None,
        source: Source::Api,
    };
    let sender_id = senders::upsert(pool, &sender, 0).await?;
    let mut seed_ids = Vec::new();
    for p in Provider::ALL {
        let rec = seeds::SeedRecord {
            address: EmailAddress::parse(&format!("seed@{p}.test"))?,
            provider: *p,
            daily_cap: 1_000_000,
            imap: endpoint(),
            smtp: None,
            folders: "{}".into(),
            source: Source::Api,
        };
        seed_ids.push(seeds::upsert(pool, &rec, 0).await?);
    }
    let mut campaign_ids = Vec::new();
    for i in 0..args.campaigns {
        let id =
            campaigns::upsert_from_config(pool, &format!("c{i:04}"), sender_id, "{}", 0).await?;
        campaigns::set_status(pool, id, CampaignStatus::Active, None, None, 0).await?;
        campaign_ids.push(id);
    }
    // One row in 50 fails at sending and gets no ledger row: generate enough outbox rows.
    let per_day = (args.rows * 50).div_ceil(49 * args.campaigns * args.days);
    let per_campaign = per_day * args.days;

    let started = Instant::now();
    let mut conn = pool.acquire().await?;
    match store.backend() {
        Backend::Sqlite => {
            conn.execute("PRAGMA synchronous = OFF").await?;
        }
        Backend::Postgres => {
            conn.execute("SET synchronous_commit = off").await?;
        }
    }
    // Campaign ids are consecutive (one insert each, in order): generate by offset.
    anyhow::ensure!(
        campaign_ids.windows(2).all(|w| w[1] == w[0] + 1),
        "campaign ids are not consecutive"
    );
    // The last plan day generated is NOW's (2026-11-29).
    let last = chrono::NaiveDate::from_ymd_opt(2026, 11, 29).expect("a date");
    let first_day = (last - chrono::Duration::days(args.days as i64 - 1))
        .format("%Y-%m-%d")
        .to_string();
    let chunk = (args.campaigns / 20).max(1);
    let mut from = 0;
    while from < args.campaigns {
        let to = (from + chunk).min(args.campaigns);
        let lo = (from * per_campaign) as i64;
        let hi = (to * per_campaign) as i64;
        let (outbox_sql, placements_sql, events_sql) = generate_sql(store.backend());
        sqlx::query(AssertSqlSafe(outbox_sql))
            .bind(lo)
            .bind(hi - 1)
            .bind(campaign_ids[0])
            .bind(per_campaign as i64)
            .bind(per_day as i64)
            .bind(seed_ids[0])
            .bind(SendKind::Warmup.as_str())
            .bind(OutboxStatus::Sent.as_str())
            .bind(OutboxStatus::Failed.as_str())
            .bind(first_day.clone())
            .bind(NOW - 86_400 * args.days as i64)
            .execute(&mut *conn)
            .await?;
        // Writers mark the days of the rows they insert (as planning does).
        sqlx::query(
            "INSERT INTO rollup_dirty (campaign_id, plan_day) \
             SELECT DISTINCT campaign_id, plan_day FROM outbox \
             WHERE campaign_id BETWEEN $1 AND $2 AND plan_day IS NOT NULL \
             ON CONFLICT (campaign_id, plan_day) DO UPDATE SET gen = rollup_dirty.gen + 1",
        )
        .bind(campaign_ids[from])
        .bind(campaign_ids[to - 1])
        .execute(&mut *conn)
        .await?;
        sqlx::query(AssertSqlSafe(placements_sql))
            .bind(Placement::Inbox.as_str())
            .bind(Placement::Spam.as_str())
            .bind(Placement::Promotions.as_str())
            .bind(Placement::Missing.as_str())
            .bind(NOW)
            .bind(campaign_ids[from])
            .bind(campaign_ids[to - 1])
            .bind(OutboxStatus::Sent.as_str())
            .execute(&mut *conn)
            .await?;
        sqlx::query(AssertSqlSafe(events_sql))
            .bind(EngagementAction::Rescue.as_str())
            .bind(EngagementAction::Reply.as_str())
            .bind(Placement::Spam.as_str())
            .bind(NOW)
            .bind(campaign_ids[from])
            .bind(campaign_ids[to - 1])
            .bind(Placement::Inbox.as_str())
            .execute(&mut *conn)
            .await?;
        from = to;
        eprintln!("generated {to}/{} campaigns", args.campaigns);
    }
    drop(conn);
    let generate = started.elapsed();
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM placements")
        .fetch_one(pool)
        .await?;
    if store.backend() == Backend::Postgres {
        sqlx::query("ANALYZE").execute(pool).await?;
    }

    let started = Instant::now();
    let rolled = rollup::refresh(&store, None, rollup::DEFAULT_BATCH).await?;
    let rollup_time = started.elapsed();
    if store.backend() == Backend::Postgres {
        sqlx::query("ANALYZE").execute(pool).await?;
    }

    let name = format!("c{:04}", args.campaigns / 2);
    let started = Instant::now();
    let r = crate::report::campaign_report(&store, &name, args.days as u32, NOW).await?;
    let first = started.elapsed();
    anyhow::ensure!(
        r.totals.counts.planned == per_campaign as u64,
        "the report counts {} messages, expected {per_campaign}",
        r.totals.counts.planned
    );
    let mut times = Vec::new();
    for i in 0..args.repeat {
        let name = format!("c{:04}", (i * 37) % args.campaigns);
        let started = Instant::now();
        let r = crate::report::campaign_report(&store, &name, args.days as u32, NOW).await?;
        times.push(started.elapsed());
        std::hint::black_box(r);
    }
    times.sort();
    let median = times.get(times.len() / 2).copied().unwrap_or(first);
    let max = times.last().copied().unwrap_or(first);
    store.close().await;
    Ok(Outcome {
        backend: store.backend().as_str(),
        rows,
        generate,
        rollup: rollup_time,
        rolled,
        first,
        median,
        max,
    })
}

fn endpoint() -> crate::domain::Endpoint {
    crate::domain::Endpoint {
        host: "127.0.0.1".into(),
        port: 1,
        tls: crate::domain::TlsMode::None,
        ca_file: None,
        username: "bench".into(),
        secret: crate::secrets::SecretRef::Env("BENCH_PASSWORD".into()),
    }
}

/// (outbox, placements, events) generators for rows `$1..=$2` of the sequence.
///
/// Outbox: row i belongs to campaign `$3 + i / $4`, plan day `(i % $4) / $5` after
/// the first day (`$10`), seed `$6 + i % 4`; one in 50 failed, the rest sent.
/// Placements for the sent rows of campaigns `$6..=$7`: 80 % inbox, 10 % spam, 6 %
/// promotions, 4 % missing; latency spread up to two hours; SPF/DKIM/DMARC `pass` mostly.
/// Events: a rescue for every spam placement, a reply for one inbox placement in 20.
fn generate_sql(backend: Backend) -> (String, String, String) {
    let (series, day) = match backend {
        Backend::Sqlite => (
            "WITH RECURSIVE g(i) AS (SELECT $1 UNION ALL SELECT i + 1 FROM g WHERE i < $2) ",
            "date($10, '+' || ((i % $4) / $5) || ' days')",
        ),
        Backend::Postgres => (
            "WITH g(i) AS (SELECT generate_series($1::bigint, $2::bigint)) ",
            "to_char($10::date + ((i % $4) / $5)::int, 'YYYY-MM-DD')",
        ),
    };
    let outbox = format!(
        "{series}INSERT INTO outbox (campaign_id, seed_id, kind, message_id, subject, status, \
           plan_day, run_at, attempts, sent_at, created_at) \
         SELECT $3 + i / $4, $6 + i % 4, $7, '<' || i || '@bench.test>', 'bench', \
           CASE WHEN i % 50 = 7 THEN $9 ELSE $8 END, {day}, $11 + i % 7776000, 1, \
           $11 + i % 7776000, $11 FROM g"
    );
    let placements = "INSERT INTO placements (outbox_id, seed_id, message_id, placement, \
           provider, seen_at, latency_secs, auth_spf, auth_dkim, auth_dmarc, created_at) \
         SELECT o.id, o.seed_id, o.message_id, \
           CASE WHEN o.id % 100 < 80 THEN $1 WHEN o.id % 100 < 90 THEN $2 \
                WHEN o.id % 100 < 96 THEN $3 ELSE $4 END, \
           s.provider, \
           CASE WHEN o.id % 100 < 96 THEN o.sent_at + (o.id * 7919) % 7200 END, \
           CASE WHEN o.id % 100 < 96 THEN (o.id * 7919) % 7200 END, \
           'pass', CASE WHEN o.id % 10 = 0 THEN 'fail' ELSE 'pass' END, 'pass', $5 \
         FROM outbox o JOIN seeds s ON s.id = o.seed_id \
         WHERE o.campaign_id BETWEEN $6 AND $7 AND o.status = $8"
        .to_owned();
    let events = "INSERT INTO engagement_events (placement_id, action, at) \
         SELECT p.id, CASE WHEN p.placement = $3 THEN $1 ELSE $2 END, $4 \
         FROM placements p JOIN outbox o ON o.id = p.outbox_id \
         WHERE o.campaign_id BETWEEN $5 AND $6 \
           AND (p.placement = $3 OR (p.placement = $7 AND p.id % 20 = 0))"
        .to_owned();
    (outbox, placements, events)
}
