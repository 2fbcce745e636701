//! Reading what a receiver wrote on a message: its Message-ID, Hearth's mark, and the
//! receiver's verdicts in `Authentication-Results` (RFC 8601).

use mail_parser::MessageParser;

/// The header fields a scan fetches (`BODY.PEEK[HEADER.FIELDS (...)]`): the ones [`parse`]
/// reads, nothing more (the arrival time is the message's INTERNALDATE).
pub fn fetch_fields(mark_header: &str) -> String {
    format!(
        "MESSAGE-ID {} AUTHENTICATION-RESULTS",
        mark_header.to_ascii_uppercase()
    )
}

/// What a scan learns from one message's headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeenHeaders {
    pub message_id: Option<String>,
    pub mark: Option<String>,
    /// Every `Authentication-Results` field, topmost (the receiver's own) first.
    pub auth_results: Vec<String>,
}

impl SeenHeaders {
    /// The receiver's own verdicts: those of the topmost `Authentication-Results`.
    pub fn verdicts(&self) -> AuthVerdicts {
        self.auth_results
            .first()
            .map(|v| auth_verdicts(v))
            .unwrap_or_default()
    }

    /// The `Authentication-Results` fields as the ledger keeps them, one per line, topmost
    /// first (None without any); taken out, not copied.
    pub fn take_auth_results(&mut self) -> Option<String> {
        let mut all = std::mem::take(&mut self.auth_results);
        match all.len() {
            0 => None,
            1 => all.pop(),
            _ => Some(all.join("\n")),
        }
    }
}

/// Reads the Message-ID, the mark and the `Authentication-Results` fields of a header block
/// (or of a whole message: reading stops at the blank line).
///
/// A scan reads a thousand of these in one FETCH, beside the server's own work, so the usual
/// shape is read directly: fields `Name: value` with folded continuation lines, and a
/// Message-ID that is one `<id>`. Anything else (a line that is no field, an ID with comments,
/// quotes or several IDs) is read by mail-parser, as every message once was, with the same
/// results.
pub fn parse(raw: &[u8], mark_header: &str) -> SeenHeaders {
    parse_plain(raw, mark_header).unwrap_or_else(|| parse_full(raw, mark_header))
}

/// [`parse`] for the usual shape; `None` where it is not.
fn parse_plain(raw: &[u8], mark_header: &str) -> Option<SeenHeaders> {
    let mut out = SeenHeaders::default();
    let mut message_id = None;
    for field in Fields(raw) {
        let (name, value) = field?;
        if name.eq_ignore_ascii_case(b"Message-ID") {
            // The last one counts, as with mail-parser.
            message_id = Some(value);
        } else if name.eq_ignore_ascii_case(mark_header.as_bytes()) {
            out.mark = Some(unfold_bytes(value));
        } else if name.eq_ignore_ascii_case(b"Authentication-Results") {
            out.auth_results.push(unfold_bytes(value));
        }
    }
    if let Some(value) = message_id {
        let id = value.trim_ascii().strip_prefix(b"<")?.strip_suffix(b">")?;
        let plain = !id.is_empty()
            && id.iter().all(|b| {
                b.is_ascii_graphic() && !matches!(b, b'<' | b'>' | b'(' | b')' | b'"' | b'\\')
            });
        if !plain {
            return None;
        }
        // Built by hand: `format!` costs more than the rest of the parse.
        let id = std::str::from_utf8(id).ok()?;
        let mut bracketed = String::with_capacity(id.len() + 2);
        bracketed.push('<');
        bracketed.push_str(id);
        bracketed.push('>');
        out.message_id = Some(bracketed);
    }
    Some(out)
}

/// The header fields of `raw` as (name, value with its folds), up to the blank line or the
/// end; `Some(None)` for a line that is not a field (read by mail-parser instead).
struct Fields<'a>(&'a [u8]);

impl<'a> Iterator for Fields<'a> {
    type Item = Option<(&'a [u8], &'a [u8])>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.0;
        if rest.is_empty() || rest.starts_with(b"\r\n") || rest.starts_with(b"\n") {
            return None;
        }
        // The field ends at the first line break not followed by a fold.
        let mut end = rest.len();
        let mut next = rest.len();
        let mut at = 0;
        while let Some(i) = rest[at..].iter().position(|&b| b == b'\n') {
            let nl = at + i;
            if matches!(rest.get(nl + 1), Some(b' ' | b'\t')) {
                at = nl + 1;
                continue;
            }
            end = if nl > 0 && rest[nl - 1] == b'\r' {
                nl - 1
            } else {
                nl
            };
            next = nl + 1;
            break;
        }
        let field = &rest[..end];
        self.0 = &rest[next..];
        let Some(colon) = field.iter().position(|&b| b == b':') else {
            return Some(None);
        };
        let name = &field[..colon];
        if name.is_empty() || !name.iter().all(|b| b.is_ascii_graphic()) {
            return Some(None);
        }
        Some(Some((name, &field[colon + 1..])))
    }
}

/// [`parse`] by mail-parser: any shape it understands.
fn parse_full(raw: &[u8], mark_header: &str) -> SeenHeaders {
    let Some(msg) = MessageParser::default().parse_headers(raw) else {
        return SeenHeaders::default();
    };
    let mut out = SeenHeaders {
        message_id: msg.message_id().map(|s| format!("<{s}>")),
        ..Default::default()
    };
    for h in msg.headers() {
        let name = h.name();
        let text = || {
            let start = h.offset_start() as usize;
            let end = h.offset_end() as usize;
            raw.get(start..end).map(unfold_bytes).unwrap_or_default()
        };
        if name.eq_ignore_ascii_case(mark_header) {
            out.mark = Some(text());
        } else if name.eq_ignore_ascii_case("Authentication-Results") {
            out.auth_results.push(text());
        }
    }
    out
}

/// The decoded text of a whole message: its text parts, then its HTML parts (where a body
/// mark is looked for).
pub fn body_text(raw: &[u8]) -> String {
    let Some(msg) = MessageParser::default().parse(raw) else {
        return String::new();
    };
    let mut out = String::new();
    for i in 0..msg.text_body_count() {
        out.extend(msg.body_text(i));
        out.push('\n');
    }
    for i in 0..msg.html_body_count() {
        out.extend(msg.body_html(i));
        out.push('\n');
    }
    out
}

/// A header's value on one line, runs of white space (folds included) as one space.
fn unfold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// [`unfold`] of raw header bytes (not UTF-8 in places: replaced, as `from_utf8_lossy` does).
fn unfold_bytes(raw: &[u8]) -> String {
    if !raw.is_ascii() {
        return unfold(&String::from_utf8_lossy(raw));
    }
    // ASCII's white space is `char::is_whitespace`'s: the same words, copied a word at a time.
    let mut out = Vec::with_capacity(raw.len());
    let words = raw
        .split(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c'))
        .filter(|w| !w.is_empty());
    for word in words {
        if !out.is_empty() {
            out.push(b' ');
        }
        out.extend_from_slice(word);
    }
    String::from_utf8(out).unwrap_or_default()
}

/// The receiver's SPF, DKIM and DMARC results from one `Authentication-Results` value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthVerdicts {
    pub spf: Option<String>,
    pub dkim: Option<String>,
    pub dmarc: Option<String>,
}

pub fn auth_verdicts(value: &str) -> AuthVerdicts {
    let mut v = AuthVerdicts::default();
    // Results are `method=result` tokens after the authserv-id; comments are in parentheses.
    let cleaned: std::borrow::Cow<'_, str> = if value.contains(['(', ')']) {
        // Parentheses are ASCII: dropping them and what they enclose byte by byte keeps whole
        // characters.
        let mut depth = 0usize;
        let kept: Vec<u8> = value
            .bytes()
            .filter(|b| match b {
                b'(' => {
                    depth += 1;
                    false
                }
                b')' => {
                    depth = depth.saturating_sub(1);
                    false
                }
                _ => depth == 0,
            })
            .collect();
        String::from_utf8(kept).unwrap_or_default().into()
    } else {
        value.into()
    };
    for token in cleaned.split([';', ' ', '\t']) {
        let Some((method, result)) = token.split_once('=') else {
            continue;
        };
        let method = method.trim();
        let slot = if method.eq_ignore_ascii_case("spf") {
            &mut v.spf
        } else if method.eq_ignore_ascii_case("dkim") {
            &mut v.dkim
        } else if method.eq_ignore_ascii_case("dmarc") {
            &mut v.dmarc
        } else {
            continue;
        };
        let result = result.trim().to_ascii_lowercase();
        // The first result per method wins (a DKIM pass beside a failing second signature).
        if slot.is_none() || (slot.as_deref() != Some("pass") && result == "pass") {
            *slot = Some(result);
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fetched_headers() {
        let raw = b"Message-ID: <abc@sender.test>\r\nX-Hearth-Mark: 0123abcd\r\nAuthentication-Results: mx.gmail.test;\r\n\tdkim=pass header.d=sender.test;\r\n\tspf=pass (sender IP is 192.0.2.10) smtp.mailfrom=sender.test;\r\n\tdmarc=pass (policy=quarantine) header.from=sender.test\r\n\r\n";
        let h = parse(raw, "X-Hearth-Mark");
        assert_eq!(h.message_id.as_deref(), Some("<abc@sender.test>"));
        assert_eq!(h.mark.as_deref(), Some("0123abcd"));
        assert_eq!(h.auth_results.len(), 1);
        let v = auth_verdicts(&h.auth_results[0]);
        assert_eq!(v.spf.as_deref(), Some("pass"));
        assert_eq!(v.dkim.as_deref(), Some("pass"));
        assert_eq!(v.dmarc.as_deref(), Some("pass"));
    }

    #[test]
    fn the_topmost_results_give_the_verdicts_and_all_are_kept() {
        let raw = b"Message-ID: <a@b>\r\nAuthentication-Results: mx.seed.test; spf=fail; dmarc=fail\r\nAuthentication-Results: relay.test; spf=pass\r\n\r\n";
        let mut h = parse(raw, "X-Hearth-Mark");
        let v = h.verdicts();
        assert_eq!(
            (v.spf.as_deref(), v.dkim, v.dmarc.as_deref()),
            (Some("fail"), None, Some("fail"))
        );
        assert_eq!(
            h.take_auth_results().as_deref(),
            Some("mx.seed.test; spf=fail; dmarc=fail\nrelay.test; spf=pass")
        );
        assert_eq!(h.take_auth_results(), None);
        assert_eq!(h.verdicts(), AuthVerdicts::default());
        let mut one = parse(b"Authentication-Results: mx; dkim=pass\r\n\r\n", "X");
        assert_eq!(one.take_auth_results().as_deref(), Some("mx; dkim=pass"));
    }

    #[test]
    fn the_direct_reading_agrees_with_mail_parser() {
        let cases: &[&[u8]] = &[
            b"Message-ID: <abc@sender.test>\r\nX-Hearth-Mark: 0123abcd\r\nAuthentication-Results: mx.test;\r\n\tdkim=pass header.d=a.test;\r\n spf=pass (ok) smtp.mailfrom=a.test\r\n\r\n",
            b"message-id:<abc@sender.test>\nx-hearth-mark:   0123abcd  \nAuthentication-Results: one; spf=fail\nAuthentication-Results: two; spf=pass\n\n",
            b"Message-ID: <first@a.test>\r\nMessage-ID: <second@a.test>\r\n\r\n",
            b"Message-ID: <id@a.test> (a comment)\r\nX-Hearth-Mark: 1\r\n\r\n",
            b"Message-ID: <a@b> <c@d>\r\n\r\n",
            b"Message-ID: bare@a.test\r\n\r\n",
            b"Message-ID: <\"quoted local\"@a.test>\r\n\r\n",
            b"Message-ID:\r\n <folded@a.test>\r\nX-Hearth-Mark: 2\r\n\r\n",
            b"Subject: no id\r\nX-Hearth-Mark: 3\r\n\r\n",
            b"Authentication-Results: mx.test; spf=pass smtp.mailfrom=\xc3\xa9t\xc3\xa9.test\r\nMessage-ID: <u@a.test>\r\n\r\n",
            b"Authentication-Results: mx.test; spf=pass \xff\xfe broken\r\nMessage-ID: <v@a.test>\r\n\r\n",
            b"X-Hearth-Mark:\r\nMessage-ID: <w@a.test>\r\n\r\n",
            b"Message-ID: <x@a.test>\r\nX-Hearth-Mark: 4\r\n\r\nMessage-ID: <in-the-body@a.test>\r\nX-Hearth-Mark: 5\r\n",
            b"not a field\r\nMessage-ID: <y@a.test>\r\n\r\n",
            b"Message-ID: <z@a.test>\r\nX-Hearth-Mark: 6",
            b"MESSAGE-ID: <a@[127.0.0.1]>\r\n\r\n",
            b"Message-Id: \t<a.b+c=d/e%f!#$&'*^_`{|}~@x.test> \t\r\n\r\n",
            b"Message-ID: <>\r\n\r\n",
            b"Message-ID: <no-at-sign>\r\n\r\n",
            b"",
        ];
        for raw in cases {
            let want = parse_full(raw, "X-Hearth-Mark");
            assert_eq!(
                parse(raw, "X-Hearth-Mark"),
                want,
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
        // The usual shape is read without mail-parser.
        assert!(parse_plain(cases[0], "X-Hearth-Mark").is_some());
        assert!(parse_plain(cases[3], "X-Hearth-Mark").is_none());
    }

    #[test]
    fn verdicts() {
        let v = auth_verdicts(
            "mx.test; spf=softfail smtp.mailfrom=a.test; dkim=none (no sig); dmarc=fail header.from=a.test",
        );
        assert_eq!(
            v,
            AuthVerdicts {
                spf: Some("softfail".into()),
                dkim: Some("none".into()),
                dmarc: Some("fail".into())
            }
        );
        assert_eq!(auth_verdicts("mx.test; none"), AuthVerdicts::default());
    }
}
