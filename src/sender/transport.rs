//! The SMTP client: one small connection pool per sending identity, built on lettre's SMTP
//! connection (EHLO with our HELO name, STARTTLS, AUTH, DATA).
//!
//! Why not lettre's own pooled transport: its sockets keep Nagle's algorithm on, so on a fast
//! relay every message waits for a delayed ACK (~40 ms each, measured: 22 msg/s on one
//! session against a sink). Here the TCP socket is opened by us with TCP_NODELAY, then handed
//! to lettre. Idle connections are reused without a NOOP per message; a pooled connection that
//! turns out to be dead is replaced once, transparently. What lettre writes is sent when it
//! next reads ([`WriteBehind`]): a message and its terminating `.` leave in one segment.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use lettre::Message;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, Certificate, TlsParameters,
};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::response::Response;
use secrecy::{ExposeSecret, SecretString};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::domain::{Endpoint, HeloName, TlsMode};
use crate::oauth2::{AccessToken, Grant};

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot read CA file: {0}")]
    Ca(String),
    #[error("TLS parameters for {host}: {detail}")]
    Tls { host: String, detail: String },
}

/// Why a send failed, in a form `classify` can judge.
#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    /// The relay could not be reached (refused, timeout, reset): transient.
    #[error("cannot connect to {addr}: {detail}")]
    Connect { addr: String, detail: String },
    /// An SMTP-level failure (a reply code, a TLS or AUTH problem) as lettre reports it.
    #[error(transparent)]
    Smtp(#[from] lettre::transport::smtp::Error),
    /// No OAuth2 access token could be had (the class says whether to retry).
    #[error(transparent)]
    OAuth2(#[from] crate::oauth2::OAuth2Error),
    /// The relay does not offer what the login needs (e.g. no AUTH XOAUTH2).
    #[error("{0}")]
    Auth(String),
}

/// How the client logs in after EHLO (and STARTTLS).
#[derive(Debug, Clone, Default)]
pub enum SmtpAuth {
    #[default]
    None,
    /// PLAIN or LOGIN, whichever the relay offers.
    Password(Credentials),
    /// XOAUTH2 with an access token from the grant (refreshed once if refused).
    XOAuth2 { username: String, grant: Grant },
}

impl SmtpAuth {
    /// How `endpoint` logs in: XOAUTH2 with its grant (tokens from `app`'s cache), else
    /// PLAIN/LOGIN with its resolved password.
    pub fn for_endpoint(
        app: &crate::startup::App,
        endpoint: &Endpoint,
    ) -> Result<Self, crate::secrets::SecretError> {
        Ok(match &endpoint.secret {
            crate::secrets::SecretRef::OAuth2(oauth) => SmtpAuth::XOAuth2 {
                username: endpoint.username.clone(),
                grant: crate::oauth2::Grant {
                    oauth: Arc::new((**oauth).clone()),
                    cache: app.tokens.clone(),
                    key: app.key.clone(),
                },
            },
            secret => SmtpAuth::password(endpoint, Some(&secret.resolve(&app.key)?)),
        })
    }

    /// PLAIN/LOGIN with the endpoint's username, or nothing for an empty password.
    pub fn password(endpoint: &Endpoint, password: Option<&SecretString>) -> Self {
        match password.filter(|p| !p.expose_secret().is_empty()) {
            Some(p) => SmtpAuth::Password(Credentials::new(
                endpoint.username.clone(),
                p.expose_secret().to_owned(),
            )),
            None => SmtpAuth::None,
        }
    }
}

/// How long an idle connection is kept for reuse.
const IDLE: Duration = Duration::from_secs(50);

struct Idle {
    conn: AsyncSmtpConnection,
    since: Instant,
}

/// A pooled SMTP client for one sending identity. Cheap to clone.
#[derive(Clone)]
pub struct SmtpClient(Arc<Inner>);

struct Inner {
    host: String,
    port: u16,
    mode: TlsMode,
    tls: Option<TlsParameters>,
    implicit: Option<(
        tokio_rustls::TlsConnector,
        rustls_pki_types::ServerName<'static>,
    )>,
    hello: ClientId,
    auth: SmtpAuth,
    timeout: Duration,
    max_idle: usize,
    idle: tokio::sync::Mutex<Vec<Idle>>,
}

impl fmt::Debug for SmtpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SmtpClient({}:{}, {})",
            self.0.host, self.0.port, self.0.mode
        )
    }
}

/// Bytes written to the socket are held until the next read (or shutdown), so what one
/// exchange writes leaves in one segment: lettre writes a message's content and the
/// terminating `.` separately, flushing each, which with TCP_NODELAY cost two segments (two
/// sends here, two wake-ups of the relay) per message. SMTP without pipelining always reads
/// the reply after writing a command, so nothing waits in the buffer longer than it takes to
/// get to that read. (Under STARTTLS the TLS stream sits on top of this one.)
#[derive(Debug)]
struct WriteBehind {
    io: TcpStream,
    buf: Vec<u8>,
    /// How much of `buf` has been sent.
    sent: usize,
}

/// Writes beyond this go out at once (a warm-up message is far smaller).
const WRITE_BEHIND_MAX: usize = 64 * 1024;

impl WriteBehind {
    fn new(io: TcpStream) -> Self {
        Self {
            io,
            buf: Vec::with_capacity(8 * 1024),
            sent: 0,
        }
    }

    /// Sends what is held.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while self.sent < self.buf.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.buf[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.buf.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for WriteBehind {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for WriteBehind {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if this.buf.len() + data.len() > WRITE_BEHIND_MAX {
            ready!(this.poll_drain(cx))?;
            if data.len() > WRITE_BEHIND_MAX {
                return Pin::new(&mut this.io).poll_write(cx, data);
            }
        }
        this.buf.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    /// Deferred to the next read or the shutdown (see the type).
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for WriteBehind {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.io.peer_addr()
    }
}

/// A TLS stream lettre can drive (implicit TLS: the handshake is ours, on our socket).
#[derive(Debug)]
struct ImplicitTls(tokio_rustls::client::TlsStream<WriteBehind>);

impl tokio::io::AsyncRead for ImplicitTls {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for ImplicitTls {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for ImplicitTls {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.0.get_ref().0.io.peer_addr()
    }
}

/// Builds a client that logs in with a password (or not at all).
pub fn build(
    endpoint: &Endpoint,
    helo: &HeloName,
    password: Option<&SecretString>,
    timeout: Duration,
    pool_size: u32,
) -> Result<SmtpClient, TransportError> {
    let auth = SmtpAuth::password(endpoint, password);
    build_with(endpoint, helo, auth, timeout, pool_size)
}

/// Builds the client. Certificates are verified against the public roots and `ca_file`.
pub fn build_with(
    endpoint: &Endpoint,
    helo: &HeloName,
    auth: SmtpAuth,
    timeout: Duration,
    pool_size: u32,
) -> Result<SmtpClient, TransportError> {
    let host = endpoint
        .host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let tls_err = |detail: String| TransportError::Tls {
        host: host.clone(),
        detail,
    };
    let (tls, implicit) = match endpoint.tls {
        TlsMode::None => (None, None),
        TlsMode::Starttls => {
            let mut params = TlsParameters::builder(host.clone());
            if let Some(ca) = &endpoint.ca_file {
                let pem = std::fs::read(ca)
                    .map_err(|e| TransportError::Ca(format!("{}: {e}", ca.display())))?;
                let cert = Certificate::from_pem(&pem)
                    .map_err(|e| TransportError::Ca(format!("{}: {e}", ca.display())))?;
                params = params.add_root_certificate(cert);
            }
            (
                Some(params.build_rustls().map_err(|e| tls_err(e.to_string()))?),
                None,
            )
        }
        TlsMode::Implicit => {
            let cfg = crate::tls::client_config(endpoint.ca_file.as_deref())
                .map_err(|e| tls_err(e.to_string()))?;
            let name = crate::tls::server_name(&host).map_err(|e| tls_err(e.to_string()))?;
            (None, Some((tokio_rustls::TlsConnector::from(cfg), name)))
        }
    };
    Ok(SmtpClient(Arc::new(Inner {
        host,
        port: endpoint.port,
        mode: endpoint.tls,
        tls,
        implicit,
        hello: ClientId::Domain(helo.as_str().to_owned()),
        auth,
        timeout,
        max_idle: pool_size.max(1) as usize,
        idle: tokio::sync::Mutex::new(Vec::new()),
    })))
}

impl SmtpClient {
    async fn connect(&self) -> Result<AsyncSmtpConnection, SmtpError> {
        let i = &self.0;
        let addr = format!("{}:{}", i.host, i.port);
        let connect_err = |detail: String| SmtpError::Connect {
            addr: addr.clone(),
            detail,
        };
        let tcp = tokio::time::timeout(i.timeout, TcpStream::connect((i.host.as_str(), i.port)))
            .await
            .map_err(|_| connect_err("timed out".into()))?
            .map_err(|e| connect_err(e.to_string()))?;
        tcp.set_nodelay(true)
            .map_err(|e| connect_err(e.to_string()))?;
        let tcp = WriteBehind::new(tcp);
        let stream: Box<dyn AsyncTokioStream> = match &i.implicit {
            Some((connector, name)) => {
                let tls = tokio::time::timeout(i.timeout, connector.connect(name.clone(), tcp))
                    .await
                    .map_err(|_| connect_err("TLS handshake timed out".into()))?
                    .map_err(|e| connect_err(format!("TLS handshake failed: {e}")))?;
                Box::new(ImplicitTls(tls))
            }
            None => Box::new(tcp),
        };
        let setup = async {
            let mut conn = AsyncSmtpConnection::connect_with_transport(stream, &i.hello).await?;
            if let Some(params) = &i.tls {
                // STARTTLS is required: a relay that does not offer it is refused.
                conn.starttls(params.clone(), &i.hello).await?;
            }
            match &i.auth {
                SmtpAuth::None => {}
                SmtpAuth::Password(creds) => {
                    conn.auth(&[Mechanism::Plain, Mechanism::Login], creds)
                        .await?;
                }
                SmtpAuth::XOAuth2 { username, grant } => {
                    xoauth2(&mut conn, username, grant).await?;
                }
            }
            Ok::<_, SmtpError>(conn)
        };
        tokio::time::timeout(i.timeout, setup)
            .await
            .map_err(|_| connect_err("SMTP session setup timed out".into()))?
    }

    async fn take_idle(&self) -> Option<AsyncSmtpConnection> {
        let mut idle = self.0.idle.lock().await;
        while let Some(c) = idle.pop() {
            if c.since.elapsed() < IDLE {
                return Some(c.conn);
            }
            let mut conn = c.conn;
            tokio::spawn(async move { conn.abort().await });
        }
        None
    }

    async fn give_back(&self, conn: AsyncSmtpConnection) {
        if conn.has_broken() {
            return;
        }
        let mut idle = self.0.idle.lock().await;
        if idle.len() < self.0.max_idle {
            idle.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }

    /// Sends one message. A reused connection that has died is replaced once.
    pub async fn send(&self, msg: &Message) -> Result<Response, SmtpError> {
        self.send_raw(msg.envelope(), &msg.formatted()).await
    }

    /// Sends one message already written out (CRLF lines; lettre dot-stuffs it). A reused
    /// connection that has died is replaced once.
    pub async fn send_raw(&self, envelope: &Envelope, raw: &[u8]) -> Result<Response, SmtpError> {
        let timeout = self.0.timeout;
        if let Some(mut conn) = self.take_idle().await {
            match tokio::time::timeout(timeout, conn.send(envelope, raw)).await {
                Ok(Ok(r)) => {
                    self.give_back(conn).await;
                    return Ok(r);
                }
                // A reply from the server is the server's word: report it.
                Ok(Err(e)) if e.status().is_some() => {
                    self.give_back(conn).await;
                    return Err(e.into());
                }
                // The connection died while idle: fall through to a fresh one.
                _ => {}
            }
        }
        let mut conn = self.connect().await?;
        match tokio::time::timeout(timeout, conn.send(envelope, raw)).await {
            Ok(Ok(r)) => {
                self.give_back(conn).await;
                Ok(r)
            }
            Ok(Err(e)) => {
                self.give_back(conn).await;
                Err(e.into())
            }
            Err(_) => Err(SmtpError::Connect {
                addr: format!("{}:{}", self.0.host, self.0.port),
                detail: "the SMTP transaction timed out".into(),
            }),
        }
    }
}

/// AUTH XOAUTH2 with the grant's token; if the relay refuses it (535), once more with a new
/// token on the same connection.
async fn xoauth2(
    conn: &mut AsyncSmtpConnection,
    username: &str,
    grant: &Grant,
) -> Result<(), SmtpError> {
    if !conn
        .server_info()
        .supports_auth_mechanism(Mechanism::Xoauth2)
    {
        return Err(SmtpError::Auth(
            "the relay does not offer AUTH XOAUTH2 (5.7.8: the sender cannot log in)".into(),
        ));
    }
    let token = grant.token().await?;
    match auth_xoauth2(conn, username, &token).await {
        Err(SmtpError::Smtp(e)) if e.is_permanent() => {
            tracing::info!(user = %username, error = %e, "XOAUTH2 refused; refreshing the token once");
            let token = grant.replace(&token).await?;
            auth_xoauth2(conn, username, &token).await
        }
        other => other,
    }
}

/// One AUTH XOAUTH2 exchange. A failure comes as a 334 challenge holding the server's JSON
/// error, answered with an empty line, then the final 535. (lettre's own XOAUTH2 cannot answer
/// that challenge, hence this.) lettre logs what it writes at debug level, which is why
/// telemetry caps lettre's logs at info.
async fn auth_xoauth2(
    conn: &mut AsyncSmtpConnection,
    username: &str,
    token: &AccessToken,
) -> Result<(), SmtpError> {
    struct Line(SecretString);
    impl fmt::Display for Line {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0.expose_secret())
        }
    }
    let b64 = crate::oauth2::xoauth2_base64(username, token);
    let line = Line(SecretString::from(format!(
        "AUTH XOAUTH2 {}\r\n",
        b64.expose_secret()
    )));
    let response = conn.command(line).await?;
    if response.has_code(334) {
        conn.command(Line(SecretString::from("\r\n".to_owned())))
            .await?;
        return Err(SmtpError::Auth(
            "the relay answered the XOAUTH2 error challenge with success".into(),
        ));
    }
    Ok(())
}
