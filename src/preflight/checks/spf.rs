//! `spf.helo`, `spf.mail_from` (RFC 7208 results for both identities) and `spf.record` (lint).

use crate::domain::Verdict;
use crate::preflight::check::{CheckId, CheckResult};
use crate::preflight::dns::Dns;
use crate::preflight::identity::Identity;
use crate::preflight::spf::{self, SpfOutcome, SpfResult};

use super::{depends, temporary};

fn judge(
    c: CheckId,
    identity_name: &str,
    domain: &str,
    verify: &dyn Fn(std::net::IpAddr) -> String,
    outcomes: &[(std::net::IpAddr, SpfOutcome)],
) -> CheckResult {
    let mut result = CheckResult::pass(c, format!("SPF of {domain} authorizes every sending IP"));
    for (ip, o) in outcomes {
        let line = format!("{ip} → {} ({})", o.result, o.explanation);
        let record = o
            .record
            .clone()
            .unwrap_or_else(|| "(no single SPF record)".into());
        let verdict = match o.result {
            SpfResult::Pass => Verdict::Pass,
            SpfResult::TempError => Verdict::Unknown,
            _ => Verdict::Fail,
        };
        if verdict == Verdict::Pass {
            result = result.evidence(line);
            continue;
        }
        let fix = match o.result {
            SpfResult::None => format!(
                "Publish an SPF record for the {identity_name} domain: a TXT record on {domain} such as \"v=spf1 ip4:{ip} -all\". Verify with `dig {domain} TXT +short`."
            ),
            SpfResult::PermError => format!(
                "The SPF record of {domain} is invalid or too expensive ({}). Keep exactly one \"v=spf1 …\" TXT record with at most 10 DNS-querying terms. Verify with `{}`.",
                o.explanation,
                verify(*ip)
            ),
            SpfResult::TempError => String::new(),
            _ => format!(
                "Authorize {ip} in the SPF record of {domain}, e.g. add ip4:{ip} before the final \"all\". Verify with `{}`.",
                verify(*ip)
            ),
        };
        let r = CheckResult::new(
            c,
            verdict,
            format!("SPF of {domain} gives {} for {ip}", o.result),
        )
        .evidence(line)
        .evidence(format!("record: {record}"));
        if verdict == Verdict::Unknown {
            return CheckResult {
                remediation: "Check again later; the DNS answered with a temporary error.".into(),
                ..r
            };
        }
        return r.fix(fix);
    }
    result
}

pub async fn spf_helo<D: Dns>(dns: &D, id: &Identity) -> CheckResult {
    let c = CheckId::SpfHelo;
    let Some(helo) = id.helo_name() else {
        return depends(c, CheckId::HeloSyntax);
    };
    let mut outcomes = Vec::new();
    for ip in &id.ips {
        outcomes.push((*ip, spf::check_helo(dns, *ip, helo.as_str()).await));
    }
    let verify = |ip| format!("hearth spf --ip {ip} --helo {helo}");
    judge(c, "HELO", helo.as_str(), &verify, &outcomes)
}

pub async fn spf_mail_from<D: Dns>(dns: &D, id: &Identity) -> CheckResult {
    let c = CheckId::SpfMailFrom;
    let mut outcomes = Vec::new();
    let sender = id.mail_from.to_string();
    for ip in &id.ips {
        outcomes.push((*ip, spf::check_mail_from(dns, *ip, &sender, &id.helo).await));
    }
    let verify = |ip| {
        format!(
            "hearth spf --ip {ip} --helo {} --mail-from {}",
            id.helo, id.mail_from
        )
    };
    judge(
        c,
        "MAIL FROM",
        id.mail_from_domain().as_str(),
        &verify,
        &outcomes,
    )
}

pub async fn spf_record<D: Dns>(dns: &D, id: &Identity) -> CheckResult {
    let c = CheckId::SpfRecord;
    let domain = id.mail_from_domain().as_str();
    let report = match spf::inspect(dns, domain).await {
        Ok(r) => r,
        Err(e) if e.is_temporary() => return temporary(c, &format!("TXT of {domain}"), &e),
        Err(e) => {
            return CheckResult::new(
                c,
                Verdict::Fail,
                format!("{domain} has no SPF record ({e})"),
            )
            .fix(format!(
                "Publish one TXT record on {domain}: \"v=spf1 ip4:<your sending IP> -all\"."
            ));
        }
    };
    let mut r = CheckResult::pass(c, format!("{domain} has one valid SPF record"));
    for rec in &report.records {
        r = r.evidence(format!("{domain} TXT \"{rec}\""));
    }
    r = r.evidence(format!(
        "DNS-querying terms: {} of 10; void lookups: {} of 2",
        report.dns_lookups, report.void_lookups
    ));
    let fail = |r: CheckResult, summary: String, fix: String| CheckResult {
        verdict: Verdict::Fail,
        summary,
        remediation: fix,
        ..r
    };
    if report.records.is_empty() {
        return fail(
            r,
            format!("{domain} has no SPF record"),
            format!("Publish one TXT record on {domain}: \"v=spf1 ip4:<your sending IP> -all\"."),
        );
    }
    if report.records.len() > 1 {
        return fail(
            r,
            format!(
                "{domain} has {} SPF records; receivers treat that as a permanent error",
                report.records.len()
            ),
            format!(
                "Merge them into one \"v=spf1 …\" TXT record on {domain} and delete the others."
            ),
        );
    }
    if let Some(e) = &report.parse_error {
        return fail(r, format!("the SPF record of {domain} is invalid: {e}"), "Correct the record's syntax (RFC 7208 §12); `hearth spf` shows the result receivers get.".into());
    }
    if report.dns_lookups > 10 {
        return fail(
            r,
            format!("the SPF record of {domain} needs {} DNS lookups; the limit is 10", report.dns_lookups),
            "Flatten includes (replace include: of providers you no longer use, or list their ip4:/ip6: ranges directly) until at most 10 DNS-querying terms remain.".into(),
        );
    }
    if report.void_lookups > 2 {
        return fail(
            r,
            format!(
                "the SPF record of {domain} has {} lookups that return nothing; the limit is 2",
                report.void_lookups
            ),
            "Remove include:, a: or mx: terms that point to names without records.".into(),
        );
    }
    if report.has_plus_all {
        return fail(
            r,
            format!(
                "the SPF record of {domain} ends in +all, which authorizes every host on the Internet"
            ),
            "Replace +all with -all (or ~all) so only your servers are authorized.".into(),
        );
    }
    if report.has_ptr {
        return CheckResult {
            verdict: Verdict::Warn,
            summary: format!(
                "the SPF record of {domain} uses the ptr mechanism, which RFC 7208 says not to use"
            ),
            remediation:
                "Replace ptr with ip4:/ip6: ranges or a: terms; some receivers ignore ptr.".into(),
            ..r
        };
    }
    r
}
