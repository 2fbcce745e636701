//! `/metrics` in the Prometheus text exposition format (version 0.0.4), written by hand.
//!
//! Most series are read from the database at scrape time with one `GROUP BY` each, so every
//! node of a shared PostgreSQL database reports the same totals (aggregate with `max`, not
//! `sum`). IMAP session counters are this process's own (`telemetry::counters`).

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::AppState;
use super::errors::ApiResult;
use crate::domain::{CampaignStatus, OutboxStatus, Placement, Provider, SeedStatus, Verdict};
use crate::store::stats;

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub async fn metrics(State(st): State<AppState>) -> ApiResult<impl IntoResponse> {
    let text = render(&st).await?;
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], text))
}

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", escape(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }
}

/// Label values escape backslash, double quote and newline.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

async fn render(st: &AppState) -> ApiResult<String> {
    let pool = st.app.store.pool();
    let now = st.app.clock.now();
    let mut out = Out(String::new());

    // Every known label combination is written, zeros included, so series never vanish.
    let outbox = stats::outbox_by_status(pool, None).await?;
    out.family(
        "hearth_sends",
        "gauge",
        "Outbox rows by status: planned, sending, sent, failed, cancelled (sends by outcome).",
    );
    for s in OutboxStatus::ALL {
        let n = outbox.iter().find(|(k, _)| k == s).map_or(0, |(_, n)| *n);
        out.sample("hearth_sends", &[("status", s.as_str())], n);
    }
    let depth: i64 = outbox
        .iter()
        .filter(|(s, _)| matches!(s, OutboxStatus::Planned | OutboxStatus::Sending))
        .map(|(_, n)| n)
        .sum();
    out.family(
        "hearth_outbox_depth",
        "gauge",
        "Outbox rows not finished yet (planned + sending).",
    );
    out.sample("hearth_outbox_depth", &[], depth);
    out.family(
        "hearth_outbox_due",
        "gauge",
        "Planned outbox rows whose time has come.",
    );
    out.sample(
        "hearth_outbox_due",
        &[],
        stats::outbox_due(pool, None, now).await?,
    );

    let placements = stats::placements(pool).await?;
    out.family(
        "hearth_placements",
        "gauge",
        "Ledger rows by seed provider and folder class.",
    );
    for p in Provider::ALL {
        for c in Placement::ALL {
            let n = placements
                .iter()
                .find(|(pp, cc, _)| pp == p && cc == c)
                .map_or(0, |(_, _, n)| *n);
            out.sample(
                "hearth_placements",
                &[("provider", p.as_str()), ("folder_class", c.as_str())],
                n,
            );
        }
    }

    let campaigns = stats::campaigns(pool).await?;
    out.family(
        "hearth_campaigns",
        "gauge",
        "Campaigns by state and pause reason (reason empty unless paused).",
    );
    for s in CampaignStatus::ALL {
        if *s == CampaignStatus::Paused {
            continue;
        }
        let n: i64 = campaigns
            .iter()
            .filter(|(k, _, _)| k == s)
            .map(|(_, _, n)| n)
            .sum();
        out.sample(
            "hearth_campaigns",
            &[("status", s.as_str()), ("reason", "")],
            n,
        );
    }
    for r in crate::domain::PauseReason::ALL {
        let n = campaigns
            .iter()
            .find(|(k, reason, _)| *k == CampaignStatus::Paused && *reason == Some(*r))
            .map_or(0, |(_, _, n)| *n);
        out.sample(
            "hearth_campaigns",
            &[
                ("status", CampaignStatus::Paused.as_str()),
                ("reason", r.as_str()),
            ],
            n,
        );
    }

    let seeds = stats::seeds(pool).await?;
    out.family("hearth_seeds", "gauge", "Seed inboxes by health.");
    for s in SeedStatus::ALL {
        let n = seeds.iter().find(|(k, _)| k == s).map_or(0, |(_, n)| *n);
        out.sample("hearth_seeds", &[("status", s.as_str())], n);
    }

    let runs = stats::preflight_runs(pool).await?;
    out.family(
        "hearth_preflight_runs_total",
        "counter",
        "Finished preflight runs by verdict (from the database, all nodes).",
    );
    for v in Verdict::ALL {
        let n = runs.iter().find(|(k, _)| k == v).map_or(0, |(_, n)| *n);
        out.sample("hearth_preflight_runs_total", &[("verdict", v.as_str())], n);
    }
    out.family(
        "hearth_sender_preflight_verdict",
        "gauge",
        "1 for each sender's latest preflight verdict.",
    );
    for (sender, verdict) in stats::latest_verdicts(pool).await? {
        out.sample(
            "hearth_sender_preflight_verdict",
            &[("sender", &sender), ("verdict", verdict.as_str())],
            1,
        );
    }

    let (opened, failed) = crate::telemetry::counters::imap_sessions();
    out.family(
        "hearth_imap_sessions_total",
        "counter",
        "IMAP logins attempted by this process, by result.",
    );
    out.sample("hearth_imap_sessions_total", &[("result", "ok")], opened);
    out.sample("hearth_imap_sessions_total", &[("result", "error")], failed);
    Ok(out.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut out = Out(String::new());
        out.sample("m", &[("a", "x\"y\\z\nw")], 3);
        assert_eq!(out.0, "m{a=\"x\\\"y\\\\z\\nw\"} 3\n");
    }
}
