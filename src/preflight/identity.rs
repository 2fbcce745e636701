//! What preflight checks: a sending identity as receivers see it.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::domain::{DomainName, EmailAddress, Endpoint, HeloName};

/// The identity under test. The HELO name is kept as given so an invalid one can be reported.
#[derive(Debug, Clone)]
pub struct Identity {
    pub helo: String,
    /// The IPs the relay sends from; the IP-dependent checks run for each.
    pub ips: Vec<IpAddr>,
    /// The envelope sender (MAIL FROM).
    pub mail_from: EmailAddress,
    /// The domain of the From header (DMARC's identity).
    pub from_domain: DomainName,
    pub dkim: Option<DkimExpectation>,
    /// The relay to probe (never sent any mail).
    pub smtp: Option<Endpoint>,
}

impl Identity {
    pub fn mail_from_domain(&self) -> &DomainName {
        self.mail_from.domain()
    }

    pub fn helo_name(&self) -> Option<HeloName> {
        HeloName::parse(&self.helo).ok()
    }
}

#[derive(Debug, Clone)]
pub struct DkimExpectation {
    pub domain: DomainName,
    pub selector: String,
    /// The private key the sender signs with; `None` checks the published key alone.
    pub key_file: Option<PathBuf>,
}

/// How to check.
#[derive(Debug, Clone)]
pub struct Options {
    pub ip_blocklists: Vec<DomainName>,
    pub domain_blocklists: Vec<DomainName>,
    pub smtp_timeout: Duration,
}

/// The registered (organizational) domain: the public suffix plus one label. A short built-in
/// list covers the common multi-label suffixes; everything else is treated as one label.
pub fn registered_domain(name: &str) -> String {
    const MULTI: &[&str] = &[
        "co.uk", "org.uk", "ac.uk", "gov.uk", "me.uk", "com.au", "net.au", "org.au", "co.nz",
        "co.jp", "ne.jp", "or.jp", "com.br", "com.mx", "com.ar", "com.cn", "com.tw", "com.hk",
        "co.in", "co.za", "com.tr", "co.kr", "com.sg", "com.my", "co.il", "com.pl", "co.id",
    ];
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let labels: Vec<&str> = name.split('.').collect();
    if labels.len() <= 2 {
        return name;
    }
    let last_two = labels[labels.len() - 2..].join(".");
    let take = if MULTI.contains(&last_two.as_str()) {
        3
    } else {
        2
    };
    labels[labels.len().saturating_sub(take)..].join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_domains() {
        assert_eq!(registered_domain("mta1.mail.example.com"), "example.com");
        assert_eq!(registered_domain("a.b.example.co.uk"), "example.co.uk");
        assert_eq!(registered_domain("example.com."), "example.com");
        assert_eq!(registered_domain("test"), "test");
    }
}
