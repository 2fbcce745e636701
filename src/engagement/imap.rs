//! IMAP sessions over tokio: plain (loopback only), STARTTLS (required, never downgraded)
//! or implicit TLS, with certificates verified against the public roots and `ca_file`.

use std::fmt::Debug;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::domain::{Endpoint, TlsMode};

/// Any byte stream an IMAP session can run over.
pub trait ImapStream: AsyncRead + AsyncWrite + Unpin + Send + Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Debug> ImapStream for T {}

pub type Session = async_imap::Session<Box<dyn ImapStream>>;

/// Why a session could not be opened. The class decides what happens to the seed.
#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    /// Network, timeout, server unavailable: try again later.
    #[error("cannot reach IMAP server {addr}: {detail}")]
    Unreachable { addr: String, detail: String },
    /// TLS failed (bad certificate, no STARTTLS): a configuration problem, not transient.
    #[error("TLS with IMAP server {addr} failed: {detail}")]
    Tls { addr: String, detail: String },
    /// The server refused the credentials: the seed is broken until someone fixes them.
    #[error("IMAP login as {user} refused: {detail}")]
    Login { user: String, detail: String },
    #[error("IMAP protocol error: {0}")]
    Protocol(String),
}

impl ImapError {
    pub fn is_transient(&self) -> bool {
        matches!(self, ImapError::Unreachable { .. } | ImapError::Protocol(_))
    }
}

impl From<async_imap::error::Error> for ImapError {
    fn from(e: async_imap::error::Error) -> Self {
        ImapError::Protocol(e.to_string())
    }
}

/// What a session logs in with.
#[derive(Debug, Clone, Copy)]
pub enum Credential<'a> {
    /// LOGIN with the endpoint's username.
    Password(&'a SecretString),
    /// AUTHENTICATE XOAUTH2 with the endpoint's username and an access token.
    Bearer(&'a crate::oauth2::AccessToken),
}

/// Connects, secures and logs in with a password.
pub async fn connect(
    endpoint: &Endpoint,
    password: &SecretString,
    timeout: Duration,
) -> Result<Session, ImapError> {
    connect_with(endpoint, Credential::Password(password), timeout).await
}

/// Connects, secures and logs in. Every attempt is counted for `/metrics`.
pub async fn connect_with(
    endpoint: &Endpoint,
    credential: Credential<'_>,
    timeout: Duration,
) -> Result<Session, ImapError> {
    let result = open(endpoint, credential, timeout).await;
    crate::telemetry::counters::imap_session(result.is_ok());
    result
}

async fn open(
    endpoint: &Endpoint,
    credential: Credential<'_>,
    timeout: Duration,
) -> Result<Session, ImapError> {
    let addr = endpoint.display_addr();
    let host = endpoint.host.trim_start_matches('[').trim_end_matches(']');
    let unreachable = |detail: String| ImapError::Unreachable {
        addr: addr.clone(),
        detail,
    };
    let tls_err = |detail: String| ImapError::Tls {
        addr: addr.clone(),
        detail,
    };
    let tcp = tokio::time::timeout(timeout, TcpStream::connect((host, endpoint.port)))
        .await
        .map_err(|_| unreachable("connect timed out".into()))?
        .map_err(|e| unreachable(e.to_string()))?;

    let connector = || -> Result<tokio_rustls::TlsConnector, ImapError> {
        let cfg = crate::tls::client_config(endpoint.ca_file.as_deref())
            .map_err(|e| tls_err(e.to_string()))?;
        Ok(tokio_rustls::TlsConnector::from(cfg))
    };
    let name = || crate::tls::server_name(host).map_err(|e| tls_err(e.to_string()));

    let stream: Box<dyn ImapStream> = match endpoint.tls {
        TlsMode::None => {
            let mut client = async_imap::Client::new(Box::new(tcp) as Box<dyn ImapStream>);
            greeting(&mut client, &unreachable, timeout).await?;
            return login(client, endpoint, credential, timeout).await;
        }
        TlsMode::Implicit => {
            let tls = tokio::time::timeout(timeout, connector()?.connect(name()?, tcp))
                .await
                .map_err(|_| unreachable("TLS handshake timed out".into()))?
                .map_err(|e| tls_err(e.to_string()))?;
            Box::new(tls)
        }
        TlsMode::Starttls => {
            let mut client = async_imap::Client::new(tcp);
            greeting(&mut client, &unreachable, timeout).await?;
            tokio::time::timeout(timeout, client.run_command_and_check_ok("STARTTLS", None))
                .await
                .map_err(|_| unreachable("STARTTLS timed out".into()))?
                .map_err(|e| tls_err(format!("server refused STARTTLS: {e}")))?;
            let tcp = client.into_inner();
            let tls = tokio::time::timeout(timeout, connector()?.connect(name()?, tcp))
                .await
                .map_err(|_| unreachable("TLS handshake timed out".into()))?
                .map_err(|e| tls_err(e.to_string()))?;
            Box::new(tls)
        }
    };
    let mut client = async_imap::Client::new(stream);
    if endpoint.tls == TlsMode::Implicit {
        greeting(&mut client, &unreachable, timeout).await?;
    }
    login(client, endpoint, credential, timeout).await
}

async fn greeting<T: ImapStream>(
    client: &mut async_imap::Client<T>,
    unreachable: &impl Fn(String) -> ImapError,
    timeout: Duration,
) -> Result<(), ImapError> {
    match tokio::time::timeout(timeout, client.read_response()).await {
        Err(_) => Err(unreachable("no greeting".into())),
        Ok(Err(e)) => Err(unreachable(e.to_string())),
        Ok(Ok(None)) => Err(unreachable("connection closed before greeting".into())),
        Ok(Ok(Some(_))) => Ok(()),
    }
}

async fn login(
    client: async_imap::Client<Box<dyn ImapStream>>,
    endpoint: &Endpoint,
    credential: Credential<'_>,
    timeout: Duration,
) -> Result<Session, ImapError> {
    let attempt = async {
        match credential {
            Credential::Password(password) => {
                client
                    .login(&endpoint.username, password.expose_secret())
                    .await
            }
            Credential::Bearer(token) => {
                let response = crate::oauth2::xoauth2_response(&endpoint.username, token);
                client
                    .authenticate(
                        "XOAUTH2",
                        XOAuth2 {
                            response,
                            sent: false,
                        },
                    )
                    .await
            }
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Err(_) => Err(ImapError::Unreachable {
            addr: endpoint.display_addr(),
            detail: "login timed out".into(),
        }),
        Ok(Ok(session)) => Ok(session),
        Ok(Err((e, _))) => match e {
            async_imap::error::Error::No(msg) | async_imap::error::Error::Bad(msg) => {
                Err(ImapError::Login {
                    user: endpoint.username.clone(),
                    detail: msg,
                })
            }
            other => Err(ImapError::Unreachable {
                addr: endpoint.display_addr(),
                detail: other.to_string(),
            }),
        },
    }
}

/// XOAUTH2's one client message. A second challenge carries the server's JSON error; it is
/// answered with an empty line, after which the server sends the tagged NO.
struct XOAuth2 {
    response: SecretString,
    sent: bool,
}

impl async_imap::Authenticator for XOAuth2 {
    type Response = Vec<u8>;

    fn process(&mut self, _challenge: &[u8]) -> Vec<u8> {
        if std::mem::replace(&mut self.sent, true) {
            Vec::new()
        } else {
            self.response.expose_secret().as_bytes().to_vec()
        }
    }
}
