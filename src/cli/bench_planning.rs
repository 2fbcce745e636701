//! `hearth bench planning`: plans one day of many campaigns over a shared seed pool and
//! inserts the sends, and reports the time. A benchmark, not a test: use a release build.
//!
//!     cargo run --release -- bench planning --campaigns 10000 --sends 1000000
//!     cargo run --release -- bench planning --database-url postgres://postgres@127.0.0.1/postgres
//!
//! Setup (not timed): a fresh database (a SQLite file in a temporary directory, or a fresh
//! `hearth_bench_<uuid>` database on the given PostgreSQL server, dropped afterwards), one
//! sender, a pool of seeds whose daily caps let every campaign send its share, and the
//! campaigns. Timed: reading the seeds' day, the planner for every campaign (caps, rotation,
//! times), the day claims and `enqueue_many`, committed in one transaction.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use anyhow::Context as _;
use clap::Args;
use rand::SeedableRng as _;
use rand::rngs::StdRng;
use sqlx::{AnyConnection, AssertSqlSafe, Connection as _, Executor as _};

use crate::domain::{
    EmailAddress, Endpoint, EngagementRates, HeloName, Increase, Provider, SendKind, SendingWindow,
    Source, TlsMode, WarmupPlan,
};
use crate::planner::{self, DayInput, SeedState};
use crate::secrets::SecretRef;
use crate::sender::{content, message};
use crate::startup::CampaignSpec;
use crate::store::outbox::NewSend;
use crate::store::outbox_bulk::{self, DayClaim};
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
/// Sends flushed to the database at a time while planning goes on.
const BATCH: usize = 32_768;

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
        "planning bench ({}): {} campaigns, {} sends, {:.2} s (of which the planner {:.2} s)",
        o.backend,
        args.campaigns,
        o.inserted,
        o.elapsed.as_secs_f64(),
        o.planner.as_secs_f64(),
    );
    Ok(ExitCode::SUCCESS)
}

struct Outcome {
    backend: &'static str,
    elapsed: Duration,
    /// Time spent planning and building rows (it overlaps the writes).
    planner: Duration,
    inserted: u64,
}

/// Some campaigns' days: claimed and enqueued together by one writer.
struct Batch {
    claims: Vec<DayClaim>,
    sends: Vec<NewSend>,
}

/// Writers, each with its own connection and transaction. SQLite has one writer at a time;
/// PostgreSQL gets two (a campaign's day is independent of the others', as in the
/// scheduler, which plans each in its own transaction).
async fn writers(
    store: &Store,
) -> anyhow::Result<(
    Vec<mpsc::Sender<Batch>>,
    Vec<JoinHandle<anyhow::Result<u64>>>,
)> {
    let count = match store.backend() {
        Backend::Sqlite => 1,
        Backend::Postgres => 2,
    };
    let (mut senders, mut handles) = (Vec::new(), Vec::new());
    for _ in 0..count {
        let mut conn = store.pool().acquire().await?;
        if store.backend() == Backend::Sqlite {
            // A page cache that holds the day's indexes (the default 2 MB spills to the
            // file), and statement journals (one per multi-row INSERT) in memory.
            conn.execute("PRAGMA cache_size = -1048576").await?;
            conn.execute("PRAGMA temp_store = MEMORY").await?;
        }
        let (tx, mut rx) = mpsc::channel::<Batch>(2);
        senders.push(tx);
        handles.push(tokio::spawn(async move {
            let mut tx = conn.begin().await?;
            let mut inserted = 0;
            while let Some(b) = rx.recv().await {
                inserted += outbox_bulk::enqueue_many(&mut tx, &b.sends, DAY).await?;
                let claimed = outbox_bulk::claim_plan_days(&mut tx, &b.claims, DAY).await?;
                anyhow::ensure!(claimed.len() == b.claims.len(), "a day was already claimed");
            }
            tx.commit().await?;
            Ok(inserted)
        }));
    }
    Ok((senders, handles))
}

async fn bench(args: &PlanningBench, url: &str) -> anyhow::Result<Outcome> {
    let store = Store::connect(url).await?;
    let per_campaign = u32::try_from(args.sends / args.campaigns)?;
    let per_seed = u32::try_from(args.sends.div_ceil(args.seeds))?;
    let (sender_id, campaign_ids) = setup(&store, args, per_campaign, per_seed).await?;
    let plan = plan(per_campaign, per_seed);
    let domain = "bench.test".parse()?;
    let day = "2026-11-30";
    let (queues, handles) = writers(&store).await?;

    let start = Instant::now();
    let mut planner_time = Duration::ZERO;
    let mut pool: Vec<SeedState> = seeds::planning_day(store.pool(), sender_id, DAY, DAY + 86_400)
        .await?
        .into_iter()
        .map(|s| SeedState {
            id: s.id,
            provider: s.provider,
            last_sent_at: s.last_sent_at,
            planned_today: s.planned_today,
            pair_today: s.pair_today,
            daily_cap: s.daily_cap,
        })
        .collect();
    let index: std::collections::HashMap<i64, usize> =
        pool.iter().enumerate().map(|(i, s)| (s.id, i)).collect();
    let new_batch = || Batch {
        claims: Vec::new(),
        sends: Vec::with_capacity(BATCH + per_campaign as usize),
    };
    let mut batch = new_batch();
    let mut next = 0;
    for (i, &campaign_id) in campaign_ids.iter().enumerate() {
        let t = Instant::now();
        let input = DayInput {
            plan: &plan,
            now: DAY,
            sending_days_before: 0,
            seeds: &pool,
            recent_by_provider: &[],
        };
        let mut rng = StdRng::seed_from_u64(planner::day_seed(campaign_id, day));
        let planned = planner::plan_day(&input, &mut rng);
        for s in &planned.sends {
            let seed = &mut pool[index[&s.seed_id]];
            seed.planned_today += 1;
            seed.pair_today += 1;
            seed.last_sent_at = Some(seed.last_sent_at.unwrap_or(0).max(s.run_at));
            batch.sends.push(NewSend {
                campaign_id,
                seed_id: s.seed_id,
                kind: SendKind::Warmup,
                message_id: message::new_message_id(&domain),
                subject: content::subject(),
                in_reply_to: None,
                plan_day: Some(day.to_owned()),
                run_at: s.run_at,
            });
        }
        batch.claims.push(DayClaim {
            campaign_id,
            plan_day: day.to_owned(),
            sends: planned.sends.len() as i64,
        });
        planner_time += t.elapsed();
        if batch.sends.len() >= BATCH || i + 1 == campaign_ids.len() {
            let full = std::mem::replace(&mut batch, new_batch());
            if queues[next % queues.len()].send(full).await.is_err() {
                break; // the writer failed: its error is reported below
            }
            next += 1;
        }
    }
    drop(queues);
    let mut inserted = 0;
    for h in handles {
        inserted += h.await??;
    }
    let elapsed = start.elapsed();
    let want = u64::from(per_campaign) * campaign_ids.len() as u64;
    anyhow::ensure!(
        inserted == want,
        "planned {inserted} sends, expected {want}"
    );
    store.close().await;
    Ok(Outcome {
        backend: store.backend().as_str(),
        elapsed,
        planner: planner_time,
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
        ids.push(campaigns::upsert_from_config(&mut *tx, &name, sender_id, &spec, DAY).await?);
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
