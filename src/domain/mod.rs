//! Pure domain types. A value of one of these types is valid by construction:
//! parsing happens once, at the edge (config, CSV, API), never again inside.

mod address;
mod domain_name;
mod endpoint;
mod plan;
mod status;

pub use address::{EmailAddress, ParseAddressError};
pub use domain_name::{DomainName, HeloName, ParseNameError, valid_hostname};
pub use endpoint::{Endpoint, TlsMode, is_loopback_host};
pub use plan::{EngagementRates, Increase, ProviderMix, SendingWindow, WarmupPlan};
pub use status::{
    CampaignStatus, EngagementAction, GmailTab, OutboxStatus, PauseReason, Placement,
    PreflightTrigger, Provider, SeedStatus, SendKind, Source, UnknownVariant, Verdict,
    WebhookStatus,
};
