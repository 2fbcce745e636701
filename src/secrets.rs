//! Credentials: where they come from, how they are stored, and how they are kept out of logs.
//!
//! A secret is given in the config (or a CSV import) inline, from an environment variable, or
//! from a file. The database never holds a plain secret: it holds a [`SecretRef`], which is a
//! reference (`env:NAME`, `file:PATH`) or the value encrypted with the install's key
//! (`enc:v1:BASE64`, XChaCha20-Poly1305). Values are only exposed at the moment of use.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use secrecy::{ExposeSecret, SecretString};

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable {0} is not set")]
    EnvMissing(String),
    #[error("cannot read secret file {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("secret file {0} is empty")]
    EmptyFile(PathBuf),
    #[error("stored secret is malformed: {0}")]
    Malformed(&'static str),
    #[error("stored secret cannot be decrypted with this install's key (was the key changed?)")]
    Decrypt,
    #[error("this login uses OAuth2, not a password")]
    NotAPassword,
    #[error("cannot read or create the secret key {path}: {source}")]
    Key {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// How to obtain a secret, in the form that is safe to store.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretRef {
    Env(String),
    File(PathBuf),
    /// Ciphertext produced by [`SecretKey::seal`].
    Sealed(String),
    /// No secret (a server that needs no login).
    None,
    /// Not a password: an OAuth2 grant (XOAUTH2), whose own secrets are references again.
    OAuth2(Box<crate::oauth2::OAuth2Ref>),
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(n) => write!(f, "env:{n}"),
            SecretRef::File(p) => write!(f, "file:{}", p.display()),
            SecretRef::Sealed(_) => f.write_str("[sealed]"),
            SecretRef::None => f.write_str("none"),
            SecretRef::OAuth2(o) => write!(f, "oauth2:{} client {}", o.provider, o.client_id),
        }
    }
}

impl SecretRef {
    /// The text stored in the database.
    pub fn to_stored(&self) -> String {
        match self {
            SecretRef::Env(n) => format!("env:{n}"),
            SecretRef::File(p) => format!("file:{}", p.display()),
            SecretRef::Sealed(c) => format!("enc:v1:{c}"),
            SecretRef::None => String::new(),
            SecretRef::OAuth2(o) => format!("oauth2:v1:{}", o.to_stored()),
        }
    }

    pub fn from_stored(s: &str) -> Result<Self, SecretError> {
        if s.is_empty() {
            Ok(SecretRef::None)
        } else if let Some(n) = s.strip_prefix("env:") {
            Ok(SecretRef::Env(n.to_owned()))
        } else if let Some(p) = s.strip_prefix("file:") {
            Ok(SecretRef::File(PathBuf::from(p)))
        } else if let Some(j) = s.strip_prefix("oauth2:v1:") {
            Ok(SecretRef::OAuth2(Box::new(
                crate::oauth2::OAuth2Ref::from_stored(j)?,
            )))
        } else if let Some(c) = s.strip_prefix("enc:v1:") {
            Ok(SecretRef::Sealed(c.to_owned()))
        } else {
            Err(SecretError::Malformed("unknown prefix"))
        }
    }

    /// Reads the secret's value now.
    pub fn resolve(&self, key: &SecretKey) -> Result<SecretString, SecretError> {
        match self {
            SecretRef::Env(name) => std::env::var(name)
                .map(SecretString::from)
                .map_err(|_| SecretError::EnvMissing(name.clone())),
            SecretRef::File(path) => read_secret_file(path),
            SecretRef::Sealed(c) => key.open(c),
            SecretRef::None => Ok(SecretString::from(String::new())),
            SecretRef::OAuth2(_) => Err(SecretError::NotAPassword),
        }
    }
}

/// Reads a secret from a file, dropping one trailing newline (as `echo x > file` writes).
pub fn read_secret_file(path: &Path) -> Result<SecretString, SecretError> {
    let text = std::fs::read_to_string(path).map_err(|source| SecretError::File {
        path: path.to_owned(),
        source,
    })?;
    let value = text.strip_suffix('\n').unwrap_or(&text);
    let value = value.strip_suffix('\r').unwrap_or(value);
    if value.is_empty() {
        return Err(SecretError::EmptyFile(path.to_owned()));
    }
    Ok(SecretString::from(value.to_owned()))
}

/// The install's symmetric key for sealing secrets at rest.
pub struct SecretKey(chacha20poly1305::Key);

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey([REDACTED])")
    }
}

impl SecretKey {
    /// Derives the key from a passphrase (config `server.secret_key`, shared by all nodes).
    pub fn from_passphrase(passphrase: &str) -> Self {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(format!("hearth secret key v1\0{passphrase}"));
        Self(digest)
    }

    /// Loads `path` (64 hex characters), creating it with a random key and mode 0600 when missing.
    pub fn load_or_create(path: &Path) -> Result<Self, SecretError> {
        let err = |source| SecretError::Key {
            path: path.to_owned(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let bytes: [u8; 32] = hex::decode(text.trim())
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| {
                        err(std::io::Error::other("expected 64 hexadecimal characters"))
                    })?;
                Ok(Self(bytes.into()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let bytes: [u8; 32] = rand::random();
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(err)?;
                }
                write_private(path, &hex::encode(bytes)).map_err(err)?;
                Ok(Self(bytes.into()))
            }
            Err(e) => Err(err(e)),
        }
    }

    pub fn seal(&self, plain: &SecretString) -> SecretRef {
        let nonce_bytes: [u8; 24] = rand::random();
        let cipher = XChaCha20Poly1305::new(&self.0);
        let sealed = cipher
            .encrypt(&XNonce::from(nonce_bytes), plain.expose_secret().as_bytes())
            .expect("XChaCha20-Poly1305 encryption of an in-memory buffer cannot fail");
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&sealed);
        SecretRef::Sealed(B64.encode(out))
    }

    fn open(&self, sealed: &str) -> Result<SecretString, SecretError> {
        let raw = B64
            .decode(sealed)
            .map_err(|_| SecretError::Malformed("not base64"))?;
        if raw.len() < 24 {
            return Err(SecretError::Malformed("too short"));
        }
        let (nonce, body) = raw.split_at(24);
        let nonce: [u8; 24] = nonce.try_into().expect("split at 24");
        let plain = XChaCha20Poly1305::new(&self.0)
            .decrypt(&XNonce::from(nonce), body)
            .map_err(|_| SecretError::Decrypt)?;
        String::from_utf8(plain)
            .map(SecretString::from)
            .map_err(|_| SecretError::Malformed("not UTF-8"))
    }
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open() {
        let key = SecretKey::from_passphrase("test");
        let r = key.seal(&SecretString::from("hunter2".to_owned()));
        let stored = r.to_stored();
        assert!(stored.starts_with("enc:v1:") && !stored.contains("hunter2"));
        let back = SecretRef::from_stored(&stored)
            .unwrap()
            .resolve(&key)
            .unwrap();
        assert_eq!(back.expose_secret(), "hunter2");
        let other = SecretKey::from_passphrase("other");
        assert!(matches!(
            SecretRef::from_stored(&stored).unwrap().resolve(&other),
            Err(SecretError::Decrypt)
        ));
        assert_eq!(format!("{r:?}"), "[sealed]");
    }

    #[test]
    fn key_file_is_created_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let a = SecretKey::load_or_create(&path).unwrap();
        let b = SecretKey::load_or_create(&path).unwrap();
        let sealed = a.seal(&SecretString::from("x".to_owned()));
        assert_eq!(sealed.resolve(&b).unwrap().expose_secret(), "x");
    }
}
