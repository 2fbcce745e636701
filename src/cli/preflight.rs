//! `hearth preflight` and `hearth spf`: the identity checks from a terminal.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::InputError;
use crate::config::{Config, DnsConfig};
use crate::domain::{DomainName, EmailAddress, Endpoint, PreflightTrigger, TlsMode, Verdict};
use crate::preflight::check::PreflightReport;
use crate::preflight::dns::DnsClient;
use crate::preflight::{self, DkimExpectation, Identity, Options, gate};
use crate::startup::App;
use crate::store;

#[derive(Debug, Args)]
pub struct PreflightArgs {
    /// A sender from the config (by name).
    pub sender: Option<String>,
    /// Check every configured sender.
    #[arg(long, conflicts_with = "sender")]
    pub all: bool,
    /// Ad hoc: the HELO/EHLO name.
    #[arg(long, conflicts_with_all = ["sender", "all"])]
    pub helo: Option<String>,
    /// Ad hoc: a sending IP (repeatable).
    #[arg(long = "ip", requires = "helo")]
    pub ips: Vec<IpAddr>,
    /// Ad hoc: the envelope sender (MAIL FROM) address.
    #[arg(long, requires = "helo")]
    pub mail_from: Option<String>,
    /// Ad hoc: the From header's domain (defaults to the MAIL FROM domain).
    #[arg(long, requires = "helo")]
    pub from_domain: Option<String>,
    /// Ad hoc: the DKIM selector to look up.
    #[arg(long, requires = "helo")]
    pub dkim_selector: Option<String>,
    /// Ad hoc: the DKIM signing domain (defaults to the From domain).
    #[arg(long, requires = "dkim_selector")]
    pub dkim_domain: Option<String>,
    /// Ad hoc: the private key to compare with the published one.
    #[arg(long, requires = "dkim_selector")]
    pub dkim_key: Option<PathBuf>,
    /// Ad hoc: the relay to probe, HOST:PORT (STARTTLS).
    #[arg(long, requires = "helo")]
    pub smtp: Option<String>,
    /// Ad hoc: a private CA for the relay's certificate.
    #[arg(long, requires = "smtp")]
    pub ca_file: Option<PathBuf>,
    /// Nameserver to use instead of the configured ones, HOST:PORT (repeatable).
    #[arg(long = "dns")]
    pub dns: Vec<SocketAddr>,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    /// Show the evidence of passing checks too.
    #[arg(long, short)]
    pub verbose: bool,
}

#[derive(Debug, Args)]
pub struct SpfArgs {
    /// The connecting client's IP.
    #[arg(long)]
    pub ip: IpAddr,
    /// The HELO/EHLO name.
    #[arg(long)]
    pub helo: String,
    /// The MAIL FROM address; without it the HELO identity is checked.
    #[arg(long)]
    pub mail_from: Option<String>,
    /// Nameserver, HOST:PORT (repeatable).
    #[arg(long = "dns")]
    pub dns: Vec<SocketAddr>,
}

fn dns_config(config: &Config, overrides: &[SocketAddr]) -> DnsConfig {
    let mut d = config.dns.clone();
    if !overrides.is_empty() {
        d.nameservers = overrides.to_vec();
    }
    d
}

fn client(cfg: &DnsConfig) -> anyhow::Result<DnsClient> {
    DnsClient::new(cfg).map_err(|e| anyhow::anyhow!("cannot set up the DNS resolver: {e}"))
}

pub async fn spf(config: Config, args: SpfArgs) -> anyhow::Result<ExitCode> {
    let dns = client(&dns_config(&config, &args.dns))?;
    let outcome = match &args.mail_from {
        Some(m) => preflight::spf::check_mail_from(&dns, args.ip, m, &args.helo).await,
        None => preflight::spf::check_helo(&dns, args.ip, &args.helo).await,
    };
    println!("{}", outcome.result);
    println!("{}", outcome.explanation);
    if let Some(r) = &outcome.record {
        println!("record: {r}");
    }
    println!(
        "DNS lookups: {}, void lookups: {}",
        outcome.dns_lookups, outcome.void_lookups
    );
    Ok(ExitCode::SUCCESS)
}

fn ad_hoc_identity(args: &PreflightArgs, helo: &str) -> anyhow::Result<Identity> {
    let bad = |m: String| anyhow::Error::new(InputError(m));
    let mail_from = args
        .mail_from
        .as_deref()
        .ok_or_else(|| bad("--mail-from ADDR is required with --helo".into()))?;
    let mail_from = EmailAddress::parse(mail_from)
        .map_err(|e| bad(format!("--mail-from {mail_from:?} {e}")))?;
    let from_domain = match &args.from_domain {
        Some(d) => DomainName::parse(d).map_err(|e| bad(format!("--from-domain {d:?} {e}")))?,
        None => mail_from.domain().clone(),
    };
    let dkim = match &args.dkim_selector {
        Some(sel) => Some(DkimExpectation {
            domain: match &args.dkim_domain {
                Some(d) => {
                    DomainName::parse(d).map_err(|e| bad(format!("--dkim-domain {d:?} {e}")))?
                }
                None => from_domain.clone(),
            },
            selector: sel.clone(),
            key_file: args.dkim_key.clone(),
        }),
        None => None,
    };
    let smtp = match &args.smtp {
        Some(hp) => {
            let (host, port) = hp
                .rsplit_once(':')
                .ok_or_else(|| bad(format!("--smtp {hp:?}: expected HOST:PORT")))?;
            let port: u16 = port
                .parse()
                .map_err(|_| bad(format!("--smtp {hp:?}: bad port")))?;
            Some(Endpoint {
                host: host.to_owned(),
                port,
                tls: TlsMode::Starttls,
                ca_file: args.ca_file.clone(),
                username: String::new(),
                secret: crate::secrets::SecretRef::None,
            })
        }
        None => None,
    };
    if args.ips.is_empty() {
        return Err(bad(
            "--ip IP is required with --helo (repeat it for several IPs)".into(),
        ));
    }
    Ok(Identity {
        helo: helo.to_owned(),
        ips: args.ips.clone(),
        mail_from,
        from_domain,
        dkim,
        smtp,
    })
}

/// Exit code of a preflight: 0 when nothing fails or is unknown (warnings allowed), 1 otherwise.
fn exit_code(reports: &[&PreflightReport]) -> ExitCode {
    let worst = reports
        .iter()
        .map(|r| r.verdict())
        .fold(Verdict::Pass, Verdict::worst);
    if matches!(worst, Verdict::Pass | Verdict::Warn) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

pub async fn preflight(mut config: Config, args: PreflightArgs) -> anyhow::Result<ExitCode> {
    if !args.dns.is_empty() {
        config.dns.nameservers = args.dns.clone();
    }
    if let Some(helo) = &args.helo {
        let identity = ad_hoc_identity(&args, helo)?;
        let dns = client(&config.dns)?;
        let opts = Options {
            ip_blocklists: config.preflight.ip_blocklists.clone(),
            domain_blocklists: config.preflight.domain_blocklists.clone(),
            smtp_timeout: Duration::from_secs(config.preflight.smtp_timeout_secs),
        };
        let report = preflight::run_checks(&dns, &identity, &opts).await;
        print_reports(&[(helo.clone(), &report)], args.json, args.verbose)?;
        return Ok(exit_code(&[&report]));
    }
    if args.sender.is_none() && !args.all {
        return Err(InputError(
            "give a SENDER from the config, --all, or an ad hoc identity with --helo".into(),
        )
        .into());
    }
    let app = App::build(config, super::clock()).await?;
    let senders = store::senders::list(app.store.pool()).await?;
    let chosen: Vec<_> = match &args.sender {
        Some(name) => vec![
            senders
                .into_iter()
                .find(|s| &s.record.name == name)
                .ok_or_else(|| InputError(format!("no sender named {name:?} in the config")))?,
        ],
        None => senders,
    };
    let bar = if args.all && !args.json {
        indicatif::ProgressBar::new(chosen.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} senders {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(16));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, s) in chosen.into_iter().enumerate() {
        let app = app.clone();
        let sem = sem.clone();
        let bar = bar.clone();
        tasks.spawn(async move {
            let _permit = sem.acquire_owned().await;
            let r = gate::recheck_sender(&app, &s, PreflightTrigger::Manual).await;
            bar.inc(1);
            (i, s.record.name.clone(), r)
        });
    }
    let mut results = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (i, name, r) = done?;
        results.push((i, name, r?.0));
    }
    bar.finish_and_clear();
    results.sort_by_key(|(i, _, _)| *i);
    let shown: Vec<(String, &PreflightReport)> =
        results.iter().map(|(_, n, r)| (n.clone(), r)).collect();
    print_reports(&shown, args.json, args.verbose)?;
    Ok(exit_code(
        &results.iter().map(|(_, _, r)| r).collect::<Vec<_>>(),
    ))
}

fn print_reports(
    reports: &[(String, &PreflightReport)],
    json: bool,
    verbose: bool,
) -> anyhow::Result<()> {
    if json {
        let v: Vec<_> = reports
            .iter()
            .map(|(name, r)| serde_json::json!({ "identity": name, "verdict": r.verdict(), "checks": r.results }))
            .collect();
        let out = if v.len() == 1 {
            v[0].clone()
        } else {
            serde_json::Value::Array(v)
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    for (name, report) in reports {
        println!("{name}: {}", report.verdict());
        println!("  {:<17} {:<8} SUMMARY", "CHECK", "VERDICT");
        for r in &report.results {
            println!(
                "  {:<17} {:<8} {}",
                r.id.as_str(),
                r.verdict.as_str(),
                r.summary
            );
            if verbose || r.verdict != Verdict::Pass {
                for e in &r.evidence {
                    println!("  {:<26} · {e}", "");
                }
                if !r.remediation.is_empty() && r.verdict != Verdict::Pass {
                    println!("  {:<26} fix: {}", "", r.remediation);
                }
            }
        }
    }
    Ok(())
}
