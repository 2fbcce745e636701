//! DKIM signing keys: RSA (PKCS#1 PEM) or Ed25519 (base64 of the 32-byte seed).

use std::path::{Path, PathBuf};

use lettre::message::dkim::{DkimSigningAlgorithm, DkimSigningKey};

#[derive(Debug, thiserror::Error)]
pub enum DkimKeyError {
    #[error("cannot read DKIM key {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "DKIM key {0} is PKCS#8 (BEGIN PRIVATE KEY); convert it to PKCS#1 with `openssl rsa -in KEY -traditional -out KEY.rsa`"
    )]
    Pkcs8(PathBuf),
    #[error("DKIM key {path} is not a valid {kind} key: {detail}")]
    Invalid {
        path: PathBuf,
        kind: &'static str,
        detail: String,
    },
}

pub fn load_signing_key(path: &Path) -> Result<DkimSigningKey, DkimKeyError> {
    let text = std::fs::read_to_string(path).map_err(|source| DkimKeyError::Read {
        path: path.to_owned(),
        source,
    })?;
    let text = text.trim();
    if text.contains("BEGIN PRIVATE KEY") {
        return Err(DkimKeyError::Pkcs8(path.to_owned()));
    }
    let (algorithm, kind) = if text.contains("BEGIN RSA PRIVATE KEY") {
        (DkimSigningAlgorithm::Rsa, "RSA (PKCS#1 PEM)")
    } else {
        (DkimSigningAlgorithm::Ed25519, "Ed25519 (base64 seed)")
    };
    DkimSigningKey::new(text, algorithm).map_err(|e| DkimKeyError::Invalid {
        path: path.to_owned(),
        kind,
        detail: e.to_string(),
    })
}
