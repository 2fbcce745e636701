//! The SMTP client: one small connection pool per sending identity, built on lettre's SMTP
//! connection (EHLO with our HELO name, STARTTLS, AUTH, DATA).
//!
//! Why not lettre's own pooled transport: its sockets keep Nagle's algorithm on, so on a fast
//! relay every message waits for a delayed ACK (~40 ms each, measured: 22 msg/s on one
//! session against a sink). Here the TCP socket is opened by us with TCP_NODELAY, then handed
//! to lettre. Idle connections are reused without a NOOP per message; a pooled connection that
//! turns out to be dead before any content left is replaced once, transparently. What lettre
//! writes is sent when it next reads ([`WriteBehind`]): a message and its terminating `.`
//! leave in one segment.
//!
//! The transaction itself is ours, on lettre's commands ([`transact`]): with a relay that
//! announces PIPELINING (RFC 2920; Postfix, Gmail and Microsoft do) MAIL, RCPT and DATA leave
//! in one write and their replies are read in order, so a message costs two round trips
//! instead of four; every reply of the group is read, refusals included, so a refused
//! recipient does not cost the connection. And it knows how far it got: once the content has
//! started to go out, a lost connection or a timeout is [`SmtpError::Unsure`] (the relay may
//! have the message), which is never retried here; the row stays `sending` for the
//! reconciler, which looks in the recipient's mailbox first.

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
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::{ClientId, MailBodyParameter, MailParameter};
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
    /// The relay cannot take this message as written (8-bit content or an internationalized
    /// address without 8BITMIME / SMTPUTF8): permanent.
    #[error("{0}")]
    Unsupported(String),
    /// The message content went out but no reply came back (the connection dropped or timed
    /// out): the relay may have taken it. Sending it again could deliver it twice.
    #[error("the relay may have the message (no reply to its content): {0}")]
    Unsure(String),
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
    conn: Session,
    since: Instant,
}

/// An SMTP connection logged in and ready for transactions, with what its relay offers
/// beyond what lettre records.
struct Session {
    conn: AsyncSmtpConnection,
    /// The relay announced PIPELINING (RFC 2920): a transaction's MAIL, RCPT and DATA go out
    /// in one write, and their replies are read in order.
    pipelining: bool,
}

/// How far a transaction got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// MAIL, RCPT, DATA: no content has left, so nothing can have been delivered.
    Envelope,
    /// The content is being written or its reply awaited: the relay may have the message.
    Content,
}

/// A failed transaction: the error, and what becomes of its connection.
struct Failed {
    error: lettre::transport::smtp::Error,
    after: After,
}

/// What becomes of a connection after a failed transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    /// In step with the relay (every reply read, no transaction open): back to the pool.
    Reuse,
    /// Not to be used again: QUIT (bounded), then closed.
    Quit,
    /// The relay took DATA and waits for content: closed without QUIT, which it would read
    /// as content.
    Drop,
}

/// One mail transaction on `s` (RFC 5321 MAIL with `params`, RCPT, DATA, content), pipelined
/// when the relay offers it. `stage` follows its progress, so that a caller whose timeout
/// cuts it short knows whether the content had started to go out.
async fn transact(
    s: &mut Session,
    envelope: &Envelope,
    params: Vec<MailParameter>,
    raw: &[u8],
    stage: &mut Stage,
) -> Result<Response, Failed> {
    *stage = Stage::Envelope;
    let failed = |error: lettre::transport::smtp::Error| Failed {
        after: if error.status().is_some() {
            After::Reuse
        } else {
            After::Quit
        },
        error,
    };
    let conn = &mut s.conn;
    let mail = Mail::new(envelope.from().cloned(), params);
    let rcpts: Vec<Rcpt> = envelope
        .to()
        .iter()
        .map(|to| Rcpt::new(to.clone(), Vec::new()))
        .collect();
    // The envelope's first refusal, whether MAIL had been accepted (a transaction is open on
    // the relay), and whether DATA was (the relay waits for content).
    let mut refused = None;
    let mut mail_accepted = false;
    let mut data_accepted = false;
    if s.pipelining {
        use fmt::Write as _;
        let mut group = mail.to_string();
        for r in &rcpts {
            let _ = write!(group, "{r}");
        }
        let _ = write!(group, "{Data}");
        // Every reply of the group is read, refusals included, so the connection stays in
        // step; the first refusal is the transaction's answer.
        let replies = rcpts.len() + 2;
        for i in 0..replies {
            let reply = if i == 0 {
                conn.command(&group).await
            } else {
                conn.read_response().await
            };
            match reply {
                Ok(_) if i == 0 => mail_accepted = true,
                Ok(_) => data_accepted = i + 1 == replies,
                Err(e) if e.status().is_some() => {
                    refused.get_or_insert(e);
                }
                // The connection is gone. A refusal read before (a 421 closing the
                // connection, say) is still the relay's answer.
                Err(e) => {
                    return Err(match refused {
                        Some(error) => Failed {
                            error,
                            after: After::Quit,
                        },
                        None => failed(e),
                    });
                }
            }
        }
    } else {
        let steps = async {
            conn.command(&mail).await?;
            mail_accepted = true;
            for r in &rcpts {
                conn.command(r).await?;
            }
            conn.command(Data).await?;
            data_accepted = true;
            Ok::<_, lettre::transport::smtp::Error>(())
        };
        if let Err(e) = steps.await {
            if e.status().is_none() {
                return Err(failed(e));
            }
            refused = Some(e);
        }
    }
    if let Some(error) = refused {
        let after = if data_accepted {
            // DATA taken after a refusal: the relay waits for content that will not come.
            After::Drop
        } else if mail_accepted && conn.command(Rset).await.is_err() {
            // A refused recipient or DATA leaves the transaction open (Postfix answers the
            // next MAIL with "503 nested MAIL command"): RSET closes it, or the connection goes.
            After::Quit
        } else {
            After::Reuse
        };
        return Err(Failed { error, after });
    }
    *stage = Stage::Content;
    match std::str::from_utf8(raw) {
        // The usual (ASCII) message: stuffed and terminated in one pass as it is written.
        Ok(text) => conn.command(WireContent(text)).await.map_err(failed),
        Err(_) => conn.message(raw).await.map_err(failed),
    }
}

/// A message's content as it goes on the wire (RFC 5321 4.5.2), as lettre's `message`
/// writes it: a dot that starts a line (after CRLF, or the first byte) doubled, then the
/// terminating `CRLF . CRLF`. Written straight into the command buffer, instead of lettre's
/// byte-by-byte copy first.
struct WireContent<'a>(&'a str);

impl fmt::Display for WireContent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        if rest.starts_with('.') {
            f.write_str(".")?;
        }
        while let Some(i) = rest.find("\r\n.") {
            f.write_str(&rest[..i + 2])?;
            f.write_str(".")?;
            rest = &rest[i + 2..];
        }
        f.write_str(rest)?;
        f.write_str("\r\n.\r\n")
    }
}

/// Ends a connection that will not be used again: QUIT, bounded (a relay waiting for content
/// reads QUIT as content and never answers), then the socket is closed.
async fn close(conn: &mut AsyncSmtpConnection) {
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, conn.abort()).await;
}

/// How long a QUIT may wait for its reply.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

fn envelope_is_international(envelope: &Envelope) -> bool {
    let non_ascii = |a: &lettre::Address| !AsRef::<str>::as_ref(a).is_ascii();
    envelope.from().is_some_and(non_ascii) || envelope.to().iter().any(non_ascii)
}

/// Whether an EHLO reply announces `keyword` (its lines after the greeting, by first word).
fn announces(ehlo: &Response, keyword: &str) -> bool {
    ehlo.message().skip(1).any(|line| {
        line.split_whitespace()
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case(keyword))
    })
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
    async fn connect(&self) -> Result<Session, SmtpError> {
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
            // lettre keeps only some of the EHLO reply's extensions: ask again (one round trip
            // per connection, before AUTH) to learn whether the relay pipelines.
            let ehlo = conn.command(Ehlo::new(i.hello.clone())).await?;
            let pipelining = announces(&ehlo, "PIPELINING");
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
            Ok::<_, SmtpError>(Session { conn, pipelining })
        };
        tokio::time::timeout(i.timeout, setup)
            .await
            .map_err(|_| connect_err("SMTP session setup timed out".into()))?
    }

    async fn take_idle(&self) -> Option<Session> {
        let mut idle = self.0.idle.lock().await;
        while let Some(c) = idle.pop() {
            if c.since.elapsed() < IDLE {
                return Some(c.conn);
            }
            let mut conn = c.conn.conn;
            tokio::spawn(async move { close(&mut conn).await });
        }
        None
    }

    async fn give_back(&self, conn: Session) {
        if conn.conn.has_broken() {
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
    /// connection found dead before any content left is replaced once; once the content has
    /// started to go out, a lost connection or a timeout is [`SmtpError::Unsure`], never a
    /// second try here.
    pub async fn send_raw(&self, envelope: &Envelope, raw: &[u8]) -> Result<Response, SmtpError> {
        let mut idle = self.take_idle().await;
        loop {
            let reused = idle.is_some();
            let mut s = match idle.take() {
                Some(s) => s,
                None => self.connect().await?,
            };
            let mut stage = Stage::Envelope;
            return match self.attempt(&mut s, envelope, raw, &mut stage).await {
                Ok(r) => {
                    self.give_back(s).await;
                    Ok(r)
                }
                // The connection died while idle (no reply, nothing sent): a fresh one.
                Err(Attempt::Lost(_)) if reused && stage == Stage::Envelope => continue,
                Err(a) => Err(self.settle_failure(s, a, stage).await),
            };
        }
    }

    /// One transaction under the client's timeout.
    async fn attempt(
        &self,
        s: &mut Session,
        envelope: &Envelope,
        raw: &[u8],
        stage: &mut Stage,
    ) -> Result<Response, Attempt> {
        use lettre::transport::smtp::extension::Extension;
        // The MAIL parameters lettre's own `send` would give, and its checks.
        let offers = |e| s.conn.server_info().supports_feature(e);
        let mut params = Vec::new();
        if envelope_is_international(envelope) {
            if !offers(Extension::SmtpUtfEight) {
                return Err(Attempt::Unsupported(
                    "an address is internationalized and the relay does not offer SMTPUTF8".into(),
                ));
            }
            params.push(MailParameter::SmtpUtfEight);
        }
        if !raw.is_ascii() {
            if !offers(Extension::EightBitMime) {
                return Err(Attempt::Unsupported(
                    "the message has 8-bit content and the relay does not offer 8BITMIME".into(),
                ));
            }
            params.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        match tokio::time::timeout(self.0.timeout, transact(s, envelope, params, raw, stage)).await
        {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(f)) if f.error.status().is_some() => Err(Attempt::Answered(f.error, f.after)),
            Ok(Err(f)) => Err(Attempt::Lost(f.error.to_string())),
            Err(_) => Err(Attempt::Lost("the SMTP transaction timed out".into())),
        }
    }

    /// The error a failed attempt reports; the connection goes back to the pool when it is
    /// still in step with the relay.
    async fn settle_failure(&self, mut s: Session, a: Attempt, stage: Stage) -> SmtpError {
        match a {
            Attempt::Unsupported(why) => {
                self.give_back(s).await;
                SmtpError::Unsupported(why)
            }
            Attempt::Answered(e, after) => {
                match after {
                    After::Reuse => self.give_back(s).await,
                    After::Quit => close(&mut s.conn).await,
                    After::Drop => {}
                }
                e.into()
            }
            Attempt::Lost(detail) => {
                close(&mut s.conn).await;
                match stage {
                    Stage::Envelope => SmtpError::Connect {
                        addr: format!("{}:{}", self.0.host, self.0.port),
                        detail,
                    },
                    Stage::Content => SmtpError::Unsure(detail),
                }
            }
        }
    }
}

/// How one attempt failed.
enum Attempt {
    /// The relay refused (a reply code), and what becomes of the connection.
    Answered(lettre::transport::smtp::Error, After),
    /// No reply: the connection dropped or the transaction timed out.
    Lost(String),
    /// The message needs an extension the relay does not offer.
    Unsupported(String),
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

    use super::super::classify::Failure;
    use super::*;

    /// What the scripted relay does.
    #[derive(Clone, Copy)]
    struct Script {
        /// Announce PIPELINING, and answer MAIL, RCPT and DATA only once all three are in
        /// (a client that waits for MAIL's reply before sending RCPT would stall).
        pipelining: bool,
        /// After a message's content: no reply, the connection closed.
        hang_up_after_content: bool,
        /// After a message's 250: the connection closed (as an idle timeout would).
        close_after_message: bool,
    }

    /// Answers as it is told, takes every message.
    const PLAIN: Script = Script {
        pipelining: false,
        hang_up_after_content: false,
        close_after_message: false,
    };

    struct Relay {
        addr: std::net::SocketAddr,
        /// Connections accepted.
        connections: Arc<AtomicUsize>,
        /// Message contents received in full (to the final dot).
        contents: Arc<AtomicUsize>,
    }

    async fn relay(script: Script) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let contents = Arc::new(AtomicUsize::new(0));
        let (conns, got) = (connections.clone(), contents.clone());
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                conns.fetch_add(1, Ordering::SeqCst);
                let got = got.clone();
                tokio::spawn(async move {
                    let (read, mut write) = socket.into_split();
                    let mut lines = BufReader::new(read).lines();
                    write.write_all(b"220 relay.test ESMTP\r\n").await.ok();
                    // Envelope replies held back until DATA (pipelining mode).
                    let mut held: Vec<&[u8]> = Vec::new();
                    let mut rcpt_ok = false;
                    let mut in_mail = false;
                    let mut data = false;
                    while let Ok(Some(line)) = lines.next_line().await {
                        if data {
                            if line != "." {
                                continue;
                            }
                            data = false;
                            in_mail = false;
                            got.fetch_add(1, Ordering::SeqCst);
                            if script.hang_up_after_content {
                                return;
                            }
                            write.write_all(b"250 2.0.0 Ok: queued\r\n").await.ok();
                            if script.close_after_message {
                                return;
                            }
                            continue;
                        }
                        let reply: &[u8] = if line.starts_with("EHLO") {
                            if script.pipelining {
                                b"250-relay.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
                            } else {
                                b"250-relay.test\r\n250 8BITMIME\r\n"
                            }
                        } else if line.starts_with("MAIL") && in_mail {
                            // As Postfix: a transaction stays open until its end or RSET.
                            b"503 5.5.1 Error: nested MAIL command\r\n"
                        } else if line.starts_with("MAIL") {
                            in_mail = true;
                            b"250 2.1.0 Ok\r\n"
                        } else if line.starts_with("RSET") {
                            in_mail = false;
                            b"250 2.0.0 Ok\r\n"
                        } else if line.starts_with("RCPT TO:<closing") {
                            // Answered at once, pipelining or not, and the connection closed.
                            for r in held.drain(..) {
                                write.write_all(r).await.ok();
                            }
                            write
                                .write_all(b"421 4.7.0 Try again later, closing connection\r\n")
                                .await
                                .ok();
                            return;
                        } else if line.starts_with("RCPT TO:<gone") {
                            rcpt_ok = false;
                            b"550 5.1.1 <gone>: Recipient address rejected: User unknown\r\n"
                        } else if line.starts_with("RCPT") {
                            rcpt_ok = true;
                            b"250 2.1.5 Ok\r\n"
                        } else if line.starts_with("DATA") {
                            data = rcpt_ok;
                            if rcpt_ok {
                                b"354 go ahead\r\n"
                            } else {
                                b"554 5.5.1 Error: no valid recipients\r\n"
                            }
                        } else if line.starts_with("QUIT") {
                            write.write_all(b"221 bye\r\n").await.ok();
                            return;
                        } else {
                            b"250 2.0.0 Ok\r\n"
                        };
                        let envelope = ["MAIL", "RCPT", "DATA"].iter().any(|c| line.starts_with(c));
                        if script.pipelining && envelope {
                            held.push(reply);
                            if line.starts_with("DATA") {
                                for r in held.drain(..) {
                                    write.write_all(r).await.ok();
                                }
                            }
                        } else {
                            write.write_all(reply).await.ok();
                        }
                    }
                });
            }
        });
        Relay {
            addr,
            connections,
            contents,
        }
    }

    fn client(relay: &Relay, timeout: Duration) -> SmtpClient {
        let endpoint = Endpoint {
            host: relay.addr.ip().to_string(),
            port: relay.addr.port(),
            tls: TlsMode::None,
            ca_file: None,
            username: String::new(),
            secret: crate::secrets::SecretRef::None,
        };
        let helo = HeloName::parse("mta1.sender.test").unwrap();
        build(&endpoint, &helo, None, timeout, 1).unwrap()
    }

    fn envelope(to: &str) -> Envelope {
        Envelope::new(
            Some("hello@sender.test".parse().unwrap()),
            vec![to.parse().unwrap()],
        )
        .unwrap()
    }

    const RAW: &[u8] = b"Subject: hi\r\n\r\nhello\r\n";

    #[tokio::test]
    async fn pipelines_the_envelope_and_keeps_the_connection_after_a_refusal() {
        let relay = relay(Script {
            pipelining: true,
            ..PLAIN
        })
        .await;
        // A short timeout: a client waiting for MAIL's reply alone would stall here.
        let client = client(&relay, Duration::from_secs(5));
        for _ in 0..3 {
            let r = client.send_raw(&envelope("seed@gmail.test"), RAW).await;
            assert!(r.unwrap().is_positive());
        }
        // The refused recipient's group is read to its end (RCPT 550, DATA 554)...
        let e = client
            .send_raw(&envelope("gone@gmail.test"), RAW)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("5.1.1"), "{e}");
        assert_eq!(
            super::super::classify::classify(&e),
            Failure::UnknownRecipient
        );
        // ...so the same connection takes the next message.
        let r = client.send_raw(&envelope("seed@gmail.test"), RAW).await;
        assert!(r.unwrap().is_positive());
        assert_eq!(relay.contents.load(Ordering::SeqCst), 4);
        assert_eq!(relay.connections.load(Ordering::SeqCst), 1);
        // A 421 that closes the connection mid-group is the relay's answer (a throttle), not
        // a lost connection; the next message goes on a new one.
        let e = client
            .send_raw(&envelope("closing@gmail.test"), RAW)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("421"), "{e}");
        assert_eq!(super::super::classify::classify(&e), Failure::Throttle);
        let r = client.send_raw(&envelope("seed@gmail.test"), RAW).await;
        assert!(r.unwrap().is_positive());
        assert_eq!(relay.connections.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn without_pipelining_one_command_at_a_time() {
        let relay = relay(PLAIN).await;
        let client = client(&relay, Duration::from_secs(5));
        for _ in 0..2 {
            let r = client.send_raw(&envelope("seed@gmail.test"), RAW).await;
            assert!(r.unwrap().is_positive());
        }
        assert!(
            client
                .send_raw(&envelope("gone@gmail.test"), RAW)
                .await
                .is_err()
        );
        let r = client.send_raw(&envelope("seed@gmail.test"), RAW).await;
        assert!(r.unwrap().is_positive());
        assert_eq!(relay.contents.load(Ordering::SeqCst), 3);
        assert_eq!(relay.connections.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_connection_that_died_while_idle_is_replaced_once() {
        for pipelining in [true, false] {
            let relay = relay(Script {
                pipelining,
                close_after_message: true,
                ..PLAIN
            })
            .await;
            let client = client(&relay, Duration::from_secs(5));
            for _ in 0..3 {
                let r = client.send_raw(&envelope("seed@gmail.test"), RAW).await;
                assert!(r.unwrap().is_positive());
            }
            assert_eq!(relay.contents.load(Ordering::SeqCst), 3);
            assert_eq!(relay.connections.load(Ordering::SeqCst), 3);
        }
    }

    #[tokio::test]
    async fn no_second_try_once_the_content_left() {
        for pipelining in [true, false] {
            let relay = relay(Script {
                pipelining,
                hang_up_after_content: true,
                ..PLAIN
            })
            .await;
            let client = client(&relay, Duration::from_secs(5));
            let e = client
                .send_raw(&envelope("seed@gmail.test"), RAW)
                .await
                .unwrap_err();
            assert!(matches!(e, SmtpError::Unsure(_)), "{e:?}");
            assert_eq!(super::super::classify::classify(&e), Failure::Unsure);
            // The relay has it once: no second connection, no second copy.
            assert_eq!(relay.contents.load(Ordering::SeqCst), 1);
            assert_eq!(relay.connections.load(Ordering::SeqCst), 1);
        }
    }

    #[test]
    fn content_on_the_wire() {
        let wire = |s: &str| WireContent(s).to_string();
        assert_eq!(wire("a\r\nb\r\n"), "a\r\nb\r\n\r\n.\r\n");
        assert_eq!(
            wire(".a\r\n.b\r\n..c\r\nd.\r\n.\r\n"),
            "..a\r\n..b\r\n...c\r\nd.\r\n..\r\n\r\n.\r\n"
        );
        // As lettre: a dot after a bare LF is not at the start of a line.
        assert_eq!(wire("a\n.b"), "a\n.b\r\n.\r\n");
        assert_eq!(wire(""), "\r\n.\r\n");
    }

    #[test]
    fn ehlo_keywords() {
        let ehlo = Response::new(
            lettre::transport::smtp::response::Code::new(
                lettre::transport::smtp::response::Severity::PositiveCompletion,
                lettre::transport::smtp::response::Category::MailSystem,
                lettre::transport::smtp::response::Detail::Zero,
            ),
            vec![
                "relay.test PIPELINING".into(),
                "SIZE 1000".into(),
                "pipelining".into(),
            ],
        );
        assert!(announces(&ehlo, "PIPELINING"));
        assert!(!announces(&ehlo, "CHUNKING"));
        let greeting_only = Response::new(ehlo.code(), vec!["relay.test PIPELINING".into()]);
        assert!(!announces(&greeting_only, "PIPELINING"));
    }
}
