//! A minimal HTTP/1.1 POST for webhooks (http:// to loopback, https:// with verified TLS).
//! One request per connection (`Connection: close`); only the status line is read.

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncRead, AsyncWrite, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

/// Why a POST did not get a 2xx.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    #[error("bad webhook URL: {0}")]
    BadUrl(String),
    #[error("connection failed: {0}")]
    Connect(std::io::Error),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("timed out")]
    Timeout,
    #[error("malformed response: {0}")]
    Malformed(String),
    #[error("HTTP {0}")]
    Status(u16),
}

impl PostError {
    /// Worth retrying: network trouble, a timeout, or a status that says "later".
    pub fn is_transient(&self) -> bool {
        match self {
            PostError::Connect(_) | PostError::Timeout | PostError::Malformed(_) => true,
            PostError::Status(s) => matches!(s, 408 | 425 | 429) || *s >= 500,
            PostError::BadUrl(_) | PostError::Tls(_) => false,
        }
    }
}

struct Url<'a> {
    tls: bool,
    host: &'a str,
    port: u16,
    path: &'a str,
}

fn parse(url: &str) -> Result<Url<'_>, PostError> {
    let bad = || PostError::BadUrl(url.to_owned());
    let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
    let tls = match scheme {
        "https" => true,
        "http" => false,
        _ => return Err(bad()),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
            (h, p.parse().map_err(|_| bad())?)
        }
        _ => (authority, if tls { 443 } else { 80 }),
    };
    if host.is_empty() {
        return Err(bad());
    }
    Ok(Url {
        tls,
        host: host.trim_start_matches('[').trim_end_matches(']'),
        port,
        path,
    })
}

/// POSTs `body` with `headers`; `Ok` on a 2xx status.
pub async fn post(
    url: &str,
    ca_file: Option<&Path>,
    headers: &[(&str, String)],
    body: &[u8],
    timeout: Duration,
) -> Result<(), PostError> {
    let u = parse(url)?;
    tokio::time::timeout(timeout, async {
        let tcp = TcpStream::connect((u.host, u.port))
            .await
            .map_err(PostError::Connect)?;
        let _ = tcp.set_nodelay(true);
        if u.tls {
            let cfg =
                crate::tls::client_config(ca_file).map_err(|e| PostError::Tls(e.to_string()))?;
            let name =
                crate::tls::server_name(u.host).map_err(|e| PostError::Tls(e.to_string()))?;
            let stream = tokio_rustls::TlsConnector::from(cfg)
                .connect(name, tcp)
                .await
                .map_err(|e| PostError::Tls(e.to_string()))?;
            exchange(stream, &u, headers, body).await
        } else {
            exchange(tcp, &u, headers, body).await
        }
    })
    .await
    .map_err(|_| PostError::Timeout)?
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    u: &Url<'_>,
    headers: &[(&str, String)],
    body: &[u8],
) -> Result<(), PostError> {
    let mut head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: hearth/{}\r\nContent-Length: {}\r\nConnection: close\r\n",
        u.path,
        u.host,
        env!("CARGO_PKG_VERSION"),
        body.len()
    );
    for (k, v) in headers {
        head.push_str(k);
        head.push_str(": ");
        head.push_str(v);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    stream
        .write_all(head.as_bytes())
        .await
        .map_err(PostError::Connect)?;
    stream.write_all(body).await.map_err(PostError::Connect)?;
    stream.flush().await.map_err(PostError::Connect)?;
    let mut line = String::new();
    BufReader::new(stream)
        .read_line(&mut line)
        .await
        .map_err(PostError::Connect)?;
    let status: u16 = line
        .strip_prefix("HTTP/1.")
        .and_then(|r| r.get(2..5))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| PostError::Malformed(line.trim().chars().take(80).collect()))?;
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(PostError::Status(status))
    }
}
