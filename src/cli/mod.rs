//! Command-line interface. Exit codes scripts can rely on: 0 success, 1 failure at run time
//! (database unreachable, a refused transition), 2 bad input (usage, config, CSV).

mod bench;
mod bench_imap;
pub mod bench_planning;
mod bench_report;
mod preflight;
mod report;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::clock::{SharedClock, SystemClock};
use crate::config::Config;
use crate::domain::{CampaignStatus, PauseReason, Placement, Source};
use crate::startup::{self, App};
use crate::store;

#[derive(Debug, Parser)]
#[command(
    name = "hearth",
    version,
    about = "Self-hosted email warm-up",
    propagate_version = true
)]
pub struct Cli {
    /// Config file (TOML). Environment overrides: HEARTH_SECTION__KEY=value.
    #[arg(long, short, global = true, env = "HEARTH_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log format on stderr: text or json (overrides log.format; RUST_LOG sets the filter).
    #[arg(long, global = true, env = "HEARTH_LOG_FORMAT", value_name = "FORMAT", value_parser = parse_log_format)]
    pub log_format: Option<crate::config::LogFormat>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server and the workers until SIGINT/SIGTERM.
    Serve {
        /// Run the plan's clock N times faster than real time (1440 = a day per minute), to
        /// watch a ramp against a test world. Never use it against real mailbox providers.
        #[arg(long, value_name = "N", value_parser = parse_scale)]
        time_scale: Option<f64>,
    },
    /// Inspect the configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Manage the seed pool.
    Seeds {
        #[command(subcommand)]
        command: SeedsCommand,
    },
    /// List, start, pause and resume campaigns.
    Campaign {
        #[command(subcommand)]
        command: CampaignCommand,
    },
    /// Check a sending identity the way receivers do. Exit 0 when nothing fails, 1 otherwise.
    Preflight(preflight::PreflightArgs),
    /// Evaluate SPF (RFC 7208) for an IP and identity: the result word, then why.
    Spf(preflight::SpfArgs),
    /// Placement report of a campaign per provider and day (table, JSON or CSV).
    Report(report::ReportArgs),
    /// Every campaign: its day in the ramp, state and pause reason, held providers, health.
    Status(report::StatusArgs),
    /// Benchmarks (run them against the lab, in a release build).
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a config file without touching the database. Exit 2 when it has problems.
    Check {
        /// The file to check (defaults to --config).
        file: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SeedsCommand {
    /// Import seeds from a CSV file: all rows or none.
    Import {
        file: PathBuf,
        /// Check the file and report, without writing anything.
        #[arg(long)]
        dry_run: bool,
    },
    /// List the seed pool with each seed's health.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum CampaignCommand {
    /// Every campaign with its state and placement so far.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Start (or restart after completion) a campaign.
    Start { name: String },
    /// Pause a running campaign.
    Pause { name: String },
    /// Resume a paused campaign.
    Resume { name: String },
    /// Lift the placement guard's hold of one provider (its seeds are planned again).
    Release {
        name: String,
        /// gmail, outlook, yahoo or other.
        provider: crate::domain::Provider,
    },
}

/// Bad input: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InputError(pub String);

pub async fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Config {
            command: ConfigCommand::Check { file },
        } => config_check(file.or(cli.config).as_deref()),
        command => match load_config(cli.config.as_deref()) {
            Ok(config) => {
                crate::telemetry::init(
                    cli.log_format.unwrap_or(config.log.format),
                    &config.log.filter,
                );
                dispatch(command, config).await
            }
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            if e.downcast_ref::<InputError>().is_some() {
                eprintln!("error: {e}");
                ExitCode::from(2)
            } else {
                eprintln!("error: {e:#}");
                ExitCode::from(1)
            }
        }
    }
}

fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    Config::load(path).map_err(|e| InputError(e.to_string()).into())
}

fn config_check(path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let config = load_config(path)?;
    println!(
        "{}: ok ({} senders, {} seeds, {} campaigns; database {})",
        path.map(|p| p.display().to_string())
            .unwrap_or_else(|| "<defaults>".into()),
        config.senders.len(),
        config.seeds.len(),
        config.campaigns.len(),
        config.server.database_url,
    );
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn clock() -> SharedClock {
    Arc::new(SystemClock)
}

async fn dispatch(command: Command, config: Config) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve { time_scale } => serve(config, time_scale).await,
        Command::Config { .. } => unreachable!("handled before the config is loaded"),
        Command::Seeds { command } => match command {
            SeedsCommand::Import { file, dry_run } => seeds_import(config, &file, dry_run).await,
            SeedsCommand::List { json } => seeds_list(config, json).await,
        },
        Command::Campaign { command } => campaign(config, command).await,
        Command::Preflight(args) => preflight::preflight(config, args).await,
        Command::Spf(args) => preflight::spf(config, args).await,
        Command::Report(args) => report::report(config, args).await,
        Command::Status(args) => report::status(config, args).await,
        Command::Bench { command } => bench::run(command).await,
    }
}

fn parse_log_format(s: &str) -> Result<crate::config::LogFormat, String> {
    match s {
        "text" => Ok(crate::config::LogFormat::Text),
        "json" => Ok(crate::config::LogFormat::Json),
        _ => Err(format!("expected text or json, got {s:?}")),
    }
}

fn parse_scale(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (1.0..=100_000.0).contains(&v) => Ok(v),
        _ => Err(format!("expected a factor from 1 to 100000, got {s:?}")),
    }
}

async fn serve(config: Config, time_scale: Option<f64>) -> anyhow::Result<ExitCode> {
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        config = ?config.path,
        database = %config.server.database_url,
        bind = %config.server.bind,
        time_scale = time_scale.unwrap_or(1.0),
        "starting hearth"
    );
    let clock: SharedClock = match time_scale {
        Some(n) if n > 1.0 => {
            tracing::warn!(factor = n, "time runs {n}x faster than real time");
            Arc::new(crate::clock::ScaledClock::new(n))
        }
        _ => clock(),
    };
    let app = App::build(config, clock).await?;
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("signal received");
        signal.cancel();
    });
    app.run_until_stopped(shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn seeds_import(config: Config, file: &Path, dry_run: bool) -> anyhow::Result<ExitCode> {
    let seeds = crate::seeds_import::parse_file(file).map_err(|e| InputError(e.to_string()))?;
    if dry_run {
        println!(
            "{}: {} seeds ok (dry run, nothing written)",
            file.display(),
            seeds.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let store = startup::open_store(&config).await?;
    let key = startup::secret_key(&config)?;
    let now = crate::clock::Clock::now(&SystemClock);
    let mut tx = store.pool().begin().await?;
    let mut conflicts = Vec::new();
    for s in &seeds {
        if let Some(existing) = store::seeds::get_by_address(&mut *tx, &s.address).await?
            && existing.record.source == Source::Config
        {
            conflicts.push(format!(
                "{}: {} is declared in the config file, which owns it; remove it from the CSV",
                file.display(),
                s.address
            ));
        }
    }
    if !conflicts.is_empty() {
        return Err(InputError(conflicts.join("\n")).into());
    }
    let records: Vec<_> = seeds
        .iter()
        .map(|s| startup::seed_record(&key, s, Source::Import))
        .collect();
    let n = store::seeds::insert_many_in_tx(&mut tx, &records, now).await?;
    tx.commit().await.context("cannot commit the import")?;
    println!("{}: imported {n} seeds", file.display());
    Ok(ExitCode::SUCCESS)
}

async fn seeds_list(config: Config, json: bool) -> anyhow::Result<ExitCode> {
    let app = App::build(config, clock()).await?;
    let seeds = store::seeds::list(app.store.pool()).await?;
    if json {
        let rows: Vec<_> = seeds
            .iter()
            .map(|s| {
                json!({
                    "address": s.record.address.to_string(),
                    "provider": s.record.provider.as_str(),
                    "status": s.status.as_str(),
                    "status_reason": s.status_reason,
                    "source": s.record.source.as_str(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!(
            "{:<32} {:<8} {:<9} {:<7} REASON",
            "ADDRESS", "PROVIDER", "STATUS", "SOURCE"
        );
        for s in &seeds {
            println!(
                "{:<32} {:<8} {:<9} {:<7} {}",
                s.record.address.to_string(),
                s.record.provider,
                s.status,
                s.record.source,
                s.status_reason.as_deref().unwrap_or("")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn campaign(config: Config, command: CampaignCommand) -> anyhow::Result<ExitCode> {
    let app = App::build(config, clock()).await?;
    let pool = app.store.pool();
    let now = app.clock.now();
    let find = |name: &str| {
        let name = name.to_owned();
        let pool = pool.clone();
        async move {
            store::campaigns::get_by_name(&pool, &name)
                .await?
                .ok_or_else(|| {
                    anyhow::Error::new(InputError(format!("no campaign named {name:?}")))
                })
        }
    };
    match command {
        CampaignCommand::List { json } => {
            let campaigns = store::campaigns::list(pool).await?;
            let mut rows = Vec::new();
            for c in &campaigns {
                let counts = store::ledger::counts_for_campaign(pool, c.id).await?;
                let sends = store::outbox::count_by_status(pool, c.id).await?;
                let get = |p: Placement| {
                    counts
                        .iter()
                        .find(|(k, _)| *k == p)
                        .map(|(_, n)| *n)
                        .unwrap_or(0)
                };
                let sent = sends
                    .iter()
                    .filter(|(s, _)| *s == crate::domain::OutboxStatus::Sent)
                    .map(|(_, n)| *n)
                    .sum::<i64>();
                let planned = sends.iter().map(|(_, n)| *n).sum::<i64>();
                rows.push(json!({
                    "name": c.name,
                    "sender": c.sender_name,
                    "status": c.status.as_str(),
                    "pause_reason": c.pause_reason.map(PauseReason::as_str),
                    "pause_detail": c.pause_detail,
                    "planned": planned,
                    "sent": sent,
                    "inbox": get(Placement::Inbox),
                    "spam": get(Placement::Spam),
                    "other": get(Placement::Other) + get(Placement::Promotions),
                    "missing": get(Placement::Missing),
                }));
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!(
                    "{:<20} {:<12} {:<9} {:<13} {:>7} {:>5} {:>5} {:>4} {:>5} {:>7}",
                    "NAME",
                    "SENDER",
                    "STATUS",
                    "REASON",
                    "PLANNED",
                    "SENT",
                    "INBOX",
                    "SPAM",
                    "OTHER",
                    "MISSING"
                );
                for r in &rows {
                    println!(
                        "{:<20} {:<12} {:<9} {:<13} {:>7} {:>5} {:>5} {:>4} {:>5} {:>7}",
                        r["name"].as_str().unwrap_or(""),
                        r["sender"].as_str().unwrap_or(""),
                        r["status"].as_str().unwrap_or(""),
                        r["pause_reason"].as_str().unwrap_or("-"),
                        r["planned"],
                        r["sent"],
                        r["inbox"],
                        r["spam"],
                        r["other"],
                        r["missing"],
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        CampaignCommand::Start { name } => {
            let c = find(&name).await?;
            if !matches!(c.status, CampaignStatus::Draft | CampaignStatus::Completed) {
                anyhow::bail!(
                    "campaign {name:?} is {}{}; `start` applies to draft or completed campaigns (use `resume` for a paused one)",
                    c.status,
                    c.pause_reason
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                );
            }
            gate_or_refuse(&app, &c, "start").await?;
            let ok = store::campaigns::transition(
                pool,
                c.id,
                &[CampaignStatus::Draft, CampaignStatus::Completed],
                CampaignStatus::Active,
                None,
                None,
                now,
            )
            .await?;
            if !ok {
                anyhow::bail!(
                    "campaign {name:?} is {}{}; `start` applies to draft or completed campaigns (use `resume` for a paused one)",
                    c.status,
                    c.pause_reason
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                );
            }
            let planned = crate::scheduler::run_once(&app).await?;
            println!("campaign {name} started; {planned} sends planned for today");
            Ok(ExitCode::SUCCESS)
        }
        CampaignCommand::Pause { name } => {
            let c = find(&name).await?;
            let ok = store::campaigns::transition(
                pool,
                c.id,
                &[CampaignStatus::Active],
                CampaignStatus::Paused,
                Some(PauseReason::Manual),
                Some("paused from the command line"),
                now,
            )
            .await?;
            if !ok {
                anyhow::bail!("campaign {name:?} is {}, not active", c.status);
            }
            println!("campaign {name} paused");
            Ok(ExitCode::SUCCESS)
        }
        CampaignCommand::Release { name, provider } => {
            let c = find(&name).await?;
            if !store::holds::release(pool, c.id, provider, now).await? {
                anyhow::bail!("campaign {name:?} has no hold on {provider}");
            }
            println!("campaign {name}: {provider} released; it is planned again from the next day");
            Ok(ExitCode::SUCCESS)
        }
        CampaignCommand::Resume { name } => {
            let c = find(&name).await?;
            if c.status != CampaignStatus::Paused {
                anyhow::bail!("campaign {name:?} is {}, not paused", c.status);
            }
            gate_or_refuse(&app, &c, "resume").await?;
            let ok = store::campaigns::transition(
                pool,
                c.id,
                &[CampaignStatus::Paused],
                CampaignStatus::Active,
                None,
                None,
                now,
            )
            .await?;
            if !ok {
                anyhow::bail!("campaign {name:?} is {}, not paused", c.status);
            }
            let planned = crate::scheduler::run_once(&app).await?;
            println!("campaign {name} resumed; {planned} sends planned for today");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Runs preflight for the campaign's sender; refuses (exit 1) with the failing checks.
async fn gate_or_refuse(
    app: &App,
    c: &store::campaigns::CampaignRow,
    verb: &str,
) -> anyhow::Result<()> {
    let sender = store::senders::get(app.store.pool(), c.sender_id)
        .await?
        .context("the campaign's sender is missing")?;
    match crate::preflight::gate::check_before_start(app, &sender).await? {
        Ok(_) => Ok(()),
        Err((blocked, report)) => {
            for r in report.results.iter().filter(|r| {
                r.verdict == crate::domain::Verdict::Fail
                    || r.verdict == crate::domain::Verdict::Unknown
            }) {
                eprintln!(
                    "  {:<17} {:<8} {}",
                    r.id.as_str(),
                    r.verdict.as_str(),
                    r.summary
                );
                if !r.remediation.is_empty() {
                    eprintln!("  {:<26} fix: {}", "", r.remediation);
                }
            }
            anyhow::bail!(
                "campaign {:?} cannot {verb}: preflight of sender {:?} does not pass ({blocked})",
                c.name,
                sender.record.name
            )
        }
    }
}
