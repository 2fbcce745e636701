//! Turns the raw file into typed values, collecting every problem instead of stopping at the first.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use chrono::{NaiveTime, Weekday};
use secrecy::SecretString;

use super::raw::*;
use super::*;
use crate::domain::{
    EngagementRates, Increase, SendingWindow, TlsMode, WarmupPlan, is_loopback_host,
};

/// One thing wrong with the configuration: the key (`senders[0].smtp.port`) and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub key: String,
    pub message: String,
}

impl ConfigProblem {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = self.key.trim_start_matches('.');
        if key.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{key}: {}", self.message)
        }
    }
}

/// Applies `HEARTH_SECTION__KEY=value` overrides (one level of nesting per `__`, lower-cased).
/// Values are read as TOML (`8080`, `true`, `["a","b"]`) and fall back to a plain string.
pub fn apply_env_overrides(
    table: &mut toml::Table,
    env: &[(String, String)],
) -> Result<(), Vec<ConfigProblem>> {
    let mut problems = Vec::new();
    let mut vars: Vec<&(String, String)> = env
        .iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX) && k.contains("__"))
        .collect();
    vars.sort();
    for (name, raw_value) in vars {
        let path: Vec<String> = name[ENV_PREFIX.len()..]
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect();
        if path.iter().any(String::is_empty) {
            problems.push(ConfigProblem::new(
                name.clone(),
                "malformed override name (expected HEARTH_SECTION__KEY)",
            ));
            continue;
        }
        let value = format!("v = {raw_value}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw_value.clone()));
        if let Err(part) = insert_path(table, &path, value) {
            problems.push(ConfigProblem::new(
                name.clone(),
                format!("cannot override inside `{part}`, which is not a table"),
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Sets `path` in `table`, creating tables on the way; fails on a non-table parent.
fn insert_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    let (first, rest) = path.split_first().expect("at least one part");
    if rest.is_empty() {
        table.insert(first.clone(), value);
        return Ok(());
    }
    match table
        .entry(first.clone())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
    {
        toml::Value::Table(t) => insert_path(t, rest, value),
        _ => Err(first.clone()),
    }
}

pub(super) struct Ctx<'a> {
    base: &'a Path,
    problems: Vec<ConfigProblem>,
}

impl Ctx<'_> {
    pub(super) fn bad(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(ConfigProblem::new(key, message));
    }

    /// Relative paths in the file are relative to the file's own directory.
    fn path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_owned()
        } else {
            self.base.join(p)
        }
    }

    pub(super) fn readable_file(&mut self, key: &str, p: &Path) -> Option<PathBuf> {
        let full = self.path(p);
        match std::fs::metadata(&full) {
            Ok(m) if m.is_file() => Some(full),
            Ok(_) => {
                self.bad(key, format!("{} is not a file", full.display()));
                None
            }
            Err(e) => {
                self.bad(key, format!("cannot read {}: {e}", full.display()));
                None
            }
        }
    }

    pub(super) fn secret(&mut self, key: &str, v: &toml::Value) -> Option<SecretSource> {
        const EXPECTED: &str = "expected a string, { env = \"VARIABLE\" } or { file = \"PATH\" }";
        match v {
            toml::Value::String(s) if !s.is_empty() => {
                Some(SecretSource::Inline(SecretString::from(s.clone())))
            }
            toml::Value::Table(t) if t.len() == 1 => match t.iter().next() {
                Some((k, toml::Value::String(name))) if k == "env" => {
                    if std::env::var_os(name).is_none() {
                        self.bad(key, format!("environment variable {name} is not set"));
                    }
                    Some(SecretSource::Env(name.clone()))
                }
                Some((k, toml::Value::String(p))) if k == "file" => {
                    let full = self.readable_file(key, Path::new(p))?;
                    Some(SecretSource::File(full))
                }
                _ => {
                    self.bad(key, EXPECTED);
                    None
                }
            },
            _ => {
                self.bad(key, EXPECTED);
                None
            }
        }
    }

    fn conn(
        &mut self,
        key: &str,
        raw: &RawConn,
        default_user: &str,
        ports: (u16, u16),
        default_host: Option<&str>,
    ) -> Option<ConnConfig> {
        let mut ok = true;
        let tls = match raw.tls.as_deref().map(str::parse::<TlsMode>) {
            None => TlsMode::Starttls,
            Some(Ok(t)) => t,
            Some(Err(e)) => {
                self.bad(format!("{key}.tls"), e.to_string());
                ok = false;
                TlsMode::Starttls
            }
        };
        let host = match (raw.host.as_deref().map(str::trim), default_host) {
            (Some(h), _) if !h.is_empty() => h,
            (None, Some(d)) => d,
            _ => {
                self.bad(format!("{key}.host"), "expected a host name or IP address");
                ok = false;
                ""
            }
        };
        if tls == TlsMode::None && !is_loopback_host(host) {
            self.bad(
                format!("{key}.tls"),
                format!(
                    "\"none\" (plain text) is only allowed for loopback hosts, not {host:?}; use \"starttls\" or \"implicit\""
                ),
            );
            ok = false;
        }
        if raw.port == Some(0) {
            self.bad(format!("{key}.port"), "expected a port from 1 to 65535");
            ok = false;
        }
        let port = raw.port.unwrap_or(match tls {
            TlsMode::Implicit => ports.1,
            _ => ports.0,
        });
        let ca_file = match &raw.ca_file {
            Some(p) => {
                let k = format!("{key}.ca_file");
                match self.readable_file(&k, p) {
                    Some(full) => {
                        if let Err(e) = crate::tls::load_ca_file(&full) {
                            self.bad(k, e.to_string());
                            ok = false;
                        }
                        Some(full)
                    }
                    None => {
                        ok = false;
                        None
                    }
                }
            }
            None => None,
        };
        let password = match &raw.password {
            Some(v) => {
                let s = self.secret(&format!("{key}.password"), v);
                ok &= s.is_some();
                s
            }
            None => None,
        };
        let oauth2 = match &raw.oauth2 {
            Some(o) => {
                if raw.password.is_some() {
                    self.bad(
                        format!("{key}.oauth2"),
                        "give either password or oauth2, not both",
                    );
                    ok = false;
                }
                let o = self.oauth2(&format!("{key}.oauth2"), o);
                ok &= o.is_some();
                o
            }
            None => None,
        };
        ok.then(|| ConnConfig {
            host: host.to_owned(),
            port,
            tls,
            ca_file,
            username: raw
                .username
                .clone()
                .unwrap_or_else(|| default_user.to_owned()),
            password,
            oauth2,
        })
    }

    fn oauth2(&mut self, key: &str, raw: &RawOAuth2) -> Option<OAuth2Config> {
        let mut ok = true;
        let provider = match raw.provider.parse::<crate::oauth2::OAuth2Provider>() {
            Ok(p) => Some(p),
            Err(e) => {
                self.bad(format!("{key}.provider"), e.to_string());
                None
            }
        };
        let url_text = raw.token_url.clone().or_else(|| {
            provider
                .and_then(|p| p.default_token_url())
                .map(str::to_owned)
        });
        let token_url = match url_text {
            Some(u) => match crate::oauth2::TokenUrl::parse(&u) {
                Ok(u) => Some(u),
                Err(e) => {
                    self.bad(format!("{key}.token_url"), e.to_string());
                    None
                }
            },
            None if provider.is_some() => {
                self.bad(
                    format!("{key}.token_url"),
                    "required for provider \"custom\"",
                );
                None
            }
            None => None,
        };
        if raw.client_id.trim().is_empty() {
            self.bad(format!("{key}.client_id"), "expected the OAuth2 client id");
            ok = false;
        }
        let client_secret = match &raw.client_secret {
            Some(v) => {
                let s = self.secret(&format!("{key}.client_secret"), v);
                ok &= s.is_some();
                s
            }
            None => None,
        };
        let refresh_token = self.secret(&format!("{key}.refresh_token"), &raw.refresh_token);
        let ca_file = match &raw.ca_file {
            Some(p) => {
                let k = format!("{key}.ca_file");
                let full = self.readable_file(&k, p);
                if let Some(f) = &full
                    && let Err(e) = crate::tls::load_ca_file(f)
                {
                    self.bad(k, e.to_string());
                    ok = false;
                }
                ok &= full.is_some();
                full
            }
            None => None,
        };
        let scope = raw.scope.clone().filter(|s| !s.trim().is_empty());
        match (ok, provider, token_url, refresh_token) {
            (true, Some(provider), Some(token_url), Some(refresh_token)) => Some(OAuth2Config {
                provider,
                token_url,
                client_id: raw.client_id.trim().to_owned(),
                client_secret,
                refresh_token,
                scope,
                ca_file,
            }),
            _ => None,
        }
    }
}

const SMTP_PORTS: (u16, u16) = (587, 465);
const IMAP_PORTS: (u16, u16) = (143, 993);

pub fn validate(raw: RawConfig, base: &Path) -> Result<Config, Vec<ConfigProblem>> {
    let mut cx = Ctx {
        base,
        problems: Vec::new(),
    };
    let server = server(&mut cx, &raw.server);
    let log = log(&mut cx, &raw.log);
    let dns = dns(&mut cx, &raw.dns);
    let warmup = warmup(&mut cx, &raw.warmup);
    let preflight = preflight(&mut cx, &raw.preflight);
    let content = content(&mut cx, &raw.content);
    let imap = imap(&mut cx, &raw.imap);
    let guard = super::alerts::guard(&mut cx, &raw.guard);
    let webhooks = super::alerts::webhooks(&mut cx, &raw.webhooks);

    let mut senders = Vec::new();
    let mut sender_names = HashSet::new();
    for (i, s) in raw.senders.iter().enumerate() {
        let key = format!("senders[{i}]");
        if !sender_names.insert(s.name.clone()) {
            cx.bad(
                format!("{key}.name"),
                format!("duplicate sender name {:?}", s.name),
            );
        }
        if let Some(s) = sender(&mut cx, &key, s) {
            senders.push(s);
        }
    }

    let mut seeds = Vec::new();
    let mut seed_addrs = HashSet::new();
    for (i, s) in raw.seeds.iter().enumerate() {
        let key = format!("seeds[{i}]");
        if let Some(s) = seed(&mut cx, &key, s) {
            if !seed_addrs.insert(s.address.clone()) {
                cx.bad(
                    format!("{key}.address"),
                    format!("duplicate seed {}", s.address),
                );
            }
            seeds.push(s);
        }
    }

    let mut campaigns = Vec::new();
    let mut campaign_names = HashSet::new();
    for (i, c) in raw.campaigns.iter().enumerate() {
        let key = format!("campaigns[{i}]");
        if !campaign_names.insert(c.name.clone()) {
            cx.bad(
                format!("{key}.name"),
                format!("duplicate campaign name {:?}", c.name),
            );
        }
        if !sender_names.contains(&c.sender) {
            cx.bad(
                format!("{key}.sender"),
                format!("no sender named {:?} in [[senders]]", c.sender),
            );
        }
        if let Some(c) = campaign(&mut cx, &key, c, &seed_addrs) {
            campaigns.push(c);
        }
    }

    match (server, dns) {
        (Some(server), Some(dns)) if cx.problems.is_empty() => Ok(Config {
            path: None,
            server,
            log,
            dns,
            warmup,
            preflight,
            content,
            imap,
            guard,
            webhooks,
            senders,
            seeds,
            campaigns,
        }),
        _ => Err(cx.problems),
    }
}

fn server(cx: &mut Ctx, raw: &RawServer) -> Option<ServerConfig> {
    let bind_text = raw.bind.as_deref().unwrap_or("127.0.0.1:8080");
    let bind = match bind_text.parse::<SocketAddr>() {
        Ok(b) => Some(b),
        Err(_) => {
            cx.bad(
                "server.bind",
                format!("expected IP:PORT like 127.0.0.1:8080, got {bind_text:?}"),
            );
            None
        }
    };
    let data_dir = raw
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("data"));
    let url = match &raw.database_url {
        Some(u)
            if u.starts_with("sqlite:")
                || u.starts_with("postgres://")
                || u.starts_with("postgresql://") =>
        {
            Some(u.clone())
        }
        Some(u) => {
            cx.bad(
                "server.database_url",
                format!(
                    "expected sqlite://PATH, sqlite::memory: or postgres://USER@HOST/DB, got {:?}",
                    super::redact_url(u)
                ),
            );
            None
        }
        None => Some(format!("sqlite://{}", data_dir.join("hearth.db").display())),
    };
    let api_tokens = api_tokens(cx, raw.api_token.as_ref());
    let secret_key = raw.secret_key.as_ref().and_then(|v| {
        cx.secret("server.secret_key", v)
            .and_then(|s| resolve_now(cx, "server.secret_key", s))
    });
    if let Some(b) = bind
        && !b.ip().is_loopback()
        && api_tokens.is_empty()
    {
        cx.bad(
            "server.api_token",
            format!(
                "required when server.bind ({b}) is not a loopback address: the API must not be open to the network without a token"
            ),
        );
    }
    Some(ServerConfig {
        bind: bind?,
        database_url: DatabaseUrl(url?),
        data_dir,
        api_tokens,
        secret_key,
        node_id: raw.node_id.clone(),
    })
}

/// `server.api_token`: one secret, or a list of them (several tokens are all valid at once,
/// so a token can be rotated without downtime). Each is read now and must be at least
/// [`MIN_API_TOKEN_LEN`] characters.
fn api_tokens(cx: &mut Ctx, raw: Option<&toml::Value>) -> Vec<SecretString> {
    use secrecy::ExposeSecret as _;
    let items: Vec<(String, &toml::Value)> = match raw {
        None => return Vec::new(),
        Some(toml::Value::Array(list)) => list
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("server.api_token[{i}]"), v))
            .collect(),
        Some(v) => vec![("server.api_token".to_owned(), v)],
    };
    if items.is_empty() {
        cx.bad("server.api_token", "expected at least one token");
    }
    let mut tokens = Vec::new();
    for (key, v) in items {
        let Some(token) = cx.secret(&key, v).and_then(|s| resolve_now(cx, &key, s)) else {
            continue;
        };
        if token.expose_secret().chars().count() < MIN_API_TOKEN_LEN {
            cx.bad(
                key,
                format!("expected a token of at least {MIN_API_TOKEN_LEN} characters (try: openssl rand -hex 32)"),
            );
            continue;
        }
        tokens.push(token);
    }
    tokens
}

/// The shortest API token accepted: guessing one must be out of the question.
pub const MIN_API_TOKEN_LEN: usize = 16;

/// Server-level secrets are needed at start, so they are read now.
pub(super) fn resolve_now(cx: &mut Ctx, key: &str, s: SecretSource) -> Option<SecretString> {
    match s {
        SecretSource::Inline(v) => Some(v),
        SecretSource::Env(name) => std::env::var(&name).ok().map(SecretString::from),
        SecretSource::File(p) => match crate::secrets::read_secret_file(&p) {
            Ok(v) => Some(v),
            Err(e) => {
                cx.bad(key, e.to_string());
                None
            }
        },
    }
}

fn log(cx: &mut Ctx, raw: &RawLog) -> LogConfig {
    let format = match raw.format.as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            cx.bad(
                "log.format",
                format!("expected \"text\" or \"json\", got {other:?}"),
            );
            LogFormat::Text
        }
    };
    LogConfig {
        format,
        filter: raw.filter.clone().unwrap_or_else(|| "info".to_owned()),
    }
}

fn dns(cx: &mut Ctx, raw: &RawDns) -> Option<DnsConfig> {
    let mut nameservers = Vec::new();
    let mut ok = true;
    for (i, ns) in raw.nameservers.iter().enumerate() {
        let parsed = ns
            .parse::<SocketAddr>()
            .or_else(|_| ns.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)));
        match parsed {
            Ok(a) => nameservers.push(a),
            Err(_) => {
                cx.bad(
                    format!("dns.nameservers[{i}]"),
                    format!("expected IP or IP:PORT like 127.0.0.1:5353, got {ns:?}"),
                );
                ok = false;
            }
        }
    }
    let timeout_ms = raw.timeout_ms.unwrap_or(2000);
    if !(1..=60_000).contains(&timeout_ms) {
        cx.bad("dns.timeout_ms", "expected 1 to 60000 milliseconds");
        ok = false;
    }
    let attempts = raw.attempts.unwrap_or(2);
    if !(1..=10).contains(&attempts) {
        cx.bad("dns.attempts", "expected 1 to 10");
        ok = false;
    }
    ok.then_some(DnsConfig {
        nameservers,
        timeout_ms,
        attempts,
    })
}

fn content(cx: &mut Ctx, raw: &RawContent) -> crate::sender::content::Library {
    use crate::sender::template::Template;
    let allow_links = raw.allow_links.unwrap_or(false);
    let mut templates = Vec::new();
    for (i, t) in raw.templates.iter().enumerate() {
        match Template::parse(&t.subject, &t.text, t.html.as_deref(), allow_links) {
            Ok(t) => templates.push(t),
            Err(e) => cx.bad(format!("content.templates[{i}].{}", e.field), e.message),
        }
    }
    if let Some(dir) = &raw.templates_dir {
        let dir = cx.path(dir);
        let mut files: Vec<std::path::PathBuf> = match std::fs::read_dir(&dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect(),
            Err(e) => {
                cx.bad(
                    "content.templates_dir",
                    format!("cannot read {}: {e}", dir.display()),
                );
                Vec::new()
            }
        };
        files.sort();
        for f in files {
            let key = format!("content.templates_dir: {}", f.display());
            let parsed = std::fs::read_to_string(&f)
                .map_err(|e| e.to_string())
                .and_then(|s| {
                    toml::from_str::<RawTemplate>(&s).map_err(|e| e.message().to_owned())
                });
            match parsed {
                Ok(t) => match Template::parse(&t.subject, &t.text, t.html.as_deref(), allow_links)
                {
                    Ok(t) => templates.push(t),
                    Err(e) => cx.bad(format!("{key}: {}", e.field), e.message),
                },
                Err(e) => cx.bad(key, e),
            }
        }
    }
    let share = raw.template_share.unwrap_or(0.5);
    if !(0.0..=1.0).contains(&share) {
        cx.bad("content.template_share", "expected a share from 0 to 1");
    }
    crate::sender::content::Library { templates, share }
}

fn warmup(cx: &mut Ctx, raw: &RawWarmup) -> WarmupConfig {
    let mark_header = raw
        .mark_header
        .clone()
        .unwrap_or_else(|| "X-Hearth-Mark".into());
    let valid_header = !mark_header.is_empty()
        && mark_header
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b':');
    if !valid_header {
        cx.bad(
            "warmup.mark_header",
            "expected a header field name (printable ASCII, no ':' or spaces)",
        );
    }
    let mark = match raw.mark.as_deref().map(str::parse::<crate::mark::MarkMode>) {
        None => crate::mark::MarkMode::Header,
        Some(Ok(m)) => m,
        Some(Err(e)) => {
            cx.bad("warmup.mark", e.to_string());
            crate::mark::MarkMode::Header
        }
    };
    let missing_after_minutes = raw.missing_after_minutes.unwrap_or(120);
    if missing_after_minutes == 0 {
        cx.bad("warmup.missing_after_minutes", "expected at least 1 minute");
    }
    let scan_interval_secs = raw.scan_interval_secs.unwrap_or(60);
    if scan_interval_secs == 0 {
        cx.bad("warmup.scan_interval_secs", "expected at least 1 second");
    }
    let lease_secs = raw.lease_secs.unwrap_or(300);
    if !(1..=86_400).contains(&lease_secs) {
        cx.bad("warmup.lease_secs", "expected 1 to 86400 seconds");
    }
    let resend_after_secs = raw.resend_after_secs.unwrap_or(1800);
    let retention_days = raw.retention_days.unwrap_or(30);
    if !(1..=3650).contains(&retention_days) {
        cx.bad("warmup.retention_days", "expected 1 to 3650 days");
    }
    WarmupConfig {
        retention_days,
        mark_header,
        mark,
        missing_after_minutes,
        scan_interval_secs,
        lease_secs,
        resend_after_secs,
    }
}

fn imap(cx: &mut Ctx, raw: &RawImap) -> ImapConfig {
    let mut imap = ImapConfig::default();
    if let Some(n) = raw.max_sessions {
        if n == 0 {
            cx.bad("imap.max_sessions", "expected at least 1 session");
        }
        imap.max_sessions = n;
    }
    for (name, n) in raw.provider_sessions.iter().flatten() {
        let key = format!("imap.provider_sessions.{name}");
        match name.parse::<Provider>() {
            Err(e) => cx.bad(key, e.to_string()),
            Ok(_) if *n == 0 => cx.bad(key, "expected at least 1 session"),
            Ok(p) => {
                imap.provider_sessions.insert(p, *n);
            }
        }
    }
    imap
}

fn preflight(cx: &mut Ctx, raw: &RawPreflight) -> PreflightConfig {
    let mut lists = |key: &str, given: &Option<Vec<String>>, default: &[&str]| -> Vec<DomainName> {
        let names: Vec<String> = match given {
            Some(v) => v.clone(),
            None => default.iter().map(|s| (*s).to_owned()).collect(),
        };
        names
            .iter()
            .enumerate()
            .filter_map(|(i, n)| {
                DomainName::parse(n)
                    .map_err(|e| cx.bad(format!("preflight.{key}[{i}]"), format!("{n:?} {e}")))
                    .ok()
            })
            .collect()
    };
    let ip_blocklists = lists("ip_blocklists", &raw.ip_blocklists, DEFAULT_IP_BLOCKLISTS);
    let domain_blocklists = lists(
        "domain_blocklists",
        &raw.domain_blocklists,
        DEFAULT_DOMAIN_BLOCKLISTS,
    );
    let schedule = raw
        .schedule
        .clone()
        .unwrap_or_else(|| "0 0 6 * * *".to_owned());
    if schedule.split_whitespace().count() != 6 {
        cx.bad(
            "preflight.schedule",
            format!("expected a cron expression with 6 fields (sec min hour day month weekday), got {schedule:?}"),
        );
    }
    let recheck_paused_minutes = raw.recheck_paused_minutes.unwrap_or(15);
    if recheck_paused_minutes == 0 {
        cx.bad(
            "preflight.recheck_paused_minutes",
            "expected at least 1 minute",
        );
    }
    let smtp_timeout_secs = raw.smtp_timeout_secs.unwrap_or(15);
    if !(1..=300).contains(&smtp_timeout_secs) {
        cx.bad("preflight.smtp_timeout_secs", "expected 1 to 300 seconds");
    }
    PreflightConfig {
        ip_blocklists,
        domain_blocklists,
        schedule,
        recheck_paused_minutes,
        unknown_grace_minutes: raw.unknown_grace_minutes.unwrap_or(60),
        smtp_timeout_secs,
    }
}

fn sender(cx: &mut Ctx, key: &str, raw: &RawSender) -> Option<SenderConfig> {
    let address = EmailAddress::parse(&raw.address)
        .map_err(|e| cx.bad(format!("{key}.address"), format!("{:?} {e}", raw.address)))
        .ok();
    let helo = HeloName::parse(&raw.helo)
        .map_err(|e| {
            cx.bad(
                format!("{key}.helo"),
                format!(
                    "{:?} {e}; expected a fully qualified host name like mta1.example.com",
                    raw.helo
                ),
            )
        })
        .ok();
    let mut ips = Vec::new();
    for (i, ip) in raw.ips.iter().enumerate() {
        match ip.parse::<IpAddr>() {
            Ok(ip) => ips.push(ip),
            Err(_) => cx.bad(
                format!("{key}.ips[{i}]"),
                format!("{ip:?} is not an IP address"),
            ),
        }
    }
    let user = address
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    let smtp = cx.conn(&format!("{key}.smtp"), &raw.smtp, &user, SMTP_PORTS, None);
    let imap = raw
        .imap
        .as_ref()
        .map(|i| cx.conn(&format!("{key}.imap"), i, &user, IMAP_PORTS, None));
    let dkim = raw.dkim.as_ref().map(|d| {
        let k = format!("{key}.dkim");
        let domain = match &d.domain {
            Some(dom) => DomainName::parse(dom)
                .map_err(|e| cx.bad(format!("{k}.domain"), format!("{dom:?} {e}")))
                .ok(),
            None => address.as_ref().map(|a| a.domain().clone()),
        };
        let selector_ok = !d.selector.is_empty()
            && DomainName::parse(&format!("{}._domainkey.x.test", d.selector)).is_ok();
        if !selector_ok {
            cx.bad(format!("{k}.selector"), "expected a DNS label like \"s1\"");
        }
        let key_file = cx.readable_file(&format!("{k}.key_file"), &d.key_file);
        if let Some(f) = &key_file
            && let Err(e) = crate::sender::dkim::load_signing_key(f)
        {
            cx.bad(format!("{k}.key_file"), e.to_string());
        }
        match (domain, key_file) {
            (Some(domain), Some(key_file)) if selector_ok => Some(DkimConfig {
                domain,
                selector: d.selector.clone(),
                key_file,
            }),
            _ => None,
        }
    });
    let name_ok = !raw.name.trim().is_empty();
    if !name_ok {
        cx.bad(format!("{key}.name"), "expected a non-empty name");
    }
    let dkim = match dkim {
        Some(None) => return None,
        Some(Some(d)) => Some(d),
        None => None,
    };
    let imap = match imap {
        Some(None) => return None,
        Some(Some(i)) => Some(i),
        None => None,
    };
    Some(SenderConfig {
        name: raw.name.clone(),
        address: address?,
        display_name: raw.display_name.clone(),
        helo: helo?,
        ips,
        smtp: smtp?,
        dkim,
        imap,
    })
    .filter(|_| name_ok)
}

fn seed(cx: &mut Ctx, key: &str, raw: &RawSeed) -> Option<SeedConfig> {
    let address = EmailAddress::parse(&raw.address)
        .map_err(|e| cx.bad(format!("{key}.address"), format!("{:?} {e}", raw.address)))
        .ok();
    let provider = match raw.provider.as_deref() {
        Some(p) => p
            .parse::<Provider>()
            .map_err(|e| cx.bad(format!("{key}.provider"), e.to_string()))
            .ok(),
        None => address
            .as_ref()
            .map(|a| guess_provider(a.domain().as_str())),
    };
    let user = address
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    let imap = cx.conn(&format!("{key}.imap"), &raw.imap, &user, IMAP_PORTS, None);
    let default_smtp = provider.and_then(default_smtp_host);
    let smtp = raw.smtp.as_ref().map(|s| {
        // The IMAP password (an app password works for both) unless one is given.
        cx.conn(&format!("{key}.smtp"), s, &user, SMTP_PORTS, default_smtp)
            .map(|mut c| {
                if c.password.is_none() {
                    c.password = imap.as_ref().and_then(|i| i.password.clone());
                }
                c
            })
    });
    let daily_cap = raw
        .daily_cap
        .unwrap_or(crate::store::seeds::DEFAULT_DAILY_CAP);
    if daily_cap > 1000 {
        cx.bad(
            format!("{key}.daily_cap"),
            format!("expected 0 to 1000 messages a day, got {daily_cap}"),
        );
    }
    let folders = raw
        .folders
        .as_ref()
        .map(|f| FolderOverrides {
            inbox: f.inbox.clone(),
            spam: f.spam.clone(),
            sent: f.sent.clone(),
            warmup: f.warmup.clone(),
        })
        .unwrap_or_default();
    let smtp = match smtp {
        Some(None) => return None,
        Some(Some(s)) => Some(s),
        None => None,
    };
    Some(SeedConfig {
        address: address?,
        provider: provider?,
        daily_cap,
        imap: imap?,
        smtp,
        folders,
    })
    .filter(|_| daily_cap <= 1000)
}

/// Validates one seed outside a config file (CSV import); keys start at the seed (`.imap.port`).
pub fn validate_seed(raw: &RawSeed, base: &Path) -> Result<SeedConfig, Vec<ConfigProblem>> {
    let mut cx = Ctx {
        base,
        problems: Vec::new(),
    };
    let seed = seed(&mut cx, "", raw);
    match seed {
        Some(s) if cx.problems.is_empty() => Ok(s),
        _ => Err(cx.problems),
    }
}

/// Validates one sender outside a config file (the API); keys start at the sender (`.smtp.port`).
/// Relative file paths are relative to `base`.
pub fn validate_sender(raw: &RawSender, base: &Path) -> Result<SenderConfig, Vec<ConfigProblem>> {
    let mut cx = Ctx {
        base,
        problems: Vec::new(),
    };
    match sender(&mut cx, "", raw) {
        Some(s) if cx.problems.is_empty() => Ok(s),
        _ => Err(cx.problems),
    }
}

/// Validates one campaign outside a config file (the API): its plan exactly as the config's,
/// its seeds against `seeds` (the pool). Whether the sender exists is the caller's business.
pub fn validate_campaign(
    raw: &RawCampaign,
    seeds: &HashSet<EmailAddress>,
) -> Result<CampaignConfig, Vec<ConfigProblem>> {
    let mut cx = Ctx {
        base: Path::new(""),
        problems: Vec::new(),
    };
    if raw.sender.trim().is_empty() {
        cx.bad(".sender", "expected the name of a sender");
    }
    match campaign(&mut cx, "", raw, seeds) {
        Some(c) if cx.problems.is_empty() => Ok(c),
        _ => Err(cx.problems),
    }
}

/// The submission server of a provider, for a seed whose `smtp` names no host (port 587 with
/// STARTTLS unless `tls`/`port` say otherwise).
pub fn default_smtp_host(provider: Provider) -> Option<&'static str> {
    match provider {
        Provider::Gmail => Some("smtp.gmail.com"),
        Provider::Outlook => Some("smtp.office365.com"),
        Provider::Yahoo => Some("smtp.mail.yahoo.com"),
        Provider::Other => None,
    }
}

/// The provider family of well-known consumer domains; `other` for the rest.
pub fn guess_provider(domain: &str) -> Provider {
    match domain {
        "gmail.com" | "googlemail.com" => Provider::Gmail,
        "outlook.com" | "hotmail.com" | "live.com" | "msn.com" => Provider::Outlook,
        "yahoo.com" | "ymail.com" | "aol.com" => Provider::Yahoo,
        _ => Provider::Other,
    }
}

fn rate(cx: &mut Ctx, key: String, v: Option<f64>, default: f64) -> f64 {
    match v {
        None => default,
        Some(r) if (0.0..=1.0).contains(&r) => r,
        Some(r) => {
            cx.bad(key, format!("expected a rate from 0.0 to 1.0, got {r}"));
            default
        }
    }
}

fn campaign(
    cx: &mut Ctx,
    key: &str,
    raw: &RawCampaign,
    seeds: &HashSet<EmailAddress>,
) -> Option<CampaignConfig> {
    let before = cx.problems.len();
    if raw.name.trim().is_empty() {
        cx.bad(format!("{key}.name"), "expected a non-empty name");
    }
    let seed_list = raw.seeds.as_ref().map(|list| {
        list.iter()
            .enumerate()
            .filter_map(|(i, s)| {
                let k = format!("{key}.seeds[{i}]");
                match EmailAddress::parse(s) {
                    Ok(a) if seeds.contains(&a) => Some(a),
                    Ok(a) => {
                        cx.bad(k, format!("{a} is not a seed of the pool"));
                        None
                    }
                    Err(e) => {
                        cx.bad(k, format!("{s:?} {e}"));
                        None
                    }
                }
            })
            .collect::<Vec<_>>()
    });
    let p = &raw.plan;
    let k = format!("{key}.plan");
    let start = p.start_per_day.unwrap_or(5);
    let max = p.max_per_day.unwrap_or(40);
    if start == 0 {
        cx.bad(format!("{k}.start_per_day"), "expected at least 1");
    }
    if max < start {
        cx.bad(
            format!("{k}.max_per_day"),
            format!("expected at least start_per_day ({start}), got {max}"),
        );
    }
    let increase = match (p.increase_per_day, p.increase_percent) {
        (Some(_), Some(_)) => {
            cx.bad(
                format!("{k}.increase_percent"),
                "set either increase_per_day or increase_percent, not both",
            );
            Increase::Absolute(3)
        }
        (Some(n), None) => Increase::Absolute(n),
        (None, Some(pct)) if pct > 0.0 && pct <= 1000.0 => Increase::Percent(pct),
        (None, Some(pct)) => {
            cx.bad(
                format!("{k}.increase_percent"),
                format!("expected a percentage above 0 and at most 1000, got {pct}"),
            );
            Increase::Absolute(3)
        }
        (None, None) => Increase::Absolute(3),
    };
    let maintenance = p.maintenance_per_day.unwrap_or(max);
    if maintenance > max {
        cx.bad(
            format!("{k}.maintenance_per_day"),
            format!("expected at most max_per_day ({max}), got {maintenance}"),
        );
    }
    let variance = p.variance_percent.unwrap_or(15);
    if variance > 50 {
        cx.bad(format!("{k}.variance_percent"), "expected 0 to 50");
    }
    let tz_text = p.timezone.as_deref().unwrap_or("UTC");
    let timezone = tz_text
        .parse::<chrono_tz::Tz>()
        .map_err(|_| {
            cx.bad(
                format!("{k}.timezone"),
                format!("expected an IANA time zone like \"Europe/Berlin\", got {tz_text:?}"),
            )
        })
        .unwrap_or(chrono_tz::UTC);
    let days = match &p.window.days {
        None => vec![
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
        ],
        Some(list) => list
            .iter()
            .enumerate()
            .filter_map(|(i, d)| {
                d.parse::<Weekday>()
                    .map_err(|_| {
                        cx.bad(
                            format!("{k}.window.days[{i}]"),
                            format!("expected a weekday like \"mon\", got {d:?}"),
                        )
                    })
                    .ok()
            })
            .collect(),
    };
    if p.window.days.is_some() && days.is_empty() && cx.problems.len() == before {
        cx.bad(format!("{k}.window.days"), "expected at least one weekday");
    }
    let mut time = |field: &str, v: &Option<String>, default: &str| {
        let text = v.as_deref().unwrap_or(default);
        NaiveTime::parse_from_str(text, "%H:%M")
            .map_err(|_| {
                cx.bad(
                    format!("{k}.window.{field}"),
                    format!("expected a local time HH:MM, got {text:?}"),
                )
            })
            .unwrap_or_default()
    };
    let start_t = time("start", &p.window.start, "09:00");
    let end_t = time("end", &p.window.end, "17:00");
    if end_t <= start_t && cx.problems.len() == before {
        cx.bad(
            format!("{k}.window.end"),
            "expected the window to end after it starts",
        );
    }
    let provider_mix = p.provider_mix.as_ref().and_then(|given| {
        let k = format!("{k}.provider_mix");
        let mut shares = Vec::new();
        for (name, share) in given {
            match name.parse::<Provider>() {
                Ok(provider) => shares.push((provider, *share)),
                Err(e) => cx.bad(format!("{k}.{name}"), e.to_string()),
            }
        }
        (shares.len() == given.len())
            .then(|| shares.try_into())?
            .map_err(|e: String| {
                cx.bad(
                    k,
                    format!("{e} (expected shares above 0, like {{ gmail = 50, outlook = 50 }})"),
                )
            })
            .ok()
    });
    let pair_daily_max = p
        .pair_daily_max
        .unwrap_or(WarmupPlan::DEFAULT_PAIR_DAILY_MAX);
    if pair_daily_max == 0 {
        cx.bad(format!("{k}.pair_daily_max"), "expected at least 1");
    }
    let min_gap_secs = p.min_gap_secs.unwrap_or(WarmupPlan::DEFAULT_MIN_GAP_SECS);
    if min_gap_secs > 86_400 {
        cx.bad(format!("{k}.min_gap_secs"), "expected 0 to 86400 seconds");
    }
    let d = EngagementRates::default();
    let r = &p.rates;
    let rates = EngagementRates {
        open: rate(cx, format!("{k}.rates.open"), r.open, d.open),
        star: rate(cx, format!("{k}.rates.star"), r.star, d.star),
        important: rate(cx, format!("{k}.rates.important"), r.important, d.important),
        rescue: rate(cx, format!("{k}.rates.rescue"), r.rescue, d.rescue),
        reply: rate(cx, format!("{k}.rates.reply"), r.reply, d.reply),
    };
    (cx.problems.len() == before).then(|| CampaignConfig {
        name: raw.name.clone(),
        sender: raw.sender.clone(),
        seeds: seed_list,
        auto_resume: raw.auto_resume.unwrap_or(true),
        plan: WarmupPlan {
            start_per_day: start,
            increase,
            max_per_day: max,
            maintenance_per_day: maintenance,
            variance_percent: variance,
            timezone,
            window: SendingWindow {
                days,
                start: start_t,
                end: end_t,
            },
            provider_mix,
            pair_daily_max,
            min_gap_secs,
            rates,
        },
    })
}
