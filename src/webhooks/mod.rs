//! Webhooks: signed JSON POSTs on campaign pause, resume and preflight failure.
//!
//! The events come from `state_events`, written by triggers in the same transaction as the
//! change, so no code path that pauses a campaign can forget to announce it. [`run_once`]
//! (the worker's step) first fans new events out into `webhook_deliveries` (one per
//! configured endpoint, an outbox with leases), then delivers the due ones. A transient
//! failure (connection refused, timeout, 408, 429, 5xx) is retried with backoff (30 s,
//! doubling, at most an hour) up to `max_attempts`; any other refusal fails at once.
//!
//! Each POST carries `X-Hearth-Timestamp: <unix seconds>` and
//! `X-Hearth-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`, plus
//! `X-Hearth-Event` and `X-Hearth-Delivery` (a stable id: receivers deduplicate on it).
//! Receivers should check the signature and reject stale timestamps.

mod client;
pub mod deliveries;

use hmac::{Hmac, Mac as _};
use secrecy::ExposeSecret as _;
use serde_json::json;
use sha2::Sha256;

use crate::config::{WebhookConfig, WebhookEvent};
use crate::domain::{CampaignStatus, Verdict, WebhookStatus};
use crate::startup::App;
use crate::store::events::StateEvent;
use crate::store::{self, StoreError};

pub use client::{PostError, post};

/// Events older than this when an endpoint first sees them are not sent (a new endpoint is
/// not flooded with history).
const FAN_OUT_LOOKBACK_SECS: i64 = 86_400;
/// Deliveries claimed per step.
const BATCH: i64 = 20;

/// What one [`run_once`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookOutcome {
    pub delivered: u32,
    pub retrying: u32,
    pub failed: u32,
    pub skipped: u32,
}

/// The kind of a state event, for webhooks: `None` for changes nobody is told about.
pub fn classify(e: &StateEvent) -> Option<WebhookEvent> {
    match (e.old_status, e.new_status, e.verdict) {
        (_, Some(CampaignStatus::Paused), _) => Some(WebhookEvent::Pause),
        (Some(CampaignStatus::Paused), Some(CampaignStatus::Active), _) => {
            Some(WebhookEvent::Resume)
        }
        (None, None, Some(Verdict::Fail)) => Some(WebhookEvent::PreflightFailure),
        _ => None,
    }
}

/// `sha256=<hex>` of HMAC-SHA256(secret, "<timestamp>.<body>").
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The webhook step: fan out new events, deliver what is due.
pub async fn run_once(app: &App) -> Result<WebhookOutcome, StoreError> {
    let mut out = WebhookOutcome::default();
    let hooks = &app.config.webhooks;
    if hooks.is_empty() {
        return Ok(out);
    }
    let pool = app.store.pool();
    let now = app.clock.now();
    for h in hooks {
        deliveries::fan_out(pool, &h.name, now - FAN_OUT_LOOKBACK_SECS).await?;
    }
    for d in deliveries::claim_due(&app.store, now, BATCH).await? {
        let Some(hook) = hooks.iter().find(|h| h.name == d.endpoint) else {
            // An endpoint removed from the config: nothing to send to.
            deliveries::finish(pool, d.id, WebhookStatus::Skipped, None, now).await?;
            out.skipped += 1;
            continue;
        };
        let event = store::events::get(pool, d.event_id).await?;
        let kind = event.as_ref().and_then(classify);
        let (Some(event), Some(kind)) = (event, kind) else {
            deliveries::finish(pool, d.id, WebhookStatus::Skipped, None, now).await?;
            out.skipped += 1;
            continue;
        };
        if !hook.events.contains(&kind) {
            deliveries::finish(pool, d.id, WebhookStatus::Skipped, None, now).await?;
            out.skipped += 1;
            continue;
        }
        let body = payload(app, &event, kind, d.id).await?;
        match send(hook, kind, d.id, &body, now).await {
            Ok(()) => {
                deliveries::finish(pool, d.id, WebhookStatus::Delivered, None, now).await?;
                out.delivered += 1;
            }
            Err(e) if e.is_transient() && d.attempts < i64::from(hook.max_attempts) => {
                let backoff = (30_i64 << (d.attempts - 1).clamp(0, 7)).min(3600);
                tracing::warn!(webhook = %hook.name, delivery = d.id, error = %e, backoff, "webhook delivery failed; will retry");
                deliveries::retry(pool, d.id, &e.to_string(), now + backoff).await?;
                out.retrying += 1;
            }
            Err(e) => {
                tracing::error!(webhook = %hook.name, delivery = d.id, error = %e, "webhook delivery given up");
                deliveries::finish(pool, d.id, WebhookStatus::Failed, Some(&e.to_string()), now)
                    .await?;
                out.failed += 1;
            }
        }
    }
    Ok(out)
}

async fn send(
    hook: &WebhookConfig,
    kind: WebhookEvent,
    delivery: i64,
    body: &[u8],
    now: i64,
) -> Result<(), PostError> {
    let sig = signature(hook.secret.expose_secret().as_bytes(), now, body);
    let headers = [
        ("Content-Type", "application/json".to_owned()),
        ("X-Hearth-Event", kind.as_str().to_owned()),
        ("X-Hearth-Delivery", delivery.to_string()),
        ("X-Hearth-Timestamp", now.to_string()),
        ("X-Hearth-Signature", sig),
    ];
    let timeout = std::time::Duration::from_secs(hook.timeout_secs);
    post(&hook.url, hook.ca_file.as_deref(), &headers, body, timeout).await
}

async fn payload(
    app: &App,
    e: &StateEvent,
    kind: WebhookEvent,
    delivery: i64,
) -> Result<Vec<u8>, StoreError> {
    let pool = app.store.pool();
    let mut v = json!({
        "event": kind.as_str(),
        "event_id": e.id,
        "delivery_id": delivery,
        "at": e.at,
    });
    if let Some(id) = e.campaign_id {
        let name = store::campaigns::get(pool, id).await?.map(|c| c.name);
        v["campaign"] = json!({
            "id": id,
            "name": name,
            "status": e.new_status,
            "previous_status": e.old_status,
            "pause_reason": e.pause_reason,
            "pause_detail": e.pause_detail,
        });
    }
    if let Some(run_id) = e.preflight_run_id {
        let run = store::preflight::get_run(pool, run_id).await?;
        let sender = match &run {
            Some(r) => store::senders::get(pool, r.sender_id)
                .await?
                .map(|s| s.record.name),
            None => None,
        };
        let failing: Vec<_> = run
            .iter()
            .flat_map(|r| r.results.iter())
            .filter(|c| c.result.verdict == Verdict::Fail)
            .map(|c| c.result.check_id.clone())
            .collect();
        v["preflight"] = json!({
            "run_id": run_id,
            "sender": sender,
            "verdict": e.verdict,
            "failing_checks": failing,
        });
    }
    Ok(serde_json::to_vec(&v).expect("JSON of plain values"))
}
