//! Builds the RFC 5322 message for one outbox row: headers, text + HTML, the warm-up mark,
//! and the DKIM signature when the sender has a key.

use lettre::Message;
use lettre::address::{Address, Envelope};
use lettre::message::dkim::{DkimConfig, DkimSigningKey};
use lettre::message::header::{self, ContentTransferEncoding, HeaderName, HeaderValue, Headers};
use lettre::message::{Body, Mailbox};
use rand::RngExt as _;

use crate::domain::{DomainName, EmailAddress};
use crate::mark::{MarkMode, Marker, bare_message_id};

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("invalid address {0}: {1}")]
    Address(String, String),
    #[error("invalid mark header name {0:?}")]
    HeaderName(String),
    #[error("cannot build message: {0}")]
    Build(String),
}

/// A fresh Message-ID in the sender's domain, `<uuid-v7@domain>`, for a message that has its
/// Message-ID before any claim (tools, tests; warm-up rows get theirs from the outbox claim,
/// in SQL, of the same shape: 32 hex digits, the time first so that the outbox's unique index
/// grows at its end). The 74 random bits come from the thread's generator.
pub fn new_message_id(domain: &DomainName) -> String {
    // The wall clock, not the scalable `Clock`: this time decides nothing, it only keeps the
    // index's insertions at its end (as `Uuid::now_v7` did).
    #[allow(clippy::disallowed_methods)]
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let id =
        uuid::Builder::from_unix_timestamp_millis(millis, &rand::random::<[u8; 10]>()).into_uuid();
    format!("<{}@{}>", id.simple(), domain)
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

/// A message ready for the relay: its envelope and its bytes (CRLF lines, not dot-stuffed).
pub struct Built {
    pub envelope: Envelope,
    pub bytes: Vec<u8>,
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

fn address(addr: &EmailAddress) -> Result<Address, BuildError> {
    addr.to_string()
        .parse()
        .map_err(|e: lettre::address::AddressError| {
            BuildError::Address(addr.to_string(), e.to_string())
        })
}

/// Builds the message: headers, then `multipart/alternative` of the text and its HTML, each
/// part quoted-printable; the warm-up mark; the DKIM signature when `dkim` is given.
///
/// Without DKIM, and when every header is plain ASCII that needs no encoding or folding (the
/// usual warm-up message), the bytes are written here in one pass, exactly as lettre would
/// write them (a test holds the two to that). Otherwise lettre's builder writes the headers
/// (RFC 2047 words, folding) and signs.
pub fn build(
    out: &Outgoing<'_>,
    marker: &Marker,
    dkim: Option<&DkimConfig>,
) -> Result<Built, BuildError> {
    build_with(out, marker, dkim, &new_boundary(), None)
}

/// 40 random letters and digits (as lettre's boundaries), from one draw of random bytes.
fn new_boundary() -> String {
    const ALPHANUMERIC: &[u8; 62] =
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 40];
    rand::rng().fill(&mut bytes[..]);
    bytes
        .iter()
        .map(|b| char::from(ALPHANUMERIC[usize::from(*b) % ALPHANUMERIC.len()]))
        .collect()
}

/// [`build`] with a given boundary, and (tests) a given `Date:` line instead of now.
fn build_with(
    out: &Outgoing<'_>,
    marker: &Marker,
    dkim: Option<&DkimConfig>,
    boundary: &str,
    date_line: Option<&str>,
) -> Result<Built, BuildError> {
    let (text, html);
    let (out, mark) = match marker.mode() {
        MarkMode::Header => (
            out,
            Some((
                HeaderName::new_from_ascii(marker.header().to_owned())
                    .map_err(|_| BuildError::HeaderName(marker.header().to_owned()))?,
                marker.token(bare_message_id(out.message_id)),
            )),
        ),
        // A reference line after the signature; in the HTML a small grey footer.
        MarkMode::Body => {
            let line = marker.body_line(out.message_id);
            text = format!("{}\n{line}\n", out.text);
            html = format!(
                "{}<p style=\"color:#888888;font-size:11px\">{line}</p>\n",
                out.html
            );
            (
                &Outgoing {
                    text: &text,
                    html: &html,
                    ..*out
                },
                None,
            )
        }
    };
    let parts = Parts {
        from: address(out.from)?,
        to: address(out.to)?,
        mark,
    };
    if dkim.is_none() && plain_headers(out, &parts.from, &parts.to) {
        Ok(write_plain(out, parts, boundary, date_line))
    } else {
        with_lettre(out, parts, boundary, date_line, dkim)
    }
}

/// What both ways of writing a message need.
struct Parts {
    from: Address,
    to: Address,
    /// The mark header (none when the mark is in the body).
    mark: Option<(HeaderName, String)>,
}

/// The headers written here (see [`plain_headers`]), in lettre's order and form.
fn write_plain(out: &Outgoing<'_>, p: Parts, boundary: &str, date_line: Option<&str>) -> Built {
    let Parts { from, to, mark } = p;
    let envelope = Envelope::new(Some(from.clone()), vec![to.clone()])
        .expect("an envelope with a sender and a recipient");
    fn line(bytes: &mut Vec<u8>, name: &str, value: &[&str]) {
        bytes.extend_from_slice(name.as_bytes());
        bytes.extend_from_slice(b": ");
        for v in value {
            bytes.extend_from_slice(v.as_bytes());
        }
        bytes.extend_from_slice(b"\r\n");
    }
    let (from, to) = (text(&from), text(&to));
    let mut bytes = Vec::with_capacity(768 + (out.text.len() + out.html.len()) * 21 / 20);
    match out.from_name {
        // As lettre (email-encoding's quoted_string): a name of these bytes is written as it
        // is, one with spaces too in quotes.
        Some(name) if name.bytes().all(atom) => line(&mut bytes, "From", &[name, " <", from, ">"]),
        Some(name) => line(&mut bytes, "From", &["\"", name, "\" <", from, ">"]),
        None => line(&mut bytes, "From", &[from]),
    }
    line(&mut bytes, "To", &[to]);
    line(&mut bytes, "Subject", &[out.subject]);
    line(&mut bytes, "Message-ID", &[out.message_id]);
    match date_line {
        Some(d) => bytes.extend_from_slice(d.as_bytes()),
        None => push_date_line(&mut bytes),
    }
    line(&mut bytes, "MIME-Version", &["1.0"]);
    line(
        &mut bytes,
        "Content-Type",
        &["multipart/alternative;\r\n boundary=\"", boundary, "\""],
    );
    line(&mut bytes, "Content-Transfer-Encoding", &["7bit"]);
    if let Some((name, value)) = &mark {
        line(&mut bytes, name, &[value]);
    }
    bytes.extend_from_slice(b"\r\n");
    push_alternative(&mut bytes, boundary, out.text, out.html);
    Built { envelope, bytes }
}

fn text(a: &Address) -> &str {
    a.as_ref()
}

/// A display name of these bytes is written unquoted.
fn atom(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')
}

/// lettre's builder writes the headers (RFC 2047 words, folding) and signs.
fn with_lettre(
    out: &Outgoing<'_>,
    p: Parts,
    boundary: &str,
    date_line: Option<&str>,
    dkim: Option<&DkimConfig>,
) -> Result<Built, BuildError> {
    let Parts { from, to, mark } = p;
    let envelope = Envelope::new(Some(from.clone()), vec![to.clone()])
        .map_err(|e| BuildError::Build(e.to_string()))?;
    let mut body = Vec::with_capacity(256 + (out.text.len() + out.html.len()) * 21 / 20);
    push_alternative(&mut body, boundary, out.text, out.html);
    let mut builder = Message::builder()
        // Given, so that lettre does not parse it back out of the From and To headers.
        .envelope(envelope)
        .from(Mailbox::new(out.from_name.map(str::to_owned), from))
        .to(Mailbox::new(None, to))
        .subject(out.subject)
        .message_id(Some(out.message_id.to_owned()));
    builder = match date_line {
        Some(d) => {
            let d = d.trim_start_matches("Date: ").trim_end().to_owned();
            builder.raw_header(HeaderValue::dangerous_new_pre_encoded(
                HeaderName::new_from_ascii_str("Date"),
                d.clone(),
                d,
            ))
        }
        None => builder.date_now(),
    };
    if let Some(r) = out.in_reply_to {
        builder = builder.in_reply_to(r.to_owned());
    }
    if let Some(r) = out.references {
        builder = builder.references(r.to_owned());
    }
    // The boundary is ASCII letters and digits: nothing to encode.
    let content_type = HeaderValue::dangerous_new_pre_encoded(
        HeaderName::new_from_ascii_str("Content-Type"),
        format!("multipart/alternative; boundary=\"{boundary}\""),
        format!("multipart/alternative;\r\n boundary=\"{boundary}\""),
    );
    let mut msg = builder
        .header(header::MIME_VERSION_1_0)
        .raw_header(content_type)
        // Quoted-printable parts: the whole body is ASCII, lines of at most 76 characters.
        .body(Body::dangerous_pre_encoded(
            body,
            ContentTransferEncoding::SevenBit,
        ))
        .map_err(|e| BuildError::Build(e.to_string()))?;
    if let Some((name, value)) = mark {
        msg.headers_mut().insert_raw(HeaderValue::new(name, value));
    }
    if let Some(cfg) = dkim {
        msg.sign(cfg);
    }
    Ok(Built {
        envelope: msg.envelope().clone(),
        bytes: msg.formatted(),
    })
}

/// Appends the `Date:` line for now, as lettre writes it (formatted once a second, per
/// thread).
fn push_date_line(out: &mut Vec<u8>) {
    thread_local! {
        static LAST: std::cell::RefCell<Option<(header::Date, String)>> =
            const { std::cell::RefCell::new(None) };
    }
    let now = header::Date::now();
    LAST.with_borrow_mut(|last| {
        if !matches!(last, Some((date, _)) if *date == now) {
            let mut headers = Headers::new();
            headers.set(now);
            *last = Some((now, headers.to_string()));
        }
        if let Some((_, line)) = last {
            out.extend_from_slice(line.as_bytes());
        }
    });
}

/// Whether lettre would write these headers exactly as given: no reply headers, ASCII
/// addresses, a display name and subject of plain words (letters, digits; printable ASCII for
/// the subject) separated by single spaces, nothing that looks like an encoded word, and every
/// line short enough not to be folded.
fn plain_headers(out: &Outgoing<'_>, from: &Address, to: &Address) -> bool {
    fn words(s: &str, ok: impl Fn(u8) -> bool) -> bool {
        !s.is_empty()
            && s.split(' ').all(|w| !w.is_empty() && w.bytes().all(&ok))
            && !s.contains("=?")
    }
    let from_len = match out.from_name {
        Some(name) if name.bytes().all(atom) && !name.is_empty() => {
            name.len() + text(from).len() + 3
        }
        Some(name) if words(name, atom) => name.len() + text(from).len() + 5,
        Some(_) => return false,
        None => text(from).len(),
    };
    out.in_reply_to.is_none()
        && out.references.is_none()
        && text(from).is_ascii()
        && text(to).is_ascii()
        && words(out.subject, |b| b.is_ascii_graphic())
        && out.message_id.bytes().all(|b| b.is_ascii_graphic())
        && "From: ".len() + from_len <= 78
        && "To: ".len() + text(to).len() <= 78
        && "Subject: ".len() + out.subject.len() <= 78
        && "Message-ID: ".len() + out.message_id.len() <= 78
}

/// Appends the `multipart/alternative` body: the text part, then the HTML part.
fn push_alternative(out: &mut Vec<u8>, boundary: &str, text: &str, html: &str) {
    for (kind, content) in [("plain", text), ("html", html)] {
        out.extend_from_slice(b"--");
        out.extend_from_slice(boundary.as_bytes());
        out.extend_from_slice(b"\r\nContent-Type: text/");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(
            b"; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n",
        );
        push_quoted_printable(out, content);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"--");
    out.extend_from_slice(boundary.as_bytes());
    out.extend_from_slice(b"--\r\n");
}

/// Appends `text` quoted-printable (RFC 2045 §6.7): line ends become CRLF; `=`, control and
/// non-ASCII bytes, and a blank ending a line, become `=XX`; longer lines are cut with a soft
/// break (`=`) so that none exceeds 76 characters.
fn push_quoted_printable(out: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut lines = text.split('\n').peekable();
    while let Some(line) = lines.next() {
        let line = line.strip_suffix('\r').unwrap_or(line).as_bytes();
        let mut column = 0;
        let mut i = 0;
        while i < line.len() {
            // A run of bytes written as they are (printable ASCII but `=`), up to the soft
            // break's column.
            let end = line.len().min(i + 75 - column);
            let mut j = i;
            while j < end && matches!(line[j], 33..=60 | 62..=126) {
                j += 1;
            }
            if j > i {
                out.extend_from_slice(&line[i..j]);
                column += j - i;
                i = j;
                continue;
            }
            let b = line[i];
            let literal = matches!(b, b' ' | b'\t') && i + 1 < line.len();
            let width = if literal { 1 } else { 3 };
            // 75 characters and the soft break's `=`.
            if column + width > 75 {
                out.extend_from_slice(b"=\r\n");
                column = 0;
                continue;
            }
            if literal {
                out.push(b);
            } else {
                out.extend_from_slice(&[b'=', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
            }
            column += width;
            i += 1;
        }
        if lines.peek().is_some() {
            out.extend_from_slice(b"\r\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outgoing<'a>(
        from: &'a EmailAddress,
        to: &'a EmailAddress,
        id: &'a str,
        subject: &'a str,
    ) -> Outgoing<'a> {
        Outgoing {
            from,
            from_name: Some("Hello from Sender"),
            to,
            message_id: id,
            subject,
            text: "Hi Ann,\n\nA line = with an equals sign, then long enough to need a soft break somewhere past the seventy-sixth column.\n\nBest,\nBo\n",
            html: "<p>Hi Ann,</p>\n<p>Caf\u{e9} &amp; more </p>\n",
            in_reply_to: None,
            references: None,
        }
    }

    #[test]
    fn builds_marked_message() {
        let from = EmailAddress::parse("hello@sender.test").unwrap();
        let to = EmailAddress::parse("seed1@gmail.test").unwrap();
        let id = new_message_id(from.domain());
        let marker = Marker::new("X-Hearth-Mark", b"k".to_vec());
        let msg = build(&outgoing(&from, &to, &id, "Hi"), &marker, None).unwrap();
        let raw = String::from_utf8(msg.bytes).unwrap();
        assert!(raw.contains(&format!("Message-ID: {id}\r\n")));
        assert!(raw.contains(&format!(
            "X-Hearth-Mark: {}\r\n",
            marker.token(bare_message_id(&id))
        )));
        assert!(raw.contains("multipart/alternative"));
        assert!(raw.contains("\r\nDate: ") && raw.contains(" +0000\r\n"));
        assert_eq!(
            msg.envelope.from().unwrap().to_string(),
            "hello@sender.test"
        );
        assert_eq!(msg.envelope.to()[0].to_string(), "seed1@gmail.test");
    }

    #[test]
    fn body_marked_message_has_the_line_and_no_header() {
        let from = EmailAddress::parse("hello@sender.test").unwrap();
        let to = EmailAddress::parse("seed1@gmail.test").unwrap();
        let id = new_message_id(from.domain());
        let marker = Marker::new("X-Hearth-Mark", b"k".to_vec()).with_mode(MarkMode::Body);
        for dkim in [false, true] {
            let key = dkim.then(|| {
                let k = lettre::message::dkim::DkimSigningKey::new(
                    "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=",
                    lettre::message::dkim::DkimSigningAlgorithm::Ed25519,
                )
                .unwrap();
                dkim_config(&"sender.test".parse().unwrap(), "s", k)
            });
            let msg = build(&outgoing(&from, &to, &id, "Hi"), &marker, key.as_ref()).unwrap();
            let raw = String::from_utf8(msg.bytes).unwrap();
            assert!(!raw.contains("X-Hearth-Mark"));
            let parsed = mail_parser::MessageParser::default()
                .parse(raw.as_bytes())
                .unwrap();
            let text = parsed.body_text(0).unwrap().replace("\r\n", "\n");
            assert!(
                text.ends_with(&format!("Bo\n\n{}\n", marker.body_line(&id))),
                "{text}"
            );
            assert!(marker.verify_body(&id, &text));
            let html = parsed.body_html(0).unwrap();
            assert!(html.contains(&marker.body_token(&id)));
        }
    }

    /// The message written here is byte for byte the one lettre writes.
    #[test]
    fn plain_headers_are_written_as_lettre_writes_them() {
        let from = EmailAddress::parse("hello@sender.test").unwrap();
        let to = EmailAddress::parse("seed1@gmail.test").unwrap();
        let id = new_message_id(from.domain());
        let marker = Marker::new("X-Hearth-Mark", b"k".to_vec());
        let date = "Date: Sun, 29 Nov 2026 14:50:34 +0000\r\n";
        let boundary = "C15Ow1AxfAS66Zh5ja9v8gRYrXBew0TtOQ7ORB3c";
        let generated: Vec<String> = (0..200)
            .map(|_| crate::sender::content::subject())
            .collect();
        let mut cases = vec![
            (
                Some("Hello from Sender"),
                "Quick question about the budget draft",
            ),
            (None, "Thoughts on Friday's workshop?"),
            (Some("Bo"), "Re-checking the {topic} plan, 100% (really) #1"),
            (Some("Ann-Lee_2.0"), "Idea for the garden project"),
            (
                Some("Ann Lee-Smith"),
                "Can we talk about next week's offsite?",
            ),
        ];
        // Every subject of the corpus but the one with a dash (an RFC 2047 word, lettre's).
        cases.extend(
            generated
                .iter()
                .filter(|s| s.is_ascii())
                .map(|s| (Some("Hello from Sender"), s.as_str())),
        );
        for (name, subject) in cases {
            let out = Outgoing {
                from_name: name,
                ..outgoing(&from, &to, &id, subject)
            };
            let parts = || Parts {
                from: address(&from).unwrap(),
                to: address(&to).unwrap(),
                mark: Some((
                    HeaderName::new_from_ascii(marker.header().to_owned()).unwrap(),
                    marker.token(&id),
                )),
            };
            assert!(plain_headers(&out, &parts().from, &parts().to), "{subject}");
            let ours = write_plain(&out, parts(), boundary, Some(date));
            let lettre = with_lettre(&out, parts(), boundary, Some(date), None).unwrap();
            assert_eq!(
                String::from_utf8(ours.bytes).unwrap(),
                String::from_utf8(lettre.bytes).unwrap()
            );
            assert_eq!(ours.envelope, lettre.envelope);
        }
    }

    #[test]
    fn other_headers_go_through_lettre() {
        let from = EmailAddress::parse("hello@sender.test").unwrap();
        let to = EmailAddress::parse("seed1@gmail.test").unwrap();
        let id = new_message_id(from.domain());
        let marker = Marker::new("X-Hearth-Mark", b"k".to_vec());
        let plain = |out: &Outgoing<'_>| {
            plain_headers(out, &address(&from).unwrap(), &address(&to).unwrap())
        };
        let dash = outgoing(&from, &to, &id, "The budget draft \u{2014} a small update");
        assert!(!plain(&dash));
        let raw = String::from_utf8(build(&dash, &marker, None).unwrap().bytes).unwrap();
        assert!(raw.contains("Subject: The budget draft =?utf-8?b?4oCU?= a small update\r\n"));
        let named = Outgoing {
            from_name: Some("Zo\u{eb} \"Z\" Lee"),
            ..outgoing(&from, &to, &id, "Hi")
        };
        assert!(!plain(&named));
        let reply = Outgoing {
            in_reply_to: Some("<a@b>"),
            references: Some("<a@b>"),
            ..outgoing(&from, &to, &id, "Hi")
        };
        assert!(!plain(&reply));
        let raw = String::from_utf8(build(&reply, &marker, None).unwrap().bytes).unwrap();
        assert!(raw.contains("In-Reply-To: <a@b>\r\n") && raw.contains("References: <a@b>\r\n"));
        let long = "word ".repeat(20);
        assert!(!plain(&outgoing(&from, &to, &id, long.trim())));
        assert!(!plain(&outgoing(&from, &to, &id, "two  spaces")));
        assert!(!plain(&outgoing(&from, &to, &id, "=?utf-8?q?x?=")));
    }

    #[test]
    fn quoted_printable() {
        let qp = |s: &str| {
            let mut out = Vec::new();
            push_quoted_printable(&mut out, s);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(qp("a=b\nc \nd\t\n"), "a=3Db\r\nc=20\r\nd=09\r\n");
        assert_eq!(qp("caf\u{e9}\r\n."), "caf=C3=A9\r\n.");
        assert_eq!(qp("in the middle of a line"), "in the middle of a line");
        let long = qp(&"x".repeat(200));
        assert!(long.split("\r\n").all(|l| l.len() <= 76), "{long}");
        assert_eq!(long.replace("=\r\n", ""), "x".repeat(200));
        // An escape is never cut by a soft break.
        let escapes = qp(&"\u{e9}".repeat(60));
        for l in escapes.split("\r\n") {
            assert!(
                l.len() <= 76 && (l.len() - usize::from(l.ends_with('='))) % 3 == 0,
                "{l}"
            );
        }
    }
}
