//! The refresh-token request (RFC 6749 §6) over HTTP/1.1 with hyper and rustls: one
//! connection per refresh (a refresh happens about once an hour per grant).

use std::time::Duration;

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use secrecy::ExposeSecret as _;
use serde::Deserialize;
use tokio::net::TcpStream;

use super::{AccessToken, OAuth2Error, OAuth2Ref, TokenUrl};
use crate::secrets::SecretKey;

/// What a successful refresh gives.
#[derive(Debug, Clone)]
pub struct TokenResponse {
    pub access_token: AccessToken,
    /// Seconds until the token expires, as the endpoint says (3600 when it does not).
    pub expires_in: u64,
}

#[derive(Deserialize)]
struct Success {
    access_token: String,
    expires_in: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Failure {
    error: String,
    error_description: Option<String>,
}

/// The `error` codes that no retry can fix (RFC 6749 §5.2).
const PERMANENT: &[&str] = &[
    "invalid_grant",
    "invalid_client",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "invalid_request",
];

const MAX_BODY: usize = 64 * 1024;

/// Exchanges the refresh token for an access token.
pub async fn refresh(
    grant: &OAuth2Ref,
    key: &SecretKey,
    timeout: Duration,
) -> Result<TokenResponse, OAuth2Error> {
    let url = &grant.token_url;
    let permanent = |code: &str, description: Option<String>| OAuth2Error::Permanent {
        url: url.to_string(),
        code: code.to_owned(),
        description,
    };
    let unreadable = |what: &str, e: crate::secrets::SecretError| {
        permanent("unreadable_credentials", Some(format!("{what}: {e}")))
    };
    let refresh_token = grant
        .refresh_token
        .resolve(key)
        .map_err(|e| unreadable("refresh_token", e))?;
    let client_secret = grant
        .client_secret
        .resolve(key)
        .map_err(|e| unreadable("client_secret", e))?;
    let body = {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "refresh_token")
            .append_pair("refresh_token", refresh_token.expose_secret())
            .append_pair("client_id", &grant.client_id);
        if !client_secret.expose_secret().is_empty() {
            form.append_pair("client_secret", client_secret.expose_secret());
        }
        if let Some(scope) = &grant.scope {
            form.append_pair("scope", scope);
        }
        form.finish()
    };
    let (status, bytes) = tokio::time::timeout(timeout, post(url, grant, body))
        .await
        .map_err(|_| transient(url, "timed out".into()))??;
    interpret(url, status, &bytes)
}

fn transient(url: &TokenUrl, detail: String) -> OAuth2Error {
    OAuth2Error::Transient {
        url: url.to_string(),
        detail,
    }
}

/// Classifies the endpoint's answer. Pure: the status code and the body.
pub(super) fn interpret(
    url: &TokenUrl,
    status: u16,
    body: &[u8],
) -> Result<TokenResponse, OAuth2Error> {
    let permanent = |code: &str, description: Option<String>| OAuth2Error::Permanent {
        url: url.to_string(),
        code: code.to_owned(),
        description: description.map(|d| d.chars().take(200).collect()),
    };
    if (200..300).contains(&status) {
        let ok: Success = serde_json::from_slice(body)
            .map_err(|_| transient(url, format!("HTTP {status} with a malformed body")))?;
        if ok.access_token.is_empty() {
            return Err(transient(url, "an empty access_token".into()));
        }
        // Some endpoints send expires_in as a string.
        let expires_in = match ok.expires_in {
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            Some(serde_json::Value::String(s)) => s.parse().ok(),
            _ => None,
        }
        .unwrap_or(3600);
        return Ok(TokenResponse {
            access_token: AccessToken::new(ok.access_token),
            expires_in,
        });
    }
    if status == 429 || status == 408 || status >= 500 {
        return Err(transient(url, format!("HTTP {status}")));
    }
    match serde_json::from_slice::<Failure>(body) {
        Ok(f) if PERMANENT.contains(&f.error.as_str()) => {
            Err(permanent(&f.error, f.error_description))
        }
        // temporarily_unavailable, or a code this table does not know: try again later.
        Ok(f) => Err(transient(url, format!("HTTP {status} {}", f.error))),
        // A 4xx without an OAuth2 error body: a wrong URL, a proxy refusing us.
        Err(_) => Err(permanent(&format!("http_{status}"), None)),
    }
}

async fn post(
    url: &TokenUrl,
    grant: &OAuth2Ref,
    body: String,
) -> Result<(u16, Vec<u8>), OAuth2Error> {
    let tcp = TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(|e| transient(url, e.to_string()))?;
    tcp.set_nodelay(true).ok();
    let host_header = if (url.https && url.port == 443) || (!url.https && url.port == 80) {
        url.host.clone()
    } else {
        format!("{}:{}", url.host, url.port)
    };
    let request = hyper::Request::post(url.path.as_str())
        .header(hyper::header::HOST, host_header)
        .header(
            hyper::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .header(hyper::header::ACCEPT, "application/json")
        .header(hyper::header::USER_AGENT, "hearth")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| transient(url, e.to_string()))?;
    if url.https {
        let cfg = crate::tls::client_config(grant.ca_file.as_deref()).map_err(|e| {
            OAuth2Error::Permanent {
                url: url.to_string(),
                code: "tls_setup".into(),
                description: Some(e.to_string()),
            }
        })?;
        let name = crate::tls::server_name(&url.host).map_err(|e| transient(url, e.to_string()))?;
        let tls = tokio_rustls::TlsConnector::from(cfg)
            .connect(name, tcp)
            .await
            .map_err(|e| transient(url, format!("TLS: {e}")))?;
        exchange(url, TokioIo::new(tls), request).await
    } else {
        exchange(url, TokioIo::new(tcp), request).await
    }
}

async fn exchange<T>(
    url: &TokenUrl,
    io: T,
    request: hyper::Request<Full<Bytes>>,
) -> Result<(u16, Vec<u8>), OAuth2Error>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| transient(url, e.to_string()))?;
    let driver = tokio::spawn(conn);
    let result = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| transient(url, e.to_string()))?;
        let status = response.status().as_u16();
        let body = http_body_util::Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| transient(url, e.to_string()))?
            .to_bytes();
        Ok((status, body.to_vec()))
    }
    .await;
    driver.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified() {
        let url = TokenUrl::parse("http://127.0.0.1:1/token").unwrap();
        let ok = interpret(&url, 200, br#"{"access_token":"a","expires_in":"120"}"#).unwrap();
        assert_eq!((ok.access_token.expose(), ok.expires_in), ("a", 120));
        let ok = interpret(&url, 200, br#"{"access_token":"a","token_type":"Bearer"}"#).unwrap();
        assert_eq!(ok.expires_in, 3600);
        let cases: &[(u16, &[u8], bool)] = &[
            (400, br#"{"error":"invalid_grant","error_description":"Token has been expired or revoked."}"#, false),
            (401, br#"{"error":"invalid_client"}"#, false),
            (400, br#"{"error":"temporarily_unavailable"}"#, true),
            (503, b"<html>busy</html>", true),
            (429, b"", true),
            (404, b"not found", false),
            (200, b"<html>", true),
        ];
        for (status, body, transient) in cases {
            let e = interpret(&url, *status, body).unwrap_err();
            assert_eq!(e.is_transient(), *transient, "{status} {e}");
        }
        let e = interpret(
            &url,
            400,
            br#"{"error":"invalid_grant","error_description":"revoked"}"#,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "OAuth2 token refresh refused by http://127.0.0.1:1/token: invalid_grant (revoked)"
        );
    }
}
