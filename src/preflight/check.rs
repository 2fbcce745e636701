//! What a preflight check produces: a stable id, a verdict, the evidence it saw, and a fix.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::domain::{UnknownVariant, Verdict};

macro_rules! check_ids {
    ($($variant:ident = $text:literal),+ $(,)?) => {
        /// The checks, by stable id (used in pause reasons, the API and the CLI).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        pub enum CheckId { $($variant),+ }

        impl CheckId {
            pub const ALL: &'static [CheckId] = &[$(CheckId::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $(CheckId::$variant => $text),+ }
            }
        }

        impl FromStr for CheckId {
            type Err = UnknownVariant;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok(CheckId::$variant),)+
                    _ => Err(UnknownVariant { kind: "check id", value: s.to_owned(), expected: [$($text),+].join(", ") }),
                }
            }
        }
    };
}

check_ids! {
    HeloSyntax = "helo.syntax",
    HeloResolves = "helo.resolves",
    RdnsPtr = "rdns.ptr",
    RdnsFcrdns = "rdns.fcrdns",
    HeloMatchesPtr = "helo.matches_ptr",
    SpfHelo = "spf.helo",
    SpfMailFrom = "spf.mail_from",
    SpfRecord = "spf.record",
    DkimKey = "dkim.key",
    DmarcRecord = "dmarc.record",
    MxPresent = "mx.present",
    DnsblIp = "dnsbl.ip",
    DnsblDomain = "dnsbl.domain",
    SmtpProbe = "smtp.probe",
}

impl fmt::Display for CheckId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    pub id: CheckId,
    pub verdict: Verdict,
    /// One line: what was found.
    pub summary: String,
    /// The records and answers seen, one per line.
    pub evidence: Vec<String>,
    /// What to do about it, in plain words (empty when it passed).
    pub remediation: String,
}

impl CheckResult {
    pub fn new(id: CheckId, verdict: Verdict, summary: impl Into<String>) -> Self {
        Self {
            id,
            verdict,
            summary: summary.into(),
            evidence: Vec::new(),
            remediation: String::new(),
        }
    }

    pub fn pass(id: CheckId, summary: impl Into<String>) -> Self {
        Self::new(id, Verdict::Pass, summary)
    }

    pub fn evidence(mut self, line: impl Into<String>) -> Self {
        self.evidence.push(line.into());
        self
    }

    pub fn fix(mut self, text: impl Into<String>) -> Self {
        self.remediation = text.into();
        self
    }
}

/// All results of one run.
#[derive(Debug, Clone, Serialize)]
pub struct PreflightReport {
    pub results: Vec<CheckResult>,
}

impl PreflightReport {
    /// The worst verdict (pass < warn < unknown < fail).
    pub fn verdict(&self) -> Verdict {
        self.results
            .iter()
            .map(|r| r.verdict)
            .max_by_key(|v| v.severity())
            .unwrap_or(Verdict::Pass)
    }

    pub fn with(&self, verdict: Verdict) -> Vec<CheckId> {
        self.results
            .iter()
            .filter(|r| r.verdict == verdict)
            .map(|r| r.id)
            .collect()
    }

    pub fn get(&self, id: CheckId) -> Option<&CheckResult> {
        self.results.iter().find(|r| r.id == id)
    }
}
