//! `hearth bench preflight`: preflight many identities against a DNS server with bounded
//! concurrency, and report the time. A benchmark, not a test: run it against the lab.
//!
//!     scripts/lab up
//!     cargo run --release -- bench preflight --count 1000 --dns 127.0.0.1:5353

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
    let BenchCommand::Preflight(b) = cmd;
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
