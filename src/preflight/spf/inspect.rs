//! The `spf.record` lint's view of a domain: its published SPF record(s) and the worst-case
//! cost of evaluating them, whatever the client. Unlike `check_host()`, every term is counted
//! (no early match), and includes and redirects are followed as far as they can be resolved
//! without a client (targets that use client macros such as `%{i}` are counted but not
//! followed).

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;

use crate::preflight::dns::{Dns, DnsError};

use super::eval::trim_dot;
use super::macros::{MacroString, Vars};
use super::record::{self, Mechanism, Qualifier, Record};

/// The published record(s) of one domain and what evaluating them costs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordReport {
    /// Every `v=spf1` TXT record found (more than one is a permerror for receivers).
    pub records: Vec<String>,
    /// The first problem that makes evaluation a permerror, wherever it sits: a syntax error,
    /// or an include/redirect target without exactly one SPF record.
    pub parse_error: Option<String>,
    /// DNS-querying terms, following include/redirect recursively (receivers allow 10; the
    /// count stops growing once it is past 10, so include loops show as 11).
    pub dns_lookups: u32,
    /// Terms whose query returns NXDOMAIN or no records (receivers allow 2).
    pub void_lookups: u32,
    /// `+all` (or a bare `all`) in the domain's own record: every host is authorized.
    pub has_plus_all: bool,
    /// `ptr` (or the `%{p}` macro) anywhere in the tree; RFC 7208 says not to use them.
    pub has_ptr: bool,
}

/// Reads and walks the SPF record of `domain`. An error means the TXT lookup of `domain` itself
/// failed (void or temporary), or a lookup needed to follow an include or redirect failed
/// temporarily; a domain with TXT records but no SPF record gives an empty `records`.
pub async fn inspect<D: Dns>(dns: &D, domain: &str) -> Result<RecordReport, DnsError> {
    let domain = trim_dot(domain);
    let txts = dns.txt(domain).await?;
    let records: Vec<String> = record::select(&txts)
        .into_iter()
        .map(str::to_owned)
        .collect();
    let mut walker = Walker {
        dns,
        top: domain.to_owned(),
        report: RecordReport::default(),
    };
    let several = records.len() > 1;
    let mut first = None;
    for (i, text) in records.iter().enumerate() {
        match record::parse(text) {
            Ok(rec) => {
                first.get_or_insert(rec);
            }
            Err(e) => {
                let which = if several {
                    format!("record {}: ", i + 1)
                } else {
                    String::new()
                };
                walker
                    .report
                    .parse_error
                    .get_or_insert(format!("{which}{e}"));
            }
        }
    }
    if let Some(rec) = first {
        walker.report.has_plus_all = rec
            .directives
            .iter()
            .any(|d| d.mechanism == Mechanism::All && d.qualifier == Qualifier::Pass);
        walker.walk(domain.to_owned(), rec).await?;
    }
    walker.report.records = records;
    Ok(walker.report)
}

struct Walker<'d, D: Dns> {
    dns: &'d D,
    top: String,
    report: RecordReport,
}

impl<D: Dns> Walker<'_, D> {
    fn walk(
        &mut self,
        domain: String,
        rec: Record,
    ) -> Pin<Box<dyn Future<Output = Result<(), DnsError>> + Send + '_>> {
        Box::pin(async move {
            self.report.has_ptr |= rec.uses_validated_name;
            let has_all = rec.directives.iter().any(|d| d.mechanism == Mechanism::All);
            for d in &rec.directives {
                if !d.mechanism.queries_dns() {
                    continue;
                }
                if self.over_limit() {
                    return Ok(());
                }
                self.report.dns_lookups += 1;
                match &d.mechanism {
                    Mechanism::Include(spec) => self.follow(spec, &domain, "include").await?,
                    Mechanism::A { domain: spec, .. } => {
                        if let Some(name) = self.resolve(spec.as_ref(), &domain) {
                            let (a, aaaa) = tokio::join!(self.dns.a(&name), self.dns.aaaa(&name));
                            if a.is_err_and(|e| e.is_void()) && aaaa.is_err_and(|e| e.is_void()) {
                                self.report.void_lookups += 1;
                            }
                        }
                    }
                    Mechanism::Mx { domain: spec, .. } => {
                        if let Some(name) = self.resolve(spec.as_ref(), &domain)
                            && self.dns.mx(&name).await.is_err_and(|e| e.is_void())
                        {
                            self.report.void_lookups += 1;
                        }
                    }
                    Mechanism::Exists(spec) => {
                        if let Some(name) = self.resolve(Some(spec), &domain)
                            && self.dns.a(&name).await.is_err_and(|e| e.is_void())
                        {
                            self.report.void_lookups += 1;
                        }
                    }
                    Mechanism::Ptr(_) => self.report.has_ptr = true,
                    Mechanism::All | Mechanism::Ip4 { .. } | Mechanism::Ip6 { .. } => {}
                }
            }
            // A redirect is only used when no term matches, and never with an `all`.
            if let Some(spec) = &rec.redirect
                && !has_all
                && !self.over_limit()
            {
                self.report.dns_lookups += 1;
                self.follow(spec, &domain, "redirect").await?;
            }
            Ok(())
        })
    }

    fn over_limit(&self) -> bool {
        self.report.dns_lookups > 10
    }

    /// Walks the record an include or redirect points to.
    async fn follow(
        &mut self,
        spec: &MacroString,
        domain: &str,
        how: &str,
    ) -> Result<(), DnsError> {
        let Some(target) = self.resolve(Some(spec), domain) else {
            return Ok(());
        };
        let broken = match self.dns.txt(&target).await {
            Ok(txts) => match record::select(&txts).as_slice() {
                [one] => match record::parse(one) {
                    Ok(rec) => return self.walk(target, rec).await,
                    Err(e) => format!("{how}:{target}: {e}"),
                },
                [] => format!("{how}:{target} has no SPF record"),
                many => format!("{how}:{target} has {} SPF records", many.len()),
            },
            Err(e) if e.is_void() => {
                self.report.void_lookups += 1;
                format!("{how}:{target} has no SPF record ({e})")
            }
            Err(e) => return Err(e),
        };
        self.report.parse_error.get_or_insert(broken);
        Ok(())
    }

    /// The name a term queries when it does not depend on the client; `None` otherwise.
    fn resolve(&self, spec: Option<&MacroString>, domain: &str) -> Option<String> {
        let Some(spec) = spec else {
            return Some(domain.to_owned());
        };
        if spec.depends_on_client() {
            return None;
        }
        let local = "postmaster";
        let sender = format!("{local}@{}", self.top);
        let name = spec.expand(&Vars {
            sender: &sender,
            local,
            sender_domain: &self.top,
            domain,
            ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            helo: "",
            validated: "unknown",
            now: 0,
        });
        let name = trim_dot(&name).to_owned();
        (!name.is_empty()).then_some(name)
    }
}
