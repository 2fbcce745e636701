//! A warm-up message that was sent and then found (or recorded missing): the outbox row, its
//! `sent` status and its ledger row, written through the store's own functions.

use hearth::domain::{OutboxStatus, Placement, Provider, SendKind};
use hearth::store::ledger::{self, NewPlacement};
use hearth::store::outbox::{self, NewSend};
use sqlx::AnyPool;

/// What the receiver made of one message.
pub struct Delivered<'a> {
    pub campaign_id: i64,
    pub seed_id: i64,
    pub provider: Provider,
    pub message_id: String,
    pub plan_day: Option<String>,
    /// Scheduled and sent at; the ledger row is written at `sent_at`.
    pub sent_at: i64,
    pub placement: Placement,
    pub folder: Option<String>,
    /// From sending to first sight; `None` for a message never seen.
    pub latency: Option<i64>,
    /// The receiver's spf, dkim and dmarc results.
    pub auth: [Option<&'a str>; 3],
}

/// Writes `d`; returns the outbox row's id.
#[allow(dead_code)]
pub async fn delivered(pool: &AnyPool, d: Delivered<'_>) -> i64 {
    let id = outbox::enqueue(
        pool,
        &NewSend {
            campaign_id: d.campaign_id,
            seed_id: d.seed_id,
            kind: SendKind::Warmup,
            message_id: Some(d.message_id.clone()),
            subject: "hi".into(),
            in_reply_to: None,
            plan_day: d.plan_day,
            run_at: d.sent_at,
        },
        d.sent_at,
    )
    .await
    .unwrap();
    sqlx::query("UPDATE outbox SET status = $1, sent_at = $2 WHERE id = $3")
        .bind(OutboxStatus::Sent.as_str())
        .bind(d.sent_at)
        .bind(id)
        .execute(pool)
        .await
        .unwrap();
    let [spf, dkim, dmarc] = d.auth.map(|a| a.map(str::to_owned));
    let p = NewPlacement {
        outbox_id: id,
        seed_id: d.seed_id,
        message_id: d.message_id,
        placement: d.placement,
        folder: d.folder,
        provider: d.provider,
        seen_at: d.latency.map(|l| d.sent_at + l),
        latency_secs: d.latency,
        auth_spf: spf,
        auth_dkim: dkim,
        auth_dmarc: dmarc,
        auth_results: None,
        imap_uidvalidity: None,
        imap_uid: None,
        gmail: None,
    };
    ledger::record(pool, &p, d.sent_at).await.unwrap();
    id
}
