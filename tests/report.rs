//! Reports from the daily roll-ups against both backends: a table of messages (their day,
//! provider and fate) goes through the real store paths, and the report must equal what a
//! plain count of the same table gives — also after late writes to an old day.

#[path = "common/pg.rs"]
mod pg;

use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use chrono::NaiveDate;
use futures::FutureExt as _;
use hearth::domain::{
    CampaignStatus, EmailAddress, Endpoint, EngagementAction, HeloName, OutboxStatus, Placement,
    Provider, SendKind, Source, TlsMode,
};
use hearth::report::latency::Histogram;
use hearth::report::{self, Counts};
use hearth::secrets::SecretRef;
use hearth::store::ledger::NewPlacement;
use hearth::store::outbox::NewSend;
use hearth::store::seeds::SeedRecord;
use hearth::store::senders::SenderRecord;
use hearth::store::{Store, campaigns, engagement, ledger, outbox, rollup, seeds, senders};

async fn on_sqlite<F, Fut>(body: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("hearth.db").display());
    with_store(url, body).await;
}

async fn on_postgres<F, Fut>(body: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(admin) = pg::admin_url() else {
        return;
    };
    let db = pg::TestDb::create(&admin).await;
    let outcome = AssertUnwindSafe(with_store(db.url.clone(), body))
        .catch_unwind()
        .await;
    db.drop_db().await;
    if let Err(p) = outcome {
        std::panic::resume_unwind(p);
    }
}

async fn with_store<F, Fut>(url: String, body: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    let store = Store::connect(&url).await.unwrap();
    let outcome = AssertUnwindSafe(body(store.clone())).catch_unwind().await;
    store.close().await;
    if let Err(p) = outcome {
        std::panic::resume_unwind(p);
    }
}

macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { crate::on_sqlite(crate::$name).await; }
        )+ }
        mod postgres { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { crate::on_postgres(crate::$name).await; }
        )+ }
    };
}

on_both_backends!(report_equals_a_plain_count, late_writes_refresh_old_days);

fn endpoint(user: &str) -> Endpoint {
    Endpoint {
        host: "127.0.0.1".into(),
        port: 993,
        tls: TlsMode::Implicit,
        ca_file: None,
        username: user.into(),
        secret: SecretRef::Env("PW".into()),
    }
}

/// What became of one message.
#[derive(Debug, Clone, Copy)]
enum Fate {
    /// Still planned.
    Planned,
    /// Refused at sending.
    Failed,
    /// Sent, not placed yet.
    Sent,
    /// Sent and placed: where, latency, SPF word, engagement.
    Placed(
        Placement,
        Option<i64>,
        Option<&'static str>,
        &'static [EngagementAction],
    ),
}

use EngagementAction::{Open, Reply, Rescue};
use Fate::*;
use Placement::{Inbox, Missing, Other, Promotions, Spam};
use Provider::{Gmail, Outlook, Yahoo};

/// (day, provider, fate): the table every assertion is derived from.
const TABLE: &[(&str, Provider, Fate)] = &[
    (
        "2026-11-27",
        Gmail,
        Placed(Inbox, Some(30), Some("pass"), &[Open]),
    ),
    (
        "2026-11-27",
        Gmail,
        Placed(Inbox, Some(45), Some("pass"), &[Open, Reply]),
    ),
    (
        "2026-11-27",
        Gmail,
        Placed(Spam, Some(600), Some("fail"), &[Rescue]),
    ),
    (
        "2026-11-27",
        Outlook,
        Placed(Inbox, Some(5), Some("PASS"), &[]),
    ),
    ("2026-11-27", Outlook, Failed),
    ("2026-11-28", Gmail, Placed(Promotions, Some(90), None, &[])),
    ("2026-11-28", Gmail, Placed(Missing, None, None, &[])),
    (
        "2026-11-28",
        Yahoo,
        Placed(Other, Some(3600), Some("softfail"), &[]),
    ),
    ("2026-11-28", Yahoo, Sent),
    (
        "2026-11-29",
        Gmail,
        Placed(Inbox, Some(12), Some("pass"), &[Rescue, Reply]),
    ),
    ("2026-11-29", Gmail, Planned),
    (
        "2026-11-29",
        Outlook,
        Placed(Spam, Some(7200), Some("pass"), &[]),
    ),
    // Outside a 3-day report.
    (
        "2026-11-26",
        Gmail,
        Placed(Inbox, Some(1), Some("pass"), &[]),
    ),
];

/// 2026-11-29 12:00 UTC.
const NOW: i64 = 1_795_953_600;

struct World {
    campaign_id: i64,
    seeds: BTreeMap<Provider, i64>,
}

async fn world(store: &Store) -> World {
    let pool = store.pool();
    let sender = SenderRecord {
        name: "ops".into(),
        address: EmailAddress::parse("ops@warm.test").unwrap(),
        display_name: None,
        helo: HeloName::parse("mta1.warm.test").unwrap(),
        ips: vec![],
        smtp: endpoint("ops"),
        dkim: None,
        imap: None,
        source: Source::Config,
    };
    let sender_id = senders::upsert(pool, &sender, 1).await.unwrap();
    let mut ids = BTreeMap::new();
    for (p, addr) in [
        (Gmail, "a@gmail.test"),
        (Outlook, "b@outlook.test"),
        (Yahoo, "c@yahoo.test"),
    ] {
        let rec = SeedRecord {
            address: EmailAddress::parse(addr).unwrap(),
            provider: p,
            daily_cap: 10,
            imap: endpoint(addr),
            smtp: None,
            folders: "{}".into(),
            source: Source::Config,
        };
        ids.insert(p, seeds::upsert(pool, &rec, 1).await.unwrap());
    }
    let campaign_id = campaigns::upsert_from_config(pool, "spring", sender_id, "{}", 1)
        .await
        .unwrap();
    campaigns::set_status(pool, campaign_id, CampaignStatus::Active, None, None, 1)
        .await
        .unwrap();
    World {
        campaign_id,
        seeds: ids,
    }
}

/// Writes one message of the table through the store, as the workers would.
async fn write(store: &Store, w: &World, n: usize, day: &str, provider: Provider, fate: Fate) {
    let pool = store.pool();
    let message_id = format!("<{n}@warm.test>");
    let id = outbox::enqueue(
        pool,
        &NewSend {
            campaign_id: w.campaign_id,
            seed_id: w.seeds[&provider],
            kind: SendKind::Warmup,
            message_id: Some(message_id.clone()),
            subject: "hi".into(),
            in_reply_to: None,
            plan_day: Some(day.into()),
            run_at: NOW - 86_400,
        },
        1,
    )
    .await
    .unwrap();
    let status = match fate {
        Planned => return,
        Failed => OutboxStatus::Failed,
        _ => OutboxStatus::Sent,
    };
    sqlx::query("UPDATE outbox SET status = $1, sent_at = $2 WHERE id = $3")
        .bind(status.as_str())
        .bind(NOW - 3600)
        .bind(id)
        .execute(pool)
        .await
        .unwrap();
    let Placed(placement, latency, spf, events) = fate else {
        return;
    };
    let p = NewPlacement {
        outbox_id: id,
        seed_id: w.seeds[&provider],
        message_id: message_id.clone(),
        placement,
        folder: None,
        provider,
        seen_at: latency.map(|l| NOW - 3600 + l),
        latency_secs: latency,
        auth_spf: spf.map(str::to_owned),
        auth_dkim: spf.map(|_| "pass".to_owned()),
        auth_dmarc: None,
        auth_results: None,
        imap_uidvalidity: None,
        imap_uid: None,
        gmail: None,
    };
    assert!(ledger::record(pool, &p, NOW).await.unwrap());
    let row = ledger::get_by_message_id(pool, &message_id)
        .await
        .unwrap()
        .unwrap();
    for e in events {
        engagement::record(pool, row.id, *e, NOW, None)
            .await
            .unwrap();
    }
}

/// The oracle: counts straight from the table.
fn expected(from: &str, to: &str) -> BTreeMap<(String, Provider), (Counts, Histogram)> {
    let mut out: BTreeMap<(String, Provider), (Counts, Histogram)> = BTreeMap::new();
    for (day, provider, fate) in TABLE.iter().filter(|(d, _, _)| *d >= from && *d <= to) {
        let (c, h) = out.entry((day.to_string(), *provider)).or_default();
        c.planned += 1;
        match fate {
            Planned => {}
            Failed => c.failed += 1,
            Sent => c.sent += 1,
            Placed(placement, latency, spf, events) => {
                c.sent += 1;
                c.placed += 1;
                match placement {
                    Inbox => c.inbox += 1,
                    Spam => c.spam += 1,
                    Promotions => c.promotions += 1,
                    Other => c.other += 1,
                    Missing => c.missing += 1,
                }
                if let Some(l) = latency {
                    h.record(*l);
                }
                if let Some(s) = spf {
                    c.spf_seen += 1;
                    c.dkim_seen += 1;
                    c.dkim_pass += 1;
                    c.spf_pass += u64::from(s.eq_ignore_ascii_case("pass"));
                }
                c.rescued += u64::from(events.contains(&Rescue));
                c.replied += u64::from(events.contains(&Reply));
            }
        }
    }
    out
}

fn check(report: &report::CampaignReport, from: &str, to: &str) {
    let want = expected(from, to);
    let mut got = BTreeMap::new();
    for p in &report.providers {
        for d in &p.days {
            if d.metrics.counts != Counts::default() {
                got.insert((d.day.to_string(), p.provider), d.metrics.counts);
            }
        }
    }
    let want_counts: BTreeMap<_, _> = want.iter().map(|(k, (c, _))| (k.clone(), *c)).collect();
    assert_eq!(got, want_counts);
    for p in &report.providers {
        for d in &p.days {
            let h = want
                .get(&(d.day.to_string(), p.provider))
                .map(|(_, h)| h.clone())
                .unwrap_or_default();
            assert_eq!(
                d.metrics.latency_p50_secs,
                h.quantile(0.5),
                "{} {}",
                d.day,
                p.provider
            );
            assert_eq!(
                d.metrics.latency_p95_secs,
                h.quantile(0.95),
                "{} {}",
                d.day,
                p.provider
            );
        }
    }
    let mut total = Counts::default();
    want.values().for_each(|(c, _)| total += c);
    assert_eq!(report.totals.counts, total);
}

async fn report_equals_a_plain_count(store: Store) {
    let w = world(&store).await;
    for (n, (day, provider, fate)) in TABLE.iter().enumerate() {
        write(&store, &w, n, day, *provider, *fate).await;
    }
    assert!(rollup::dirty_count(&store).await.unwrap() > 0);
    let r = report::campaign_report(&store, "spring", 3, NOW)
        .await
        .unwrap();
    assert_eq!(rollup::dirty_count(&store).await.unwrap(), 0);
    assert_eq!(r.from, NaiveDate::from_ymd_opt(2026, 11, 27).unwrap());
    assert_eq!(r.to, NaiveDate::from_ymd_opt(2026, 11, 29).unwrap());
    check(&r, "2026-11-27", "2026-11-29");
    // Every provider lists every day of the range.
    assert!(r.providers.iter().all(|p| p.days.len() == 3));
    // Rates: gmail on the 27th is 2 inbox, 1 spam of 3 placed; SPF 2 of 3.
    let gmail = r.providers.iter().find(|p| p.provider == Gmail).unwrap();
    let d27 = &gmail.days[0].metrics;
    assert_eq!(
        (d27.inbox_pct, d27.spam_pct, d27.spf_pass_pct),
        (Some(66.7), Some(33.3), Some(66.7))
    );
    assert_eq!(d27.dmarc_pass_pct, None);
    assert!(r.health.is_some());
    // A longer report takes in the older day; the JSON and CSV forms carry the rows.
    let r = report::campaign_report(&store, "spring", 30, NOW)
        .await
        .unwrap();
    check(&r, "2026-10-31", "2026-11-29");
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["campaign"]["name"], "spring");
    assert_eq!(json["providers"][0]["days"].as_array().unwrap().len(), 30);
    let csv = r.to_csv().unwrap();
    assert!(
        csv.starts_with("campaign,day,provider,planned,sent,failed"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 1 + 30 * r.providers.len());
    // Refreshing again finds nothing to do.
    let again = rollup::refresh(&store, None, 10).await.unwrap();
    assert_eq!(again.days, 0);
    assert!(matches!(
        report::campaign_report(&store, "nope", 3, NOW).await,
        Err(report::ReportError::NoSuchCampaign(_))
    ));
}

async fn late_writes_refresh_old_days(store: Store) {
    let w = world(&store).await;
    let pool = store.pool();
    // Small batches: the refresh must loop over them all.
    for (n, (day, provider, fate)) in TABLE.iter().enumerate() {
        write(&store, &w, n, day, *provider, *fate).await;
    }
    let done = rollup::refresh(&store, None, 2).await.unwrap();
    assert_eq!(done.days, 4);
    // A late placement of the message sent on the 28th (yahoo), an event on the 27th, and
    // the planned message of the 29th failing: each old day is marked and recomputed.
    let sent = outbox::get_by_message_id(pool, "<8@warm.test>")
        .await
        .unwrap()
        .unwrap();
    ledger::record(
        pool,
        &NewPlacement {
            outbox_id: sent.id,
            seed_id: w.seeds[&Yahoo],
            message_id: sent.message_id.clone().unwrap(),
            placement: Inbox,
            folder: None,
            provider: Yahoo,
            seen_at: Some(NOW),
            latency_secs: Some(50),
            auth_spf: None,
            auth_dkim: None,
            auth_dmarc: None,
            auth_results: None,
            imap_uidvalidity: None,
            imap_uid: None,
            gmail: None,
        },
        NOW,
    )
    .await
    .unwrap();
    let spam = ledger::get_by_message_id(pool, "<2@warm.test>")
        .await
        .unwrap()
        .unwrap();
    engagement::record(pool, spam.id, Reply, NOW, None)
        .await
        .unwrap();
    let planned = outbox::get_by_message_id(pool, "<10@warm.test>")
        .await
        .unwrap()
        .unwrap();
    sqlx::query("UPDATE outbox SET status = $1 WHERE id = $2")
        .bind(OutboxStatus::Failed.as_str())
        .bind(planned.id)
        .execute(pool)
        .await
        .unwrap();
    assert_eq!(rollup::dirty_count(&store).await.unwrap(), 3);
    let r = report::campaign_report(&store, "spring", 3, NOW)
        .await
        .unwrap();
    let day = |p: Provider, i: usize| {
        r.providers.iter().find(|x| x.provider == p).unwrap().days[i]
            .metrics
            .counts
    };
    assert_eq!((day(Yahoo, 1).placed, day(Yahoo, 1).inbox), (2, 1));
    assert_eq!(day(Gmail, 0).replied, 2);
    assert_eq!(day(Gmail, 2).failed, 1);
    assert_eq!(r.volume.iter().map(|v| v.failed).sum::<u64>(), 2);
}
