//! The warm-up mark: how seed workers recognise Hearth's own mail.
//!
//! Each message carries a header (`X-Hearth-Mark` by default) whose value is an HMAC of the
//! message's Message-ID under a per-install secret. Nobody outside can forge a mark for a
//! message, so mail that merely imitates Hearth's is never counted or engaged with.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Length of the token in hex characters (96 bits).
const TOKEN_HEX: usize = 24;

#[derive(Clone)]
pub struct Marker {
    header: String,
    secret: Vec<u8>,
}

impl std::fmt::Debug for Marker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Marker")
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

impl Marker {
    pub fn new(header: impl Into<String>, secret: impl Into<Vec<u8>>) -> Self {
        Self {
            header: header.into(),
            secret: secret.into(),
        }
    }

    pub fn header(&self) -> &str {
        &self.header
    }

    /// The mark for a Message-ID (given with or without angle brackets).
    pub fn token(&self, message_id: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes any key");
        mac.update(bare_message_id(message_id).as_bytes());
        let mut out = hex::encode(mac.finalize().into_bytes());
        out.truncate(TOKEN_HEX);
        out
    }

    /// Whether `token` is the genuine mark of `message_id` (constant-time comparison).
    pub fn verify(&self, message_id: &str, token: &str) -> bool {
        let want = self.token(message_id);
        let got = token.trim();
        want.len() == got.len()
            && want
                .bytes()
                .zip(got.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
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
        assert_eq!(t, m.token("abc@sender.test"));
        assert!(m.verify("abc@sender.test", &t));
        assert!(!m.verify("abd@sender.test", &t));
        let other = Marker::new("X-Hearth-Mark", b"secret-b".to_vec());
        assert!(!other.verify("abc@sender.test", &t));
    }
}
