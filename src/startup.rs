//! Building the application from its config, and running it until it is told to stop.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::config::{CampaignConfig, Config, ConnConfig, SecretSource, SeedConfig, SenderConfig};
use crate::domain::{Endpoint, Source, WarmupPlan};
use crate::mark::Marker;
use crate::secrets::{SecretKey, SecretRef};
use crate::status::StatusBoard;
use crate::store::{self, Store};

/// What a campaign row stores as its plan: the ramp and, when restricted, its seeds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CampaignSpec {
    pub plan: WarmupPlan,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seeds: Option<Vec<String>>,
}

/// Everything the workers and the API share.
#[derive(Clone)]
pub struct App {
    pub config: Arc<Config>,
    pub store: Store,
    pub key: Arc<SecretKey>,
    pub marker: Marker,
    pub clock: SharedClock,
    pub status: StatusBoard,
    /// The resolver preflight uses (the configured nameservers, or the system's).
    pub dns: crate::preflight::dns::DnsClient,
    /// This node's name in outbox leases.
    pub node_id: String,
    /// OAuth2 access tokens (XOAUTH2 logins), shared by the sender and the seed workers.
    pub tokens: crate::oauth2::TokenCache,
}

/// Opens the configured database (creating the SQLite file and its directory when missing)
/// and applies the migrations.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let url = &config.server.database_url;
    if url.is_sqlite()
        && let Some(path) = url.expose().strip_prefix("sqlite://")
    {
        let file = path.split('?').next().unwrap_or(path);
        if let Some(dir) = Path::new(file).parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
        }
    }
    Store::connect(url.expose())
        .await
        .with_context(|| format!("cannot open the database {url}"))
}

/// The key that seals stored secrets: the configured passphrase, or `<data_dir>/secret.key`.
pub fn secret_key(config: &Config) -> anyhow::Result<SecretKey> {
    use secrecy::ExposeSecret as _;
    match &config.server.secret_key {
        Some(p) => Ok(SecretKey::from_passphrase(p.expose_secret())),
        None => Ok(SecretKey::load_or_create(
            &config.server.data_dir.join("secret.key"),
        )?),
    }
}

impl App {
    /// Connects the store, writes the config's senders, seeds and campaigns into it, and loads
    /// the install's mark secret.
    pub async fn build(config: Config, clock: SharedClock) -> anyhow::Result<App> {
        let dns = crate::preflight::dns::DnsClient::new(&config.dns)
            .map_err(|e| anyhow::anyhow!("cannot set up the DNS resolver: {e}"))?;
        let store = open_store(&config).await?;
        let key = secret_key(&config)?;
        sync_config(&store, &config, &key, clock.now()).await?;
        let mark_secret = store::settings::get_or_insert(store.pool(), "mark_secret", || {
            hex::encode(rand::random::<[u8; 32]>())
        })
        .await?;
        let marker = Marker::new(config.warmup.mark_header.clone(), mark_secret.into_bytes())
            .with_mode(config.warmup.mark);
        let node_id = config.server.node_id.clone().unwrap_or_else(|| {
            format!(
                "{}-{}",
                hostname().unwrap_or_else(|| "node".into()),
                std::process::id()
            )
        });
        Ok(App {
            config: Arc::new(config),
            store,
            key: Arc::new(key),
            marker,
            clock,
            status: StatusBoard::default(),
            dns,
            node_id,
            tokens: crate::oauth2::TokenCache::default(),
        })
    }

    /// Serves HTTP and runs the workers until `shutdown` fires, then drains them.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let tracker = tokio_util::task::TaskTracker::new();
        let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
        let state = crate::http::AppState::new(self.clone());
        let http = tokio::spawn(crate::http::serve(
            self.config.server.bind,
            state,
            shutdown.clone(),
            bound_tx,
        ));
        if bound_rx.await.is_err() {
            // The server task ended before binding: report why.
            return match http.await {
                Ok(Err(e)) => Err(anyhow::Error::new(e)
                    .context(format!("cannot listen on {}", self.config.server.bind))),
                Ok(Ok(())) => Ok(()),
                Err(e) => Err(e.into()),
            };
        }
        crate::worker::spawn_all(&self, &tracker, shutdown.clone());
        tracker.close();
        let mut cron = crate::worker::start_cron(&self).await?;
        shutdown.cancelled().await;
        if let Err(e) = cron.shutdown().await {
            tracing::warn!(error = %e, "cron scheduler did not stop cleanly");
        }
        tracing::info!("shutting down: draining workers");
        if tokio::time::timeout(Duration::from_secs(30), tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("workers did not stop within 30 s");
        }
        http.await??;
        tracing::info!("stopped");
        Ok(())
    }
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// How a configured secret is stored: references stay references, inline values are sealed.
pub fn secret_ref(key: &SecretKey, s: Option<&SecretSource>) -> SecretRef {
    match s {
        None => SecretRef::None,
        Some(SecretSource::Env(n)) => SecretRef::Env(n.clone()),
        Some(SecretSource::File(p)) => SecretRef::File(p.clone()),
        Some(SecretSource::Inline(v)) => key.seal(v),
    }
}

pub fn endpoint(key: &SecretKey, c: &ConnConfig) -> Endpoint {
    Endpoint {
        host: c.host.clone(),
        port: c.port,
        tls: c.tls,
        ca_file: c.ca_file.clone(),
        username: c.username.clone(),
        secret: match &c.oauth2 {
            Some(o) => SecretRef::OAuth2(Box::new(crate::oauth2::OAuth2Ref {
                provider: o.provider,
                token_url: o.token_url.clone(),
                client_id: o.client_id.clone(),
                client_secret: secret_ref(key, o.client_secret.as_ref()),
                refresh_token: secret_ref(key, Some(&o.refresh_token)),
                scope: o.scope.clone(),
                ca_file: o.ca_file.clone(),
            })),
            None => secret_ref(key, c.password.as_ref()),
        },
    }
}

pub fn sender_record(
    key: &SecretKey,
    s: &SenderConfig,
    source: Source,
) -> store::senders::SenderRecord {
    store::senders::SenderRecord {
        name: s.name.clone(),
        address: s.address.clone(),
        display_name: s.display_name.clone(),
        helo: s.helo.clone(),
        ips: s.ips.clone(),
        smtp: endpoint(key, &s.smtp),
        dkim: s.dkim.as_ref().map(|d| store::senders::DkimRecord {
            domain: d.domain.clone(),
            selector: d.selector.clone(),
            key_file: d.key_file.clone(),
        }),
        imap: s.imap.as_ref().map(|i| endpoint(key, i)),
        source,
    }
}

pub fn seed_record(key: &SecretKey, s: &SeedConfig, source: Source) -> store::seeds::SeedRecord {
    store::seeds::SeedRecord {
        address: s.address.clone(),
        provider: s.provider,
        daily_cap: s.daily_cap,
        imap: endpoint(key, &s.imap),
        smtp: s.smtp.as_ref().map(|c| endpoint(key, c)),
        folders: serde_json::to_string(&s.folders).expect("folder overrides serialize"),
        source,
    }
}

pub fn campaign_spec(c: &CampaignConfig) -> CampaignSpec {
    CampaignSpec {
        plan: c.plan.clone(),
        seeds: c
            .seeds
            .as_ref()
            .map(|v| v.iter().map(ToString::to_string).collect()),
    }
}

/// Writes the config's senders, seeds and campaigns into the store in one transaction.
/// The config is the source of truth for what they are; the store keeps their history and
/// state (a paused campaign stays paused, a broken seed stays broken).
pub async fn sync_config(
    store: &Store,
    config: &Config,
    key: &SecretKey,
    now: i64,
) -> anyhow::Result<()> {
    let mut tx = store
        .pool()
        .begin()
        .await
        .context("cannot begin transaction")?;
    let mut sender_ids = std::collections::HashMap::new();
    for s in &config.senders {
        let id =
            store::senders::upsert(&mut *tx, &sender_record(key, s, Source::Config), now).await?;
        sender_ids.insert(s.name.clone(), id);
    }
    for s in &config.seeds {
        store::seeds::upsert(&mut *tx, &seed_record(key, s, Source::Config), now).await?;
    }
    for c in &config.campaigns {
        let sender_id = sender_ids[&c.sender];
        let spec = serde_json::to_string(&campaign_spec(c)).context("plan serializes")?;
        let id =
            store::campaigns::upsert_from_config(&mut *tx, &c.name, sender_id, &spec, now).await?;
        store::campaigns::set_auto_resume(&mut *tx, id, c.auto_resume, now).await?;
    }
    tx.commit().await.context("cannot commit config sync")?;
    tracing::info!(
        senders = config.senders.len(),
        seeds = config.seeds.len(),
        campaigns = config.campaigns.len(),
        "config written to the store"
    );
    Ok(())
}
