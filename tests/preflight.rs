//! Preflight against real zones served by the lab's Knot DNS: a correct identity passes every
//! check, and each broken scenario fails exactly where it is broken (checks that depend on a
//! failed one say `unknown`). Scenarios are documented in scripts/LAB-README.md.
//!
//! Needs `scripts/lab up`; see tests/lab.rs for the skip rule.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[path = "common/lab.rs"]
#[allow(dead_code)]
mod lab;

use hearth::config::DnsConfig;
use hearth::domain::{DomainName, EmailAddress, Endpoint, TlsMode, Verdict};
use hearth::preflight::dns::DnsClient;
use hearth::preflight::{CheckId, DkimExpectation, Identity, Options, run_checks};

fn lab_dir() -> Option<PathBuf> {
    lab::lab_dir("preflight lab tests", &[5353, 5587])
}

fn dns() -> DnsClient {
    DnsClient::new(&DnsConfig {
        nameservers: vec!["127.0.0.1:5353".parse().unwrap()],
        timeout_ms: 1000,
        attempts: 2,
    })
    .unwrap()
}

fn options(ip_lists: &[&str]) -> Options {
    Options {
        ip_blocklists: ip_lists
            .iter()
            .map(|l| DomainName::parse(l).unwrap())
            .collect(),
        domain_blocklists: vec![DomainName::parse("dbl.lab.test").unwrap()],
        smtp_timeout: Duration::from_secs(10),
    }
}

/// A scenario identity from scripts/LAB-README.md: `<id>.pf.test`, HELO `mta.<id>.pf.test`.
fn scenario(lab: &Path, id: &str, last_octet: u8) -> Identity {
    let domain = format!("{id}.pf.test");
    Identity {
        helo: format!("mta.{domain}"),
        ips: vec![IpAddr::from([192, 0, 2, last_octet])],
        mail_from: EmailAddress::parse(&format!("hello@{domain}")).unwrap(),
        from_domain: DomainName::parse(&domain).unwrap(),
        dkim: Some(DkimExpectation {
            domain: DomainName::parse(&domain).unwrap(),
            selector: "hearth".into(),
            key_file: Some(lab.join("dkim/sender.test.hearth.key")),
        }),
        smtp: Some(Endpoint {
            host: "127.0.0.1".into(),
            port: 5587,
            tls: TlsMode::Starttls,
            ca_file: Some(lab.join("tls/ca.pem")),
            username: "hello@sender.test".into(),
            secret: hearth::secrets::SecretRef::Env("UNUSED".into()),
        }),
    }
}

/// Every check not listed is expected to pass.
fn expect(report: &hearth::preflight::PreflightReport, name: &str, want: &[(CheckId, Verdict)]) {
    let want: BTreeMap<CheckId, Verdict> = want.iter().copied().collect();
    let mut problems = Vec::new();
    for r in &report.results {
        let w = want.get(&r.id).copied().unwrap_or(Verdict::Pass);
        if r.verdict != w {
            problems.push(format!(
                "  {}: want {w}, got {} — {} {:?}",
                r.id, r.verdict, r.summary, r.evidence
            ));
        }
        if r.verdict != Verdict::Pass && r.remediation.is_empty() && r.verdict != Verdict::Unknown {
            problems.push(format!("  {}: {} without a fix", r.id, r.verdict));
        }
    }
    assert!(
        problems.is_empty(),
        "scenario {name}:\n{}",
        problems.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenarios_fail_exactly_where_they_are_broken() {
    let Some(lab) = lab_dir() else { return };
    hearth::tls::install_crypto_provider();
    let dns = dns();
    let opts = options(&["bl.lab.test"]);
    use CheckId::*;
    use Verdict::*;
    type Expected = Vec<(CheckId, Verdict)>;
    let cases: Vec<(&str, u8, Expected)> = vec![
        ("ok", 101, vec![]),
        (
            "noptr",
            102,
            vec![
                (RdnsPtr, Fail),
                (RdnsFcrdns, Unknown),
                (HeloMatchesPtr, Unknown),
            ],
        ),
        ("helomismatch", 104, vec![(HeloMatchesPtr, Fail)]),
        // The PTR name is the HELO name, which has no address: the loop cannot close either.
        (
            "helonoa",
            105,
            vec![(HeloResolves, Fail), (RdnsFcrdns, Fail)],
        ),
        (
            "helonoa2",
            121,
            vec![(HeloResolves, Fail), (HeloMatchesPtr, Warn)],
        ),
        ("helonospf", 106, vec![(SpfHelo, Fail)]),
        ("spffail", 107, vec![(SpfMailFrom, Fail)]),
        ("twospf", 108, vec![(SpfMailFrom, Fail), (SpfRecord, Fail)]),
        (
            "spflimit",
            109,
            vec![(SpfMailFrom, Fail), (SpfRecord, Fail)],
        ),
        ("spfplusall", 110, vec![(SpfRecord, Fail)]),
        ("spfptr", 111, vec![(SpfRecord, Warn)]),
        ("nodkim", 112, vec![(DkimKey, Fail)]),
        ("dkimmismatch", 113, vec![(DkimKey, Fail)]),
        ("nodmarc", 115, vec![(DmarcRecord, Fail)]),
        ("nullmx", 117, vec![(MxPresent, Warn)]),
        ("nomx", 118, vec![(MxPresent, Fail)]),
        ("listed", 119, vec![(DnsblIp, Fail)]),
        ("dbllisted", 120, vec![(DnsblDomain, Fail)]),
    ];
    for (name, octet, want) in cases {
        let id = scenario(&lab, name, octet);
        let report = run_checks(&dns, &id, &opts).await;
        expect(&report, name, &want);
    }

    // The PTR name exists but points elsewhere: only the loop fails (HELO differs from the PTR
    // name inside the same registered domain: a warning).
    let mut id = scenario(&lab, "ptrnoconfirm", 103);
    id.helo = "h2.ptrnoconfirm.pf.test".into();
    expect(
        &run_checks(&dns, &id, &opts).await,
        "ptrnoconfirm",
        &[(RdnsFcrdns, Fail), (HeloMatchesPtr, Warn)],
    );

    // A 1024-bit key is accepted with a warning (the configured key is its private half).
    let mut id = scenario(&lab, "dkimweak", 114);
    id.dkim.as_mut().unwrap().key_file = Some(lab.join("dkim/weak1024.key"));
    expect(
        &run_checks(&dns, &id, &opts).await,
        "dkimweak",
        &[(DkimKey, Warn)],
    );

    // From domain aligned with neither SPF's nor DKIM's domain under strict DMARC.
    let mut id = scenario(&lab, "dmarcmisaligned", 116);
    id.from_domain = DomainName::parse("misaligned-from.test").unwrap();
    expect(
        &run_checks(&dns, &id, &opts).await,
        "dmarcmisaligned",
        &[(DmarcRecord, Fail)],
    );

    // HELO as an IP literal: syntax fails, the checks that need the name are not run.
    let mut id = scenario(&lab, "ok", 101);
    id.helo = "192.0.2.101".into();
    expect(
        &run_checks(&dns, &id, &opts).await,
        "helo-ip-literal",
        &[
            (HeloSyntax, Fail),
            (HeloResolves, Unknown),
            (HeloMatchesPtr, Unknown),
            (SpfHelo, Unknown),
        ],
    );

    // The relay's certificate is not trusted without the lab's CA: the probe fails on TLS.
    let mut id = scenario(&lab, "ok", 101);
    id.smtp.as_mut().unwrap().ca_file = None;
    let report = run_checks(&dns, &id, &opts).await;
    expect(&report, "untrusted-relay-cert", &[(SmtpProbe, Fail)]);
    assert!(
        report.get(SmtpProbe).unwrap().summary.contains("TLS"),
        "{:?}",
        report.get(SmtpProbe)
    );
    // A relay that does not answer is unknown (it may be down for a minute), not a failure.
    let mut id = scenario(&lab, "ok", 101);
    id.smtp.as_mut().unwrap().port = 9;
    expect(
        &run_checks(&dns, &id, &opts).await,
        "relay-down",
        &[(SmtpProbe, Unknown)],
    );

    // A blocklist answering 127.255.255.254 refused the query: unknown, never a listing.
    let refused = options(&["bl.lab.test", "refuse.lab.test"]);
    expect(
        &run_checks(&dns, &scenario(&lab, "ok", 101), &refused).await,
        "refused-list",
        &[(DnsblIp, Unknown)],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lab_sender_identity_passes() {
    let Some(lab) = lab_dir() else { return };
    hearth::tls::install_crypto_provider();
    let id = Identity {
        helo: "mta1.sender.test".into(),
        ips: vec!["192.0.2.10".parse().unwrap()],
        mail_from: EmailAddress::parse("hello@sender.test").unwrap(),
        from_domain: DomainName::parse("sender.test").unwrap(),
        dkim: Some(DkimExpectation {
            domain: DomainName::parse("sender.test").unwrap(),
            selector: "hearth".into(),
            key_file: Some(lab.join("dkim/sender.test.hearth.key")),
        }),
        smtp: scenario(&lab, "ok", 101).smtp,
    };
    expect(
        &run_checks(&dns(), &id, &options(&["bl.lab.test"])).await,
        "sender.test",
        &[],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dns_server_that_does_not_answer_gives_unknown_not_fail() {
    hearth::tls::install_crypto_provider();
    // A UDP socket that never answers, on loopback.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let dns = DnsClient::new(&DnsConfig {
        nameservers: vec![addr],
        timeout_ms: 200,
        attempts: 1,
    })
    .unwrap();
    let mut id = Identity {
        helo: "mta1.sender.test".into(),
        ips: vec!["192.0.2.10".parse().unwrap()],
        mail_from: EmailAddress::parse("hello@sender.test").unwrap(),
        from_domain: DomainName::parse("sender.test").unwrap(),
        dkim: None,
        smtp: None,
    };
    id.dkim = Some(DkimExpectation {
        domain: DomainName::parse("sender.test").unwrap(),
        selector: "hearth".into(),
        key_file: None,
    });
    let report = run_checks(&dns, &id, &options(&["bl.lab.test"])).await;
    for r in &report.results {
        match r.id {
            CheckId::HeloSyntax => assert_eq!(r.verdict, Verdict::Pass),
            CheckId::SmtpProbe => assert_eq!(r.verdict, Verdict::Warn, "no relay given"),
            _ => assert_eq!(
                r.verdict,
                Verdict::Unknown,
                "{}: {} {:?}",
                r.id,
                r.summary,
                r.evidence
            ),
        }
    }
    drop(silent);
}
