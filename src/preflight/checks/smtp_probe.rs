//! `smtp.probe`: connect to the sender's relay as the sender would — banner, EHLO with our HELO
//! name, STARTTLS offered and a certificate valid for the host (respecting `ca_file`), AUTH
//! offered. It never logs in and never sends mail (it ends with QUIT).

use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncRead, AsyncWrite, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

use crate::domain::{Endpoint, TlsMode, Verdict};
use crate::preflight::check::{CheckId, CheckResult};
use crate::preflight::identity::Identity;

/// One SMTP reply: code and lines.
struct Reply {
    code: u16,
    lines: Vec<String>,
}

async fn read_reply<S: AsyncRead + Unpin>(r: &mut BufReader<S>) -> Result<Reply, String> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        let n = r.read_line(&mut line).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed by the server".into());
        }
        let line = line.trim_end().to_owned();
        if line.len() < 3 {
            return Err(format!("malformed reply {line:?}"));
        }
        let code: u16 = line[..3]
            .parse()
            .map_err(|_| format!("malformed reply {line:?}"))?;
        let more = line.as_bytes().get(3) == Some(&b'-');
        lines.push(line.get(4..).unwrap_or("").to_owned());
        if !more {
            return Ok(Reply { code, lines });
        }
    }
}

async fn command<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut BufReader<S>,
    cmd: &str,
) -> Result<Reply, String> {
    s.get_mut()
        .write_all(format!("{cmd}\r\n").as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    s.get_mut().flush().await.map_err(|e| e.to_string())?;
    read_reply(s).await
}

/// What the probe learned.
#[derive(Debug, Default)]
struct Findings {
    evidence: Vec<String>,
    tls: Option<String>,
    starttls_offered: bool,
    auth: Option<String>,
}

async fn ehlo<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut BufReader<S>,
    helo: &str,
    f: &mut Findings,
) -> Result<(), String> {
    let r = command(s, &format!("EHLO {helo}")).await?;
    if r.code != 250 {
        return Err(format!(
            "EHLO {helo} refused: {} {}",
            r.code,
            r.lines.join(" ")
        ));
    }
    f.evidence.push(format!(
        "EHLO {helo} → 250 {}",
        r.lines
            .iter()
            .skip(1)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    ));
    f.starttls_offered = r.lines.iter().any(|l| l.eq_ignore_ascii_case("STARTTLS"));
    f.auth = r
        .lines
        .iter()
        .find(|l| l.to_ascii_uppercase().starts_with("AUTH"))
        .cloned();
    Ok(())
}

async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: BufReader<S>,
    helo: &str,
    f: &mut Findings,
    greeted: bool,
) -> Result<(), String> {
    if !greeted {
        let banner = read_reply(&mut s).await?;
        if banner.code != 220 {
            return Err(format!("banner {} {}", banner.code, banner.lines.join(" ")));
        }
        f.evidence
            .push(format!("banner: 220 {}", banner.lines.join(" ")));
    }
    ehlo(&mut s, helo, f).await?;
    let _ = command(&mut s, "QUIT").await;
    Ok(())
}

async fn tls_connect<S: AsyncRead + AsyncWrite + Unpin>(
    endpoint: &Endpoint,
    io: S,
    f: &mut Findings,
) -> Result<tokio_rustls::client::TlsStream<S>, String> {
    let cfg = crate::tls::client_config(endpoint.ca_file.as_deref()).map_err(|e| e.to_string())?;
    let name = crate::tls::server_name(&endpoint.host).map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(cfg)
        .connect(name, io)
        .await
        .map_err(|e| format!("TLS handshake with {} failed: {e}", endpoint.host))?;
    let (_, conn) = tls.get_ref();
    let v = conn
        .protocol_version()
        .map(|v| format!("{v:?}"))
        .unwrap_or_default();
    let cs = conn
        .negotiated_cipher_suite()
        .map(|c| format!("{:?}", c.suite()))
        .unwrap_or_default();
    f.tls = Some(format!("{v} {cs}, certificate valid for {}", endpoint.host));
    Ok(tls)
}

async fn probe(endpoint: &Endpoint, helo: &str, f: &mut Findings) -> Result<(), String> {
    let host = endpoint.host.trim_start_matches('[').trim_end_matches(']');
    let tcp = TcpStream::connect((host, endpoint.port))
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", endpoint.display_addr()))?;
    match endpoint.tls {
        TlsMode::None => session(BufReader::new(tcp), helo, f, false).await,
        TlsMode::Implicit => {
            let tls = tls_connect(endpoint, tcp, f).await?;
            session(BufReader::new(tls), helo, f, false).await
        }
        TlsMode::Starttls => {
            let mut s = BufReader::new(tcp);
            let banner = read_reply(&mut s).await?;
            if banner.code != 220 {
                return Err(format!("banner {} {}", banner.code, banner.lines.join(" ")));
            }
            f.evidence
                .push(format!("banner: 220 {}", banner.lines.join(" ")));
            ehlo(&mut s, helo, f).await?;
            if !f.starttls_offered {
                return Err("the relay does not offer STARTTLS".into());
            }
            let r = command(&mut s, "STARTTLS").await?;
            if r.code != 220 {
                return Err(format!(
                    "STARTTLS refused: {} {}",
                    r.code,
                    r.lines.join(" ")
                ));
            }
            let tls = tls_connect(endpoint, s.into_inner(), f).await?;
            session(BufReader::new(tls), helo, f, true).await
        }
    }
}

pub async fn smtp_probe(id: &Identity, timeout: Duration) -> CheckResult {
    let c = CheckId::SmtpProbe;
    let Some(endpoint) = &id.smtp else {
        return CheckResult::new(c, Verdict::Warn, "no relay given: not probed")
            .fix("Give the relay (senders[].smtp, or --smtp HOST:PORT) to probe it.");
    };
    let helo = id
        .helo_name()
        .map(|h| h.to_string())
        .unwrap_or_else(|| id.helo.clone());
    let mut f = Findings::default();
    let outcome = tokio::time::timeout(timeout, probe(endpoint, &helo, &mut f)).await;
    let addr = endpoint.display_addr();
    let mut r = CheckResult::pass(
        c,
        format!(
            "{addr} accepts EHLO {helo}{}",
            if f.tls.is_some() {
                " over verified TLS"
            } else {
                ""
            }
        ),
    );
    for e in &f.evidence {
        r = r.evidence(e.clone());
    }
    if let Some(t) = &f.tls {
        r = r.evidence(format!("TLS: {t}"));
    }
    match outcome {
        Err(_) => CheckResult { verdict: Verdict::Unknown, summary: format!("{addr} did not answer within {} s", timeout.as_secs()), remediation: "Check that the relay is up and reachable from this host (firewall, port).".into(), ..r },
        Ok(Err(e)) if e.starts_with("cannot connect") => CheckResult { verdict: Verdict::Unknown, summary: e, remediation: format!("Check that the relay at {addr} is up and reachable from this host."), ..r },
        Ok(Err(e)) => {
            let fix = if e.contains("TLS") || e.contains("STARTTLS") {
                format!("Give the relay a certificate valid for {} (or set ca_file to your private CA); Hearth never sends without verified TLS.", endpoint.host)
            } else {
                "Check the relay's configuration (see the evidence).".to_owned()
            };
            CheckResult { verdict: Verdict::Fail, summary: e, remediation: fix, ..r }
        }
        Ok(Ok(())) => match &f.auth {
            Some(a) => r.evidence(a.clone()),
            None if endpoint.secret != crate::secrets::SecretRef::None => CheckResult {
                verdict: Verdict::Fail,
                summary: format!("{addr} does not offer AUTH, but credentials are configured"),
                remediation: "Enable SMTP AUTH on the submission port (after STARTTLS), or remove the credentials.".into(),
                ..r
            },
            None => r,
        },
    }
}
