//! `dnsbl.ip` and `dnsbl.domain`: lookups in DNS blocklists, with return codes decoded.
//! Answers that mean "query refused" (Spamhaus 127.255.255.x, URIBL/SURBL 127.0.0.1) are
//! `unknown`, never a listing.

use std::net::{IpAddr, Ipv4Addr};

use crate::domain::{DomainName, Verdict};
use crate::preflight::check::{CheckId, CheckResult};
use crate::preflight::dns::Dns;
use crate::preflight::identity::{Identity, registered_domain};

/// What one blocklist answer means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    NotListed,
    Listed(String),
    /// The list refused to answer (rate limit, public resolver, no access).
    Refused(String),
}

/// Decodes the A record a list returned for a query.
pub fn decode(list: &str, code: Ipv4Addr, domain_list: bool) -> Answer {
    let [a, b, c, d] = code.octets();
    if a != 127 {
        return Answer::Refused(format!(
            "{code} is not a blocklist code (the list may be gone or wildcarded)"
        ));
    }
    if b == 255 && c == 255 {
        return Answer::Refused(format!(
            "{code}: the list refused the query (typically a public or unregistered resolver)"
        ));
    }
    let list = list.to_ascii_lowercase();
    let is_uri_list = list.ends_with("surbl.org")
        || list.ends_with("uribl.com")
        || list.starts_with("urirefuse.");
    if domain_list && is_uri_list && code == Ipv4Addr::new(127, 0, 0, 1) {
        return Answer::Refused(format!(
            "{code}: the list refused the query (access denied)"
        ));
    }
    if list.ends_with("spamhaus.org") {
        let meaning = match (c, d) {
            (0, 2) => "SBL: Spamhaus Block List",
            (0, 3) => "CSS: snowshoe spam source",
            (0, 4..=7) => "XBL: exploited host",
            (0, 9) => "DROP: hijacked network",
            (0, 10 | 11) => "PBL: address not meant to send mail directly",
            (1, 255) => {
                return Answer::Refused(format!(
                    "{code}: IP queries are not allowed on a domain list"
                ));
            }
            (1, _) => "DBL: domain listed",
            _ => "listed",
        };
        return Answer::Listed(format!("{code} ({meaning})"));
    }
    Answer::Listed(format!("{code}"))
}

fn reversed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => v6
            .octets()
            .iter()
            .rev()
            .flat_map(|b| [b & 0x0f, b >> 4])
            .map(|n| format!("{n:x}"))
            .collect::<Vec<_>>()
            .join("."),
    }
}

async fn query<D: Dns>(
    dns: &D,
    name: &str,
    list: &str,
    domain_list: bool,
) -> Result<Answer, String> {
    match dns.a(name).await {
        Ok(codes) => {
            // A listing wins over a refusal when several codes come back.
            let answers: Vec<Answer> = codes
                .into_iter()
                .map(|c| decode(list, c, domain_list))
                .collect();
            if let Some(l) = answers.iter().find(|a| matches!(a, Answer::Listed(_))) {
                let mut l = l.clone();
                if let (Answer::Listed(text), Ok(txt)) = (&mut l, dns.txt(name).await)
                    && let Some(reason) = txt.first()
                {
                    text.push_str(&format!(": {reason}"));
                }
                return Ok(l);
            }
            Ok(answers.into_iter().next().unwrap_or(Answer::NotListed))
        }
        Err(e) if e.is_void() => Ok(Answer::NotListed),
        Err(e) => Err(e.to_string()),
    }
}

fn judge(
    c: CheckId,
    subject: &str,
    results: Vec<(String, String, Result<Answer, String>)>,
) -> CheckResult {
    let mut r = CheckResult::pass(
        c,
        format!("{subject} is on none of {} blocklists", results.len()),
    );
    let mut listed = Vec::new();
    let mut unknown = Vec::new();
    for (list, query, answer) in results {
        match answer {
            Ok(Answer::NotListed) => r = r.evidence(format!("{query}: not listed")),
            Ok(Answer::Listed(why)) => {
                r = r.evidence(format!("{query}: LISTED {why}"));
                listed.push(list);
            }
            Ok(Answer::Refused(why)) => {
                r = r.evidence(format!("{query}: no answer, {why}"));
                unknown.push(list);
            }
            Err(e) => {
                r = r.evidence(format!("{query}: lookup failed, {e}"));
                unknown.push(list);
            }
        }
    }
    listed.dedup();
    unknown.sort();
    unknown.dedup();
    if !listed.is_empty() {
        return CheckResult {
            verdict: Verdict::Fail,
            summary: format!("{subject} is listed on {}", listed.join(", ")),
            remediation: format!(
                "Find and stop the cause (a compromised account, a bad list, an open relay), then request delisting at each list's lookup page ({}). Warming up a listed identity wastes the effort.",
                listed.join(", ")
            ),
            ..r
        };
    }
    if !unknown.is_empty() {
        return CheckResult { verdict: Verdict::Unknown, summary: format!("{} did not answer usable results for {subject}", unknown.join(", ")), remediation: "Blocklists refuse queries from public resolvers: point dns.nameservers at a resolver of your own (or register for the list's data service).".into(), ..r };
    }
    r
}

pub async fn dnsbl_ip<D: Dns>(dns: &D, id: &Identity, lists: &[DomainName]) -> CheckResult {
    let c = CheckId::DnsblIp;
    if id.ips.is_empty() {
        return CheckResult::new(c, Verdict::Fail, "no sending IP is configured")
            .fix("Set senders[].ips.");
    }
    let mut results = Vec::new();
    for ip in &id.ips {
        for list in lists {
            let name = format!("{}.{list}", reversed(*ip));
            let answer = query(dns, &name, list.as_str(), false).await;
            results.push((list.to_string(), format!("{ip} on {list}"), answer));
        }
    }
    let subject = id
        .ips
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    judge(c, &subject, results)
}

pub async fn dnsbl_domain<D: Dns>(dns: &D, id: &Identity, lists: &[DomainName]) -> CheckResult {
    let c = CheckId::DnsblDomain;
    let mut domains = vec![registered_domain(id.from_domain.as_str())];
    let mf = registered_domain(id.mail_from_domain().as_str());
    if !domains.contains(&mf) {
        domains.push(mf);
    }
    // Lists are queried with the registered domain, and with the exact domain when it differs.
    for d in [
        id.from_domain.to_string(),
        id.mail_from_domain().to_string(),
    ] {
        if !domains.contains(&d) {
            domains.push(d);
        }
    }
    let mut results = Vec::new();
    for d in &domains {
        for list in lists {
            let answer = query(dns, &format!("{d}.{list}"), list.as_str(), true).await;
            results.push((list.to_string(), format!("{d} on {list}"), answer));
        }
    }
    judge(c, &domains.join(", "), results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert!(
            matches!(decode("zen.spamhaus.org", ip("127.0.0.2"), false), Answer::Listed(s) if s.contains("SBL"))
        );
        assert!(
            matches!(decode("zen.spamhaus.org", ip("127.0.0.11"), false), Answer::Listed(s) if s.contains("PBL"))
        );
        assert!(matches!(
            decode("zen.spamhaus.org", ip("127.255.255.254"), false),
            Answer::Refused(_)
        ));
        assert!(matches!(
            decode("multi.uribl.com", ip("127.0.0.1"), true),
            Answer::Refused(_)
        ));
        assert!(matches!(
            decode("multi.surbl.org", ip("127.0.0.1"), true),
            Answer::Refused(_)
        ));
        assert!(matches!(
            decode("multi.surbl.org", ip("127.0.0.8"), true),
            Answer::Listed(_)
        ));
        assert!(matches!(
            decode("bl.spamcop.net", ip("127.0.0.2"), false),
            Answer::Listed(_)
        ));
        assert!(matches!(
            decode("dbl.spamhaus.org", ip("127.0.1.255"), true),
            Answer::Refused(_)
        ));
        assert_eq!(reversed("192.0.2.10".parse().unwrap()), "10.2.0.192");
        assert!(reversed("2001:db8::1".parse().unwrap()).starts_with("1.0.0.0."));
    }
}
