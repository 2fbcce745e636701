//! RFC 7208 §4–§6: `check_host()`.
//!
//! Limits, as the RFC words them: at most 10 terms that query the DNS (include, a, mx, ptr,
//! exists, redirect) in the whole evaluation, counted as they are evaluated; at most 2 void
//! lookups (NXDOMAIN or an empty answer to the query a term makes); at most 10 MX names looked
//! up per `mx` (more is a permerror) and at most 10 PTR names per `ptr` or `%{p}` (the rest are
//! ignored). A timeout or SERVFAIL of a query that decides the result is a temperror; the PTR
//! query of `ptr` and the lookup of `exp=` text only fail to match or explain.

mod terms;

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use crate::clock::{Clock, SystemClock};
use crate::preflight::dns::{Dns, DnsError};

use super::macros::{Context, MacroString, Vars};
use super::record::{self, Directive, Qualifier, Record};
use super::{SpfOutcome, SpfResult};

const MAX_DNS_TERMS: u32 = 10;
const MAX_VOID_LOOKUPS: u32 = 2;
const MAX_NAMES: usize = 10;

/// Why an evaluation stopped early; becomes temperror or permerror at the top.
enum Abort {
    Temp(String),
    Perm(String),
}

/// The result of one `check_host()` level, before it is turned into an [`SpfOutcome`].
struct Verdict {
    result: SpfResult,
    explanation: String,
}

impl Verdict {
    fn new(result: SpfResult, explanation: impl Into<String>) -> Self {
        Self {
            result,
            explanation: explanation.into(),
        }
    }
}

/// How the domain being checked was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Top,
    Include,
    Redirect,
}

pub(crate) struct Evaluator<'d, D: Dns> {
    dns: &'d D,
    /// The client address; IPv4-mapped IPv6 addresses are IPv4 (RFC 7208 §5, "ip4").
    ip: IpAddr,
    sender: String,
    local: String,
    sender_domain: String,
    helo: String,
    now: i64,
    dns_lookups: u32,
    void_lookups: u32,
    /// PTR names of the client that resolve back to it, once looked up (for `%{p}`).
    validated: Option<Vec<String>>,
    top_record: Option<String>,
}

impl<'d, D: Dns> Evaluator<'d, D> {
    pub(crate) fn new(dns: &'d D, ip: IpAddr, domain: &str, sender: &str, helo: &str) -> Self {
        let domain = trim_dot(domain);
        let (local, sender_domain) = match sender.rsplit_once('@') {
            Some((l, d)) => (l, d),
            None if sender.is_empty() => ("", domain),
            None => ("", sender),
        };
        let local = if local.is_empty() {
            "postmaster"
        } else {
            local
        };
        let sender_domain = trim_dot(sender_domain);
        Self {
            dns,
            ip: canonical_ip(ip),
            sender: format!("{local}@{sender_domain}"),
            local: local.to_owned(),
            sender_domain: sender_domain.to_owned(),
            helo: trim_dot(helo).to_owned(),
            now: SystemClock.now(),
            dns_lookups: 0,
            void_lookups: 0,
            validated: None,
            top_record: None,
        }
    }

    pub(crate) async fn run(mut self, domain: &str) -> SpfOutcome {
        let verdict = self.check(trim_dot(domain).to_owned(), Role::Top).await;
        SpfOutcome {
            result: verdict.result,
            explanation: verdict.explanation,
            record: self.top_record,
            dns_lookups: self.dns_lookups,
            void_lookups: self.void_lookups,
        }
    }

    /// One `check_host()` level: fetch, select and parse the record of `domain`, evaluate it.
    fn check(
        &mut self,
        domain: String,
        role: Role,
    ) -> Pin<Box<dyn Future<Output = Verdict> + Send + '_>> {
        Box::pin(async move {
            let domain = trim_dot(&domain).to_owned();
            if !is_valid_domain(&domain) {
                return Verdict::new(
                    SpfResult::None,
                    format!("{domain:?} is not a valid domain name"),
                );
            }
            let txts = match self.dns.txt(&domain).await {
                Ok(txts) => txts,
                Err(DnsError::NxDomain) => {
                    return Verdict::new(SpfResult::None, format!("{domain} does not exist"));
                }
                Err(DnsError::NoData) => {
                    return Verdict::new(SpfResult::None, format!("{domain} has no SPF record"));
                }
                Err(e) => {
                    return Verdict::new(
                        SpfResult::TempError,
                        format!("TXT lookup of {domain} failed: {e}"),
                    );
                }
            };
            let found = record::select(&txts);
            let text = match found.as_slice() {
                [] => return Verdict::new(SpfResult::None, format!("{domain} has no SPF record")),
                [one] => *one,
                many => {
                    return Verdict::new(
                        SpfResult::PermError,
                        format!(
                            "{domain} publishes {} SPF records; exactly one is allowed",
                            many.len()
                        ),
                    );
                }
            };
            if role == Role::Top {
                self.top_record = Some(text.to_owned());
            }
            let rec = match record::parse(text) {
                Ok(rec) => rec,
                Err(e) => {
                    return Verdict::new(
                        SpfResult::PermError,
                        format!("the SPF record of {domain} is invalid: {e}"),
                    );
                }
            };
            match self.evaluate(&domain, &rec, role).await {
                Ok(v) => v,
                Err(Abort::Temp(why)) => Verdict::new(SpfResult::TempError, why),
                Err(Abort::Perm(why)) => Verdict::new(SpfResult::PermError, why),
            }
        })
    }

    async fn evaluate(&mut self, domain: &str, rec: &Record, role: Role) -> Result<Verdict, Abort> {
        for directive in &rec.directives {
            if directive.mechanism.queries_dns() {
                self.count_term(&directive.text)?;
            }
            if self.matches(domain, directive).await? {
                return Ok(self.matched(domain, rec, directive, role).await);
            }
        }
        if let Some(spec) = &rec.redirect {
            self.count_term("redirect")?;
            let target = self.expand(spec, domain).await;
            let v = self.check(target.clone(), Role::Redirect).await;
            return Ok(match v.result {
                SpfResult::None => Verdict::new(
                    SpfResult::PermError,
                    format!(
                        "redirect={target} of {domain} leads to no SPF record ({})",
                        v.explanation
                    ),
                ),
                _ => v,
            });
        }
        Ok(Verdict::new(
            SpfResult::Neutral,
            format!(
                "no term of the SPF record of {domain} matched {}, so the result is neutral",
                self.ip
            ),
        ))
    }

    fn count_term(&mut self, term: &str) -> Result<(), Abort> {
        self.dns_lookups += 1;
        if self.dns_lookups > MAX_DNS_TERMS {
            return Err(Abort::Perm(format!(
                "more than {MAX_DNS_TERMS} DNS-querying terms (reached at \"{term}\"; RFC 7208 §4.6.4)"
            )));
        }
        Ok(())
    }

    /// Counts a void lookup of `term`'s query; the third is a permerror.
    fn void(&mut self, term: &str) -> Result<(), Abort> {
        self.void_lookups += 1;
        if self.void_lookups > MAX_VOID_LOOKUPS {
            return Err(Abort::Perm(format!(
                "more than {MAX_VOID_LOOKUPS} DNS lookups returned nothing (reached at \"{term}\"; RFC 7208 §4.6.4)"
            )));
        }
        Ok(())
    }

    /// The result of a matched directive, with its explanation. Hearth's own sentences name
    /// the matched term (`matched "…"`); the conformance run tells them from `exp=` text that way.
    async fn matched(&mut self, domain: &str, rec: &Record, d: &Directive, role: Role) -> Verdict {
        let ip = self.ip;
        let term = &d.text;
        match d.qualifier {
            Qualifier::Pass => Verdict::new(
                SpfResult::Pass,
                format!("{domain} authorizes {ip}: matched \"{term}\""),
            ),
            Qualifier::SoftFail => Verdict::new(
                SpfResult::SoftFail,
                format!(
                    "{domain} does not authorize {ip} but asks to accept it (softfail): matched \"{term}\""
                ),
            ),
            Qualifier::Neutral => Verdict::new(
                SpfResult::Neutral,
                format!("{domain} makes no assertion about {ip}: matched \"{term}\""),
            ),
            Qualifier::Fail => {
                let published = if role == Role::Include {
                    None
                } else {
                    self.explain(rec, domain).await
                };
                Verdict::new(
                    SpfResult::Fail,
                    published.unwrap_or_else(|| {
                        format!("{domain} does not authorize {ip}: matched \"{term}\"")
                    }),
                )
            }
        }
    }

    /// The `exp=` text of a failing record (§6.2); any problem means "no explanation".
    async fn explain(&mut self, rec: &Record, domain: &str) -> Option<String> {
        let name = self.expand(rec.exp.as_ref()?, domain).await;
        if !is_queryable(&name) {
            return None;
        }
        let txts = self.dns.txt(&name).await.ok()?;
        let [text] = txts.as_slice() else {
            return None;
        };
        let text = MacroString::parse(text, Context::Explanation).ok()?;
        Some(self.expand_raw(&text, domain).await)
    }

    /// The name a mechanism queries: its domain-spec expanded, or the current domain. `None`
    /// when the expansion is not a usable DNS name (treated as a name that does not exist).
    async fn target(&mut self, spec: Option<&MacroString>, domain: &str) -> Option<String> {
        let name = match spec {
            Some(spec) => self.expand(spec, domain).await,
            None => domain.to_owned(),
        };
        is_queryable(&name).then_some(name)
    }

    /// Expands a domain-spec for a query: trailing dot dropped, left labels removed until the
    /// name fits in 253 characters (§7.3).
    async fn expand(&mut self, spec: &MacroString, domain: &str) -> String {
        let mut name = self.expand_raw(spec, domain).await;
        if name.ends_with('.') {
            name.pop();
        }
        while name.len() > 253 {
            match name.split_once('.') {
                Some((_, rest)) => name = rest.to_owned(),
                None => break,
            }
        }
        name
    }

    async fn expand_raw(&mut self, spec: &MacroString, domain: &str) -> String {
        let validated = if spec.uses_validated_name() {
            self.validated_name(domain).await
        } else {
            String::new()
        };
        spec.expand(&Vars {
            sender: &self.sender,
            local: &self.local,
            sender_domain: &self.sender_domain,
            domain,
            ip: self.ip,
            helo: &self.helo,
            validated: &validated,
            now: self.now,
        })
    }

    /// `%{p}` (§7.3): a validated PTR name of the client, preferring `domain` itself, then one
    /// of its subdomains, then any; `unknown` when there is none or the lookups fail.
    async fn validated_name(&mut self, domain: &str) -> String {
        if self.validated.is_none() {
            let mut validated = Vec::new();
            if let Ok(names) = self.dns.ptr(self.ip).await {
                for name in names.into_iter().take(MAX_NAMES) {
                    if self.validates(&name).await {
                        validated.push(name);
                    }
                }
            }
            self.validated = Some(validated);
        }
        let names = self.validated.as_deref().unwrap_or_default();
        let domain = domain.to_ascii_lowercase();
        names
            .iter()
            .find(|n| **n == domain)
            .or_else(|| names.iter().find(|n| is_same_or_subdomain(n, &domain)))
            .or_else(|| names.first())
            .cloned()
            .unwrap_or_else(|| "unknown".into())
    }
}

/// IPv4-mapped IPv6 addresses are IPv4 addresses for SPF (§5).
pub(crate) fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

pub(crate) fn trim_dot(name: &str) -> &str {
    name.strip_suffix('.').unwrap_or(name)
}

/// §4.3: the `<domain>` of check_host() must be a multi-label name with labels of 1 to 63
/// characters; an address literal is not a domain. Otherwise the result is "none".
fn is_valid_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    is_queryable(domain)
        && labels.len() >= 2
        && !domain.starts_with('[')
        && !labels
            .last()
            .is_some_and(|top| top.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether a DNS query can be composed for `name`: 1 to 253 characters, no empty label, no
/// label over 63 characters.
fn is_queryable(name: &str) -> bool {
    let name = trim_dot(name);
    !name.is_empty() && name.len() <= 253 && name.split('.').all(|l| !l.is_empty() && l.len() <= 63)
}

/// `name` equals `target` or ends in `.target` (case-insensitive).
fn is_same_or_subdomain(name: &str, target: &str) -> bool {
    let name = trim_dot(name).to_ascii_lowercase();
    let target = trim_dot(target).to_ascii_lowercase();
    name == target || name.ends_with(&format!(".{target}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains() {
        assert!(is_valid_domain("example.com"));
        assert!(is_valid_domain("_spf.example.com"));
        for bad in [
            "",
            "com",
            "a..example.com",
            "[192.0.2.1]",
            "192.0.2.1",
            &format!("{}.com", "a".repeat(64)),
        ] {
            assert!(!is_valid_domain(bad), "{bad:?}");
        }
        assert!(is_same_or_subdomain("mx.Example.com.", "example.com"));
        assert!(!is_same_or_subdomain("badexample.com", "example.com"));
        assert_eq!(
            canonical_ip("::ffff:192.0.2.1".parse().unwrap()),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
    }
}
