//! The config file's shape, exactly as written by people. Unknown keys are errors.
//! Everything here is turned into typed values by `validate.rs`; nothing else reads these.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub log: RawLog,
    #[serde(default)]
    pub dns: RawDns,
    #[serde(default)]
    pub warmup: RawWarmup,
    #[serde(default)]
    pub preflight: RawPreflight,
    #[serde(default)]
    pub content: RawContent,
    #[serde(default)]
    pub imap: RawImap,
    #[serde(default)]
    pub guard: RawGuard,
    #[serde(default)]
    pub webhooks: Vec<RawWebhook>,
    #[serde(default)]
    pub senders: Vec<RawSender>,
    #[serde(default)]
    pub seeds: Vec<RawSeed>,
    #[serde(default)]
    pub campaigns: Vec<RawCampaign>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub bind: Option<String>,
    pub database_url: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub api_token: Option<toml::Value>,
    pub secret_key: Option<toml::Value>,
    pub node_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub format: Option<String>,
    pub filter: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDns {
    #[serde(default)]
    pub nameservers: Vec<String>,
    pub timeout_ms: Option<u64>,
    pub attempts: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWarmup {
    pub mark_header: Option<String>,
    pub mark: Option<String>,
    pub missing_after_minutes: Option<u64>,
    pub scan_interval_secs: Option<u64>,
    pub lease_secs: Option<u64>,
    pub resend_after_secs: Option<u64>,
    pub retention_days: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawContent {
    /// A directory of `*.toml` files, one template each (the keys of [`RawTemplate`]).
    pub templates_dir: Option<PathBuf>,
    #[serde(default)]
    pub templates: Vec<RawTemplate>,
    pub template_share: Option<f64>,
    pub allow_links: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTemplate {
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawImap {
    pub max_sessions: Option<usize>,
    pub provider_sessions: Option<std::collections::BTreeMap<String, usize>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPreflight {
    pub ip_blocklists: Option<Vec<String>>,
    pub domain_blocklists: Option<Vec<String>>,
    pub schedule: Option<String>,
    pub recheck_paused_minutes: Option<u64>,
    pub unknown_grace_minutes: Option<u64>,
    pub smtp_timeout_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConn {
    /// Required, except for a seed's `smtp` at a known provider (see `validate.rs`).
    #[serde(default)]
    pub host: Option<String>,
    pub port: Option<u16>,
    pub tls: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub username: Option<String>,
    pub password: Option<toml::Value>,
    /// XOAUTH2 instead of a password.
    pub oauth2: Option<RawOAuth2>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOAuth2 {
    pub provider: String,
    pub token_url: Option<String>,
    pub client_id: String,
    pub client_secret: Option<toml::Value>,
    pub refresh_token: toml::Value,
    pub scope: Option<String>,
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDkim {
    pub domain: Option<String>,
    pub selector: String,
    pub key_file: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSender {
    pub name: String,
    pub address: String,
    pub display_name: Option<String>,
    pub helo: String,
    #[serde(default)]
    pub ips: Vec<String>,
    pub smtp: RawConn,
    pub dkim: Option<RawDkim>,
    pub imap: Option<RawConn>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFolders {
    pub inbox: Option<String>,
    pub spam: Option<String>,
    pub sent: Option<String>,
    pub warmup: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSeed {
    pub address: String,
    pub provider: Option<String>,
    pub daily_cap: Option<u32>,
    pub imap: RawConn,
    pub smtp: Option<RawConn>,
    pub folders: Option<RawFolders>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWindow {
    pub days: Option<Vec<String>>,
    pub start: Option<String>,
    pub end: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRates {
    pub open: Option<f64>,
    pub star: Option<f64>,
    pub important: Option<f64>,
    pub rescue: Option<f64>,
    pub reply: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPlan {
    pub start_per_day: Option<u32>,
    pub increase_per_day: Option<u32>,
    pub increase_percent: Option<f64>,
    pub max_per_day: Option<u32>,
    pub maintenance_per_day: Option<u32>,
    pub variance_percent: Option<u32>,
    pub timezone: Option<String>,
    #[serde(default)]
    pub window: RawWindow,
    /// Provider name → share (any positive numbers; normalised).
    pub provider_mix: Option<std::collections::BTreeMap<String, f64>>,
    pub pair_daily_max: Option<u32>,
    pub min_gap_secs: Option<u32>,
    #[serde(default)]
    pub rates: RawRates,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCampaign {
    pub name: String,
    pub sender: String,
    pub seeds: Option<Vec<String>>,
    pub auto_resume: Option<bool>,
    #[serde(default)]
    pub plan: RawPlan,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGuard {
    pub enabled: Option<bool>,
    pub window: Option<u32>,
    pub min_sample: Option<u32>,
    pub spam_warn_percent: Option<f64>,
    pub spam_pause_percent: Option<f64>,
    pub bounce_pause_percent: Option<f64>,
    pub per_provider: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    pub name: String,
    pub url: String,
    pub secret: toml::Value,
    pub events: Option<Vec<String>>,
    pub ca_file: Option<PathBuf>,
    pub timeout_secs: Option<u64>,
    pub max_attempts: Option<u32>,
}
