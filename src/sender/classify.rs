//! What an SMTP failure means for Hearth. The class decides what happens next:
//! retry later, slow down, pause the campaign and re-check the identity, or drop the seed.

/// The class of a failed send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// 4xx or a network problem: try again with backoff.
    Retry,
    /// Rate or reputation deferral (4.7.28, 421 …): try again later and slow the sender.
    Throttle,
    /// The receiver rejects our identity (PTR, SPF, DKIM, DMARC, HELO): pause + preflight.
    Identity,
    /// The recipient does not exist (5.1.1): take the seed out of rotation.
    UnknownRecipient,
    /// Our own login was refused (535 5.7.8, a revoked OAuth2 grant): keep the message and
    /// pause the campaign for a person, with the reason.
    Credentials,
    /// Any other permanent error: give up on this message.
    Permanent,
    /// The content went out but no reply came back: the relay may have the message. The row
    /// stays `sending`; when its lease ends, the reconciler looks for the Message-ID in the
    /// recipient's mailbox before anything is sent again (never twice).
    Unsure,
}

impl Failure {
    pub fn is_retryable(self) -> bool {
        matches!(self, Failure::Retry | Failure::Throttle)
    }
}

/// Classifies a reply by its basic code (None for connection-level failures) and its text,
/// which carries the enhanced status code (e.g. `5.7.26`) and the provider's words.
pub fn classify_reply(code: Option<u16>, text: &str) -> Failure {
    let t = text.to_ascii_lowercase();
    let Some(code) = code else {
        return Failure::Retry;
    };
    // Authentication failed: the sender's password or token is wrong, nothing else.
    if code == 535 || t.starts_with("5.7.8") || t.contains(" 5.7.8 ") {
        return Failure::Credentials;
    }
    // Gmail's "IP not in whitelist for RCPT domain" concerns that recipient domain only.
    if t.contains("not in whitelist for rcpt domain") {
        return Failure::Retry;
    }
    const IDENTITY: &[&str] = &[
        "5.7.25",
        "5.7.26",
        "5.7.27",
        "5.7.23",
        "5.7.7",
        "helo command rejected",
        "reverse dns",
        "ptr record",
        "spf",
        "dkim",
        "dmarc",
        "unauthenticated email",
        "client host rejected: cannot find your hostname",
    ];
    const THROTTLE: &[&str] = &[
        "4.7.28",
        "4.7.0 too many",
        "rate limit",
        "try again later",
        "too many",
    ];
    const UNKNOWN_USER: &[&str] = &[
        "5.1.1",
        "user unknown",
        "unknown user",
        "does not exist",
        "no such user",
        "recipient address rejected: user unknown",
        "mailbox unavailable",
    ];
    match code {
        500..=599 => {
            if IDENTITY.iter().any(|k| t.contains(k)) {
                Failure::Identity
            } else if UNKNOWN_USER.iter().any(|k| t.contains(k)) {
                Failure::UnknownRecipient
            } else {
                Failure::Permanent
            }
        }
        421 => Failure::Throttle,
        400..=499 => {
            if THROTTLE.iter().any(|k| t.contains(k)) {
                Failure::Throttle
            } else {
                Failure::Retry
            }
        }
        _ => Failure::Retry,
    }
}

/// Classifies a failed send.
pub fn classify(err: &super::transport::SmtpError) -> Failure {
    match err {
        super::transport::SmtpError::Connect { .. } => Failure::Retry,
        super::transport::SmtpError::Smtp(e) => classify_lettre(e),
        super::transport::SmtpError::OAuth2(e) if e.is_transient() => Failure::Retry,
        super::transport::SmtpError::OAuth2(_) | super::transport::SmtpError::Auth(_) => {
            Failure::Credentials
        }
        super::transport::SmtpError::Unsupported(_) => Failure::Permanent,
        super::transport::SmtpError::Unsure(_) => Failure::Unsure,
    }
}

/// Classifies a lettre error.
pub fn classify_lettre(err: &lettre::transport::smtp::Error) -> Failure {
    let code = err.status().map(|c| {
        let s = c.to_string();
        s.parse::<u16>()
            .unwrap_or(if err.is_permanent() { 550 } else { 451 })
    });
    classify_reply(code, &err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies() {
        let cases: &[(Option<u16>, &str, Failure)] = &[
            (None, "connection refused", Failure::Retry),
            (Some(451), "4.3.0 temporary lookup failure", Failure::Retry),
            (
                Some(421),
                "4.7.0 Try again later, closing connection",
                Failure::Throttle,
            ),
            (
                Some(450),
                "4.7.28 Our system has detected an unusual rate",
                Failure::Throttle,
            ),
            (
                Some(421),
                "4.7.0 IP not in whitelist for RCPT domain, closing connection",
                Failure::Retry,
            ),
            (
                Some(550),
                "5.7.26 This mail is unauthenticated, which poses a security risk",
                Failure::Identity,
            ),
            (
                Some(550),
                "5.7.25 The IP address sending this message does not have a PTR record",
                Failure::Identity,
            ),
            (
                Some(550),
                "5.7.27 The sender does not pass SPF",
                Failure::Identity,
            ),
            (
                Some(504),
                "5.5.2 <localhost>: Helo command rejected: need fully-qualified hostname",
                Failure::Identity,
            ),
            (
                Some(550),
                "5.1.1 The email account that you tried to reach does not exist",
                Failure::UnknownRecipient,
            ),
            (
                Some(550),
                "5.1.1 <x@gmail.test>: Recipient address rejected: User unknown",
                Failure::UnknownRecipient,
            ),
            (
                Some(552),
                "5.3.4 Message size exceeds fixed limit",
                Failure::Permanent,
            ),
            (
                Some(535),
                "5.7.8 Error: authentication failed: authentication failure",
                Failure::Credentials,
            ),
            (
                Some(535),
                "5.7.8 Username and Password not accepted",
                Failure::Credentials,
            ),
        ];
        for (code, text, want) in cases {
            assert_eq!(classify_reply(*code, text), *want, "{code:?} {text}");
        }
    }
}
