//! The placement ledger: where each sent message landed, recorded once per message.
//!
//! The first sighting wins. `outbox_id` and `message_id` are both UNIQUE, so recording the
//! same message again (another worker, a retry, a second folder scan) is a no-op and the
//! reports never count a message twice.

use sqlx::any::AnyRow;
use sqlx::{Any, Executor};

use crate::domain::{GmailTab, OutboxStatus, Placement, Provider, SendKind};

use super::StoreError;
use super::row;
use super::seeds::SeedRow;

const TABLE: &str = "placements";

/// One message's placement, as found in the seed's mailbox (or not found).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPlacement {
    pub outbox_id: i64,
    pub seed_id: i64,
    pub message_id: String,
    pub placement: Placement,
    /// Folder the message was found in (`None` when missing).
    pub folder: Option<String>,
    pub provider: Provider,
    /// When it was seen (`None` when missing).
    pub seen_at: Option<i64>,
    /// Seconds from sending to being seen.
    pub latency_secs: Option<i64>,
    /// Authentication results as the receiver reported them (`pass`, `softfail`, …).
    pub auth_spf: Option<String>,
    pub auth_dkim: Option<String>,
    pub auth_dmarc: Option<String>,
    /// The raw Authentication-Results header(s).
    pub auth_results: Option<String>,
    pub imap_uidvalidity: Option<i64>,
    pub imap_uid: Option<i64>,
    /// What Gmail said about the message (servers with `X-GM-EXT-1` only).
    pub gmail: Option<GmailSeen>,
}

/// Gmail's own view of a found message: its labels (`X-GM-LABELS`, as Gmail spelled them)
/// and, for mail in the inbox, the tab it was sorted into.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GmailSeen {
    pub labels: Vec<String>,
    pub tab: Option<GmailTab>,
}

/// A ledger row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementRow {
    pub id: i64,
    pub record: NewPlacement,
    pub created_at: i64,
}

macro_rules! placement_cols {
    () => {
        "p.id, p.outbox_id, p.seed_id, p.message_id, p.placement, p.folder, p.provider, \
         p.seen_at, p.latency_secs, p.auth_spf, p.auth_dkim, p.auth_dmarc, p.auth_results, \
         p.imap_uidvalidity, p.imap_uid, p.gmail_labels, p.gmail_tab, p.created_at"
    };
}

/// Records the placement unless this message already has one. Returns whether it was new.
pub async fn record<'c, E>(ex: E, p: &NewPlacement, now: i64) -> Result<bool, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    let done = sqlx::query(
        "INSERT INTO placements (outbox_id, seed_id, message_id, placement, folder, provider, \
           seen_at, latency_secs, auth_spf, auth_dkim, auth_dmarc, auth_results, \
           imap_uidvalidity, imap_uid, created_at, gmail_labels, gmail_tab) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) \
         ON CONFLICT DO NOTHING",
    )
    .bind(p.outbox_id)
    .bind(p.seed_id)
    .bind(p.message_id.clone())
    .bind(p.placement.as_str())
    .bind(p.folder.clone())
    .bind(p.provider.as_str())
    .bind(p.seen_at)
    .bind(p.latency_secs)
    .bind(p.auth_spf.clone())
    .bind(p.auth_dkim.clone())
    .bind(p.auth_dmarc.clone())
    .bind(p.auth_results.clone())
    .bind(p.imap_uidvalidity)
    .bind(p.imap_uid)
    .bind(now)
    .bind(
        p.gmail
            .as_ref()
            .map(|g| serde_json::to_string(&g.labels).expect("a list of strings serializes")),
    )
    .bind(p.gmail.as_ref().and_then(|g| g.tab).map(GmailTab::as_str))
    .execute(ex)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records every warm-up message sent before `cutoff` that has no placement yet as
/// `missing` (no folder, never seen). Returns how many were recorded.
pub async fn record_missing<'c, E>(ex: E, cutoff: i64, now: i64) -> Result<u64, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    // The WHERE clause also keeps SQLite from reading ON CONFLICT as a join constraint.
    let done = sqlx::query(
        "INSERT INTO placements (outbox_id, seed_id, message_id, placement, provider, created_at) \
         SELECT o.id, o.seed_id, o.message_id, $1, s.provider, $2 \
         FROM outbox o JOIN seeds s ON s.id = o.seed_id \
         WHERE o.status = $3 AND o.kind = $4 AND o.sent_at < $5 \
           AND NOT EXISTS (SELECT 1 FROM placements p WHERE p.outbox_id = o.id) \
         ON CONFLICT DO NOTHING",
    )
    .bind(Placement::Missing.as_str())
    .bind(now)
    .bind(OutboxStatus::Sent.as_str())
    .bind(SendKind::Warmup.as_str())
    .bind(cutoff)
    .execute(ex)
    .await?;
    Ok(done.rows_affected())
}

/// Seeds (not disabled) with sent warm-up mail that has no placement yet: the ones worth
/// scanning. By address.
pub async fn seeds_awaiting_placement<'c, E>(ex: E) -> Result<Vec<SeedRow>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    super::seeds::awaiting_placement(ex).await
}

/// The campaign's ledger of warm-up messages (not replies), in the order it was recorded.
pub async fn list_for_campaign<'c, E>(
    ex: E,
    campaign_id: i64,
) -> Result<Vec<PlacementRow>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    sqlx::query(concat!(
        "SELECT ",
        placement_cols!(),
        " FROM placements p JOIN outbox o ON o.id = p.outbox_id \
         WHERE o.campaign_id = $1 AND o.kind = $2 ORDER BY p.id"
    ))
    .bind(campaign_id)
    .bind(SendKind::Warmup.as_str())
    .fetch_all(ex)
    .await?
    .iter()
    .map(decode)
    .collect()
}

pub async fn get_by_message_id<'c, E>(
    ex: E,
    message_id: &str,
) -> Result<Option<PlacementRow>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    sqlx::query(concat!(
        "SELECT ",
        placement_cols!(),
        // The outbox's unique index finds the row (placements have none by Message-ID).
        " FROM placements p JOIN outbox o ON o.id = p.outbox_id WHERE o.message_id = $1"
    ))
    .bind(message_id)
    .fetch_optional(ex)
    .await?
    .as_ref()
    .map(decode)
    .transpose()
}

/// How many of the campaign's messages landed in each placement (placements with none are
/// left out).
pub async fn counts_for_campaign<'c, E>(
    ex: E,
    campaign_id: i64,
) -> Result<Vec<(Placement, i64)>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    sqlx::query(
        "SELECT p.placement, COUNT(*) AS n \
         FROM placements p JOIN outbox o ON o.id = p.outbox_id \
         WHERE o.campaign_id = $1 AND o.kind = $2 GROUP BY p.placement ORDER BY p.placement",
    )
    .bind(campaign_id)
    .bind(SendKind::Warmup.as_str())
    .fetch_all(ex)
    .await?
    .iter()
    .map(|r| Ok((row::parsed(r, TABLE, "placement")?, row::int(r, "n")?)))
    .collect()
}

/// Which ledger rows a [`page`] returns. Every field narrows; `None` means any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerFilter {
    pub campaign_id: Option<i64>,
    pub provider: Option<Provider>,
    pub placement: Option<Placement>,
    /// Sent at or after (unix seconds).
    pub sent_from: Option<i64>,
    /// Sent before (unix seconds).
    pub sent_until: Option<i64>,
}

/// A ledger row with what the API shows beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub placement: PlacementRow,
    pub campaign_id: i64,
    pub campaign: String,
    pub seed: String,
    pub sent_at: Option<i64>,
}

/// One page of the ledger, newest first: rows matching `filter` with an id below `before`
/// (keyset pagination: stable while new rows arrive), at most `limit`.
pub async fn page<'c, E>(
    ex: E,
    filter: &LedgerFilter,
    before: Option<i64>,
    limit: i64,
) -> Result<Vec<LedgerEntry>, StoreError>
where
    E: Executor<'c, Database = Any>,
{
    // Only placeholders are generated here; every value is bound, in this order.
    let mut conditions = vec!["p.id < $1".to_owned()];
    let mut n = 1;
    let mut next = || {
        n += 1;
        format!("${n}")
    };
    if filter.campaign_id.is_some() {
        conditions.push(format!("o.campaign_id = {}", next()));
    }
    if filter.provider.is_some() {
        conditions.push(format!("p.provider = {}", next()));
    }
    if filter.placement.is_some() {
        conditions.push(format!("p.placement = {}", next()));
    }
    if filter.sent_from.is_some() {
        conditions.push(format!("o.sent_at >= {}", next()));
    }
    if filter.sent_until.is_some() {
        conditions.push(format!("o.sent_at < {}", next()));
    }
    let limit_param = next();
    let sql = format!(
        concat!(
            "SELECT ",
            placement_cols!(),
            ", o.campaign_id AS campaign_id, c.name AS campaign_name, s.address AS seed_address, \
               o.sent_at AS sent_at \
             FROM placements p JOIN outbox o ON o.id = p.outbox_id \
             JOIN campaigns c ON c.id = o.campaign_id JOIN seeds s ON s.id = p.seed_id \
             WHERE {} ORDER BY p.id DESC LIMIT {}"
        ),
        conditions.join(" AND "),
        limit_param
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(before.unwrap_or(i64::MAX));
    if let Some(id) = filter.campaign_id {
        q = q.bind(id);
    }
    if let Some(p) = filter.provider {
        q = q.bind(p.as_str());
    }
    if let Some(p) = filter.placement {
        q = q.bind(p.as_str());
    }
    if let Some(t) = filter.sent_from {
        q = q.bind(t);
    }
    if let Some(t) = filter.sent_until {
        q = q.bind(t);
    }
    q.bind(limit)
        .fetch_all(ex)
        .await?
        .iter()
        .map(|r| {
            Ok(LedgerEntry {
                placement: decode(r)?,
                campaign_id: row::int(r, "campaign_id")?,
                campaign: row::text(r, "campaign_name")?,
                seed: row::text(r, "seed_address")?,
                sent_at: row::int_opt(r, "sent_at")?,
            })
        })
        .collect()
}

fn decode_gmail(r: &AnyRow) -> Result<Option<GmailSeen>, StoreError> {
    let labels = row::text_opt(r, "gmail_labels")?;
    let tab: Option<GmailTab> = row::parsed_opt(r, TABLE, "gmail_tab")?;
    if labels.is_none() && tab.is_none() {
        return Ok(None);
    }
    let labels = match labels {
        Some(text) => serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
            table: TABLE,
            column: "gmail_labels",
            detail: e.to_string(),
        })?,
        None => Vec::new(),
    };
    Ok(Some(GmailSeen { labels, tab }))
}

fn decode(r: &AnyRow) -> Result<PlacementRow, StoreError> {
    Ok(PlacementRow {
        id: row::int(r, "id")?,
        record: NewPlacement {
            outbox_id: row::int(r, "outbox_id")?,
            seed_id: row::int(r, "seed_id")?,
            message_id: row::text(r, "message_id")?,
            placement: row::parsed(r, TABLE, "placement")?,
            folder: row::text_opt(r, "folder")?,
            provider: row::parsed(r, TABLE, "provider")?,
            seen_at: row::int_opt(r, "seen_at")?,
            latency_secs: row::int_opt(r, "latency_secs")?,
            auth_spf: row::text_opt(r, "auth_spf")?,
            auth_dkim: row::text_opt(r, "auth_dkim")?,
            auth_dmarc: row::text_opt(r, "auth_dmarc")?,
            auth_results: row::text_opt(r, "auth_results")?,
            imap_uidvalidity: row::int_opt(r, "imap_uidvalidity")?,
            imap_uid: row::int_opt(r, "imap_uid")?,
            gmail: decode_gmail(r)?,
        },
        created_at: row::int(r, "created_at")?,
    })
}

/// A found message still worth engaging with: its ledger row, its campaign's plan (JSON, for
/// the rates) and the actions already recorded.
#[derive(Debug, Clone)]
pub struct EngageCandidate {
    pub placement: PlacementRow,
    pub plan: String,
    pub done: Vec<crate::domain::EngagementAction>,
}

/// The seed's messages seen since `since` that are not filed away yet (no `file` event).
pub async fn engage_candidates(
    pool: &sqlx::AnyPool,
    seed_id: i64,
    since: i64,
) -> Result<Vec<EngageCandidate>, StoreError> {
    use crate::domain::EngagementAction;
    let rows = sqlx::query(concat!(
        "SELECT ",
        placement_cols!(),
        ", c.plan AS plan FROM placements p \
         JOIN outbox o ON o.id = p.outbox_id JOIN campaigns c ON c.id = o.campaign_id \
         WHERE p.seed_id = $1 AND p.placement <> $2 AND p.seen_at >= $3 AND o.kind = $5 \
           AND NOT EXISTS (SELECT 1 FROM engagement_events e \
                           WHERE e.placement_id = p.id AND e.action = $4) \
         ORDER BY p.id"
    ))
    .bind(seed_id)
    .bind(Placement::Missing.as_str())
    .bind(since)
    .bind(EngagementAction::File.as_str())
    .bind(SendKind::Warmup.as_str())
    .fetch_all(pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let placement = decode(r)?;
        let done = super::engagement::list_for_placement(pool, placement.id)
            .await?
            .into_iter()
            .map(|e| e.action)
            .collect();
        out.push(EngageCandidate {
            plan: row::text(r, "plan")?,
            placement,
            done,
        });
    }
    Ok(out)
}

/// Seeds (not disabled) with messages seen since `since` that are not filed away yet.
pub async fn seeds_to_engage(pool: &sqlx::AnyPool, since: i64) -> Result<Vec<i64>, StoreError> {
    use crate::domain::{EngagementAction, SeedStatus};
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT DISTINCT p.seed_id FROM placements p JOIN seeds s ON s.id = p.seed_id \
         JOIN outbox o ON o.id = p.outbox_id \
         WHERE s.status <> $1 AND p.placement <> $2 AND p.seen_at >= $3 AND o.kind = $5 \
           AND NOT EXISTS (SELECT 1 FROM engagement_events e \
                           WHERE e.placement_id = p.id AND e.action = $4) \
         ORDER BY p.seed_id",
    )
    .bind(SeedStatus::Disabled.as_str())
    .bind(Placement::Missing.as_str())
    .bind(since)
    .bind(EngagementAction::File.as_str())
    .bind(SendKind::Warmup.as_str())
    .fetch_all(pool)
    .await?;
    Ok(ids)
}
