//! OAuth2 for mail: the XOAUTH2 SASL mechanism with an access token obtained from a refresh
//! token (Google's and Microsoft's flow; any token endpoint for `custom`).
//!
//! - [`OAuth2Ref`]: what an endpoint authenticates with, in the form that is safe to store (the
//!   client secret and the refresh token are [`SecretRef`]s: references or sealed values).
//! - [`TokenCache`]: one access token per grant, refreshed before it expires and at most once
//!   at a time per grant; [`Grant`] ties a grant to the cache for SMTP and IMAP logins.
//! - `http.rs`: the refresh-token request, its failures classified: transient (network, 5xx,
//!   429) or permanent (`invalid_grant`: revoked or expired; `invalid_client` …).
//!
//! Access tokens, refresh tokens and client secrets are never logged or put in error texts.

mod cache;
mod http;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::domain::{UnknownVariant, is_loopback_host};
use crate::secrets::{SecretError, SecretRef};

pub use cache::{DEFAULT_MARGIN, Grant, TokenCache, needs_refresh};
pub use http::{TokenResponse, refresh};

pub const GOOGLE_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
pub const MICROSOFT_TOKEN_URL: &str = "https://login.microsoftonline.com/common/oauth2/v2.0/token";

/// Whose token endpoint a grant belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OAuth2Provider {
    Google,
    Microsoft,
    /// Any other endpoint; `token_url` is then required.
    Custom,
}

impl OAuth2Provider {
    pub const ALL: &'static [OAuth2Provider] = &[
        OAuth2Provider::Google,
        OAuth2Provider::Microsoft,
        OAuth2Provider::Custom,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OAuth2Provider::Google => "google",
            OAuth2Provider::Microsoft => "microsoft",
            OAuth2Provider::Custom => "custom",
        }
    }

    /// The provider's token endpoint (none for `custom`).
    pub fn default_token_url(self) -> Option<&'static str> {
        match self {
            OAuth2Provider::Google => Some(GOOGLE_TOKEN_URL),
            OAuth2Provider::Microsoft => Some(MICROSOFT_TOKEN_URL),
            OAuth2Provider::Custom => None,
        }
    }
}

impl fmt::Display for OAuth2Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OAuth2Provider {
    type Err = UnknownVariant;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|p| p.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownVariant {
                kind: "oauth2 provider",
                value: s.to_owned(),
                expected: "google, microsoft, custom".into(),
            })
    }
}

/// A token endpoint: `https://…`, or `http://…` on a loopback host only (tests).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TokenUrl {
    url: String,
    https: bool,
    host: String,
    port: u16,
    /// Path and query, starting with `/`.
    path: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenUrlError {
    #[error("expected an https:// URL (http:// only for loopback hosts), got {0:?}")]
    Scheme(String),
    #[error("no host in {0:?}")]
    NoHost(String),
    #[error("bad port in {0:?}")]
    Port(String),
    #[error("credentials in the URL are not allowed; use client_id and client_secret")]
    Userinfo,
}

impl TokenUrl {
    pub fn parse(s: &str) -> Result<Self, TokenUrlError> {
        let s = s.trim();
        let (https, rest) = if let Some(r) = s.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(TokenUrlError::Scheme(s.to_owned()));
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.contains('@') {
            return Err(TokenUrlError::Userinfo);
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(':') && !p.contains(']') => (
                h,
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| TokenUrlError::Port(s.to_owned()))?,
            ),
            _ => (authority, if https { 443 } else { 80 }),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(TokenUrlError::NoHost(s.to_owned()));
        }
        if !https && !is_loopback_host(host) {
            return Err(TokenUrlError::Scheme(s.to_owned()));
        }
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_owned()
        };
        Ok(Self {
            url: s.to_owned(),
            https,
            host: host.to_owned(),
            port,
            path,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.url
    }
}

impl fmt::Display for TokenUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

impl TryFrom<String> for TokenUrl {
    type Error = TokenUrlError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<TokenUrl> for String {
    fn from(u: TokenUrl) -> String {
        u.url
    }
}

/// How an endpoint logs in with OAuth2, safe to store: no plain secret inside.
#[derive(Clone, PartialEq, Eq)]
pub struct OAuth2Ref {
    pub provider: OAuth2Provider,
    pub token_url: TokenUrl,
    pub client_id: String,
    /// Public clients (Microsoft's "mobile and desktop" apps) have none.
    pub client_secret: SecretRef,
    pub refresh_token: SecretRef,
    /// Sent with the refresh request when set (Microsoft wants e.g.
    /// `https://outlook.office.com/IMAP.AccessAsUser.All offline_access`).
    pub scope: Option<String>,
    /// Extra trusted roots for an https token endpoint behind a private CA.
    pub ca_file: Option<PathBuf>,
}

impl fmt::Debug for OAuth2Ref {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuth2Ref")
            .field("provider", &self.provider)
            .field("token_url", &self.token_url.as_str())
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("refresh_token", &self.refresh_token)
            .finish_non_exhaustive()
    }
}

/// The stored JSON shape (secrets as their stored references).
#[derive(Serialize, Deserialize)]
struct Stored {
    provider: OAuth2Provider,
    token_url: TokenUrl,
    client_id: String,
    client_secret: String,
    refresh_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ca_file: Option<PathBuf>,
}

impl OAuth2Ref {
    /// JSON with the secrets as references (`env:`, `file:`, `enc:v1:`), never plain.
    pub fn to_stored(&self) -> String {
        serde_json::to_string(&Stored {
            provider: self.provider,
            token_url: self.token_url.clone(),
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.to_stored(),
            refresh_token: self.refresh_token.to_stored(),
            scope: self.scope.clone(),
            ca_file: self.ca_file.clone(),
        })
        .expect("plain strings serialize")
    }

    pub fn from_stored(s: &str) -> Result<Self, SecretError> {
        let st: Stored =
            serde_json::from_str(s).map_err(|_| SecretError::Malformed("bad oauth2 record"))?;
        Ok(Self {
            provider: st.provider,
            token_url: st.token_url,
            client_id: st.client_id,
            client_secret: SecretRef::from_stored(&st.client_secret)?,
            refresh_token: SecretRef::from_stored(&st.refresh_token)?,
            scope: st.scope,
            ca_file: st.ca_file,
        })
    }

    /// Names the grant in the cache: the endpoint, the client and the refresh token's
    /// reference (a variable name, a path or ciphertext; never the token itself).
    fn cache_key(&self) -> String {
        format!(
            "{}\n{}\n{}",
            self.token_url,
            self.client_id,
            self.refresh_token.to_stored()
        )
    }
}

/// An access token. Its `Debug` hides the value.
#[derive(Clone)]
pub struct AccessToken(SecretString);

impl AccessToken {
    pub fn new(s: String) -> Self {
        Self(SecretString::from(s))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    fn same(&self, other: &AccessToken) -> bool {
        self.expose() == other.expose()
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken([REDACTED])")
    }
}

/// The XOAUTH2 initial client response (before base64): `user=U^Aauth=Bearer T^A^A`.
pub fn xoauth2_response(user: &str, token: &AccessToken) -> SecretString {
    SecretString::from(format!(
        "user={user}\x01auth=Bearer {}\x01\x01",
        token.expose()
    ))
}

/// The same, base64-encoded as SMTP's `AUTH XOAUTH2 <…>` carries it.
pub fn xoauth2_base64(user: &str, token: &AccessToken) -> SecretString {
    SecretString::from(
        base64::engine::general_purpose::STANDARD
            .encode(xoauth2_response(user, token).expose_secret()),
    )
}

/// Why no access token could be had. The class decides: retry later, or a person must act
/// (the seed is marked broken, the sender's campaigns are paused) with this text as reason.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OAuth2Error {
    /// The token endpoint could not be reached or failed (network, timeout, 5xx, 429).
    #[error("OAuth2 token endpoint {url} unavailable: {detail}")]
    Transient { url: String, detail: String },
    /// The endpoint refused the grant (`invalid_grant`: revoked or expired refresh token;
    /// `invalid_client`, `unauthorized_client` …), or the credentials cannot be read.
    #[error("OAuth2 token refresh refused by {url}: {code}{}", .description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Permanent {
        url: String,
        code: String,
        description: Option<String>,
    },
}

impl OAuth2Error {
    pub fn is_transient(&self) -> bool {
        matches!(self, OAuth2Error::Transient { .. })
    }
}

#[cfg(test)]
mod tests;
