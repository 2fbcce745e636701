//! `hearth bench planning`: plans one day of many campaigns over a shared seed pool and
//! inserts the sends, and reports the time. A benchmark, not a test: use a release build.
//!
//! ```text
//! cargo run --release -- bench planning --campaigns 10000 --sends 1000000
//! cargo run --release -- bench planning --database-url postgres://postgres@127.0.0.1/postgres
//! ```
//!
//! The URL is used as given: with sqlx's default `sslmode=prefer`, a server that has TLS on
//! (Debian's does) encrypts the day's hundred megabytes of `COPY` data on both sides even on
//! loopback; `?sslmode=disable` (or a Unix socket) measures the database work alone.
//!
//! Setup (not timed): a fresh database (a SQLite file in a temporary directory, or a fresh
//! `hearth_bench_<uuid>` database on the given PostgreSQL server, dropped afterwards), one
//! sender, a pool of seeds whose daily caps let every campaign send its share, and the
//! campaigns, all active. Timed: the scheduler's own path (`scheduler::day_groups` and
//! `plan_group`, as `serve` runs them at the start of the day, minus the sender's preflight):
//! what `campaign_days` says of the campaigns, the seeds' day, the planner for every campaign
//! (caps, rotation, times), and the day claims with their sends, in batched transactions.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;
use sqlx::{AnyConnection, AssertSqlSafe, Connection as _, Executor as _};

use crate::domain::{
    CampaignStatus, EmailAddress, Endpoint, EngagementRates, HeloName, Increase, Provider,
    SendingWindow, Source, TlsMode, WarmupPlan,
};
use crate::scheduler;
use crate::secrets::SecretRef;
use crate::sender::content;
use crate::startup::CampaignSpec;
use crate::store::senders::SenderRow;
use crate::store::{Backend, Store, campaigns, seeds, senders};

#[derive(Debug, Clone, Args)]
pub struct PlanningBench {
    /// Campaigns to plan (all of one sender, all due today).
    #[arg(long, default_value_t = 10_000)]
    pub campaigns: usize,
    /// Sends in all, split evenly over the campaigns.
    #[arg(long, default_value_t = 1_000_000)]
    pub sends: usize,
    /// Seeds in the pool; their daily caps are raised so the pool takes every send.
    #[arg(long, default_value_t = 10_000)]
    pub seeds: usize,
    /// A PostgreSQL server URL to benchmark on (a fresh database is created on it and
    /// dropped); default: a SQLite file in a temporary directory.
    #[arg(long)]
    pub database_url: Option<String>,
}

/// Monday 2026-11-30 00:00 UTC: the day planned.
const DAY: i64 = 1_795_996_800;

pub async fn run(args: PlanningBench) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.campaigns > 0 && args.seeds > 0,
        "--campaigns and --seeds must be at least 1"
    );
    let dir = std::env::temp_dir().join(format!("hearth-bench-{}", uuid::Uuid::new_v4().simple()));
    let (url, pg) = match &args.database_url {
        None => (format!("sqlite://{}", dir.join("bench.db").display()), None),
        Some(admin) if Backend::from_url(admin) == Some(Backend::Postgres) => {
            let db = BenchDb::create(admin).await?;
            (db.url.clone(), Some(db))
        }
        Some(_) => anyhow::bail!("--database-url: expected postgres://…"),
    };
    let outcome = bench(&args, &url).await;
    if let Some(db) = pg {
        db.drop_db().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    let o = outcome?;
    println!(
        "planning bench ({}): {} campaigns, {} sends, {:.2} s",
        o.backend,
        args.campaigns,
        o.inserted,
        o.elapsed.as_secs_f64(),
    );
    if let Some(cpu) = o.cpu {
        println!(
            "planning bench cpu: {:.2} s of hearth's CPU (all threads)",
            cpu.as_secs_f64()
        );
    }
    Ok(ExitCode::SUCCESS)
}

struct Outcome {
    backend: &'static str,
    elapsed: Duration,
    /// CPU time of this process over the timed part (the database server's is not in it).
    cpu: Option<Duration>,
    inserted: usize,
}

async fn bench(args: &PlanningBench, url: &str) -> anyhow::Result<Outcome> {
    let store = Store::connect(url).await?;
    let per_campaign = u32::try_from(args.sends / args.campaigns)?;
    let per_seed = u32::try_from(args.sends.div_ceil(args.seeds))?;
    setup(&store, args, per_campaign, per_seed).await?;
    let cpu_start = super::bench::process_cpu();
    let start = Instant::now();
    // The scheduler's own path, as `serve` runs it at the start of the day, without the
    // sender's preflight (one DNS check per sender and day, not per send).
    let campaigns = campaigns::list(store.pool()).await?;
    let mut inserted = 0;
    for group in scheduler::day_groups(campaigns, DAY)? {
        inserted += scheduler::plan_group(
            &store,
            &content::Library::default(),
            DAY,
            group,
            async |_: &SenderRow| Ok(Vec::new()),
        )
        .await?;
    }
    let elapsed = start.elapsed();
    let cpu = super::bench::process_cpu()
        .zip(cpu_start)
        .map(|(end, start)| end - start);
    let want = per_campaign as usize * args.campaigns;
    anyhow::ensure!(
        inserted == want,
        "planned {inserted} sends, expected {want}"
    );
    store.close().await;
    Ok(Outcome {
        backend: store.backend().as_str(),
        elapsed,
        cpu,
        inserted,
    })
}

/// Every day open all day, the same volume each day, caps and pair limit as wide as needed.
fn plan(per_campaign: u32, per_seed: u32) -> WarmupPlan {
    let all = [
        chrono::Weekday::Mon,
        chrono::Weekday::Tue,
        chrono::Weekday::Wed,
        chrono::Weekday::Thu,
        chrono::Weekday::Fri,
        chrono::Weekday::Sat,
        chrono::Weekday::Sun,
    ];
    WarmupPlan {
        start_per_day: per_campaign,
        increase: Increase::Absolute(0),
        max_per_day: per_campaign,
        maintenance_per_day: per_campaign,
        variance_percent: 0,
        timezone: chrono_tz::UTC,
        window: SendingWindow {
            days: all.to_vec(),
            start: chrono::NaiveTime::MIN,
            end: chrono::NaiveTime::from_hms_opt(23, 59, 0).expect("valid time"),
        },
        provider_mix: None,
        pair_daily_max: per_seed,
        min_gap_secs: 60,
        rates: EngagementRates::default(),
    }
}

/// One sender, the seeds (cap `per_seed` each), the campaigns. Returns the ids.
async fn setup(
    store: &Store,
    args: &PlanningBench,
    per_campaign: u32,
    per_seed: u32,
) -> anyhow::Result<(i64, Vec<i64>)> {
    let endpoint = |host: &str| Endpoint {
        host: host.to_owned(),
        port: 587,
        tls: TlsMode::Starttls,
        ca_file: None,
        username: "bench".to_owned(),
        secret: SecretRef::None,
    };
    let mut tx = store.begin().await?;
    let sender = senders::SenderRecord {
        name: "bench".to_owned(),
        address: EmailAddress::parse("hello@bench.test")?,
        display_name: None,
        helo: HeloName::parse("mta.bench.test")?,
        ips: Vec::new(),
        smtp: endpoint("smtp.bench.test"),
        dkim: None,
        imap: None,
        source: Source::Config,
    };
    let sender_id = senders::upsert(&mut *tx, &sender, DAY).await?;
    let providers = [Provider::Gmail, Provider::Outlook, Provider::Yahoo];
    let records: Vec<_> = (0..args.seeds)
        .map(|i| {
            Ok(seeds::SeedRecord {
                address: EmailAddress::parse(&format!("seed{i}@bench.test"))?,
                provider: providers[i % providers.len()],
                daily_cap: per_seed,
                imap: endpoint("imap.bench.test"),
                smtp: None,
                folders: "{}".to_owned(),
                source: Source::Import,
            })
        })
        .collect::<anyhow::Result<_>>()?;
    seeds::insert_many_in_tx(&mut tx, &records, DAY).await?;
    let spec = serde_json::to_string(&CampaignSpec {
        plan: plan(per_campaign, per_seed),
        seeds: None,
    })?;
    let mut ids = Vec::with_capacity(args.campaigns);
    for i in 0..args.campaigns {
        let name = format!("bench-{i}");
        let id = campaigns::upsert_from_config(&mut *tx, &name, sender_id, &spec, DAY).await?;
        campaigns::set_status(&mut *tx, id, CampaignStatus::Active, None, None, DAY).await?;
        ids.push(id);
    }
    tx.commit().await?;
    Ok((sender_id, ids))
}

/// A fresh PostgreSQL database for one run.
pub(super) struct BenchDb {
    admin: String,
    name: String,
    pub(super) url: String,
}

impl BenchDb {
    pub(super) async fn create(admin: &str) -> anyhow::Result<BenchDb> {
        sqlx::any::install_default_drivers();
        let name = format!("hearth_bench_{}", uuid::Uuid::new_v4().simple());
        let mut conn = AnyConnection::connect(admin)
            .await
            .with_context(|| format!("cannot connect to {}", crate::store::redact_url(admin)))?;
        // The name comes from a UUID: nothing to inject.
        conn.execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await?;
        let _ = conn.close().await;
        Ok(BenchDb {
            url: with_database(admin, &name),
            admin: admin.to_owned(),
            name,
        })
    }

    pub(super) async fn drop_db(self) {
        if let Ok(mut conn) = AnyConnection::connect(&self.admin).await {
            let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
            if let Err(e) = conn.execute(AssertSqlSafe(sql)).await {
                eprintln!("could not drop {}: {e}", self.name);
            }
            let _ = conn.close().await;
        }
    }
}

/// `url` pointing at database `name` (same scheme, credentials, host and parameters).
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let (scheme, rest) = base.split_once("://").unwrap_or(("postgres", base));
    let host_start = rest.rfind('@').map_or(0, |i| i + 1);
    let end = rest[host_start..]
        .find('/')
        .map_or(rest.len(), |i| host_start + i);
    let mut out = format!("{scheme}://{}/{name}", &rest[..end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}
