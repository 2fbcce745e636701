//! `hearth bench preflight`: preflight many identities against a DNS server with bounded
//! concurrency, and report the time. A benchmark, not a test: run it against the lab.
//!
//! ```text
//! scripts/lab up
//! cargo run --release -- bench preflight --count 1000 --dns 127.0.0.1:5353
//! ```

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};

use crate::config::DnsConfig;
use crate::domain::{DomainName, EmailAddress, Verdict};
use crate::preflight::dns::DnsClient;
use crate::preflight::{DkimExpectation, Identity, Options, run_checks};

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Preflight N identities (the lab's scenario identities, cycled).
    Preflight(PreflightBench),
    /// Send N queued messages through the real dispatcher to an SMTP sink (scripts/bench-dispatch).
    Dispatch(DispatchBench),
    /// Plan and insert the day's sends of many campaigns (SQLite, or a PostgreSQL URL).
    Planning(super::bench_planning::PlanningBench),
    /// IMAP commands per message found, classified and engaged (lab Dovecot).
    ImapRoundTrips(super::bench_imap::RoundTripsBench),
    /// Process memory with many seed sessions idling (lab Dovecot).
    ImapMemory(super::bench_imap::MemoryBench),
    /// Scan of many new messages vs a plain IMAP client (lab Dovecot).
    ImapScan(super::bench_imap::ScanBench),
    /// 10 million ledger rows rolled up, then a campaign report over 90 days (SQLite, or
    /// PostgreSQL with --database-url / DATABASE_URL).
    Report(super::bench_report::ReportBench),
}

#[derive(Debug, Args)]
pub struct DispatchBench {
    #[arg(long, default_value_t = 20000)]
    pub count: usize,
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// The sink, HOST:PORT on loopback (plain text: smtp-sink has no TLS).
    #[arg(long, default_value = "127.0.0.1:2526")]
    pub smtp: SocketAddr,
}

#[derive(Debug, Args)]
pub struct PreflightBench {
    #[arg(long, default_value_t = 1000)]
    pub count: usize,
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    #[arg(long, default_value = "127.0.0.1:5353")]
    pub dns: SocketAddr,
    /// IP blocklist zone to query.
    #[arg(long, default_value = "bl.lab.test")]
    pub ip_blocklist: String,
    /// Domain blocklist zone to query.
    #[arg(long, default_value = "dbl.lab.test")]
    pub domain_blocklist: String,
}

const SCENARIOS: &[(&str, u8)] = &[
    ("ok", 101),
    ("noptr", 102),
    ("ptrnoconfirm", 103),
    ("helomismatch", 104),
    ("helonoa", 105),
    ("helonospf", 106),
    ("spffail", 107),
    ("twospf", 108),
    ("spflimit", 109),
    ("spfplusall", 110),
    ("spfptr", 111),
    ("nodkim", 112),
    ("dkimmismatch", 113),
    ("dkimweak", 114),
    ("nodmarc", 115),
    ("nullmx", 117),
    ("nomx", 118),
    ("listed", 119),
    ("dbllisted", 120),
];

pub async fn run(cmd: BenchCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BenchCommand::Preflight(b) => preflight(b).await,
        BenchCommand::Dispatch(b) => dispatch(b).await,
        BenchCommand::Planning(b) => super::bench_planning::run(b).await,
        BenchCommand::ImapRoundTrips(b) => super::bench_imap::round_trips(b).await,
        BenchCommand::ImapMemory(b) => super::bench_imap::memory(b).await,
        BenchCommand::ImapScan(b) => super::bench_imap::scan(b).await,
        BenchCommand::Report(b) => super::bench_report::run(b).await,
    }
}

/// Queues `count` messages to 100 seeds of one sender (no DKIM), then times the dispatcher
/// draining the queue into the sink: claims, message building, SMTP and completion marks.
async fn dispatch(b: DispatchBench) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(b.smtp.ip().is_loopback(), "the sink must be on loopback");
    let dir = tempfile_dir()?;
    let mut text = format!(
        r#"
[server]
bind = "127.0.0.1:0"
data_dir = {dir:?}
[dns]
nameservers = ["127.0.0.1:5353"]
[[senders]]
name = "bench"
address = "hello@sender.test"
helo = "mta1.sender.test"
smtp = {{ host = "{host}", port = {port}, tls = "none" }}
[[campaigns]]
name = "bench"
sender = "bench"
plan = {{ start_per_day = 1, max_per_day = {max} }}
"#,
        dir = dir.display().to_string(),
        host = b.smtp.ip(),
        port = b.smtp.port(),
        max = b.count + 1,
    );
    for i in 0..100 {
        text.push_str(&format!(
            "[[seeds]]\naddress = \"seed{i}@gmail.test\"\nimap = {{ host = \"127.0.0.1\", port = 1143 }}\n"
        ));
    }
    let config =
        crate::config::Config::from_toml(&text, None, &[]).map_err(|e| anyhow::anyhow!("{e}"))?;
    let app = crate::startup::App::build(config, Arc::new(crate::clock::SystemClock)).await?;
    let pool = app.store.pool().clone();
    let c = crate::store::campaigns::get_by_name(&pool, "bench")
        .await?
        .ok_or_else(|| anyhow::anyhow!("no campaign"))?;
    crate::store::campaigns::set_status(
        &pool,
        c.id,
        crate::domain::CampaignStatus::Active,
        None,
        None,
        app.clock.now(),
    )
    .await?;
    let seeds = crate::store::seeds::list(&pool).await?;
    let sends: Vec<_> = (0..b.count)
        .map(|i| crate::store::outbox::NewSend {
            campaign_id: c.id,
            seed_id: seeds[i % seeds.len()].id,
            kind: crate::domain::SendKind::Warmup,
            message_id: None,
            subject: crate::sender::content::subject(),
            in_reply_to: None,
            plan_day: None,
            run_at: 0,
        })
        .collect();
    let mut tx = pool.begin().await?;
    crate::store::outbox_bulk::enqueue_many(&mut tx, &sends, 0).await?;
    tx.commit().await?;
    let dispatcher = crate::sender::Dispatcher::with_concurrency(app.clone(), b.concurrency);
    let count = b.count;
    // As `serve` runs it: the dispatcher on a task of the runtime (not on the thread that
    // blocks on `main`, which would add a thread switch to every SMTP reply).
    let start = Instant::now();
    let cpu_start = process_cpu();
    tokio::spawn(async move {
        let mut sent = 0;
        while sent < count {
            let r = dispatcher.run_once((count - sent) as i64).await?;
            anyhow::ensure!(
                r.claimed > 0,
                "nothing left to claim after {sent} sent ({r:?})"
            );
            anyhow::ensure!(r.sent == r.claimed, "not every send succeeded: {r:?}");
            sent += r.sent;
        }
        Ok(())
    })
    .await??;
    let elapsed = start.elapsed();
    let cpu = process_cpu().zip(cpu_start).map(|(end, start)| end - start);
    println!(
        "dispatch bench: {} messages, {} sessions, {:.2} s, {:.0} msg/s",
        b.count,
        b.concurrency,
        elapsed.as_secs_f64(),
        b.count as f64 / elapsed.as_secs_f64()
    );
    if let Some(cpu) = cpu {
        println!(
            "dispatch bench cpu: {:.2} s of hearth's CPU (all threads), {:.1} us per message",
            cpu.as_secs_f64(),
            cpu.as_secs_f64() * 1e6 / b.count as f64
        );
    }
    app.store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(ExitCode::SUCCESS)
}

/// CPU time this process has used so far (user + system, all threads), on Linux.
pub(super) fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // After the command name in parentheses: state is field 3; utime, stime are 14 and 15.
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split(' ').collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux architecture Hearth runs on.
    Some(Duration::from_millis(ticks * 10))
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("hearth-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

async fn preflight(b: PreflightBench) -> anyhow::Result<ExitCode> {
    let dns = DnsClient::new(&DnsConfig {
        nameservers: vec![b.dns],
        timeout_ms: 2000,
        attempts: 2,
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let opts = Arc::new(Options {
        ip_blocklists: vec![DomainName::parse(&b.ip_blocklist)?],
        domain_blocklists: vec![DomainName::parse(&b.domain_blocklist)?],
        smtp_timeout: Duration::from_secs(5),
    });
    let identities: Vec<Identity> = (0..b.count)
        .map(|i| {
            let (name, octet) = SCENARIOS[i % SCENARIOS.len()];
            let domain = format!("{name}.pf.test");
            Identity {
                helo: format!("mta.{domain}"),
                ips: vec![IpAddr::from([192, 0, 2, octet])],
                mail_from: EmailAddress::parse(&format!("hello@{domain}")).expect("valid"),
                from_domain: DomainName::parse(&domain).expect("valid"),
                dkim: Some(DkimExpectation {
                    domain: DomainName::parse(&domain).expect("valid"),
                    selector: "hearth".into(),
                    key_file: None,
                }),
                smtp: None,
            }
        })
        .collect();
    let sem = Arc::new(tokio::sync::Semaphore::new(b.concurrency.max(1)));
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for id in identities {
        let (dns, opts, sem) = (dns.clone(), opts.clone(), sem.clone());
        set.spawn(async move {
            let _permit = sem.acquire_owned().await;
            run_checks(&dns, &id, &opts).await.verdict()
        });
    }
    let mut counts = std::collections::BTreeMap::<&'static str, usize>::new();
    while let Some(v) = set.join_next().await {
        let v: Verdict = v?;
        *counts.entry(v.as_str()).or_default() += 1;
    }
    let elapsed = start.elapsed();
    println!(
        "preflight bench: {} identities, concurrency {}, {:.2} s ({:.0} identities/s); verdicts {:?}",
        b.count,
        b.concurrency,
        elapsed.as_secs_f64(),
        b.count as f64 / elapsed.as_secs_f64(),
        counts
    );
    Ok(ExitCode::SUCCESS)
}
