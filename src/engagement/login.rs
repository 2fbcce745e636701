//! Opening a seed's (or a sender's) IMAP session with whatever it logs in with: a password,
//! or XOAUTH2 with an access token from the process's token cache.
//!
//! With OAuth2, a refused login is retried once with a new token (the cached one may have been
//! revoked early, or the server's clock runs ahead). A token endpoint that refuses the grant
//! (`invalid_grant`: revoked or expired refresh token) is a refused login: the caller marks the
//! seed broken with that reason. An unreachable token endpoint is transient, like an
//! unreachable IMAP server.

use std::time::Duration;

use super::imap::{self, Credential, ImapError, Session};
use super::scan::ScanError;
use crate::domain::Endpoint;
use crate::oauth2::{Grant, OAuth2Error};
use crate::secrets::SecretRef;
use crate::startup::App;

pub async fn open(app: &App, endpoint: &Endpoint, timeout: Duration) -> Result<Session, ScanError> {
    let SecretRef::OAuth2(oauth) = &endpoint.secret else {
        let password = endpoint.secret.resolve(&app.key)?;
        return Ok(imap::connect(endpoint, &password, timeout).await?);
    };
    let grant = Grant {
        oauth: std::sync::Arc::new((**oauth).clone()),
        cache: app.tokens.clone(),
        key: app.key.clone(),
    };
    Ok(open_xoauth2(endpoint, &grant, timeout).await?)
}

/// XOAUTH2 with the grant's token; once more with a new token if the server refuses it.
pub async fn open_xoauth2(
    endpoint: &Endpoint,
    grant: &Grant,
    timeout: Duration,
) -> Result<Session, ImapError> {
    let token = grant.token().await.map_err(|e| token_error(endpoint, e))?;
    match imap::connect_with(endpoint, Credential::Bearer(&token), timeout).await {
        Err(ImapError::Login { detail, .. }) => {
            tracing::info!(user = %endpoint.username, %detail, "XOAUTH2 login refused; refreshing the token once");
            let token = grant
                .replace(&token)
                .await
                .map_err(|e| token_error(endpoint, e))?;
            imap::connect_with(endpoint, Credential::Bearer(&token), timeout).await
        }
        other => other,
    }
}

fn token_error(endpoint: &Endpoint, e: OAuth2Error) -> ImapError {
    if e.is_transient() {
        ImapError::Unreachable {
            addr: endpoint.display_addr(),
            detail: e.to_string(),
        }
    } else {
        ImapError::Login {
            user: endpoint.username.clone(),
            detail: e.to_string(),
        }
    }
}
