//! `dmarc.record`: one valid DMARC record for the From domain (or its organizational domain),
//! its policy, and whether the From domain aligns with SPF's or DKIM's domain.

use crate::domain::Verdict;
use crate::preflight::check::{CheckId, CheckResult};
use crate::preflight::dns::Dns;
use crate::preflight::identity::{Identity, registered_domain};

use super::temporary;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmarcRecord {
    pub policy: String,
    pub subdomain_policy: Option<String>,
    pub strict_spf: bool,
    pub strict_dkim: bool,
    pub pct: u8,
}

/// Parses a DMARC record (RFC 7489 §6.3). `v=DMARC1` must come first and `p=` must be valid.
pub fn parse(txt: &str) -> Result<DmarcRecord, String> {
    let mut tags = txt.split(';').map(str::trim).filter(|t| !t.is_empty());
    match tags.next().and_then(|t| t.split_once('=')) {
        Some((v, val)) if v.trim() == "v" && val.trim() == "DMARC1" => {}
        _ => return Err("the record must start with v=DMARC1".into()),
    }
    let mut rec = DmarcRecord {
        policy: String::new(),
        subdomain_policy: None,
        strict_spf: false,
        strict_dkim: false,
        pct: 100,
    };
    let policy = |v: &str| -> Result<String, String> {
        match v {
            "none" | "quarantine" | "reject" => Ok(v.to_owned()),
            other => Err(format!(
                "invalid policy {other:?} (none, quarantine or reject)"
            )),
        }
    };
    for t in tags {
        let Some((k, v)) = t.split_once('=') else {
            return Err(format!("malformed tag {t:?}"));
        };
        let v = v.trim().to_ascii_lowercase();
        match k.trim() {
            "p" => rec.policy = policy(&v)?,
            "sp" => rec.subdomain_policy = Some(policy(&v)?),
            "adkim" => rec.strict_dkim = v == "s",
            "aspf" => rec.strict_spf = v == "s",
            "pct" => rec.pct = v.parse().map_err(|_| format!("invalid pct={v}"))?,
            _ => {}
        }
    }
    if rec.policy.is_empty() {
        return Err("no p= policy tag".into());
    }
    Ok(rec)
}

fn aligned(a: &str, b: &str, strict: bool) -> bool {
    if strict {
        a.eq_ignore_ascii_case(b)
    } else {
        registered_domain(a) == registered_domain(b)
    }
}

pub async fn dmarc_record<D: Dns>(dns: &D, id: &Identity) -> CheckResult {
    let c = CheckId::DmarcRecord;
    let from = id.from_domain.as_str();
    let org = registered_domain(from);
    let mut looked = vec![format!("_dmarc.{from}")];
    if org != from {
        looked.push(format!("_dmarc.{org}"));
    }
    let mut found: Option<(String, Vec<String>)> = None;
    for name in &looked {
        match dns.txt(name).await {
            Ok(txts) => {
                let recs: Vec<String> = txts
                    .into_iter()
                    .filter(|t| t.trim_start().starts_with("v=DMARC1"))
                    .collect();
                if !recs.is_empty() {
                    found = Some((name.clone(), recs));
                    break;
                }
            }
            Err(e) if e.is_temporary() => return temporary(c, &format!("TXT of {name}"), &e),
            Err(_) => {}
        }
    }
    let Some((name, recs)) = found else {
        return CheckResult::new(c, Verdict::Fail, format!("{from} has no DMARC record"))
            .evidence(format!("looked at {}", looked.join(", ")))
            .fix(format!("Publish a TXT record at _dmarc.{org}, e.g. \"v=DMARC1; p=none; rua=mailto:dmarc@{org}\" to start, then move to quarantine. Gmail and Yahoo require DMARC for bulk senders. Verify with `dig _dmarc.{org} TXT +short`."));
    };
    let mut r = CheckResult::pass(c, String::new());
    for t in &recs {
        r = r.evidence(format!("{name} TXT \"{t}\""));
    }
    if recs.len() > 1 {
        return CheckResult {
            verdict: Verdict::Fail,
            summary: format!(
                "{name} has {} DMARC records; receivers ignore them all",
                recs.len()
            ),
            remediation: format!("Keep exactly one v=DMARC1 record at {name}."),
            ..r
        };
    }
    let rec = match parse(&recs[0]) {
        Ok(rec) => rec,
        Err(e) => {
            return CheckResult {
                verdict: Verdict::Fail,
                summary: format!("the DMARC record at {name} is invalid: {e}"),
                remediation: format!("Fix the record at {name}, e.g. \"v=DMARC1; p=quarantine\"."),
                ..r
            };
        }
    };
    let mail_from = id.mail_from_domain().as_str();
    let spf_ok = aligned(from, mail_from, rec.strict_spf);
    let dkim_ok = id
        .dkim
        .as_ref()
        .is_some_and(|d| aligned(from, d.domain.as_str(), rec.strict_dkim));
    r = r.evidence(format!(
        "policy p={}{}, pct={}; alignment: SPF {} ({mail_from}, aspf={}), DKIM {} ({}, adkim={})",
        rec.policy,
        rec.subdomain_policy
            .as_ref()
            .map(|s| format!(", sp={s}"))
            .unwrap_or_default(),
        rec.pct,
        if spf_ok { "aligned" } else { "not aligned" },
        if rec.strict_spf { "s" } else { "r" },
        if dkim_ok { "aligned" } else { "not aligned" },
        id.dkim
            .as_ref()
            .map(|d| d.domain.to_string())
            .unwrap_or_else(|| "no DKIM".into()),
        if rec.strict_dkim { "s" } else { "r" },
    ));
    if !spf_ok && !dkim_ok {
        return CheckResult {
            verdict: Verdict::Fail,
            summary: format!(
                "From domain {from} aligns with neither the MAIL FROM domain nor the DKIM domain; DMARC fails (policy {})",
                rec.policy
            ),
            remediation: format!(
                "Sign with DKIM d={from} (or a domain in {org}), or send with a MAIL FROM address in {org}."
            ),
            ..r
        };
    }
    CheckResult {
        summary: format!("DMARC policy {} for {from}, aligned", rec.policy),
        ..r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records() {
        let r = parse("v=DMARC1; p=quarantine; adkim=s; rua=mailto:x@y").unwrap();
        assert_eq!(
            (r.policy.as_str(), r.strict_dkim, r.strict_spf),
            ("quarantine", true, false)
        );
        assert!(parse("p=none; v=DMARC1").is_err());
        assert!(parse("v=DMARC1; p=maybe").is_err());
        assert!(parse("v=DMARC1; rua=mailto:x@y").is_err());
        assert!(aligned("news.example.com", "example.com", false));
        assert!(!aligned("news.example.com", "example.com", true));
    }
}
