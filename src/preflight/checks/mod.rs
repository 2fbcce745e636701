//! The checks, one module per subject. Each takes the DNS (a trait, so tests of pure logic can
//! use an in-memory zone) and the identity, and returns a [`CheckResult`]. A DNS timeout or
//! SERVFAIL is `unknown`, never `fail`. A check whose premise failed (no PTR to confirm) is
//! `unknown` with the premise named, so a broken identity fails exactly where it is broken.

pub mod dkim;
pub mod dmarc;
pub mod dnsbl;
pub mod mx;
pub mod names;
pub mod smtp_probe;
pub mod spf;

use crate::domain::Verdict;
use crate::preflight::check::{CheckId, CheckResult};
use crate::preflight::dns::DnsError;

/// A check that could not run because another one failed first.
pub fn depends(c: CheckId, on: CheckId) -> CheckResult {
    CheckResult::new(
        c,
        Verdict::Unknown,
        format!("not checked: {on} must pass first"),
    )
    .fix(format!("Fix {on} first."))
}

/// A lookup that failed temporarily: we cannot tell, so `unknown`.
pub fn temporary(c: CheckId, what: &str, e: &DnsError) -> CheckResult {
    CheckResult::new(c, Verdict::Unknown, format!("DNS lookup of {what} failed temporarily: {e}"))
        .fix("Check again later; if it persists, check that your DNS servers answer (and that Hearth's dns.nameservers are reachable).")
}
