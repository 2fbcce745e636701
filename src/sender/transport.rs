//! The SMTP client: one pooled lettre transport per sending identity.

use std::time::Duration;

use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};

use crate::domain::{Endpoint, HeloName, TlsMode};

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot read CA file: {0}")]
    Ca(String),
    #[error("TLS parameters for {host}: {detail}")]
    Tls { host: String, detail: String },
}

/// Builds the transport. Must be called inside the tokio runtime (the pool spawns a task).
pub fn build(
    endpoint: &Endpoint,
    helo: &HeloName,
    password: Option<&SecretString>,
    timeout: Duration,
    pool_size: u32,
) -> Result<AsyncSmtpTransport<Tokio1Executor>, TransportError> {
    let host = endpoint.host.trim_start_matches('[').trim_end_matches(']');
    let tls = match endpoint.tls {
        TlsMode::None => Tls::None,
        mode => {
            let mut params = TlsParameters::builder(host.to_owned());
            if let Some(ca) = &endpoint.ca_file {
                let pem = std::fs::read(ca)
                    .map_err(|e| TransportError::Ca(format!("{}: {e}", ca.display())))?;
                let cert = Certificate::from_pem(&pem)
                    .map_err(|e| TransportError::Ca(format!("{}: {e}", ca.display())))?;
                params = params.add_root_certificate(cert);
            }
            let params = params.build_rustls().map_err(|e| TransportError::Tls {
                host: host.to_owned(),
                detail: e.to_string(),
            })?;
            if mode == TlsMode::Implicit {
                Tls::Wrapper(params)
            } else {
                Tls::Required(params)
            }
        }
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(endpoint.port)
        .tls(tls)
        .hello_name(ClientId::Domain(helo.as_str().to_owned()))
        .timeout(Some(timeout))
        .pool_config(
            PoolConfig::new()
                .max_size(pool_size.max(1))
                .min_idle(0)
                .idle_timeout(Duration::from_secs(60)),
        );
    if let Some(pw) = password
        && !pw.expose_secret().is_empty()
    {
        builder = builder
            .credentials(Credentials::new(
                endpoint.username.clone(),
                pw.expose_secret().to_owned(),
            ))
            .authentication(vec![Mechanism::Plain, Mechanism::Login]);
    }
    Ok(builder.build())
}
