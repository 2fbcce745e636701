//! `dkim.key`: the public key published at `selector._domainkey.domain` parses, is strong
//! enough, and is the public half of the private key the sender signs with.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rsa::pkcs1::{DecodeRsaPrivateKey as _, DecodeRsaPublicKey as _};
use rsa::pkcs8::DecodePublicKey as _;
use rsa::traits::PublicKeyParts as _;

use crate::domain::Verdict;
use crate::preflight::check::{CheckId, CheckResult};
use crate::preflight::dns::Dns;
use crate::preflight::identity::Identity;

use super::temporary;

/// A DKIM public key as published or as derived from a private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    Rsa(rsa::RsaPublicKey),
    Ed25519([u8; 32]),
}

impl PublicKey {
    pub fn describe(&self) -> String {
        match self {
            PublicKey::Rsa(k) => format!("RSA {}-bit", k.size() * 8),
            PublicKey::Ed25519(_) => "Ed25519".into(),
        }
    }
}

/// Parses the tags of a DKIM key record (`v=DKIM1; k=rsa; p=…`).
pub fn parse_record(txt: &str) -> Result<PublicKey, String> {
    let mut k = "rsa".to_owned();
    let mut p = None;
    for tag in txt.split(';') {
        let Some((name, value)) = tag.split_once('=') else {
            continue;
        };
        let value: String = value.chars().filter(|c| !c.is_whitespace()).collect();
        match name.trim() {
            "v" if value != "DKIM1" => return Err(format!("v={value} is not DKIM1")),
            "k" => k = value.to_ascii_lowercase(),
            "p" => p = Some(value),
            _ => {}
        }
    }
    let p = p.ok_or("no p= tag")?;
    if p.is_empty() {
        return Err("the key is revoked (empty p=)".into());
    }
    let der = B64
        .decode(&p)
        .map_err(|_| "p= is not valid base64".to_owned())?;
    match k.as_str() {
        "rsa" => rsa::RsaPublicKey::from_public_key_der(&der)
            .or_else(|_| rsa::RsaPublicKey::from_pkcs1_der(&der))
            .map(PublicKey::Rsa)
            .map_err(|e| format!("p= is not an RSA public key: {e}")),
        "ed25519" => <[u8; 32]>::try_from(der.as_slice())
            .map(PublicKey::Ed25519)
            .map_err(|_| "an Ed25519 key must be 32 bytes".to_owned()),
        other => Err(format!("unknown key type k={other}")),
    }
}

/// The public half of the configured private key (RSA PKCS#1 PEM or Ed25519 base64 seed).
pub fn public_of_private(text: &str) -> Result<PublicKey, String> {
    let text = text.trim();
    if text.contains("BEGIN RSA PRIVATE KEY") {
        let key = rsa::RsaPrivateKey::from_pkcs1_pem(text).map_err(|e| e.to_string())?;
        return Ok(PublicKey::Rsa(key.to_public_key()));
    }
    let seed = B64
        .decode(text)
        .map_err(|_| "not an RSA PEM or Ed25519 base64 key".to_owned())?;
    let seed: [u8; 32] = seed
        .try_into()
        .map_err(|_| "an Ed25519 seed must be 32 bytes".to_owned())?;
    let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
    Ok(PublicKey::Ed25519(signing.verifying_key().to_bytes()))
}

pub async fn dkim_key<D: Dns>(dns: &D, id: &Identity) -> CheckResult {
    let c = CheckId::DkimKey;
    let Some(d) = &id.dkim else {
        return CheckResult::new(c, Verdict::Fail, "no DKIM signing is configured for this sender")
            .fix("Generate a key (`openssl genrsa -traditional -out dkim.key 2048`), publish its public half at SELECTOR._domainkey.YOURDOMAIN, and set [senders.dkim] domain, selector and key_file.");
    };
    let name = format!("{}._domainkey.{}", d.selector, d.domain);
    let cmd = format!("dig {name} TXT +short");
    let records = match dns.txt(&name).await {
        Ok(r) => r,
        Err(e) if e.is_temporary() => return temporary(c, &format!("TXT of {name}"), &e),
        Err(e) => {
            return CheckResult::new(c, Verdict::Fail, format!("no DKIM key is published at {name} ({e})"))
                .fix(format!("Publish the public key as a TXT record at {name} (\"v=DKIM1; k=rsa; p=…\"), then verify with `{cmd}`."));
        }
    };
    let keys: Vec<&String> = records.iter().filter(|r| r.contains("p=")).collect();
    let Some(txt) = keys.first() else {
        return CheckResult::new(
            c,
            Verdict::Fail,
            format!("{name} has TXT records but none is a DKIM key"),
        )
        .fix(format!(
            "Publish \"v=DKIM1; k=rsa; p=…\" at {name}; verify with `{cmd}`."
        ));
    };
    let shown = if txt.chars().count() > 80 {
        format!("{}…", txt.chars().take(80).collect::<String>())
    } else {
        (*txt).clone()
    };
    let published = match parse_record(txt) {
        Ok(k) => k,
        Err(e) => {
            return CheckResult::new(
                c,
                Verdict::Fail,
                format!("the DKIM record at {name} is unusable: {e}"),
            )
            .evidence(format!("{name} TXT \"{shown}\""))
            .fix(format!(
                "Republish the key at {name} as \"v=DKIM1; k=rsa; p=<base64 public key>\"."
            ));
        }
    };
    let mut r = CheckResult::pass(
        c,
        format!("{name} publishes an {} key", published.describe()),
    )
    .evidence(format!("{name} TXT \"{shown}\""));
    if let PublicKey::Rsa(k) = &published {
        let bits = k.size() * 8;
        if bits < 1024 {
            return CheckResult {
                verdict: Verdict::Fail,
                summary: format!(
                    "the DKIM key at {name} has only {bits} bits; receivers ignore keys under 1024"
                ),
                remediation: "Generate a 2048-bit key and publish it under a new selector.".into(),
                ..r
            };
        }
        if bits < 2048 {
            r = CheckResult {
                verdict: Verdict::Warn,
                summary: format!("the DKIM key at {name} has {bits} bits; 2048 is recommended"),
                remediation: "Rotate to a 2048-bit key under a new selector.".into(),
                ..r
            };
        }
    }
    let Some(key_file) = &d.key_file else {
        return r.evidence("no private key given: the match was not checked");
    };
    let private = match std::fs::read_to_string(key_file)
        .map_err(|e| e.to_string())
        .and_then(|t| public_of_private(&t))
    {
        Ok(k) => k,
        Err(e) => {
            return CheckResult {
                verdict: Verdict::Fail,
                summary: format!("cannot read the private key {}: {e}", key_file.display()),
                remediation:
                    "Point senders[].dkim.key_file at the PEM private key the relay signs with."
                        .into(),
                ..r
            };
        }
    };
    if private != published {
        return CheckResult {
            verdict: Verdict::Fail,
            summary: format!(
                "the key published at {name} is not the public half of {}",
                key_file.display()
            ),
            remediation: format!(
                "Publish the public half of the configured key at {name} (`openssl rsa -in {} -pubout` gives it), or configure the matching private key. Mail signed now fails DKIM.",
                key_file.display()
            ),
            ..r
        };
    }
    r.evidence(format!("matches the private key {}", key_file.display()))
}
