//! The HELO name and reverse DNS: `helo.syntax`, `helo.resolves`, `rdns.ptr`, `rdns.fcrdns`,
//! `helo.matches_ptr`.

use std::net::IpAddr;

use crate::domain::{HeloName, Verdict};
use crate::preflight::check::{CheckId, CheckResult};
use crate::preflight::dns::{Dns, DnsError};
use crate::preflight::identity::{Identity, registered_domain};

use super::{depends, temporary};

pub fn helo_syntax(id: &Identity) -> CheckResult {
    match HeloName::parse(&id.helo) {
        Ok(h) => CheckResult::pass(CheckId::HeloSyntax, format!("{h} is a fully qualified host name")),
        Err(e) => CheckResult::new(CheckId::HeloSyntax, Verdict::Fail, format!("HELO name {:?} {e}", id.helo))
            .fix("Configure the relay to announce a fully qualified host name that belongs to you (e.g. mta1.example.com), the same name the sending IP's PTR record points to."),
    }
}

/// Forward lookup of a name: A and AAAA together (void only when both are void).
pub async fn addresses<D: Dns>(dns: &D, name: &str) -> Result<Vec<IpAddr>, DnsError> {
    let (a, aaaa) = tokio::join!(dns.a(name), dns.aaaa(name));
    let mut out = Vec::new();
    let mut errors = Vec::new();
    match a {
        Ok(v) => out.extend(v.into_iter().map(IpAddr::V4)),
        Err(e) => errors.push(e),
    }
    match aaaa {
        Ok(v) => out.extend(v.into_iter().map(IpAddr::V6)),
        Err(e) => errors.push(e),
    }
    if !out.is_empty() {
        return Ok(out);
    }
    // Prefer a temporary error over a void one: we could not tell.
    match errors.iter().position(DnsError::is_temporary) {
        Some(i) => Err(errors.swap_remove(i)),
        None => Err(errors.pop().unwrap_or(DnsError::NoData)),
    }
}

pub async fn helo_resolves<D: Dns>(dns: &D, id: &Identity) -> CheckResult {
    let c = CheckId::HeloResolves;
    let Some(helo) = id.helo_name() else {
        return depends(c, CheckId::HeloSyntax);
    };
    let cmd = format!("dig {helo} A +short; dig {helo} AAAA +short");
    match addresses(dns, helo.as_str()).await {
        Ok(found) => {
            let missing: Vec<String> = id
                .ips
                .iter()
                .filter(|ip| !found.contains(ip))
                .map(ToString::to_string)
                .collect();
            let evidence = format!(
                "{helo} → {}",
                found
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            if missing.is_empty() {
                CheckResult::pass(c, format!("{helo} resolves to the sending IP"))
                    .evidence(evidence)
            } else {
                CheckResult::new(c, Verdict::Fail, format!("{helo} does not resolve to {}", missing.join(", ")))
                    .evidence(evidence)
                    .fix(format!("Publish an A (or AAAA) record {helo} → {} in your DNS, then verify with `{cmd}`.", missing.join(", ")))
            }
        }
        Err(e) if e.is_temporary() => temporary(c, &format!("{helo} A/AAAA"), &e),
        Err(e) => CheckResult::new(
            c,
            Verdict::Fail,
            format!("{helo} has no A or AAAA record ({e})"),
        )
        .fix(format!(
            "Publish an A record for {helo} pointing to the sending IP, then verify with `{cmd}`."
        )),
    }
}

/// The PTR names of each sending IP, or the check results that explain why there are none.
pub async fn ptr_names<D: Dns>(
    dns: &D,
    id: &Identity,
) -> Vec<(IpAddr, Result<Vec<String>, DnsError>)> {
    let mut out = Vec::new();
    for ip in &id.ips {
        out.push((*ip, dns.ptr(*ip).await));
    }
    out
}

pub fn rdns_ptr(id: &Identity, ptrs: &[(IpAddr, Result<Vec<String>, DnsError>)]) -> CheckResult {
    let c = CheckId::RdnsPtr;
    if id.ips.is_empty() {
        return no_ips(c);
    }
    let mut result = CheckResult::pass(c, "every sending IP has a PTR record");
    let suggested = id
        .helo_name()
        .map(|h| h.to_string())
        .unwrap_or_else(|| "your HELO name".into());
    for (ip, names) in ptrs {
        match names {
            Ok(n) if !n.is_empty() => {
                result = result.evidence(format!("{ip} PTR {}", n.join(", ")))
            }
            Err(e) if e.is_temporary() => return temporary(c, &format!("PTR of {ip}"), e),
            _ => {
                result = CheckResult::new(c, Verdict::Fail, format!("{ip} has no PTR record"))
                    .evidence(format!("{ip} PTR: none"))
                    .fix(format!(
                        "Ask whoever owns {ip} (your hosting provider or ISP, often in its control panel) to set its reverse DNS (PTR) to {suggested}, then verify with `dig -x {ip} +short`."
                    ));
                return result;
            }
        }
    }
    result
}

pub async fn rdns_fcrdns<D: Dns>(
    dns: &D,
    id: &Identity,
    ptrs: &[(IpAddr, Result<Vec<String>, DnsError>)],
) -> CheckResult {
    let c = CheckId::RdnsFcrdns;
    if id.ips.is_empty() {
        return no_ips(c);
    }
    let mut result = CheckResult::pass(c, "every sending IP's PTR name resolves back to it");
    for (ip, names) in ptrs {
        let Ok(names) = names else {
            return depends(c, CheckId::RdnsPtr);
        };
        if names.is_empty() {
            return depends(c, CheckId::RdnsPtr);
        }
        let mut confirmed = None;
        let mut seen = Vec::new();
        for name in names.iter().take(10) {
            match addresses(dns, name).await {
                Ok(addrs) => {
                    seen.push(format!(
                        "{name} → {}",
                        addrs
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                    if addrs.contains(ip) {
                        confirmed = Some(name.clone());
                        break;
                    }
                }
                Err(e) if e.is_temporary() => {
                    return temporary(c, &format!("A/AAAA of {name}"), &e);
                }
                Err(e) => seen.push(format!("{name} → none ({e})")),
            }
        }
        match confirmed {
            Some(name) => result = result.evidence(format!("{ip} → {name} → {ip}")),
            None => {
                let first = &names[0];
                let mut r = CheckResult::new(
                    c,
                    Verdict::Fail,
                    format!("no PTR name of {ip} resolves back to it"),
                );
                for s in seen {
                    r = r.evidence(s);
                }
                return r.fix(format!(
                    "Make the loop close: publish an A record {first} → {ip} (or change the PTR of {ip} to a name that has one). Verify with `dig -x {ip} +short` and `dig {first} A +short`."
                ));
            }
        }
    }
    result
}

pub fn helo_matches_ptr(
    id: &Identity,
    ptrs: &[(IpAddr, Result<Vec<String>, DnsError>)],
) -> CheckResult {
    let c = CheckId::HeloMatchesPtr;
    let Some(helo) = id.helo_name() else {
        return depends(c, CheckId::HeloSyntax);
    };
    if id.ips.is_empty() {
        return no_ips(c);
    }
    let mut worst = CheckResult::pass(c, format!("the PTR of every sending IP is {helo}"));
    for (ip, names) in ptrs {
        let Ok(names) = names else {
            return depends(c, CheckId::RdnsPtr);
        };
        if names.is_empty() {
            return depends(c, CheckId::RdnsPtr);
        }
        if names.iter().any(|n| n.eq_ignore_ascii_case(helo.as_str())) {
            worst = worst.evidence(format!("{ip} PTR {helo} = HELO"));
            continue;
        }
        let same_org = names
            .iter()
            .any(|n| registered_domain(n) == registered_domain(helo.as_str()));
        let evidence = format!("{ip} PTR {} ≠ HELO {helo}", names.join(", "));
        let fix = format!(
            "Announce the PTR name in HELO (set the relay's HELO/EHLO name to {}) or change the PTR of {ip} to {helo}.",
            names[0]
        );
        if same_org {
            if worst.verdict == Verdict::Pass {
                worst = CheckResult::new(
                    c,
                    Verdict::Warn,
                    format!("HELO {helo} differs from the PTR name, in the same domain"),
                )
                .evidence(evidence)
                .fix(fix);
            }
        } else {
            return CheckResult::new(
                c,
                Verdict::Fail,
                format!("HELO {helo} does not match the PTR name of {ip}"),
            )
            .evidence(evidence)
            .fix(fix);
        }
    }
    worst
}

fn no_ips(c: CheckId) -> CheckResult {
    CheckResult::new(c, Verdict::Fail, "no sending IP is configured")
        .fix("Set senders[].ips to the public IP address(es) your relay sends from, so Hearth can check them as receivers do.")
}
