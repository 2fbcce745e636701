//! IMAP sessions over tokio: plain (loopback only), STARTTLS (required, never downgraded)
//! or implicit TLS, with certificates verified against the public roots and `ca_file`.

use std::collections::HashMap;
use std::fmt::Debug;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::domain::{Endpoint, TlsMode};

/// Any byte stream an IMAP session can run over.
pub trait ImapStream: AsyncRead + AsyncWrite + Unpin + Send + Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Debug> ImapStream for T {}

pub type Session = async_imap::Session<Counted<Box<dyn ImapStream>>>;

/// What a logged-in server says it can do (CAPABILITY), by name, upper-cased (`IDLE`,
/// `AUTH=PLAIN`, `X-GM-EXT-1`): capability names are case-insensitive (RFC 3501).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caps(std::collections::HashSet<String>);

impl Caps {
    /// Capabilities by their names as a server writes them.
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Caps {
        Caps(names.into_iter().map(str::to_ascii_uppercase).collect())
    }

    fn of(caps: &async_imap::types::Capabilities) -> Caps {
        use async_imap::types::Capability;
        Caps(
            caps.iter()
                .map(|c| match c {
                    Capability::Imap4rev1 => "IMAP4REV1".to_owned(),
                    Capability::Auth(mech) => format!("AUTH={}", mech.to_ascii_uppercase()),
                    Capability::Atom(name) => name.to_ascii_uppercase(),
                })
                .collect(),
        )
    }

    /// Whether the server has the capability `name` (any case).
    pub fn has(&self, name: &str) -> bool {
        self.0.contains(&name.to_ascii_uppercase())
    }
}

/// The session's capabilities, asked once: the first call sends CAPABILITY, later ones
/// return what the session keeps (they do not change once logged in, and a session's scan,
/// engagement and IDLE each need them: one round trip for the session instead of one each).
pub async fn capabilities(session: &mut Session) -> Result<Arc<Caps>, ImapError> {
    if let Some(caps) = &session.get_ref().caps {
        return Ok(Arc::clone(caps));
    }
    let caps = shared(Caps::of(&session.capabilities().await?));
    session.get_mut().caps = Some(Arc::clone(&caps));
    Ok(caps)
}

/// One copy of each distinct set of capabilities, however many sessions keep it: thousands
/// of seeds are on a few servers, and a set is a few dozen strings (2 KiB a session, `hearth
/// bench imap-memory`, before they were shared).
fn shared(caps: Caps) -> Arc<Caps> {
    static SETS: Mutex<Vec<std::sync::Weak<Caps>>> = Mutex::new(Vec::new());
    let mut sets = SETS.lock().unwrap_or_else(|e| e.into_inner());
    sets.retain(|set| set.strong_count() > 0);
    if let Some(same) = sets
        .iter()
        .filter_map(std::sync::Weak::upgrade)
        .find(|set| **set == caps)
    {
        return same;
    }
    let caps = Arc::new(caps);
    sets.push(Arc::downgrade(&caps));
    caps
}

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

/// Whether a `NO`/`BAD` answer to LOGIN means "these credentials are refused" (the seed is
/// broken until someone fixes them) rather than "not now" (RFC 5530 response codes: the server
/// is unavailable, the account is in use or over a limit). Without a response code, a refusal.
pub fn login_refused(reason: &str) -> bool {
    const NOT_NOW: &[&str] = &["[UNAVAILABLE]", "[INUSE]", "[LIMIT]", "[SERVERBUG]"];
    let upper = reason.to_ascii_uppercase();
    !NOT_NOW.iter().any(|code| upper.contains(code))
}

/// Process-wide IMAP counters: commands sent (every tagged command, STARTTLS and LOGIN
/// included) and sessions open (streams alive, from the greeting to the drop).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImapStats {
    pub commands: u64,
    /// Times a command went out after the server had answered: commands sent together
    /// without waiting in between (a pipeline) are one round trip.
    pub round_trips: u64,
    pub sessions_open: i64,
}

static COMMANDS: AtomicU64 = AtomicU64::new(0);
static ROUND_TRIPS: AtomicU64 = AtomicU64::new(0);
static SESSIONS_OPEN: AtomicI64 = AtomicI64::new(0);

pub fn stats() -> ImapStats {
    ImapStats {
        commands: COMMANDS.load(Ordering::Relaxed),
        round_trips: ROUND_TRIPS.load(Ordering::Relaxed),
        sessions_open: SESSIONS_OPEN.load(Ordering::Relaxed),
    }
}

/// The stream under every session: counts the tagged commands written through it (async-imap
/// writes each tag, `A0001`, as its own write at the start of a line) and the round trips
/// (a command written after something was read since the last one) and keeps the open-session
/// gauge. Sits above TLS, so it sees the plain protocol. Bytes read off it past what a reader
/// of its own needed ([`super::wire::Reader`]) are given back ([`Counted::unread`]) and are
/// what the session reads next.
#[derive(Debug)]
pub struct Counted<S> {
    inner: S,
    at_line_start: bool,
    /// Given back, read before anything else: `unread[at..]`.
    unread: Vec<u8>,
    at: usize,
    /// The logged-in session's capabilities, once asked ([`capabilities`]).
    caps: Option<Arc<Caps>>,
    /// Something was read since the last command: the next one starts a round trip.
    answered: bool,
}

impl<S> Counted<S> {
    fn new(inner: S) -> Self {
        SESSIONS_OPEN.fetch_add(1, Ordering::Relaxed);
        Counted {
            inner,
            at_line_start: true,
            unread: Vec::new(),
            at: 0,
            caps: None,
            answered: true,
        }
    }

    /// Gives `bytes` back: the next reads return them first, before what is still unread.
    pub(crate) fn unread(&mut self, mut bytes: Vec<u8>) {
        if bytes.is_empty() {
            return;
        }
        bytes.extend_from_slice(&self.unread[self.at..]);
        self.unread = bytes;
        self.at = 0;
    }
}

impl<S> Drop for Counted<S> {
    fn drop(&mut self) {
        SESSIONS_OPEN.fetch_sub(1, Ordering::Relaxed);
    }
}

fn is_tag(buf: &[u8]) -> bool {
    buf.len() == 5 && buf[0] == b'A' && buf[1..].iter().all(u8::is_ascii_digit)
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.at < this.unread.len() {
            let n = buf.remaining().min(this.unread.len() - this.at);
            buf.put_slice(&this.unread[this.at..this.at + n]);
            this.at += n;
            if this.at == this.unread.len() {
                this.unread = Vec::new();
                this.at = 0;
            }
            this.answered |= n > 0;
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        this.answered |= buf.filled().len() > before;
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &poll {
            if this.at_line_start && *n == buf.len() && is_tag(buf) {
                COMMANDS.fetch_add(1, Ordering::Relaxed);
                if std::mem::take(&mut this.answered) {
                    ROUND_TRIPS.fetch_add(1, Ordering::Relaxed);
                }
            }
            if *n > 0 {
                this.at_line_start = buf[..*n].ends_with(b"\r\n");
            }
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// One rustls config per CA file, shared by every session: a config holds the whole root
/// store and the session-resumption cache, far too much to build per connection when
/// thousands of seeds stay logged in.
fn tls_connector(
    ca_file: Option<&std::path::Path>,
) -> Result<tokio_rustls::TlsConnector, crate::tls::TlsError> {
    static CONFIGS: Mutex<Option<HashMap<Option<PathBuf>, Arc<rustls::ClientConfig>>>> =
        Mutex::new(None);
    let key = ca_file.map(std::path::Path::to_path_buf);
    let mut cache = CONFIGS.lock().unwrap_or_else(|e| e.into_inner());
    let map = cache.get_or_insert_with(HashMap::new);
    if let Some(cfg) = map.get(&key) {
        return Ok(tokio_rustls::TlsConnector::from(cfg.clone()));
    }
    let cfg = crate::tls::client_config(ca_file)?;
    map.insert(key, cfg.clone());
    Ok(tokio_rustls::TlsConnector::from(cfg))
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

/// The TCP connection under a session, its commands sent at once (`TCP_NODELAY`): async-imap
/// writes a command's tag and its text separately, and with Nagle's algorithm the text waits
/// for the ACK of the tag, which the server may delay (40 ms on Linux): a stall per command,
/// and a pipelined scan's SEARCH and FETCH would wait behind its SELECT. (With 2 ms of round
/// trip between them, `hearth bench imap-scan --rtt-ms 2` went from 61 to 20 ms.)
async fn connect_tcp(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, String> {
    let tcp = tokio::time::timeout(timeout, TcpStream::connect((host, port)))
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    Ok(tcp)
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
    let tcp = connect_tcp(host, endpoint.port, timeout)
        .await
        .map_err(unreachable)?;

    let connector = || -> Result<tokio_rustls::TlsConnector, ImapError> {
        tls_connector(endpoint.ca_file.as_deref()).map_err(|e| tls_err(e.to_string()))
    };
    let name = || crate::tls::server_name(host).map_err(|e| tls_err(e.to_string()));

    let stream: Box<dyn ImapStream> = match endpoint.tls {
        TlsMode::None => {
            let mut client = async_imap::Client::new(Counted::new(Box::new(tcp) as Box<_>));
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
            // Written on the plain stream, below the counting wrapper: counted here.
            COMMANDS.fetch_add(1, Ordering::Relaxed);
            ROUND_TRIPS.fetch_add(1, Ordering::Relaxed);
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
    let mut client = async_imap::Client::new(Counted::new(stream));
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
    client: async_imap::Client<Counted<Box<dyn ImapStream>>>,
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
            async_imap::error::Error::No(msg) | async_imap::error::Error::Bad(msg)
                if login_refused(&msg) =>
            {
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

/// The Unix time of an IMAP `date-time` (RFC 3501: `"dd-Mon-yyyy hh:mm:ss +zzzz"`, the day
/// one or two digits, space-padded or not), such as a message's INTERNALDATE.
///
/// A scan reads a thousand of these in one FETCH: the usual shape is read directly, anything
/// else by chrono with the format async-imap uses, with the same results.
pub fn date_time(s: &str) -> Option<i64> {
    date_time_plain(s).or_else(|| {
        chrono::DateTime::parse_from_str(s, "%d-%b-%Y %H:%M:%S %z")
            .ok()
            .map(|d| d.timestamp())
    })
}

/// [`date_time`] for the usual shape; `None` where it is not (or is no valid time).
fn date_time_plain(s: &str) -> Option<i64> {
    const MONTHS: [&[u8; 3]; 12] = [
        b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov",
        b"dec",
    ];
    let b = s.trim_start_matches(' ').as_bytes();
    let day_len = b.iter().position(|&c| c == b'-')?;
    let rest = b.get(day_len..)?;
    // "-Mon-yyyy hh:mm:ss +zzzz"
    let [
        b'-',
        m0,
        m1,
        m2,
        b'-',
        y0,
        y1,
        y2,
        y3,
        b' ',
        h0,
        h1,
        b':',
        i0,
        i1,
        b':',
        s0,
        s1,
        b' ',
        sign,
        z0,
        z1,
        z2,
        z3,
    ] = *rest
    else {
        return None;
    };
    let digits = |ds: &[u8]| -> Option<u32> {
        ds.iter().try_fold(0u32, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    if !(1..=2).contains(&day_len) {
        return None;
    }
    let day = digits(&b[..day_len])?;
    let month = [m0, m1, m2].map(|c| c.to_ascii_lowercase());
    let month = MONTHS.iter().position(|m| **m == month)? as u32 + 1;
    let year = digits(&[y0, y1, y2, y3])?;
    let (hour, minute, second) = (digits(&[h0, h1])?, digits(&[i0, i1])?, digits(&[s0, s1])?);
    let (zone_hours, zone_minutes) = (digits(&[z0, z1])?, digits(&[z2, z3])?);
    if zone_hours > 23 || zone_minutes > 59 {
        return None;
    }
    let zone = i64::from(zone_hours * 3600 + zone_minutes * 60);
    let zone = match sign {
        b'+' => zone,
        b'-' => -zone,
        _ => return None,
    };
    let local = chrono::NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?
        .and_hms_opt(hour, minute, second)?
        .and_utc()
        .timestamp();
    Some(local - zone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn commands_are_not_held_back_for_acks() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let tcp = connect_tcp("127.0.0.1", port, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(tcp.nodelay().unwrap());
        drop(listener);
        let refused = connect_tcp("127.0.0.1", port, Duration::from_secs(5)).await;
        assert!(refused.is_err(), "{refused:?}");
    }

    #[test]
    fn sessions_share_one_copy_of_the_same_capabilities() {
        let a = shared(Caps::from_names(["IMAP4rev1", "IDLE", "X-TEST-SHARED"]));
        let b = shared(Caps::from_names(["idle", "imap4rev1", "x-test-shared"]));
        let c = shared(Caps::from_names(["IMAP4rev1", "X-TEST-SHARED"]));
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
        drop((a, b));
        // Once no session keeps it, the set is gone.
        let d = shared(Caps::from_names(["IMAP4rev1", "IDLE", "X-TEST-SHARED"]));
        assert_eq!(Arc::strong_count(&d), 1);
    }

    #[test]
    fn capabilities_match_in_any_case() {
        let caps = Caps::from_names(["IMAP4rev1", "IDLE", "AUTH=PLAIN", "x-gm-ext-1"]);
        for name in ["idle", "IDLE", "X-GM-EXT-1", "auth=plain", "imap4REV1"] {
            assert!(caps.has(name), "{name}");
        }
        for name in ["MOVE", "AUTH", "PLAIN", ""] {
            assert!(!caps.has(name), "{name}");
        }
    }

    #[tokio::test]
    async fn bytes_given_back_are_read_first() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (near, mut far) = tokio::io::duplex(64);
        far.write_all(b" after").await.unwrap();
        drop(far);
        let mut s = Counted::new(near);
        s.unread(b"2 back".to_vec());
        s.unread(b"1 given ".to_vec());
        s.unread(Vec::new());
        let mut first = [0u8; 5];
        s.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"1 giv");
        let mut rest = String::new();
        s.read_to_string(&mut rest).await.unwrap();
        assert_eq!(rest, "en 2 back after");
    }

    #[test]
    fn date_times_read_as_chrono_reads_them() {
        let chrono_reads = |s: &str| {
            chrono::DateTime::parse_from_str(s, "%d-%b-%Y %H:%M:%S %z")
                .ok()
                .map(|d| d.timestamp())
        };
        for s in [
            "30-Nov-2026 09:12:40 +0000",
            " 1-Jan-2026 00:00:00 +0000",
            "1-Jan-2026 00:00:00 +0000",
            "01-jan-2026 00:00:00 -0130",
            "29-Feb-2024 23:59:59 +1400",
            "31-Dec-1999 12:00:00 -2300",
            "17-JUL-1996 02:44:25 -0700",
            "15-Mar-2026 10:30:00 +0545",
        ] {
            assert_eq!(date_time_plain(s), chrono_reads(s), "{s}");
            assert!(date_time_plain(s).is_some(), "{s}");
        }
        assert_eq!(
            date_time("17-Jul-1996 02:44:25 -0700"),
            Some(837_596_665),
            "RFC 3501's example"
        );
        // Not the usual shape: chrono decides, as it did; no valid time is no time.
        for s in [
            "29-Feb-2026 00:00:00 +0000",
            "31-Apr-2026 00:00:00 +0000",
            "30-Nov-2026 24:00:00 +0000",
            "30-Nov-2026 09:60:00 +0000",
            "30-Foo-2026 09:12:40 +0000",
            "30-Nov-2026 09:12:40 0000",
            "30-Nov-2026 09:12:40 +0099",
            "130-Nov-2026 09:12:40 +0000",
            "30-Nov-2026 09:12:40",
            "",
        ] {
            assert_eq!(date_time_plain(s), None, "{s}");
            assert_eq!(date_time(s), chrono_reads(s), "{s}");
        }
    }

    #[test]
    fn login_answers_are_classified() {
        // (server's text after NO, refused for good?)
        let cases = [
            ("[AUTHENTICATIONFAILED] Authentication failed.", true),
            ("[AUTHORIZATIONFAILED] No such user", true),
            ("[EXPIRED] Password expired", true),
            ("[PRIVACYREQUIRED] TLS needed", true),
            ("Invalid credentials (Failure)", true),
            ("[UNAVAILABLE] Temporary authentication failure.", false),
            ("[INUSE] Mailbox locked", false),
            ("[LIMIT] Too many simultaneous connections", false),
            ("[SERVERBUG] Internal error occurred.", false),
        ];
        for (text, refused) in cases {
            assert_eq!(login_refused(text), refused, "{text}");
        }
    }

    #[test]
    fn only_tag_shaped_writes_count() {
        assert!(is_tag(b"A0001"));
        assert!(is_tag(b"A9999"));
        for not in [&b"A001"[..], b"A0001 ", b"B0001", b"DONE\r\n", b"A00x1"] {
            assert!(!is_tag(not), "{not:?}");
        }
    }
}
