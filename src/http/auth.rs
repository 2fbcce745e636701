//! Bearer-token authentication for the API and `/metrics`.
//!
//! Tokens come from `server.api_token` (one secret or a list, resolved at start). A request
//! must carry `Authorization: Bearer <token>` matching one of them; the comparison runs in
//! constant time (both sides hashed to SHA-256 first, so neither length nor content leaks
//! through timing). Without any configured token the API is open, which [`check_bind`]
//! allows only on a loopback address.
//!
//! Open without a token: `/healthz`, `/readyz` (probes) and `/openapi.json` (a description,
//! no data). `/metrics` requires the token when one is configured: it exposes campaign
//! names and volumes. Prometheus sends it with `authorization: { credentials_file: ... }`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest as _, Sha256};

use super::errors::ApiError;

/// The accepted tokens, kept only as SHA-256 digests.
#[derive(Clone, Default)]
pub struct Tokens(Arc<Vec<[u8; 32]>>);

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} configured)", self.0.len())
    }
}

impl Tokens {
    pub fn new(tokens: &[SecretString]) -> Self {
        Tokens(Arc::new(
            tokens
                .iter()
                .map(|t| digest(t.expose_secret().as_bytes()))
                .collect(),
        ))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `presented` is one of the tokens. Every configured token is compared, in
    /// constant time each, whatever matches.
    pub fn accepts(&self, presented: &[u8]) -> bool {
        let d = digest(presented);
        self.0
            .iter()
            .fold(false, |found, t| found | constant_time_eq(t, &d))
    }
}

impl Tokens {
    /// Which token `presented` is (its index), comparing every one in constant time.
    pub(super) fn position(&self, presented: &[u8]) -> Option<usize> {
        let d = digest(presented);
        self.0.iter().enumerate().fold(None, |found, (i, t)| {
            if constant_time_eq(t, &d) {
                Some(i)
            } else {
                found
            }
        })
    }

    /// The tokens' digests: the keys the dashboard signs its sessions with (so removing a
    /// token from the config ends the sessions opened with it).
    pub(super) fn digests(&self) -> &[[u8; 32]] {
        &self.0
    }
}

/// Whether two secrets are equal, in time that depends on neither (both hashed first, so
/// lengths may differ).
pub(super) fn secrets_equal(a: &[u8], b: &[u8]) -> bool {
    constant_time_eq(&digest(a), &digest(b))
}

fn digest(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

/// Equal-length comparison whose time does not depend on where the inputs differ.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a
        .iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Why the server refuses to listen.
#[derive(Debug, thiserror::Error)]
#[error(
    "refusing to serve the API on {bind} without a token: {bind} is not a loopback address, so set server.api_token (or bind to 127.0.0.1)"
)]
pub struct OpenBindError {
    pub bind: SocketAddr,
}

/// A non-loopback bind needs at least one token (the config refuses it too; this is the
/// server's own guard, whatever built its state).
pub fn check_bind(bind: SocketAddr, tokens: &Tokens) -> Result<(), OpenBindError> {
    if bind.ip().is_loopback() || !tokens.is_empty() {
        Ok(())
    } else {
        Err(OpenBindError { bind })
    }
}

/// Middleware: lets the request through when no token is configured or the bearer token
/// matches; otherwise 401 with `WWW-Authenticate: Bearer`.
pub async fn require_token(State(tokens): State<Tokens>, req: Request, next: Next) -> Response {
    if tokens.is_empty() {
        return next.run(req).await;
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_owned())
        });
    match presented {
        Some(t) if tokens.accepts(t.as_bytes()) => next.run(req).await,
        found => {
            let message = if found.is_some() {
                "the bearer token is not valid"
            } else {
                "this endpoint needs Authorization: Bearer <token> (server.api_token)"
            };
            let mut resp =
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"hearth\""),
            );
            resp
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_exactly() {
        let t = Tokens::new(&[
            SecretString::from("first-token-0123456789".to_owned()),
            SecretString::from("second-token-0123456789".to_owned()),
        ]);
        assert!(t.accepts(b"first-token-0123456789"));
        assert!(t.accepts(b"second-token-0123456789"));
        assert!(!t.accepts(b"first-token-012345678"));
        assert!(!t.accepts(b""));
        assert!(!Tokens::default().accepts(b"anything"));
        assert_eq!(t.position(b"second-token-0123456789"), Some(1));
        assert_eq!(t.position(b"third"), None);
        assert!(secrets_equal(b"abc", b"abc") && !secrets_equal(b"abc", b"abcd"));
    }

    #[test]
    fn open_binds_need_a_token() {
        let none = Tokens::default();
        let some = Tokens::new(&[SecretString::from("a-long-enough-token".to_owned())]);
        let lo: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let lo6: SocketAddr = "[::1]:8080".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert!(check_bind(lo, &none).is_ok());
        assert!(check_bind(lo6, &none).is_ok());
        assert!(check_bind(any, &some).is_ok());
        let err = check_bind(any, &none).unwrap_err().to_string();
        assert!(err.contains("server.api_token"), "{err}");
    }
}
