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

pub fn parse(raw: &[u8], mark_header: &str) -> SeenHeaders {
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
            raw.get(start..end)
                .map(|b| unfold(&String::from_utf8_lossy(b)))
                .unwrap_or_default()
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
    let mut depth = 0usize;
    let cleaned: String = value
        .chars()
        .filter(|c| match c {
            '(' => {
                depth += 1;
                false
            }
            ')' => {
                depth = depth.saturating_sub(1);
                false
            }
            _ => depth == 0,
        })
        .collect();
    for token in cleaned.split([';', ' ', '\t']) {
        let Some((method, result)) = token.split_once('=') else {
            continue;
        };
        let result = result.trim().to_ascii_lowercase();
        let slot = match method.trim().to_ascii_lowercase().as_str() {
            "spf" => &mut v.spf,
            "dkim" => &mut v.dkim,
            "dmarc" => &mut v.dmarc,
            _ => continue,
        };
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
