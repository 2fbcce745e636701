//! `hearth report CAMPAIGN` and `hearth status`: the placement reports in a terminal.

use std::fmt::Write as _;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use crate::config::Config;
use crate::report::{self, CampaignReport, Metrics, ReportError};
use crate::startup::App;

use super::InputError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The campaign's name.
    pub campaign: String,
    /// Plan days to report, ending today (in the plan's time zone).
    #[arg(long, default_value_t = 14, value_parser = clap::value_parser!(u32).range(1..=i64::from(report::MAX_DAYS)))]
    pub days: u32,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[arg(long)]
    pub json: bool,
}

pub async fn report(config: Config, args: ReportArgs) -> anyhow::Result<ExitCode> {
    let app = App::build(config, super::clock()).await?;
    let (store, now) = (&app.store, app.clock.now());
    let r = match report::campaign_report(store, &args.campaign, args.days, now).await {
        Err(e @ (ReportError::NoSuchCampaign(_) | ReportError::BadDays(_))) => {
            return Err(InputError(e.to_string()).into());
        }
        other => other?,
    };
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&r)?),
        Format::Csv => print!("{}", r.to_csv()?),
        Format::Table => print!("{}", table(&r)),
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn status(config: Config, args: StatusArgs) -> anyhow::Result<ExitCode> {
    let app = App::build(config, super::clock()).await?;
    let (store, now) = (&app.store, app.clock.now());
    let lines = report::status_overview(store, now).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&lines)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<20} {:<12} {:>4} {:>7} {:>6} {:>6}  STATE",
        "CAMPAIGN", "SENDER", "DAY", "HEALTH", "INBOX%", "SPAM%"
    );
    for l in &lines {
        let mut state = report::describe_state(&l.campaign);
        for (p, h) in &l.held {
            let _ = write!(state, "; {p} held ({})", h.reason);
        }
        println!(
            "{:<20} {:<12} {:>4} {:>7} {:>6} {:>6}  {}",
            l.campaign.name,
            l.campaign.sender,
            l.ramp_day,
            l.health
                .map(|h| h.to_string())
                .unwrap_or_else(|| "-".into()),
            opt_pct(l.inbox_pct),
            opt_pct(l.spam_pct),
            state
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Eight levels of a Unicode block sparkline; a day without placed mail is a space.
pub fn sparkline(values: impl IntoIterator<Item = Option<f64>>) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    values
        .into_iter()
        .map(|v| match v {
            None => ' ',
            Some(p) => BARS[((p.clamp(0.0, 100.0) / 100.0 * 7.0).round()) as usize],
        })
        .collect()
}

fn opt_pct(v: Option<f64>) -> String {
    v.map(|p| format!("{p:.1}")).unwrap_or_else(|| "-".into())
}

fn duration(secs: Option<i64>) -> String {
    match secs {
        None => "-".into(),
        Some(s) if s < 120 => format!("{s}s"),
        Some(s) if s < 7200 => format!("{}m", s / 60),
        Some(s) => format!("{:.1}h", s as f64 / 3600.0),
    }
}

fn row(label: &str, m: &Metrics) -> String {
    let c = &m.counts;
    format!(
        "{label:<10} {:>7} {:>5} {:>6} {:>5} {:>6} {:>6} {:>6} {:>6} {:>4} {:>4} {:>6} {:>6} {:>5} {:>5} {:>6}\n",
        c.planned,
        c.sent,
        c.failed,
        m.seen,
        opt_pct(m.inbox_pct),
        opt_pct(m.spam_pct),
        opt_pct(m.promotions_pct),
        opt_pct(m.missing_pct),
        c.rescued,
        c.replied,
        duration(m.latency_p50_secs),
        duration(m.latency_p95_secs),
        opt_pct(m.spf_pass_pct),
        opt_pct(m.dkim_pass_pct),
        opt_pct(m.dmarc_pass_pct),
    )
}

/// The terminal table: a header, then per provider its inbox sparkline and one row per day.
pub fn table(r: &CampaignReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "campaign {} (sender {}): {} — health {} — {} .. {}",
        r.campaign.name,
        r.campaign.sender,
        report::describe_state(&r.campaign),
        r.health
            .map(|h| format!("{h}/100"))
            .unwrap_or_else(|| "n/a".into()),
        r.from,
        r.to
    );
    let head = format!(
        "{:<10} {:>7} {:>5} {:>6} {:>5} {:>6} {:>6} {:>6} {:>6} {:>4} {:>4} {:>6} {:>6} {:>5} {:>5} {:>6}\n",
        "DAY",
        "PLANNED",
        "SENT",
        "FAILED",
        "SEEN",
        "INBOX%",
        "SPAM%",
        "PROMO%",
        "MISS%",
        "RESC",
        "REPL",
        "P50",
        "P95",
        "SPF%",
        "DKIM%",
        "DMARC%"
    );
    if r.providers.is_empty() {
        out.push_str("no messages in this period\n");
    }
    for p in &r.providers {
        let _ = writeln!(
            out,
            "\n{} — inbox {} — health {}{}",
            p.provider,
            sparkline(p.days.iter().map(|d| d.metrics.inbox_pct)),
            p.health
                .map(|h| format!("{h}/100"))
                .unwrap_or_else(|| "n/a".into()),
            p.held
                .as_ref()
                .map(|h| format!(
                    " — HELD ({}{})",
                    h.reason,
                    h.detail
                        .as_deref()
                        .map(|d| format!(": {d}"))
                        .unwrap_or_default()
                ))
                .unwrap_or_default()
        );
        out.push_str(&head);
        for d in &p.days {
            out.push_str(&row(&d.day.format("%Y-%m-%d").to_string(), &d.metrics));
        }
        out.push_str(&row("total", &p.totals));
    }
    out.push_str("\nvolume (all providers): planned vs sent\n");
    for v in &r.volume {
        let _ = writeln!(
            out,
            "{}  {:>6} {:>6}{}",
            v.day,
            v.planned,
            v.sent,
            if v.failed > 0 {
                format!("  ({} failed)", v.failed)
            } else {
                String::new()
            }
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparkline_levels() {
        let cases: &[(&[Option<f64>], &str)] = &[
            (&[], ""),
            (&[Some(0.0), Some(100.0)], "▁█"),
            (&[None, Some(50.0), Some(120.0)], " ▅█"),
        ];
        for (v, want) in cases {
            assert_eq!(sparkline(v.iter().copied()), *want);
        }
    }
}
