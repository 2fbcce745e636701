//! The dashboard's pages. Each reads the store, then renders with maud (every value escaped).

use axum::Extension;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use chrono::DateTime;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use super::charts;
use super::data;
use super::session::{CSRF_FIELD, Csrf};
use super::{UiError, UiResult, layout};
use crate::domain::{CampaignStatus, Placement, Verdict};
use crate::http::AppState;
use crate::http::errors::{ApiError, ApiPath};
use crate::report::{self, ReportError};
use crate::store::{self, campaigns::CampaignRow, preflight::PreflightRun};

/// Days shown by the campaign charts unless `?days=` says otherwise (at most a year).
const DEFAULT_DAYS: u32 = 30;
const MAX_DAYS: u32 = 365;
/// Preflight runs listed on a sender's page.
const RUNS_SHOWN: i64 = 10;

pub fn fmt_time(t: i64) -> String {
    DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| t.to_string())
}

fn status_badge(status: CampaignStatus) -> Markup {
    html! { span class={ "badge s-" (status) } { (status) } }
}

fn verdict_badge(v: Option<Verdict>) -> Markup {
    match v {
        Some(v) => html! { span class={ "badge v-" (v) } { (v) } },
        None => html! { span.badge { "running" } },
    }
}

fn pause_text(c: &CampaignRow) -> Markup {
    html! {
        @if let Some(r) = c.pause_reason {
            strong { (r) }
            @if let Some(d) = &c.pause_detail { ": " (d) }
            @if r.auto_resumable() && c.auto_resume {
                br; span.muted.small { "resumes by itself when preflight passes" }
            } @else {
                br; span.muted.small { "needs a person to resume" }
            }
        }
    }
}

/// The pause or resume button a campaign's state allows (none otherwise).
fn lifecycle_form(c: &CampaignRow, csrf: &str) -> Markup {
    let (verb, label) = match c.status {
        CampaignStatus::Active => ("pause", "Pause"),
        CampaignStatus::Paused => ("resume", "Resume"),
        _ => return html! {},
    };
    html! {
        form.inline method="post" action={ "/ui/campaigns/" (c.id) "/" (verb) } {
            input type="hidden" name=(CSRF_FIELD) value=(csrf);
            button class=(verb) type="submit" name="action" value=(verb) { (label) }
        }
    }
}

/// Inbox share of the placed messages, as text ("62 % of 40").
fn inbox_share(counts: &[(Placement, i64)]) -> String {
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    let inbox: i64 = counts
        .iter()
        .filter(|(p, _)| *p == Placement::Inbox)
        .map(|(_, n)| n)
        .sum();
    if total == 0 {
        "—".into()
    } else {
        format!("{:.0} % of {total}", inbox as f64 * 100.0 / total as f64)
    }
}

/// "62 % / 8 %", or a dash without placed messages.
fn pct_pair(inbox: Option<f64>, spam: Option<f64>) -> String {
    match (inbox, spam) {
        (Some(i), Some(s)) => format!("{i:.0} % / {s:.0} %"),
        _ => "—".into(),
    }
}

pub async fn campaigns(
    State(st): State<AppState>,
    Extension(Csrf(csrf)): Extension<Csrf>,
) -> UiResult<Markup> {
    let pool = st.app.store.pool();
    let rows = store::campaigns::list(pool).await?;
    let lines = report::status_overview(&st.app.store, st.app.clock.now())
        .await
        .map_err(report_error)?;
    let line_of = |id: i64| lines.iter().find(|l| l.campaign.id == id);
    let senders = store::senders::list(pool).await?;
    let verdicts = store::stats::latest_verdicts(pool).await?;
    let body = html! {
        h1 { "Campaigns" }
        @if rows.is_empty() {
            p.muted { "No campaigns yet: declare one in the config file or POST /api/v1/campaigns." }
        } @else {
            table #campaigns {
                thead { tr {
                    th { "Campaign" } th { "Sender" } th { "Status" } th { "Pause reason" }
                    th { "Ramp day" } th { "Health" } th { "Inbox / spam (" (report::STATUS_HEALTH_DAYS) " days)" }
                    th { "Started" } th {}
                } }
                tbody {
                    @for c in &rows {
                        @let line = line_of(c.id);
                        tr data-campaign=(c.name) {
                            td { a href={ "/ui/campaigns/" (c.id) } { (c.name) } }
                            td { a href={ "/ui/senders/" (c.sender_id) } { (c.sender_name) } }
                            td.status { (status_badge(c.status)) }
                            td {
                                (pause_text(c))
                                @for (provider, hold) in line.map(|l| l.held.as_slice()).unwrap_or_default() {
                                    div.small { "held at " strong { (provider) } " (" (hold.reason) ")"
                                        @if let Some(d) = &hold.detail { ": " (d) } }
                                }
                            }
                            td { (line.map(|l| l.ramp_day).filter(|d| *d > 0).map(|d| d.to_string()).unwrap_or_default()) }
                            td { (line.and_then(|l| l.health).map(|h| h.to_string()).unwrap_or_else(|| "—".into())) }
                            td { (line.map(|l| pct_pair(l.inbox_pct, l.spam_pct)).unwrap_or_else(|| "—".into())) }
                            td.small { (c.started_at.map(fmt_time).unwrap_or_default()) }
                            td { (lifecycle_form(c, &csrf)) }
                        }
                    }
                }
            }
        }
        h2 { "Senders" }
        table #senders {
            thead { tr { th { "Sender" } th { "Address" } th { "HELO" } th { "Latest preflight" } } }
            tbody {
                @for s in &senders {
                    @let v = verdicts.iter().find(|(n, _)| *n == s.record.name).map(|(_, v)| *v);
                    tr {
                        td { a href={ "/ui/senders/" (s.id) } { (s.record.name) } }
                        td { (s.record.address) }
                        td { (s.record.helo) }
                        td { @if v.is_some() { (verdict_badge(v)) } @else { span.muted { "never run" } } }
                    }
                }
            }
        }
    };
    Ok(layout("Campaigns", &csrf, !st.tokens.is_empty(), body))
}

#[derive(Debug, Deserialize)]
pub struct CampaignQuery {
    /// Text, so that a mistyped `?days=` shows the default period rather than an error.
    days: Option<String>,
    done: Option<String>,
}

pub async fn campaign(
    State(st): State<AppState>,
    Extension(Csrf(csrf)): Extension<Csrf>,
    ApiPath(id): ApiPath<i64>,
    Query(q): Query<CampaignQuery>,
) -> UiResult<Markup> {
    let flash = match q.done.as_deref() {
        Some("paused") => Some(Flash::Done("Paused.".into())),
        Some("resumed") => Some(Flash::Done("Resumed: preflight passed.".into())),
        _ => None,
    };
    let days = q.days.and_then(|d| d.trim().parse().ok());
    campaign_page(&st, &csrf, id, days, flash).await
}

/// A message at the top of a page: what a form did, or why it could not.
pub enum Flash {
    Done(String),
    Failed(String),
}

/// The campaign page, with `flash` on top (the actions render it with their error).
pub async fn campaign_page(
    st: &AppState,
    csrf: &str,
    id: i64,
    days: Option<u32>,
    flash: Option<Flash>,
) -> UiResult<Markup> {
    let pool = st.app.store.pool();
    let c = store::campaigns::get(pool, id)
        .await?
        .ok_or_else(|| UiError::from(ApiError::not_found(format!("campaign {id}"))))?;
    let days = days.unwrap_or(DEFAULT_DAYS).clamp(1, MAX_DAYS);
    let report = report::report_for(&st.app.store, &c, days, st.app.clock.now())
        .await
        .map_err(report_error)?;
    let charts = data::charts(&report);
    let counts = store::ledger::counts_for_campaign(pool, id).await?;
    let spec: Value = serde_json::from_str(&c.plan).unwrap_or(Value::Null);
    let plan = &spec["plan"];
    let ramp_title = format!("{}: planned vs sent per day", c.name);
    let body = html! {
        p.small { a href="/ui/" { "← Campaigns" } }
        h1 { (c.name) " " (status_badge(c.status)) }
        @match &flash {
            Some(Flash::Done(m)) => p.flash #flash { (m) },
            Some(Flash::Failed(m)) => p.flash.error #flash { (m) },
            None => {},
        }
        dl.facts {
            dt { "Sender" } dd { a href={ "/ui/senders/" (c.sender_id) } { (c.sender_name) } }
            dt { "Status" } dd #status { (c.status) }
            @if c.pause_reason.is_some() { dt { "Paused because" } dd #pause-reason { (pause_text(&c)) } }
            dt { "Started" } dd { (c.started_at.map(fmt_time).unwrap_or_else(|| "not yet".into())) }
            @if let Some(n) = plan["start_per_day"].as_i64() { dt { "Ramp" } dd {
                (n) " a day, up to " (plan["max_per_day"].as_i64().unwrap_or_default())
                @if let Some(tz) = plan["timezone"].as_str() { " (" (tz) ")" }
            } }
            dt { "Health" } dd #health { (report.health.map(|h| format!("{h} / 100")).unwrap_or_else(|| "—".into())) }
            dt { "Inbox share" } dd { (inbox_share(&counts)) }
            dt { "Source" } dd { (c.source) }
        }
        div.actions { (lifecycle_form(&c, csrf)) }
        h2 { "Ramp" }
        (charts::line_chart(&ramp_title, "messages", &charts.ramp))
        h2 { "Placement per provider" }
        p.muted.small {
            "Share of each plan day's placed messages by folder class, last " (days) " days. "
            "Health is the report's score (0–100, recent days weigh more)."
        }
        @if charts.providers.is_empty() {
            p.muted #no-placements { "No placements recorded yet." }
        }
        div.grid2 {
            @for p in &charts.providers {
                (charts::share_chart(&provider_title(p), &p.series))
            }
        }
        h2 { "Totals" }
        table #totals {
            thead { tr { th { "Folder class" } th { "Messages" } } }
            tbody {
                @for (p, n) in &counts { tr { td { (p) } td { (n) } } }
            }
        }
    };
    Ok(layout(&c.name, csrf, !st.tokens.is_empty(), body))
}

/// A provider chart's caption: the provider, its health and whether the guard holds it.
fn provider_title(p: &data::ProviderChart) -> String {
    let mut t = p.provider.to_string();
    if let Some(h) = p.health {
        t.push_str(&format!(" · health {h}"));
    }
    if let Some(hold) = &p.held {
        t.push_str(&format!(" · held ({})", hold.reason));
    }
    t
}

fn report_error(e: ReportError) -> UiError {
    match e {
        ReportError::Store(e) => e.into(),
        other => UiError::new(StatusCode::BAD_REQUEST, other.to_string()),
    }
}

fn checks_table(run: &PreflightRun) -> Markup {
    html! {
        table.checks {
            thead { tr { th { "Check" } th { "Verdict" } th { "What was seen" } th { "Fix" } } }
            tbody {
                @for r in &run.results {
                    tr data-check=(r.result.check_id) {
                        td { code { (r.result.check_id) } }
                        td { (verdict_badge(Some(r.result.verdict))) }
                        td { pre.evidence { (r.result.evidence) } }
                        td { (r.result.remediation.as_deref().unwrap_or("")) }
                    }
                }
            }
        }
    }
}

pub async fn sender(
    State(st): State<AppState>,
    Extension(Csrf(csrf)): Extension<Csrf>,
    ApiPath(id): ApiPath<i64>,
) -> UiResult<Markup> {
    let pool = st.app.store.pool();
    let s = store::senders::get(pool, id)
        .await?
        .ok_or_else(|| UiError::new(StatusCode::NOT_FOUND, format!("sender {id} not found")))?;
    let runs = store::preflight::list_runs(pool, id, None, RUNS_SHOWN).await?;
    let r = &s.record;
    let body = html! {
        p.small { a href="/ui/" { "← Campaigns" } }
        h1 { "Sender " (r.name) }
        dl.facts {
            dt { "Address" } dd { (r.address) }
            dt { "HELO" } dd { (r.helo) }
            dt { "IPs" } dd { (r.ips.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")) }
            @if let Some(d) = &r.dkim { dt { "DKIM" } dd { (d.selector) "._domainkey." (d.domain) } }
            dt { "Relay" } dd { (r.smtp.host) ":" (r.smtp.port) " (" (r.smtp.tls.as_str()) ")" }
        }
        h2 { "Preflight" }
        @match runs.split_first() {
            None => p.muted { "No preflight has run for this sender yet (" code { "hearth preflight " (r.name) } ")." },
            Some((latest, older)) => {
                p #latest-run {
                    "Latest run: " (verdict_badge(latest.verdict)) " · " (latest.trigger) " · "
                    (fmt_time(latest.started_at))
                }
                (checks_table(latest))
                @if !older.is_empty() {
                    h2 { "Earlier runs" }
                    @for run in older {
                        details {
                            summary { (verdict_badge(run.verdict)) " " (run.trigger) " · " (fmt_time(run.started_at)) }
                            (checks_table(run))
                        }
                    }
                }
            }
        }
    };
    Ok(layout(
        &format!("Sender {}", r.name),
        &csrf,
        !st.tokens.is_empty(),
        body,
    ))
}

pub async fn seeds(
    State(st): State<AppState>,
    Extension(Csrf(csrf)): Extension<Csrf>,
) -> UiResult<Markup> {
    let pool = st.app.store.pool();
    let seeds = store::seeds::list(pool).await?;
    let health = data::seed_health(pool).await?;
    let none = data::SeedHealth::default();
    let body = html! {
        h1 { "Seed pool" }
        p.muted.small { "Broken seeds (a refused login, a missing mailbox) are out of rotation until fixed; the reason says what failed." }
        table #seeds {
            thead { tr {
                th { "Seed" } th { "Provider" } th { "Status" } th { "Cap/day" }
                th { "Found: inbox / spam / other" } th { "Last found" } th { "Last error" }
            } }
            tbody {
                @for s in &seeds {
                    @let h = health.get(&s.id).unwrap_or(&none);
                    @let n = |p: Placement| h.placed.get(p.as_str()).copied().unwrap_or(0);
                    tr data-seed=(s.record.address) {
                        td { (s.record.address) }
                        td { (s.record.provider) }
                        td {
                            span class={ "badge s-" (s.status) } { (s.status) }
                            @if let Some(reason) = &s.status_reason { br; span.small { (reason) } }
                        }
                        td { (s.record.daily_cap) }
                        td { (n(Placement::Inbox)) " / " (n(Placement::Spam)) " / "
                             (n(Placement::Promotions) + n(Placement::Other) + n(Placement::Missing)) }
                        td.small { (h.last_seen.map(fmt_time).unwrap_or_default()) }
                        td.small {
                            @if let Some((e, at)) = &h.last_error { (e) br; span.muted { (fmt_time(*at)) } }
                        }
                    }
                }
            }
        }
    };
    Ok(layout("Seeds", &csrf, !st.tokens.is_empty(), body))
}

/// Any other path under `/ui/`.
pub async fn not_found() -> UiError {
    UiError::new(StatusCode::NOT_FOUND, "There is no such page.")
}
