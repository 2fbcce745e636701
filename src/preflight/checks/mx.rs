//! `mx.present`: the From and MAIL FROM domains can receive replies and bounces.

use crate::domain::Verdict;
use crate::preflight::check::{CheckId, CheckResult};
use crate::preflight::dns::Dns;
use crate::preflight::identity::Identity;

use super::{names::addresses, temporary};

pub async fn mx_present<D: Dns>(dns: &D, id: &Identity) -> CheckResult {
    let c = CheckId::MxPresent;
    let mut domains = vec![id.from_domain.to_string()];
    if id.mail_from_domain() != &id.from_domain {
        domains.push(id.mail_from_domain().to_string());
    }
    let mut r = CheckResult::pass(c, format!("{} can receive mail", domains.join(" and ")));
    for d in &domains {
        match dns.mx(d).await {
            Ok(mx) if mx.len() == 1 && (mx[0].1.is_empty() || mx[0].1 == ".") => {
                r = CheckResult { verdict: Verdict::Warn, summary: format!("{d} publishes a null MX: it receives no mail, so replies and bounces are lost"), remediation: format!("Publish a real MX for {d} so seed replies and bounces arrive (verify with `dig {d} MX +short`)."), ..r }
                    .evidence(format!("{d} MX 0 ."));
            }
            Ok(mx) if !mx.is_empty() => {
                let list = mx
                    .iter()
                    .map(|(p, h)| format!("{p} {h}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                r = r.evidence(format!("{d} MX {list}"));
            }
            Err(e) if e.is_temporary() => return temporary(c, &format!("MX of {d}"), &e),
            _ => match addresses(dns, d).await {
                Ok(ips) => {
                    r = CheckResult {
                        verdict: Verdict::Warn.worst(r.verdict),
                        summary: format!("{d} has no MX; mail to it falls back to its A record"),
                        remediation: format!("Publish an MX record for {d}."),
                        ..r
                    }
                    .evidence(format!(
                        "{d} MX: none; A {}",
                        ips.iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                Err(e) if e.is_temporary() => return temporary(c, &format!("A of {d}"), &e),
                Err(_) => {
                    return CheckResult::new(c, Verdict::Fail, format!("{d} can receive no mail: no MX and no A record"))
                        .evidence(format!("{d} MX: none; A: none"))
                        .fix(format!("Publish an MX record for {d} pointing to a server that accepts mail, so replies and bounces reach you. Verify with `dig {d} MX +short`."));
                }
            },
        }
    }
    r
}
