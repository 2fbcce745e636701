//! Writing a seed's reply: "Re: subject", a few words, the original quoted below, threaded by
//! In-Reply-To and References. Queued, not sent: the reply is an outbox row of kind `reply`
//! written with the seed's `reply` event in one transaction (see `store::replies`), and
//! `sender::replies` sends it through the seed's SMTP.
//!
//! The reply's Message-ID is derived from the original's, so whatever happens in between
//! (a reconnect, a restart, two nodes), a message is answered at most once.

use sha2::Digest as _;

use crate::domain::EmailAddress;
use crate::mark::bare_message_id;

const LINES: &[&str] = &[
    "Thanks, this is helpful. I will take a closer look this afternoon.",
    "Sounds good to me. Let's keep it as you suggested.",
    "Got it, thank you! I'll get back to you with the details tomorrow.",
    "Great, thanks for the update. Tuesday works for me.",
    "Thank you for sending this over. Everything looks fine on my side.",
    "Appreciate it! I'll share this with the others too.",
];

const CLOSINGS: &[&str] = &["Best,", "Thanks,", "Cheers,", "Talk soon,"];

/// The reply's Message-ID: a digest of the original's, in the seed's domain.
pub fn message_id(original: &str, seed: &EmailAddress) -> String {
    let digest = sha2::Sha256::digest(bare_message_id(original).as_bytes());
    format!("<re.{}@{}>", &hex::encode(digest)[..32], seed.domain())
}

/// `Re: ` before the original subject, unless it already starts with one.
pub fn subject(original: &str) -> String {
    let t = original.trim();
    if t.len() >= 3 && t[..3].eq_ignore_ascii_case("re:") {
        t.to_owned()
    } else {
        format!("Re: {t}")
    }
}

/// What the original looked like, as far as the reply quotes it.
pub struct Original<'a> {
    pub message_id: &'a str,
    /// The From line as written (`Name <addr>` or the address).
    pub from: &'a str,
    /// RFC 2822 date, when the original had one.
    pub date: Option<&'a str>,
    pub text: &'a str,
}

/// The reply's text: a line chosen by the original's Message-ID (the same every time), the
/// seed's name, then the original quoted line by line.
pub fn body(original: &Original<'_>, seed: &EmailAddress) -> String {
    let digest = sha2::Sha256::digest(bare_message_id(original.message_id).as_bytes());
    let line = LINES[usize::from(digest[0]) % LINES.len()];
    let closing = CLOSINGS[usize::from(digest[1]) % CLOSINGS.len()];
    let name = crate::sender::content::name_from_local(seed.local());
    let mut out = format!("{line}\n\n{closing}\n{name}\n\n");
    match original.date {
        Some(d) => out.push_str(&format!("On {d}, {} wrote:\n", original.from)),
        None => out.push_str(&format!("{} wrote:\n", original.from)),
    }
    for l in original.text.trim_end().lines() {
        if l.is_empty() {
            out.push_str(">\n");
        } else {
            out.push_str("> ");
            out.push_str(l.trim_end());
            out.push('\n');
        }
    }
    out
}

/// The HTML part of a reply: the text, escaped, with the quote in a blockquote.
pub fn html(text: &str) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let mut own = String::new();
    let mut quoted = String::new();
    for l in text.lines() {
        match l.strip_prefix('>') {
            Some(q) => {
                quoted.push_str(&esc(q.strip_prefix(' ').unwrap_or(q)));
                quoted.push_str("<br>\n");
            }
            None => {
                own.push_str(&esc(l));
                own.push_str("<br>\n");
            }
        }
    }
    format!(
        "<html><body>\n<div>{own}</div>\n<blockquote style=\"margin:0 0 0 .8ex;border-left:1px solid #ccc;padding-left:1ex\">\n{quoted}</blockquote>\n</body></html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threading_and_quoting() {
        let seed = EmailAddress::parse("ada.lovelace@gmail.test").unwrap();
        let id = message_id("<abc@sender.test>", &seed);
        assert_eq!(id, message_id("abc@sender.test", &seed), "stable");
        assert!(id.starts_with("<re.") && id.ends_with("@gmail.test>"));
        assert_ne!(id, message_id("<abd@sender.test>", &seed));
        assert_eq!(subject("Idea for lunch"), "Re: Idea for lunch");
        assert_eq!(subject("RE: Idea"), "RE: Idea");
        let text = body(
            &Original {
                message_id: "<abc@sender.test>",
                from: "Hello <hello@sender.test>",
                date: Some("Mon, 30 Nov 2026 10:00:00 +0000"),
                text: "Hi Ada,\n\nTwo points left.\n",
            },
            &seed,
        );
        assert!(text.contains("On Mon, 30 Nov 2026 10:00:00 +0000, Hello <hello@sender.test> wrote:\n> Hi Ada,\n>\n> Two points left.\n"), "{text}");
        let h = html(&text);
        assert!(h.contains("<blockquote") && h.contains("Two points left.<br>"));
        assert!(h.contains("Hello &lt;hello@sender.test&gt;"));
    }
}
