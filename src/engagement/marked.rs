//! Telling Hearth's marked mail in a mailbox, in the install's mark form (`warmup.mark`): the
//! FETCH items that read the mark, and the check of what a fetched message carries. The seed
//! scan, retention and the sender-mailbox scan all go through these (the SEARCH that finds
//! candidates is [`Marker::search_key`]), so none of them knows only one form.

use async_imap::types::Fetch;

use super::headers;
use crate::mark::{MarkMode, Marker};

/// The FETCH items that read the mark: UID, INTERNALDATE and the header fields a scan reads
/// (header mark), or the whole message (body mark: the mark is in the text, and warm-up mail
/// is small).
pub fn fetch_items(marker: &Marker) -> String {
    match marker.mode() {
        MarkMode::Body => "(UID INTERNALDATE BODY.PEEK[])".to_owned(),
        MarkMode::Header => format!(
            "(UID INTERNALDATE BODY.PEEK[HEADER.FIELDS ({})])",
            headers::fetch_fields(marker.header())
        ),
    }
}

/// What a fetched message's mark says.
pub enum Marked {
    /// No Message-ID, no mark, or not the part the mark is in: not Hearth's business.
    Unmarked,
    /// Carries a mark (the header, or the body's prefix) that does not verify.
    Forged,
    /// A genuine mark: the parsed headers and the Message-ID.
    Genuine(headers::SeenHeaders, String),
}

/// Checks the mark of a message fetched with [`fetch_items`] (or with the whole header, or
/// the whole message, as the mark form needs).
pub fn check_fetch(marker: &Marker, f: &Fetch) -> Marked {
    let raw = match marker.mode() {
        MarkMode::Body => f.body(),
        MarkMode::Header => f.header(),
    };
    raw.map_or(Marked::Unmarked, |raw| check_mark(marker, raw))
}

/// The part a FETCH response read off the connection ([`super::wire`]) holds the mark in:
/// the header (header mark) or the whole message (body mark).
pub fn wire_part<'a>(marker: &Marker, attrs: &super::wire::FetchAttrs<'a>) -> Option<&'a [u8]> {
    match marker.mode() {
        MarkMode::Header => attrs.header,
        MarkMode::Body => attrs.body,
    }
}

/// [`check_fetch`] for a FETCH response read off the connection.
pub fn check_wire(marker: &Marker, attrs: &super::wire::FetchAttrs<'_>) -> Marked {
    wire_part(marker, attrs).map_or(Marked::Unmarked, |raw| check_mark(marker, raw))
}

/// Checks the mark of `raw`: the message's headers (header mark), or the whole message (body
/// mark: the reference line in its text).
pub fn check_mark(marker: &Marker, raw: &[u8]) -> Marked {
    let mut seen = headers::parse(raw, marker.header());
    let Some(message_id) = seen.message_id.take() else {
        return Marked::Unmarked;
    };
    let genuine = match marker.mode() {
        MarkMode::Body => marker.verify_body(&message_id, &headers::body_text(raw)),
        MarkMode::Header => match &seen.mark {
            Some(mark) => marker.verify(&message_id, mark),
            None => return Marked::Unmarked,
        },
    };
    if genuine {
        Marked::Genuine(seen, message_id)
    } else {
        Marked::Forged
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_imap::imap_proto::{AttributeValue, MessageSection, SectionPath};

    #[test]
    fn header_mark_fetches_only_the_fields_it_reads() {
        let m = Marker::new("X-Hearth-Mark", b"s".to_vec());
        assert_eq!(
            fetch_items(&m),
            "(UID INTERNALDATE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID X-HEARTH-MARK AUTHENTICATION-RESULTS)])"
        );
        let b = m.with_mode(MarkMode::Body);
        assert_eq!(fetch_items(&b), "(UID INTERNALDATE BODY.PEEK[])");
    }

    /// What async-imap's `Fetch` accessors (`uid`, `internal_date`, `header()` / `body()`)
    /// read of imap-proto's parse, in the mark form of `marker`.
    fn as_async_imap_reads<'a>(
        marker: &Marker,
        attrs: &'a [AttributeValue<'a>],
    ) -> (Option<u32>, Option<&'a str>, Option<&'a [u8]>) {
        let (mut uid, mut date, mut marked) = (None, None, None);
        for a in attrs {
            match (a, marker.mode()) {
                (AttributeValue::Uid(u), _) => uid = uid.or(Some(*u)),
                (AttributeValue::InternalDate(d), _) => date = date.or(Some(d.as_ref())),
                (
                    AttributeValue::BodySection {
                        section: Some(SectionPath::Full(MessageSection::Header)),
                        data: Some(part),
                        ..
                    }
                    | AttributeValue::Rfc822Header(Some(part)),
                    MarkMode::Header,
                )
                | (
                    AttributeValue::BodySection {
                        section: None,
                        data: Some(part),
                        ..
                    }
                    | AttributeValue::Rfc822(Some(part)),
                    MarkMode::Body,
                ) => marked = marked.or(Some(part.as_ref())),
                _ => {}
            }
        }
        (uid, date, marked)
    }

    #[test]
    fn fetch_responses_are_read_as_async_imap_reads_them() {
        use super::super::wire;
        use async_imap::imap_proto::Response;
        let header = Marker::new("X-Hearth-Mark", b"s".to_vec());
        let body = header.clone().with_mode(MarkMode::Body);
        let fields = "Message-ID: <m1@sender.test>\r\n\r\n";
        let responses = [
            format!(
                "* 3 FETCH (UID 7 INTERNALDATE \"30-Nov-2026 09:12:40 +0000\" \
                 BODY[HEADER.FIELDS (MESSAGE-ID X-HEARTH-MARK)] {{{}}}\r\n{fields})\r\n",
                fields.len()
            ),
            "* 3 FETCH (UID 8 BODY[] {4}\r\nabcd)\r\n".to_owned(),
            "* 3 FETCH (FLAGS (\\Seen) UID 9 BODY[HEADER] \"X: y\" RFC822 NIL)\r\n".to_owned(),
            "* 4 FETCH (INTERNALDATE \" 1-Dec-2026 00:00:00 -0500\" RFC822.HEADER {2}\r\nab \
             BODY[1] {1}\r\nz)\r\n"
                .to_owned(),
        ];
        for raw in &responses {
            let (_, parsed) = Response::parse(raw.as_bytes()).unwrap();
            let Response::Fetch(_, attrs) = parsed else {
                panic!("{parsed:?}")
            };
            let wire::Response::Fetch(read) = wire::parse_response(raw.as_bytes()).unwrap() else {
                panic!("{raw}")
            };
            for marker in [&header, &body] {
                assert_eq!(
                    (read.uid, read.internal_date, wire_part(marker, &read)),
                    as_async_imap_reads(marker, &attrs),
                    "{raw}"
                );
            }
        }
        let wire::Response::Fetch(read) = wire::parse_response(responses[0].as_bytes()).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (read.uid, read.internal_date, wire_part(&header, &read)),
            (
                Some(7),
                Some("30-Nov-2026 09:12:40 +0000"),
                Some(fields.as_bytes())
            )
        );
        // The header is not where a body mark is.
        assert_eq!(wire_part(&body, &read), None);
        assert!(matches!(check_wire(&body, &read), Marked::Unmarked));
    }

    #[test]
    fn marks_are_checked_in_the_install_form() {
        let header = Marker::new("X-Hearth-Mark", b"s".to_vec());
        let body = header.clone().with_mode(MarkMode::Body);
        let id = "<m1@sender.test>";
        let msg = |headers: &str, text: &str| {
            format!("Message-ID: {id}\r\nSubject: hi\r\n{headers}\r\nHello.\r\n{text}").into_bytes()
        };
        let with_header = msg(&format!("X-Hearth-Mark: {}\r\n", header.token(id)), "");
        let with_line = msg("", &format!("\r\n{}\r\n", body.body_line(id)));
        let token = body.body_token(id);
        let (prefix, tag) = token.split_once('-').unwrap();
        let reversed: String = tag.chars().rev().collect();
        assert_ne!(reversed, tag);
        let wrong_tag = msg("", &format!("Ref {prefix}-{reversed}\r\n"));
        let no_id = b"Subject: no id\r\n\r\nHello.\r\n".to_vec();
        let cases: &[(&Marker, &[u8], &str)] = &[
            (&header, &with_header, "genuine"),
            (&header, &msg("X-Hearth-Mark: 00ff\r\n", ""), "forged"),
            (&header, &with_line, "unmarked"),
            (&header, &no_id, "unmarked"),
            (&body, &with_line, "genuine"),
            (&body, &wrong_tag, "forged"),
            (&body, &no_id, "unmarked"),
        ];
        for (i, (marker, raw, want)) in cases.iter().enumerate() {
            let got = match check_mark(marker, raw) {
                Marked::Unmarked => "unmarked",
                Marked::Forged => "forged",
                Marked::Genuine(_, got_id) => {
                    assert_eq!(got_id, id);
                    "genuine"
                }
            };
            assert_eq!(got, *want, "case {i}");
        }
    }
}
