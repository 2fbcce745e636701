//! `[guard]` (auto-pause on bad placement) and `[[webhooks]]`, typed and validated.

use std::collections::HashSet;
use std::path::PathBuf;

use secrecy::SecretString;

use super::raw::{RawGuard, RawWebhook};
use super::validate::{Ctx, resolve_now};

/// When the placement guard pauses a campaign or holds a provider.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardConfig {
    /// Default true.
    pub enabled: bool,
    /// How many of the latest messages are judged (placements, or sends for bounces).
    /// Default 50.
    pub window: u32,
    /// Fewer messages than this since the last resume: no judgement. Default: `window`.
    pub min_sample: u32,
    /// Spam share of the found messages above which a warning is raised. Default 15.
    pub spam_warn_percent: f64,
    /// Spam share above which the campaign is paused (or the provider held). Default 40.
    pub spam_pause_percent: f64,
    /// Share of failed sends above which the campaign is paused. Default 5.
    pub bounce_pause_percent: f64,
    /// Judge each provider on its own and hold only the bad one. Default true.
    pub per_provider: bool,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            enabled: true,
            window: 50,
            min_sample: 50,
            spam_warn_percent: 15.0,
            spam_pause_percent: 40.0,
            bounce_pause_percent: 5.0,
            per_provider: true,
        }
    }
}

/// What a webhook is told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookEvent {
    /// A campaign was paused (any reason).
    Pause,
    /// A paused campaign became active again.
    Resume,
    /// A preflight run finished with `fail`.
    PreflightFailure,
}

impl WebhookEvent {
    pub const ALL: &'static [WebhookEvent] = &[
        WebhookEvent::Pause,
        WebhookEvent::Resume,
        WebhookEvent::PreflightFailure,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WebhookEvent::Pause => "pause",
            WebhookEvent::Resume => "resume",
            WebhookEvent::PreflightFailure => "preflight_failure",
        }
    }
}

/// One webhook receiver.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Names the deliveries in the database; unique.
    pub name: String,
    /// `http://` (loopback only) or `https://` URL.
    pub url: String,
    /// HMAC-SHA256 key of the `X-Hearth-Signature` header.
    pub secret: SecretString,
    pub events: Vec<WebhookEvent>,
    /// Private CA for an https receiver.
    pub ca_file: Option<PathBuf>,
    /// Per attempt. Default 10 s.
    pub timeout_secs: u64,
    /// Attempts before a delivery is given up. Default 8 (backoff 30 s, doubling, ≤ 1 h).
    pub max_attempts: u32,
}

pub(super) fn guard(cx: &mut Ctx, raw: &RawGuard) -> GuardConfig {
    let d = GuardConfig::default();
    let window = raw.window.unwrap_or(d.window);
    if !(1..=10_000).contains(&window) {
        cx.bad("guard.window", "expected 1 to 10000 messages");
    }
    let min_sample = raw.min_sample.unwrap_or(window);
    if min_sample == 0 || min_sample > window {
        cx.bad(
            "guard.min_sample",
            format!("expected 1 to guard.window ({window})"),
        );
    }
    let mut percent = |key: &str, v: Option<f64>, default: f64| {
        let v = v.unwrap_or(default);
        if !(0.0..=100.0).contains(&v) {
            cx.bad(
                format!("guard.{key}"),
                "expected a percentage from 0 to 100",
            );
        }
        v
    };
    let spam_warn_percent = percent(
        "spam_warn_percent",
        raw.spam_warn_percent,
        d.spam_warn_percent,
    );
    let spam_pause_percent = percent(
        "spam_pause_percent",
        raw.spam_pause_percent,
        d.spam_pause_percent,
    );
    let bounce_pause_percent = percent(
        "bounce_pause_percent",
        raw.bounce_pause_percent,
        d.bounce_pause_percent,
    );
    if spam_warn_percent > spam_pause_percent {
        cx.bad(
            "guard.spam_warn_percent",
            "expected at most guard.spam_pause_percent",
        );
    }
    GuardConfig {
        enabled: raw.enabled.unwrap_or(d.enabled),
        window,
        min_sample,
        spam_warn_percent,
        spam_pause_percent,
        bounce_pause_percent,
        per_provider: raw.per_provider.unwrap_or(d.per_provider),
    }
}

pub(super) fn webhooks(cx: &mut Ctx, raw: &[RawWebhook]) -> Vec<WebhookConfig> {
    let mut out = Vec::new();
    let mut names = HashSet::new();
    for (i, w) in raw.iter().enumerate() {
        let key = format!("webhooks[{i}]");
        if w.name.is_empty() || !names.insert(w.name.clone()) {
            cx.bad(format!("{key}.name"), "expected a unique, non-empty name");
        }
        let url_ok = match w.url.split_once("://") {
            Some(("https", rest)) => !rest.is_empty(),
            Some(("http", rest)) => {
                let host = rest.split(['/', '?']).next().unwrap_or("");
                let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
                crate::domain::is_loopback_host(host)
            }
            _ => false,
        };
        if !url_ok {
            cx.bad(
                format!("{key}.url"),
                "expected an https:// URL (http:// only to a loopback address)",
            );
        }
        let secret = cx
            .secret(&format!("{key}.secret"), &w.secret)
            .and_then(|s| resolve_now(cx, &format!("{key}.secret"), s));
        let events = match &w.events {
            None => WebhookEvent::ALL.to_vec(),
            Some(list) => list
                .iter()
                .filter_map(|e| {
                    let found = WebhookEvent::ALL.iter().find(|k| k.as_str() == e).copied();
                    if found.is_none() {
                        cx.bad(
                            format!("{key}.events"),
                            format!(
                                "unknown event {e:?} (expected pause, resume, preflight_failure)"
                            ),
                        );
                    }
                    found
                })
                .collect(),
        };
        let ca_file = w
            .ca_file
            .as_ref()
            .and_then(|p| cx.readable_file(&format!("{key}.ca_file"), p));
        let timeout_secs = w.timeout_secs.unwrap_or(10);
        if !(1..=300).contains(&timeout_secs) {
            cx.bad(format!("{key}.timeout_secs"), "expected 1 to 300 seconds");
        }
        let max_attempts = w.max_attempts.unwrap_or(8);
        if !(1..=100).contains(&max_attempts) {
            cx.bad(format!("{key}.max_attempts"), "expected 1 to 100");
        }
        if let Some(secret) = secret {
            out.push(WebhookConfig {
                name: w.name.clone(),
                url: w.url.clone(),
                secret,
                events,
                ca_file,
                timeout_secs,
                max_attempts,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const BASE: &str = "[server]\nbind = \"127.0.0.1:0\"\n";

    fn problems(extra: &str) -> String {
        match Config::from_toml(&format!("{BASE}{extra}"), None, &[]) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn guard_and_webhook_keys_are_validated() {
        // (config text, a fragment the error must contain; empty = valid)
        let cases = [
            ("", ""),
            ("[guard]\nwindow = 20\nspam_pause_percent = 30\n", ""),
            ("[guard]\nwindow = 0\n", "guard.window"),
            ("[guard]\nmin_sample = 60\n", "guard.min_sample"),
            (
                "[guard]\nspam_warn_percent = 50\n",
                "guard.spam_warn_percent",
            ),
            (
                "[guard]\nbounce_pause_percent = 101\n",
                "guard.bounce_pause_percent",
            ),
            ("[guard]\nspam_limit = 3\n", "spam_limit"),
            (
                "[[webhooks]]\nname = \"a\"\nurl = \"http://127.0.0.1:9/h\"\nsecret = \"s\"\n",
                "",
            ),
            (
                "[[webhooks]]\nname = \"a\"\nurl = \"http://hooks.example/h\"\nsecret = \"s\"\n",
                "webhooks[0].url",
            ),
            (
                "[[webhooks]]\nname = \"a\"\nurl = \"https://hooks.example/h\"\nsecret = \"s\"\nevents = [\"pause\", \"boom\"]\n",
                "webhooks[0].events",
            ),
            (
                "[[webhooks]]\nname = \"a\"\nurl = \"https://hooks.example/h\"\nsecret = { env = \"HEARTH_NO_SUCH_VAR\" }\n",
                "webhooks[0].secret",
            ),
            (
                "[[webhooks]]\nname = \"a\"\nurl = \"https://h.example/\"\nsecret = \"s\"\nretries = 3\n",
                "retries",
            ),
        ];
        for (text, want) in cases {
            let got = problems(text);
            if want.is_empty() {
                assert_eq!(got, "", "{text}");
            } else {
                assert!(got.contains(want), "{text}: {got}");
            }
        }
    }
}
