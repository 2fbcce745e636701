//! One access token per grant, shared by every connection of the process: refreshed shortly
//! before it expires, and by one task at a time (the others wait for its result).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::{AccessToken, OAuth2Error, OAuth2Ref, refresh};
use crate::secrets::SecretKey;

/// A token is refreshed when it has less than this left.
pub const DEFAULT_MARGIN: Duration = Duration::from_secs(120);
/// How long one refresh request may take.
const REFRESH_TIMEOUT: Duration = Duration::from_secs(20);

/// Whether a token valid until `expires_at` must be refreshed at `now`. Pure.
pub fn needs_refresh(expires_at: Instant, now: Instant, margin: Duration) -> bool {
    expires_at.saturating_duration_since(now) <= margin
}

#[derive(Clone)]
struct Cached {
    token: AccessToken,
    expires_at: Instant,
}

type Slot = Arc<tokio::sync::Mutex<Option<Cached>>>;

/// The process's access tokens. Cheap to clone.
#[derive(Clone)]
pub struct TokenCache {
    slots: Arc<Mutex<HashMap<String, Slot>>>,
    margin: Duration,
}

impl Default for TokenCache {
    fn default() -> Self {
        Self::new(DEFAULT_MARGIN)
    }
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("margin", &self.margin)
            .finish_non_exhaustive()
    }
}

impl TokenCache {
    pub fn new(margin: Duration) -> Self {
        Self {
            slots: Arc::default(),
            margin,
        }
    }

    fn slot(&self, grant: &OAuth2Ref) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.entry(grant.cache_key()).or_default().clone()
    }

    /// A token that is not about to expire: the cached one, or a fresh one.
    pub async fn token(
        &self,
        grant: &OAuth2Ref,
        key: &SecretKey,
    ) -> Result<AccessToken, OAuth2Error> {
        self.get(grant, key, None).await
    }

    /// A token other than `rejected`, which the server just refused (revoked early, or its
    /// clock disagrees with the endpoint's): refreshed unless another task already did.
    pub async fn replace(
        &self,
        grant: &OAuth2Ref,
        key: &SecretKey,
        rejected: &AccessToken,
    ) -> Result<AccessToken, OAuth2Error> {
        self.get(grant, key, Some(rejected)).await
    }

    async fn get(
        &self,
        grant: &OAuth2Ref,
        key: &SecretKey,
        rejected: Option<&AccessToken>,
    ) -> Result<AccessToken, OAuth2Error> {
        let slot = self.slot(grant);
        let mut cached = slot.lock().await;
        if let Some(c) = cached.as_ref()
            && !needs_refresh(c.expires_at, Instant::now(), self.margin)
            && rejected.is_none_or(|r| !r.same(&c.token))
        {
            return Ok(c.token.clone());
        }
        let started = Instant::now();
        match refresh(grant, key, REFRESH_TIMEOUT).await {
            Ok(r) => {
                tracing::debug!(token_url = %grant.token_url, expires_in = r.expires_in, "OAuth2 access token refreshed");
                *cached = Some(Cached {
                    token: r.access_token.clone(),
                    expires_at: started + Duration::from_secs(r.expires_in),
                });
                Ok(r.access_token)
            }
            Err(e) => {
                // A token the server refused is not used again, whatever its expiry says.
                if rejected.is_some() {
                    *cached = None;
                }
                Err(e)
            }
        }
    }
}

/// A grant with what it takes to use it: the cache and the install's key (for sealed secrets).
#[derive(Clone)]
pub struct Grant {
    pub oauth: Arc<OAuth2Ref>,
    pub cache: TokenCache,
    pub key: Arc<SecretKey>,
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Grant").field(&self.oauth).finish()
    }
}

impl Grant {
    pub async fn token(&self) -> Result<AccessToken, OAuth2Error> {
        self.cache.token(&self.oauth, &self.key).await
    }

    pub async fn replace(&self, rejected: &AccessToken) -> Result<AccessToken, OAuth2Error> {
        self.cache.replace(&self.oauth, &self.key, rejected).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_before_expiry() {
        let now = Instant::now();
        let m = Duration::from_secs(120);
        assert!(!needs_refresh(now + Duration::from_secs(3600), now, m));
        assert!(!needs_refresh(now + Duration::from_secs(121), now, m));
        assert!(needs_refresh(now + Duration::from_secs(120), now, m));
        assert!(needs_refresh(now, now, m));
        assert!(needs_refresh(now, now + Duration::from_secs(5), m));
    }
}
