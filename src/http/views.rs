//! The JSON shapes the API answers with. Secrets never appear: an endpoint's credential is
//! shown as its kind only (`sealed`, `env`, `file` or `none`).

use serde::Serialize;
use serde_json::Value;

use crate::domain::{Endpoint, Source};
use crate::secrets::SecretRef;
use crate::store::campaigns::CampaignRow;
use crate::store::ledger::LedgerEntry;
use crate::store::preflight::PreflightRun;
use crate::store::seeds::SeedRow;
use crate::store::senders::SenderRow;

/// The kind of a stored secret, never its value or where it points.
pub fn secret_kind(s: &SecretRef) -> &'static str {
    match s {
        SecretRef::Env(_) => "env",
        SecretRef::File(_) => "file",
        SecretRef::Sealed(_) => "sealed",
        SecretRef::OAuth2(_) => "oauth2",
        SecretRef::None => "none",
    }
}

#[derive(Debug, Serialize)]
pub struct EndpointView {
    pub host: String,
    pub port: u16,
    pub tls: &'static str,
    pub ca_file: Option<String>,
    pub username: String,
    pub secret: &'static str,
}

impl From<&Endpoint> for EndpointView {
    fn from(e: &Endpoint) -> Self {
        EndpointView {
            host: e.host.clone(),
            port: e.port,
            tls: e.tls.as_str(),
            ca_file: e.ca_file.as_ref().map(|p| p.display().to_string()),
            username: e.username.clone(),
            secret: secret_kind(&e.secret),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct DkimView {
    pub domain: String,
    pub selector: String,
    pub key_file: String,
}

#[derive(Debug, Serialize)]
pub struct SenderView {
    pub id: i64,
    pub name: String,
    pub address: String,
    pub display_name: Option<String>,
    pub helo: String,
    pub ips: Vec<String>,
    pub smtp: EndpointView,
    pub dkim: Option<DkimView>,
    pub imap: Option<EndpointView>,
    pub source: Source,
    /// Declared in the config file: the API may read it, not change it.
    pub read_only: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<&SenderRow> for SenderView {
    fn from(s: &SenderRow) -> Self {
        let r = &s.record;
        SenderView {
            id: s.id,
            name: r.name.clone(),
            address: r.address.to_string(),
            display_name: r.display_name.clone(),
            helo: r.helo.to_string(),
            ips: r.ips.iter().map(ToString::to_string).collect(),
            smtp: (&r.smtp).into(),
            dkim: r.dkim.as_ref().map(|d| DkimView {
                domain: d.domain.to_string(),
                selector: d.selector.clone(),
                key_file: d.key_file.display().to_string(),
            }),
            imap: r.imap.as_ref().map(Into::into),
            source: r.source,
            read_only: r.source == Source::Config,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct SeedView {
    pub id: i64,
    pub address: String,
    pub provider: crate::domain::Provider,
    pub daily_cap: u32,
    pub status: crate::domain::SeedStatus,
    pub status_reason: Option<String>,
    pub imap: EndpointView,
    pub smtp: Option<EndpointView>,
    pub folders: Value,
    pub source: Source,
    pub read_only: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<&SeedRow> for SeedView {
    fn from(s: &SeedRow) -> Self {
        let r = &s.record;
        SeedView {
            id: s.id,
            address: r.address.to_string(),
            provider: r.provider,
            daily_cap: r.daily_cap,
            status: s.status,
            status_reason: s.status_reason.clone(),
            imap: (&r.imap).into(),
            smtp: r.smtp.as_ref().map(Into::into),
            folders: serde_json::from_str(&r.folders).unwrap_or(Value::Null),
            source: r.source,
            read_only: r.source == Source::Config,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct CampaignView {
    pub id: i64,
    pub name: String,
    pub sender_id: i64,
    pub sender: String,
    pub status: crate::domain::CampaignStatus,
    pub pause_reason: Option<crate::domain::PauseReason>,
    pub pause_detail: Option<String>,
    pub auto_resume: bool,
    pub started_at: Option<i64>,
    /// The ramp plan and, when restricted, the seed addresses (`{"plan":…, "seeds":[…]}`).
    pub spec: Value,
    pub source: Source,
    pub read_only: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<&CampaignRow> for CampaignView {
    fn from(c: &CampaignRow) -> Self {
        CampaignView {
            id: c.id,
            name: c.name.clone(),
            sender_id: c.sender_id,
            sender: c.sender_name.clone(),
            status: c.status,
            pause_reason: c.pause_reason,
            pause_detail: c.pause_detail.clone(),
            auto_resume: c.auto_resume,
            started_at: c.started_at,
            spec: serde_json::from_str(&c.plan).unwrap_or(Value::Null),
            source: c.source,
            read_only: c.source == Source::Config,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct CheckView {
    pub check: String,
    pub verdict: crate::domain::Verdict,
    pub evidence: String,
    pub remediation: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RunView {
    pub id: i64,
    pub sender_id: i64,
    pub trigger: crate::domain::PreflightTrigger,
    pub verdict: Option<crate::domain::Verdict>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub checks: Vec<CheckView>,
}

impl From<&PreflightRun> for RunView {
    fn from(r: &PreflightRun) -> Self {
        RunView {
            id: r.id,
            sender_id: r.sender_id,
            trigger: r.trigger,
            verdict: r.verdict,
            started_at: r.started_at,
            finished_at: r.finished_at,
            checks: r
                .results
                .iter()
                .map(|c| CheckView {
                    check: c.result.check_id.clone(),
                    verdict: c.result.verdict,
                    evidence: c.result.evidence.clone(),
                    remediation: c.result.remediation.clone(),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct AuthView {
    pub spf: Option<String>,
    pub dkim: Option<String>,
    pub dmarc: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct LedgerView {
    pub id: i64,
    pub campaign_id: i64,
    pub campaign: String,
    pub seed_id: i64,
    pub seed: String,
    pub provider: crate::domain::Provider,
    /// The folder class: inbox, spam, promotions, other or missing.
    pub folder_class: crate::domain::Placement,
    pub folder: Option<String>,
    pub message_id: String,
    pub sent_at: Option<i64>,
    pub seen_at: Option<i64>,
    pub latency_secs: Option<i64>,
    pub auth: AuthView,
    pub recorded_at: i64,
}

impl From<&LedgerEntry> for LedgerView {
    fn from(e: &LedgerEntry) -> Self {
        let p = &e.placement.record;
        LedgerView {
            id: e.placement.id,
            campaign_id: e.campaign_id,
            campaign: e.campaign.clone(),
            seed_id: p.seed_id,
            seed: e.seed.clone(),
            provider: p.provider,
            folder_class: p.placement,
            folder: p.folder.clone(),
            message_id: p.message_id.clone(),
            sent_at: e.sent_at,
            seen_at: p.seen_at,
            latency_secs: p.latency_secs,
            auth: AuthView {
                spf: p.auth_spf.clone(),
                dkim: p.auth_dkim.clone(),
                dmarc: p.auth_dmarc.clone(),
            },
            recorded_at: e.placement.created_at,
        }
    }
}
