//! Configuration: a TOML file, then `HEARTH_SECTION__KEY` environment overrides, parsed into
//! typed values. Every problem is reported with the file, the key and what was expected.
//!
//! Defaults (documented here and in `config/hearth.toml`):
//! - `server.bind` = `127.0.0.1:8080`; a non-loopback bind requires `server.api_token` (one
//!   secret or a list, each at least 16 characters); no token by default.
//! - `server.data_dir` = `./data`; `server.database_url` = `sqlite://<data_dir>/hearth.db`.
//! - `dns.timeout_ms` = 2000, `dns.attempts` = 2, `dns.nameservers` = the system's.
//! - TLS mode `starttls` (required, never downgraded); ports 587 (SMTP STARTTLS), 465 (SMTP
//!   implicit), 143 (IMAP STARTTLS), 993 (IMAP implicit); `tls = "none"` only for loopback hosts.
//! - `preflight.ip_blocklists` = Spamhaus ZEN, Barracuda, SpamCop; `preflight.domain_blocklists` =
//!   Spamhaus DBL, SURBL, URIBL; `preflight.schedule` = `0 0 6 * * *` (daily 06:00 UTC, 6-field
//!   cron); `preflight.recheck_paused_minutes` = 15; `preflight.unknown_grace_minutes` = 60;
//!   `preflight.smtp_timeout_secs` = 15.
//! - `warmup.mark` = `header` (or `body`: a reference line, see `mark.rs`),
//!   `warmup.mark_header` = `X-Hearth-Mark`, `warmup.missing_after_minutes` = 120,
//!   `warmup.scan_interval_secs` = 60, `warmup.lease_secs` = 300, `warmup.resend_after_secs` = 1800,
//!   `warmup.retention_days` = 30 (1 to 3650).
//! - `content.template_share` = 0.5 when templates are given (the rest from the built-in
//!   corpus), `content.allow_links` = false (templates with links, images or remote resources
//!   are refused at load; see `sender/template.rs`).
//! - `imap.max_sessions` = 200 (IMAP sessions open at once, all seeds together);
//!   `imap.provider_sessions` = `{ gmail = 15, outlook = 20, yahoo = 10, other = 10 }` (at once
//!   per provider; a key given replaces only that provider's default).
//! - `seeds[].daily_cap` = 2 (messages a seed receives a day, from every campaign together).
//! - `seeds[].smtp` (for replies) is optional; its `host` defaults by provider (Gmail
//!   `smtp.gmail.com`, Outlook `smtp.office365.com`, Yahoo `smtp.mail.yahoo.com`; required for
//!   `other`), its `password` to the seed's IMAP password.

mod alerts;
pub mod raw;
mod validate;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use secrecy::SecretString;

use crate::domain::{DomainName, EmailAddress, HeloName, Provider, TlsMode, WarmupPlan};

pub use alerts::{GuardConfig, WebhookConfig, WebhookEvent};
pub use raw::{RawCampaign, RawConn, RawFolders, RawSeed, RawSender};
pub use validate::{
    ConfigProblem, MIN_API_TOKEN_LEN, guess_provider, validate_campaign, validate_seed,
    validate_sender,
};

/// Environment variable naming the config file when `--config` is not given.
pub const CONFIG_ENV: &str = "HEARTH_CONFIG";
/// Prefix of environment overrides: `HEARTH_SERVER__BIND=0.0.0.0:8080` sets `server.bind`.
pub const ENV_PREFIX: &str = "HEARTH_";

#[derive(Debug)]
pub struct Config {
    /// The file this was read from, if any.
    pub path: Option<PathBuf>,
    pub server: ServerConfig,
    pub log: LogConfig,
    pub dns: DnsConfig,
    pub warmup: WarmupConfig,
    pub preflight: PreflightConfig,
    /// The built-in corpus mixed with the user's templates.
    pub content: crate::sender::content::Library,
    pub imap: ImapConfig,
    /// Auto-pause on bad placement or bounces (`[guard]`).
    pub guard: GuardConfig,
    /// Signed JSON POSTs on pause, resume and preflight failure (`[[webhooks]]`).
    pub webhooks: Vec<WebhookConfig>,
    pub senders: Vec<SenderConfig>,
    pub seeds: Vec<SeedConfig>,
    pub campaigns: Vec<CampaignConfig>,
}

#[derive(Debug)]
pub struct ServerConfig {
    pub bind: SocketAddr,
    pub database_url: DatabaseUrl,
    pub data_dir: PathBuf,
    /// Bearer tokens the API accepts (`server.api_token`: one secret or a list). Required
    /// when `bind` is not a loopback address.
    pub api_tokens: Vec<SecretString>,
    /// Passphrase for sealing stored secrets; nodes sharing a database must share it.
    /// Without it, a random key is kept in `<data_dir>/secret.key`.
    pub secret_key: Option<SecretString>,
    /// Name of this node in leases; defaults to host name + process id.
    pub node_id: Option<String>,
}

/// A database URL. Its `Display` hides any password.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_sqlite(&self) -> bool {
        self.0.starts_with("sqlite:")
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(&self.0))
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

/// Replaces the password of `scheme://user:password@host` with `***`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing `EnvFilter` directive; `RUST_LOG` wins when set.
    pub filter: String,
}

#[derive(Debug, Clone)]
pub struct DnsConfig {
    /// Empty means the system's resolvers.
    pub nameservers: Vec<SocketAddr>,
    pub timeout_ms: u64,
    pub attempts: u32,
}

#[derive(Debug, Clone)]
pub struct WarmupConfig {
    pub mark_header: String,
    /// Where the warm-up mark goes: a header (default) or a reference line in the body.
    pub mark: crate::mark::MarkMode,
    pub missing_after_minutes: u64,
    pub scan_interval_secs: u64,
    /// How long a claimed outbox row is leased before it counts as interrupted.
    pub lease_secs: u64,
    /// How long after an interrupted send the message may still arrive before it is resent.
    pub resend_after_secs: u64,
    /// Warm-up mail older than this is deleted from the seeds' warm-up and spam folders.
    pub retention_days: u64,
}

/// How many IMAP sessions the seed workers may hold open at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImapConfig {
    /// All seeds together.
    pub max_sessions: usize,
    /// Per provider (every provider has an entry).
    pub provider_sessions: std::collections::HashMap<Provider, usize>,
}

impl ImapConfig {
    pub const DEFAULT_MAX_SESSIONS: usize = 200;

    /// Gmail allows about 15 IMAP connections per account, Office 365 about 20; the others
    /// publish nothing, so 10.
    pub fn default_provider_sessions(provider: Provider) -> usize {
        match provider {
            Provider::Gmail => 15,
            Provider::Outlook => 20,
            Provider::Yahoo | Provider::Other => 10,
        }
    }

    pub fn for_provider(&self, provider: Provider) -> usize {
        self.provider_sessions
            .get(&provider)
            .copied()
            .unwrap_or_else(|| Self::default_provider_sessions(provider))
    }
}

impl Default for ImapConfig {
    fn default() -> Self {
        ImapConfig {
            max_sessions: Self::DEFAULT_MAX_SESSIONS,
            provider_sessions: Provider::ALL
                .iter()
                .map(|p| (*p, Self::default_provider_sessions(*p)))
                .collect(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PreflightConfig {
    /// DNS zones answering `reversed-ip.zone` for listed IPs.
    pub ip_blocklists: Vec<DomainName>,
    /// DNS zones answering `domain.zone` for listed domains.
    pub domain_blocklists: Vec<DomainName>,
    /// When running campaigns are re-checked (cron, 6 fields with seconds, UTC).
    pub schedule: String,
    /// How often campaigns paused by preflight are re-checked (to resume them).
    pub recheck_paused_minutes: u64,
    /// How long an `unknown` verdict may last before it pauses a running campaign.
    pub unknown_grace_minutes: u64,
    pub smtp_timeout_secs: u64,
}

pub const DEFAULT_IP_BLOCKLISTS: &[&str] = &[
    "zen.spamhaus.org",
    "b.barracudacentral.org",
    "bl.spamcop.net",
];
pub const DEFAULT_DOMAIN_BLOCKLISTS: &[&str] =
    &["dbl.spamhaus.org", "multi.surbl.org", "multi.uribl.com"];

/// Where a secret comes from, as configured. Inline values stay wrapped.
#[derive(Debug, Clone)]
pub enum SecretSource {
    Inline(SecretString),
    Env(String),
    File(PathBuf),
}

/// A server to log into, as configured.
#[derive(Debug, Clone)]
pub struct ConnConfig {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub ca_file: Option<PathBuf>,
    pub username: String,
    pub password: Option<SecretSource>,
    /// XOAUTH2 with a refreshed token instead of the password (never both).
    pub oauth2: Option<OAuth2Config>,
}

/// An `oauth2` block: a refresh-token grant at a token endpoint.
#[derive(Debug, Clone)]
pub struct OAuth2Config {
    pub provider: crate::oauth2::OAuth2Provider,
    /// The provider's endpoint unless set (required for `custom`).
    pub token_url: crate::oauth2::TokenUrl,
    pub client_id: String,
    pub client_secret: Option<SecretSource>,
    pub refresh_token: SecretSource,
    pub scope: Option<String>,
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct DkimConfig {
    pub domain: DomainName,
    pub selector: String,
    pub key_file: PathBuf,
}

#[derive(Debug, Clone)]
pub struct SenderConfig {
    pub name: String,
    pub address: EmailAddress,
    pub display_name: Option<String>,
    pub helo: HeloName,
    pub ips: Vec<IpAddr>,
    pub smtp: ConnConfig,
    pub dkim: Option<DkimConfig>,
    pub imap: Option<ConnConfig>,
}

/// Folder-name overrides for a seed; `None` means discover (SPECIAL-USE, then provider names).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FolderOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inbox: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spam: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warmup: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SeedConfig {
    pub address: EmailAddress,
    pub provider: Provider,
    /// Most messages the seed receives in a day, from every campaign together.
    pub daily_cap: u32,
    pub imap: ConnConfig,
    pub smtp: Option<ConnConfig>,
    pub folders: FolderOverrides,
}

#[derive(Debug, Clone)]
pub struct CampaignConfig {
    pub name: String,
    pub sender: String,
    /// Seed addresses; `None` means every active seed.
    pub seeds: Option<Vec<EmailAddress>>,
    pub auto_resume: bool,
    pub plan: WarmupPlan,
}

/// Why a configuration could not be loaded. Its `Display` lists every problem, one a line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Syntax { path: String, message: String },
    #[error("{}", format_problems(.path, .problems))]
    Invalid {
        path: String,
        problems: Vec<ConfigProblem>,
    },
}

fn format_problems(path: &str, problems: &[ConfigProblem]) -> String {
    problems
        .iter()
        .map(|p| format!("{path}: {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Config {
    /// Reads `path` (or no file: all defaults), applies environment overrides, validates.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.to_owned(),
                    source,
                })?;
                Self::from_toml(&text, Some(p), &env)
            }
            None => Self::from_toml("", None, &env),
        }
    }

    /// Parses config text. `env` is passed in so tests need not touch the process environment.
    pub fn from_toml(
        text: &str,
        path: Option<&Path>,
        env: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        let shown = path
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "<defaults>".to_owned());
        let mut value: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Syntax {
                    path: shown.clone(),
                    message: syntax_message(text, &e),
                })?;
        validate::apply_env_overrides(&mut value, env).map_err(|problems| {
            ConfigError::Invalid {
                path: shown.clone(),
                problems,
            }
        })?;
        let raw: raw::RawConfig = serde_path_to_error::deserialize(toml::Value::Table(value))
            .map_err(|e| {
                let key = e.path().to_string();
                ConfigError::Invalid {
                    path: shown.clone(),
                    problems: vec![ConfigProblem::new(key, e.into_inner().to_string())],
                }
            })?;
        let base = path.and_then(Path::parent).unwrap_or(Path::new(""));
        validate::validate(raw, base)
            .map(|mut c| {
                c.path = path.map(Path::to_owned);
                c
            })
            .map_err(|problems| ConfigError::Invalid {
                path: shown,
                problems,
            })
    }

    pub fn sender(&self, name: &str) -> Option<&SenderConfig> {
        self.senders.iter().find(|s| s.name == name)
    }

    pub fn campaign(&self, name: &str) -> Option<&CampaignConfig> {
        self.campaigns.iter().find(|c| c.name == name)
    }
}

fn syntax_message(text: &str, e: &toml::de::Error) -> String {
    let msg = e.message().trim().to_owned();
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let col = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
            format!("line {line}, column {col}: invalid TOML: {msg}")
        }
        None => format!("invalid TOML: {msg}"),
    }
}

#[cfg(test)]
mod tests;
