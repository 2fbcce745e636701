//! Every lifecycle and classification Hearth stores, as enums. They are stored as the
//! text of `as_str()`, and the migrations hold a CHECK constraint with exactly these words.
//! No other module spells these words as string literals.

use std::fmt;
use std::str::FromStr;

/// A text that names no variant of the enum it was parsed into.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?} (expected one of: {expected})")]
pub struct UnknownVariant {
    pub kind: &'static str,
    pub value: String,
    pub expected: String,
}

macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident, $kind:literal { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownVariant;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s.trim().to_ascii_lowercase().as_str() {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownVariant {
                        kind: $kind,
                        value: s.to_owned(),
                        expected: [$($text),+].join(", "),
                    }),
                }
            }
        }
    };
}

text_enum! {
    /// Where a campaign is in its life.
    CampaignStatus, "campaign status" {
        /// Configured, never started.
        Draft = "draft",
        Active = "active",
        /// Stopped with a [`PauseReason`].
        Paused = "paused",
        Completed = "completed",
    }
}

text_enum! {
    /// Why a campaign is paused. Only `Preflight` pauses resume on their own.
    PauseReason, "pause reason" {
        Manual = "manual",
        Preflight = "preflight",
        Placement = "placement",
        Bounces = "bounces",
        SenderError = "sender_error",
    }
}

text_enum! {
    /// State of one row of the outbox.
    OutboxStatus, "outbox status" {
        /// Waiting for its `run_at`.
        Planned = "planned",
        /// Claimed and inside an SMTP transaction (or was, when its node died).
        Sending = "sending",
        Sent = "sent",
        /// Given up on (permanent error or attempts exhausted).
        Failed = "failed",
        Cancelled = "cancelled",
    }
}

text_enum! {
    /// What kind of message an outbox row sends.
    SendKind, "send kind" {
        Warmup = "warmup",
        Reply = "reply",
    }
}

text_enum! {
    /// Where a warm-up message was found in a seed inbox, at first sight.
    Placement, "placement" {
        Inbox = "inbox",
        Spam = "spam",
        Promotions = "promotions",
        Other = "other",
        Missing = "missing",
    }
}

text_enum! {
    /// The Gmail inbox tab a message was sorted into, found with `X-GM-RAW "category:…"`
    /// (only on servers with Gmail's `X-GM-EXT-1`; Gmail does not show tabs as labels).
    GmailTab, "gmail tab" {
        Primary = "primary",
        Promotions = "promotions",
        Social = "social",
        Updates = "updates",
        Forums = "forums",
    }
}

impl GmailTab {
    /// The ledger's folder class of a message in the inbox under this tab: the Primary tab
    /// is the inbox, Promotions is `promotions`, and the other tabs are `other` (the tab
    /// itself is kept beside the class).
    pub fn placement(self) -> Placement {
        match self {
            GmailTab::Primary => Placement::Inbox,
            GmailTab::Promotions => Placement::Promotions,
            GmailTab::Social | GmailTab::Updates | GmailTab::Forums => Placement::Other,
        }
    }
}

text_enum! {
    /// The outcome of one preflight check, and of a run (its worst check).
    Verdict, "verdict" {
        Pass = "pass",
        Warn = "warn",
        Fail = "fail",
        Unknown = "unknown",
    }
}

text_enum! {
    /// Why a preflight run happened.
    PreflightTrigger, "preflight trigger" {
        Start = "start",
        Schedule = "schedule",
        Manual = "manual",
        SendFailure = "send_failure",
    }
}

text_enum! {
    /// Health of a seed inbox.
    SeedStatus, "seed status" {
        Active = "active",
        /// Login or mailbox failure; the reason is stored beside it.
        Broken = "broken",
        /// Taken out of rotation (unknown user at the receiver, or by hand).
        Disabled = "disabled",
    }
}

text_enum! {
    /// Mailbox provider family of a seed: decides folder fallbacks and connection limits.
    Provider, "provider" {
        Gmail = "gmail",
        Outlook = "outlook",
        Yahoo = "yahoo",
        Other = "other",
    }
}

text_enum! {
    /// Something an engagement worker did to a message.
    EngagementAction, "engagement action" {
        Open = "open",
        Star = "star",
        Important = "important",
        Rescue = "rescue",
        Reply = "reply",
        File = "file",
        Delete = "delete",
    }
}

text_enum! {
    /// Where a sender, seed or campaign row came from: the config file (read-only
    /// elsewhere) or the API/CSV import.
    Source, "source" {
        Config = "config",
        Import = "import",
        Api = "api",
    }
}

text_enum! {
    /// State of one webhook delivery (one event to one endpoint).
    WebhookStatus, "webhook status" {
        /// Waiting for its `run_at` (first try or a retry).
        Pending = "pending",
        Delivered = "delivered",
        /// Given up on: a permanent refusal or attempts exhausted.
        Failed = "failed",
        /// The event is not one this endpoint is told about.
        Skipped = "skipped",
    }
}

impl Verdict {
    /// Severity order used to combine verdicts: pass < warn < unknown < fail.
    pub fn severity(self) -> u8 {
        match self {
            Verdict::Pass => 0,
            Verdict::Warn => 1,
            Verdict::Unknown => 2,
            Verdict::Fail => 3,
        }
    }
}

impl Verdict {
    /// The more severe of two verdicts.
    pub fn worst(self, other: Verdict) -> Verdict {
        if other.severity() > self.severity() {
            other
        } else {
            self
        }
    }
}

impl PauseReason {
    /// Whether a passing re-check may lift this pause without a person.
    pub fn auto_resumable(self) -> bool {
        matches!(self, PauseReason::Preflight)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_every_variant() {
        for s in CampaignStatus::ALL {
            assert_eq!(s.as_str().parse::<CampaignStatus>().unwrap(), *s);
        }
        for s in Placement::ALL {
            assert_eq!(s.to_string().parse::<Placement>().unwrap(), *s);
        }
        for s in Provider::ALL {
            assert_eq!(s.to_string().parse::<Provider>().unwrap(), *s);
        }
        let err = "gmial".parse::<Provider>().unwrap_err();
        assert!(err.to_string().contains("gmail, outlook, yahoo, other"));
    }
}
