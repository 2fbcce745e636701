//! The warm-up mark: how seed workers recognise Hearth's own mail. Two forms (`warmup.mark`):
//!
//! - **header** (default): a header (`X-Hearth-Mark`) whose value is an HMAC of the message's
//!   Message-ID under a per-install secret. Seeds find it with `SEARCH HEADER X-Hearth-Mark ""`.
//! - **body**: a reference line at the end of the text (and HTML) body, `Ref k3v9q-7hx2mz4t1pa8`,
//!   for receivers or forwarding paths that drop unknown headers. The part before the dash is
//!   the install's **prefix**, the same on every message (derived from the secret); the part
//!   after it is the HMAC of the Message-ID. Seeds find candidates server-side with
//!   `SEARCH BODY "k3v9q-"` without knowing any Message-ID, then verify the tag.
//!
//! Trade-off of the body form: the prefix repeats, so anyone who sees two warm-up messages can
//! tell they come from one install and can put the prefix in mail of their own. Such mail is
//! fetched by the scan (one extra FETCH) but never counted or engaged with: the tag cannot be
//! made without the secret. The alternative, searching for each expected Message-ID, costs one
//! SEARCH per message and folder; a per-message secret search key is impossible, since the
//! scanner must name what it looks for. The header form reveals nothing across messages
//! beyond the header's name.
//!
//! Nobody outside can forge a mark for a message, so mail that merely imitates Hearth's is never
//! counted or engaged with.

use std::fmt;
use std::str::FromStr;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::domain::UnknownVariant;

/// Length of the header token in hex characters (96 bits).
const TOKEN_HEX: usize = 24;
/// The body form: prefix and tag lengths in characters of [`ALPHABET`] (5 bits each).
const PREFIX_LEN: usize = 5;
const TAG_LEN: usize = 12;
/// Lower-case letters and digits without the look-alikes (0/o, 1/l): reads like a reference.
const ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";

/// Where the mark goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MarkMode {
    #[default]
    Header,
    Body,
}

impl MarkMode {
    pub const ALL: &'static [MarkMode] = &[MarkMode::Header, MarkMode::Body];

    pub fn as_str(self) -> &'static str {
        match self {
            MarkMode::Header => "header",
            MarkMode::Body => "body",
        }
    }
}

impl fmt::Display for MarkMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MarkMode {
    type Err = UnknownVariant;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|m| m.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownVariant {
                kind: "mark",
                value: s.to_owned(),
                expected: "header, body".into(),
            })
    }
}

#[derive(Clone)]
pub struct Marker {
    header: String,
    secret: Vec<u8>,
    /// The HMAC state keyed with `secret`, computed once: each mark then costs the hash of
    /// its Message-ID only, not the key's two blocks again (a scan checks a thousand).
    keyed: Hmac<Sha256>,
    mode: MarkMode,
    prefix: String,
}

impl std::fmt::Debug for Marker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Marker")
            .field("header", &self.header)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl Marker {
    /// A header mark (the default form).
    pub fn new(header: impl Into<String>, secret: impl Into<Vec<u8>>) -> Self {
        let secret = secret.into();
        let prefix = encode(&mac(&secret, &[b"hearth body mark prefix v1"]), PREFIX_LEN);
        let keyed = Hmac::<Sha256>::new_from_slice(&secret).expect("HMAC takes any key");
        Self {
            header: header.into(),
            secret,
            keyed,
            mode: MarkMode::Header,
            prefix,
        }
    }

    pub fn with_mode(mut self, mode: MarkMode) -> Self {
        self.mode = mode;
        self
    }

    pub fn mode(&self) -> MarkMode {
        self.mode
    }

    pub fn header(&self) -> &str {
        &self.header
    }

    /// The IMAP SEARCH key that finds marked mail (a superset: candidates still need
    /// verifying).
    pub fn search_key(&self) -> String {
        match self.mode {
            MarkMode::Header => format!("HEADER {} \"\"", self.header),
            MarkMode::Body => format!("BODY \"{}-\"", self.prefix),
        }
    }

    /// The header mark for a Message-ID (given with or without angle brackets).
    pub fn token(&self, message_id: &str) -> String {
        String::from_utf8_lossy(&self.token_bytes(message_id)).into_owned()
    }

    /// [`Self::token`] without allocating: lower-case hex of the first 96 bits of the HMAC.
    fn token_bytes(&self, message_id: &str) -> [u8; TOKEN_HEX] {
        let mut mac = self.keyed.clone();
        mac.update(bare_message_id(message_id).as_bytes());
        let tag = mac.finalize().into_bytes();
        let mut out = [0u8; TOKEN_HEX];
        for (pair, byte) in out.chunks_exact_mut(2).zip(tag.iter()) {
            pair[0] = HEX[usize::from(byte >> 4)];
            pair[1] = HEX[usize::from(byte & 0x0f)];
        }
        out
    }

    /// Whether `token` is the genuine header mark of `message_id`.
    pub fn verify(&self, message_id: &str, token: &str) -> bool {
        same_bytes(&self.token_bytes(message_id), token.trim().as_bytes())
    }

    /// The body mark for a Message-ID: `prefix-tag`.
    pub fn body_token(&self, message_id: &str) -> String {
        let tag = mac(
            &self.secret,
            &[
                b"hearth body mark v1\0",
                bare_message_id(message_id).as_bytes(),
            ],
        );
        format!("{}-{}", self.prefix, encode(&tag, TAG_LEN))
    }

    /// The line the body form appends to the text (and, styled as a footer, to the HTML).
    pub fn body_line(&self, message_id: &str) -> String {
        format!("Ref {}", self.body_token(message_id))
    }

    /// Whether `body` (decoded text) holds the genuine body mark of `message_id`.
    pub fn verify_body(&self, message_id: &str, body: &str) -> bool {
        let want = self.body_token(message_id);
        let lower = body.to_ascii_lowercase();
        let mut found = false;
        let mut rest = lower.as_str();
        let needle = format!("{}-", self.prefix);
        while let Some(i) = rest.find(&needle) {
            let candidate = rest.get(i..i + want.len()).unwrap_or("");
            // Every candidate is compared, so the time does not depend on which one matched.
            found |= same(&want, candidate);
            rest = &rest[i + needle.len()..];
        }
        found
    }
}

fn mac(secret: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

/// The first `len` 5-bit groups of `bytes` in [`ALPHABET`].
fn encode(bytes: &[u8], len: usize) -> String {
    (0..len)
        .map(|i| {
            let bit = i * 5;
            let hi = u16::from(bytes[bit / 8]) << 8;
            let lo = u16::from(bytes.get(bit / 8 + 1).copied().unwrap_or(0));
            let v = ((hi | lo) >> (11 - bit % 8)) & 0x1f;
            char::from(ALPHABET[usize::from(v)])
        })
        .collect()
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Constant-time equality of two strings of equal length (false for different lengths).
fn same(want: &str, got: &str) -> bool {
    same_bytes(want.as_bytes(), got.as_bytes())
}

/// [`same`] on bytes.
fn same_bytes(want: &[u8], got: &[u8]) -> bool {
    want.len() == got.len() && want.iter().zip(got).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// `<id@host>` → `id@host`.
pub fn bare_message_id(id: &str) -> &str {
    id.trim().trim_start_matches('<').trim_end_matches('>')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_and_depend_on_the_secret() {
        let m = Marker::new("X-Hearth-Mark", b"secret-a".to_vec());
        let t = m.token("<abc@sender.test>");
        assert_eq!(t.len(), TOKEN_HEX);
        // HMAC-SHA256("secret-a", "abc@sender.test"), first 96 bits in lower-case hex (as
        // Python's hmac module computes it): marks sent by older versions still verify.
        assert_eq!(t, "7cc76d7deb38eeb7d0dbf66d");
        assert_eq!(
            t,
            &hex::encode(mac(b"secret-a", &[b"abc@sender.test"]))[..TOKEN_HEX]
        );
        assert!(m.verify("abc@sender.test", &format!(" {t}\r\n")));
        assert!(!m.verify("abc@sender.test", &t.to_uppercase()));
        assert!(!m.verify("abc@sender.test", &t[..TOKEN_HEX - 1]));
        assert_eq!(t, m.token("abc@sender.test"));
        assert!(m.verify("abc@sender.test", &t));
        assert!(!m.verify("abd@sender.test", &t));
        let other = Marker::new("X-Hearth-Mark", b"secret-b".to_vec());
        assert!(!other.verify("abc@sender.test", &t));
        assert_eq!(m.search_key(), "HEADER X-Hearth-Mark \"\"");
    }

    #[test]
    fn body_marks() {
        let m = Marker::new("X-Hearth-Mark", b"secret-a".to_vec()).with_mode(MarkMode::Body);
        let t = m.body_token("<abc@sender.test>");
        let (prefix, tag) = t.split_once('-').unwrap();
        assert_eq!((prefix.len(), tag.len()), (PREFIX_LEN, TAG_LEN));
        assert!(t.bytes().all(|b| b == b'-' || ALPHABET.contains(&b)));
        // One prefix per install, a different tag per message.
        let t2 = m.body_token("other@sender.test");
        assert!(t2.starts_with(&format!("{prefix}-")) && t2 != t);
        assert_eq!(m.search_key(), format!("BODY \"{prefix}-\""));
        let body = format!("Hi,\n\nBest,\nBo\n\n{}\n", m.body_line("abc@sender.test"));
        assert!(m.verify_body("abc@sender.test", &body));
        assert!(m.verify_body("abc@sender.test", &body.to_uppercase()));
        assert!(!m.verify_body("abd@sender.test", &body));
        // The prefix with a made-up tag, or another install's mark: not genuine.
        let forged = format!("Ref {prefix}-{}\n{t2}", "a".repeat(TAG_LEN));
        assert!(!m.verify_body("abc@sender.test", &forged));
        let other = Marker::new("X-Hearth-Mark", b"secret-b".to_vec()).with_mode(MarkMode::Body);
        assert!(!other.verify_body("abc@sender.test", &body));
        assert_ne!(other.body_token("abc@sender.test")[..PREFIX_LEN], *prefix);
    }

    #[test]
    fn encodes_five_bits_per_character() {
        assert_eq!(encode(&[0, 0, 0], 4), "aaaa");
        assert_eq!(encode(&[0xff, 0xff, 0xff], 4), "9999");
        // 00001 00010 00011 ... from the bit string.
        assert_eq!(encode(&[0b0000_1000, 0b1000_0110, 0], 3), "bcd");
        assert_eq!("Body".parse::<MarkMode>().unwrap(), MarkMode::Body);
        assert!("footer".parse::<MarkMode>().is_err());
    }
}
