//! SPF conformance: third-party RFC 7208/4408 suites served by the in-process DNS server and
//! evaluated through exactly what `hearth spf` runs: `DnsClient` (pointed at the server) and
//! `spf::check_mail_from` / `spf::check_helo`.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use hearth::config::DnsConfig;
use hearth::preflight::dns::DnsClient;
use hearth::preflight::spf::{self, SpfOutcome, SpfResult};

use crate::dns_server::{Zone, ZoneServer};
use crate::{mail_auth, openspf};

/// How a case's identities are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// The OpenSPF suites: the MAIL FROM identity, or the HELO identity when MAIL FROM is empty.
    MailFrom,
    /// mail-auth's suite: HELO first; a HELO `fail` is final (RFC 7208 §2.3), otherwise the MAIL
    /// FROM identity decides when there is one.
    HeloThenMailFrom,
}

pub struct Case {
    /// Where the case comes from, for the report (`scenario/test`).
    pub id: String,
    /// Index into the suite's zones.
    pub zone: usize,
    pub ip: Result<IpAddr, String>,
    pub helo: String,
    pub mail_from: String,
    pub identity: Identity,
    /// Any of these results is right.
    pub expect: Vec<SpfResult>,
    /// The expected explanation of a `fail`: its text, or `DEFAULT` for "no exp= text".
    pub explanation: Option<String>,
    /// Why the suite's expectation is not RFC 7208's: the case runs but is counted as skipped.
    pub deviation: Option<&'static str>,
}

pub struct Suite {
    pub name: &'static str,
    pub zones: Vec<Arc<Zone>>,
    pub cases: Vec<Case>,
}

/// Runs every SPF suite found under `dir`; false when any case failed.
pub fn run_all(dir: &Path) -> bool {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            println!("spf: cannot start a runtime: {e}");
            return false;
        }
    };
    let suites: Vec<(&str, Result<Option<Suite>, String>)> = vec![
        (
            "spf-rfc4408",
            openspf::load(dir, "spf-pyspf/rfc4408-tests.yml", "spf-rfc4408"),
        ),
        (
            "spf-pyspf",
            openspf::load(dir, "spf-pyspf/test.yml", "spf-pyspf"),
        ),
        (
            "spf-mail-auth",
            mail_auth::load(dir, "mail-auth-spf", "spf-mail-auth"),
        ),
    ];
    let mut ok = true;
    for (name, suite) in suites {
        match suite {
            Ok(Some(suite)) => ok &= rt.block_on(run(suite)),
            Ok(None) => println!(
                "{name}: skipped (suite files not found under {})",
                dir.display()
            ),
            Err(e) => {
                println!("  cannot load the suite: {e}");
                println!("{name}: 0 passed, 1 failed");
                ok = false;
            }
        }
    }
    ok
}

const TIMEOUT_MS: u64 = 1000;
const CONCURRENCY: usize = 32;

async fn run(suite: Suite) -> bool {
    let started = Instant::now();
    let mut servers = Vec::new();
    for zone in &suite.zones {
        match ZoneServer::start(zone.clone()).await {
            Ok(s) => servers.push(s),
            Err(e) => {
                println!("  cannot start the DNS server: {e}");
                println!("{}: 0 passed, {} failed", suite.name, suite.cases.len());
                return false;
            }
        }
    }
    let servers = &servers;
    let outcomes: Vec<(usize, Result<SpfOutcome, String>)> =
        futures::stream::iter(suite.cases.iter().enumerate())
            .map(|(i, case)| async move { (i, evaluate(case, servers[case.zone].addr()).await) })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
    let mut outcomes: Vec<Option<Result<SpfOutcome, String>>> = {
        let mut v: Vec<_> = (0..suite.cases.len()).map(|_| None).collect();
        for (i, o) in outcomes {
            v[i] = Some(o);
        }
        v
    };

    // CONFORMANCE_VERBOSE=1 prints every case, not only failures and skips.
    let verbose = std::env::var_os("CONFORMANCE_VERBOSE").is_some();
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for (case, outcome) in suite.cases.iter().zip(outcomes.iter_mut()) {
        let outcome = outcome.take().unwrap_or_else(|| Err("not run".into()));
        let verdict = match &outcome {
            Ok(got) => judge(case, got),
            Err(e) => Err(e.clone()),
        };
        let got = match &outcome {
            Ok(o) => format!("{} ({})", o.result, o.explanation),
            Err(e) => e.clone(),
        };
        match (case.deviation, verdict) {
            (Some(reason), _) => {
                skipped += 1;
                println!("  skipped {}: {reason}; hearth: {got}", case.id);
            }
            (None, Ok(())) => {
                passed += 1;
                if verbose {
                    println!("  ok {}: {got}", case.id);
                }
            }
            (None, Err(why)) => {
                failed += 1;
                println!("  FAILED {}: {why}", case.id);
            }
        }
    }
    println!(
        "  ({} cases, {} zones, {:.1} s)",
        suite.cases.len(),
        suite.zones.len(),
        started.elapsed().as_secs_f64()
    );
    println!(
        "{}: {passed} passed, {failed} failed, {skipped} skipped",
        suite.name
    );
    failed == 0
}

/// Runs one case the way `hearth spf` does: a fresh client for the case's zone server.
async fn evaluate(case: &Case, server: std::net::SocketAddr) -> Result<SpfOutcome, String> {
    let ip = case.ip.clone()?;
    let cfg = DnsConfig {
        nameservers: vec![server],
        timeout_ms: TIMEOUT_MS,
        attempts: 1,
    };
    let dns = DnsClient::new(&cfg).map_err(|e| format!("DnsClient: {e}"))?;
    let run = async {
        match case.identity {
            Identity::MailFrom if case.mail_from.is_empty() => {
                spf::check_helo(&dns, ip, &case.helo).await
            }
            Identity::MailFrom => spf::check_mail_from(&dns, ip, &case.mail_from, &case.helo).await,
            Identity::HeloThenMailFrom => {
                let helo = spf::check_helo(&dns, ip, &case.helo).await;
                if helo.result == SpfResult::Fail || case.mail_from.is_empty() {
                    helo
                } else {
                    spf::check_mail_from(&dns, ip, &case.mail_from, &case.helo).await
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .map_err(|_| "no result within 20 s".to_string())
}

/// Hearth's own explanations for a fail name the matched term; an `exp=` text replaces them.
fn is_default_explanation(explanation: &str) -> bool {
    explanation.contains(": matched \"")
}

fn judge(case: &Case, got: &SpfOutcome) -> Result<(), String> {
    let expected = case
        .expect
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" or ");
    if !case.expect.contains(&got.result) {
        return Err(format!(
            "expected {expected}, got {} ({})",
            got.result, got.explanation
        ));
    }
    if let Some(want) = &case.explanation
        && got.result == SpfResult::Fail
    {
        let ok = if want == "DEFAULT" {
            is_default_explanation(&got.explanation)
        } else {
            got.explanation == *want
        };
        if !ok {
            return Err(format!(
                "expected fail with explanation {want:?}, got {:?}",
                got.explanation
            ));
        }
    }
    Ok(())
}
