//! Builds the RFC 5322 message for one outbox row: headers, text + HTML, the warm-up mark,
//! and the DKIM signature when the sender has a key.

use lettre::Message;
use lettre::message::dkim::{DkimConfig, DkimSigningKey};
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};

use crate::domain::{DomainName, EmailAddress};
use crate::mark::{Marker, bare_message_id};

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("invalid address {0}: {1}")]
    Address(String, String),
    #[error("invalid mark header name {0:?}")]
    HeaderName(String),
    #[error("cannot build message: {0}")]
    Build(String),
}

/// A fresh Message-ID in the sender's domain: `<uuid-v7@domain>`.
pub fn new_message_id(domain: &DomainName) -> String {
    format!("<{}@{}>", uuid::Uuid::now_v7().simple(), domain)
}

/// What goes into one message.
pub struct Outgoing<'a> {
    pub from: &'a EmailAddress,
    pub from_name: Option<&'a str>,
    pub to: &'a EmailAddress,
    pub message_id: &'a str,
    pub subject: &'a str,
    pub text: &'a str,
    pub html: &'a str,
    /// For replies: the Message-ID answered, and the References chain.
    pub in_reply_to: Option<&'a str>,
    pub references: Option<&'a str>,
}

pub struct Dkim<'a> {
    pub domain: &'a DomainName,
    pub selector: &'a str,
    pub key: DkimSigningKey,
}

/// The DKIM signer of a sender's messages.
///
/// relaxed/relaxed: lettre hashes its own DKIM-Signature header unfolded but writes it folded,
/// so `simple` header canonicalization (lettre's default) never verifies — the lab's rspamd
/// reported `dkim=fail`. Message-ID and the threading headers are signed too.
pub fn dkim_config(domain: &DomainName, selector: &str, key: DkimSigningKey) -> DkimConfig {
    use lettre::message::dkim::{DkimCanonicalization, DkimCanonicalizationType::Relaxed};
    let headers = [
        "From",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "In-Reply-To",
        "References",
    ]
    .into_iter()
    .map(HeaderName::new_from_ascii_str)
    .collect();
    DkimConfig::new(
        selector.to_owned(),
        domain.to_string(),
        key,
        headers,
        DkimCanonicalization {
            header: Relaxed,
            body: Relaxed,
        },
    )
}

fn mailbox(addr: &EmailAddress, name: Option<&str>) -> Result<Mailbox, BuildError> {
    let email = addr
        .to_string()
        .parse()
        .map_err(|e: lettre::address::AddressError| {
            BuildError::Address(addr.to_string(), e.to_string())
        })?;
    Ok(Mailbox::new(name.map(str::to_owned), email))
}

pub fn build(
    out: &Outgoing<'_>,
    marker: &Marker,
    dkim: Option<Dkim<'_>>,
) -> Result<Message, BuildError> {
    let mut builder = Message::builder()
        .from(mailbox(out.from, out.from_name)?)
        .to(mailbox(out.to, None)?)
        .subject(out.subject)
        .message_id(Some(out.message_id.to_owned()))
        .date_now();
    if let Some(r) = out.in_reply_to {
        builder = builder.in_reply_to(r.to_owned());
    }
    if let Some(r) = out.references {
        builder = builder.references(r.to_owned());
    }
    let mut msg = builder
        .multipart(MultiPart::alternative_plain_html(
            out.text.to_owned(),
            out.html.to_owned(),
        ))
        .map_err(|e| BuildError::Build(e.to_string()))?;
    let name = HeaderName::new_from_ascii(marker.header().to_owned())
        .map_err(|_| BuildError::HeaderName(marker.header().to_owned()))?;
    msg.headers_mut().insert_raw(HeaderValue::new(
        name,
        marker.token(bare_message_id(out.message_id)),
    ));
    if let Some(d) = dkim {
        let cfg = dkim_config(d.domain, d.selector, d.key);
        msg.sign(&cfg);
    }
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_marked_message() {
        let from = EmailAddress::parse("hello@sender.test").unwrap();
        let to = EmailAddress::parse("seed1@gmail.test").unwrap();
        let id = new_message_id(from.domain());
        let marker = Marker::new("X-Hearth-Mark", b"k".to_vec());
        let msg = build(
            &Outgoing {
                from: &from,
                from_name: Some("Hello"),
                to: &to,
                message_id: &id,
                subject: "Hi",
                text: "plain",
                html: "<p>html</p>",
                in_reply_to: None,
                references: None,
            },
            &marker,
            None,
        )
        .unwrap();
        let raw = String::from_utf8(msg.formatted()).unwrap();
        assert!(raw.contains(&format!("Message-ID: {id}")));
        assert!(raw.contains(&format!(
            "X-Hearth-Mark: {}",
            marker.token(bare_message_id(&id))
        )));
        assert!(raw.contains("multipart/alternative"));
    }
}
