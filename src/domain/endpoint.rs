//! Where and how Hearth connects to a mail server (SMTP or IMAP).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::secrets::SecretRef;

use super::UnknownVariant;

/// How a connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TlsMode {
    /// TLS from the first byte (SMTPS 465, IMAPS 993).
    Implicit,
    /// Plain connect, then STARTTLS, which is required: no fallback to plain text.
    #[default]
    Starttls,
    /// No TLS at all. Only accepted for loopback hosts.
    None,
}

impl TlsMode {
    pub const ALL: &'static [TlsMode] = &[TlsMode::Implicit, TlsMode::Starttls, TlsMode::None];

    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Implicit => "implicit",
            TlsMode::Starttls => "starttls",
            TlsMode::None => "none",
        }
    }
}

impl fmt::Display for TlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TlsMode {
    type Err = UnknownVariant;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "implicit" => Ok(TlsMode::Implicit),
            "starttls" => Ok(TlsMode::Starttls),
            "none" => Ok(TlsMode::None),
            _ => Err(UnknownVariant {
                kind: "tls mode",
                value: s.to_owned(),
                expected: "implicit, starttls, none".into(),
            }),
        }
    }
}

/// Whether `host` names this machine's loopback interface (the only place plain text is allowed).
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    if h.eq_ignore_ascii_case("localhost") {
        return true;
    }
    h.parse::<std::net::IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(false)
}

/// A server Hearth logs into: host, port, TLS, optional private CA, and credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    /// PEM bundle of extra trusted roots (a private CA). Certificates are always verified.
    pub ca_file: Option<PathBuf>,
    pub username: String,
    pub secret: SecretRef,
}

impl Endpoint {
    /// `host:port` for logs and errors (never contains credentials).
    pub fn display_addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "[::1]",
            "localhost",
            "LOCALHOST",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in ["192.0.2.1", "smtp.example.com", "localhost.example.com"] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }
}
