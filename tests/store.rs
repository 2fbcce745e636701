//! The store against both backends: every test body runs on a fresh SQLite file and on a
//! fresh PostgreSQL database (from `DATABASE_URL`; see tests/common/pg.rs).

#[path = "common/pg.rs"]
mod pg;

use std::collections::HashSet;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt as _;
use hearth::domain::{
    CampaignStatus, EmailAddress, Endpoint, EngagementAction, HeloName, OutboxStatus, PauseReason,
    Placement, PreflightTrigger, Provider, SeedStatus, SendKind, Source, TlsMode, Verdict,
};
use hearth::secrets::SecretRef;
use hearth::store::ledger::NewPlacement;
use hearth::store::outbox::NewSend;
use hearth::store::preflight::NewCheckResult;
use hearth::store::seeds::SeedRecord;
use hearth::store::senders::{DkimRecord, SenderRecord};
use hearth::store::{
    Backend, Store, StoreError, campaigns, cursors, engagement, ledger, outbox, outbox_bulk,
    preflight, scan_batch, seeds, senders, settings,
};

// ---------------------------------------------------------------------------------------
// Harness

/// Runs `body` with the URL of a fresh, empty SQLite database file.
async fn with_sqlite_url<F, Fut>(body: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("hearth.db").display());
    body(url).await;
}

/// Runs `body` with the URL of a fresh PostgreSQL database, dropped afterwards (also when
/// the body panics). Skipped when `DATABASE_URL` is unset (see `pg::admin_url`).
async fn with_postgres_url<F, Fut>(body: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(admin) = pg::admin_url() else {
        return;
    };
    let db = pg::TestDb::create(&admin).await;
    let outcome = AssertUnwindSafe(body(db.url.clone())).catch_unwind().await;
    db.drop_db().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn with_store<F, Fut>(url: String, body: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    let store = Store::connect(&url).await.expect("Store::connect");
    // Close the pool even if the body panics, so the database can be dropped cleanly.
    let outcome = AssertUnwindSafe(body(store.clone())).catch_unwind().await;
    store.close().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn on_sqlite<F, Fut>(body: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    with_sqlite_url(|url| with_store(url, body)).await;
}

async fn on_postgres<F, Fut>(body: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    with_postgres_url(|url| with_store(url, body)).await;
}

/// Declares each listed `async fn name(store: Store)` as two tests,
/// `sqlite::name` and `postgres::name`.
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::on_sqlite(crate::$name).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    crate::on_postgres(crate::$name).await;
                }
            )+
        }
    };
}

on_both_backends!(
    schema_is_complete,
    sender_upsert_round_trip,
    seed_upsert_keeps_status,
    bad_stored_value_is_corrupt,
    check_constraints_reject_unknown_words,
    campaign_upsert_keeps_status_and_transitions,
    outbox_enqueue_claim_mark_sent,
    outbox_retry_and_failure,
    claim_respects_limit_and_order,
    plan_days_and_missing_sweep,
    concurrent_claimers_never_share_a_row,
    lease_ownership,
    expired_sending_is_listed_and_released,
    ledger_record_is_idempotent,
    scan_batch_attributes_and_records_in_bulk,
    engagement_events_are_idempotent,
    settings_get_or_insert_is_race_safe,
    preflight_run_round_trip,
    cursors_upsert,
    csv_import_rolled_back_leaves_nothing,
);

// Migrations need the URL (to connect twice), so they get their own pair of tests.
async fn migrations_reapply_is_a_noop(url: String) {
    let applied = |store: Store| async move {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
            .fetch_one(store.pool())
            .await
            .unwrap();
        store.close().await;
        n
    };
    let first = applied(Store::connect(&url).await.unwrap()).await;
    assert!(first >= 1);
    let store = Store::connect(&url)
        .await
        .expect("second connect re-runs migrations");
    store.ping().await.unwrap();
    assert_eq!(applied(store).await, first);
}

#[tokio::test]
async fn sqlite_migrations_reapply_is_a_noop() {
    with_sqlite_url(migrations_reapply_is_a_noop).await;
}

#[tokio::test]
async fn postgres_migrations_reapply_is_a_noop() {
    with_postgres_url(migrations_reapply_is_a_noop).await;
}

#[tokio::test]
async fn memory_sqlite_keeps_one_database() {
    let store = Store::connect("sqlite::memory:").await.unwrap();
    settings::set(store.pool(), "k", "v").await.unwrap();
    // Any later statement must see the same (only) in-memory database.
    for _ in 0..3 {
        let v = settings::get(store.pool(), "k").await.unwrap();
        assert_eq!(v.as_deref(), Some("v"));
    }
}

// ---------------------------------------------------------------------------------------
// Fixtures

fn endpoint(host: &str, port: u16, tls: TlsMode, user: &str) -> Endpoint {
    Endpoint {
        host: host.to_owned(),
        port,
        tls,
        ca_file: None,
        username: user.to_owned(),
        secret: SecretRef::Env(format!("{}_PASSWORD", user.to_uppercase())),
    }
}

fn sender_record(name: &str) -> SenderRecord {
    SenderRecord {
        name: name.to_owned(),
        address: EmailAddress::parse(&format!("{name}@warm.test")).unwrap(),
        display_name: Some("Warm Team".to_owned()),
        helo: HeloName::parse("mta1.warm.test").unwrap(),
        ips: vec![
            "192.0.2.10".parse().unwrap(),
            "2001:db8::10".parse().unwrap(),
        ],
        smtp: endpoint("smtp.warm.test", 587, TlsMode::Starttls, name),
        dkim: Some(DkimRecord {
            domain: "warm.test".parse().unwrap(),
            selector: "hearth".to_owned(),
            key_file: "/etc/hearth/dkim.pem".into(),
        }),
        imap: Some(Endpoint {
            ca_file: Some("/etc/hearth/ca.pem".into()),
            ..endpoint("imap.warm.test", 993, TlsMode::Implicit, name)
        }),
        source: Source::Config,
    }
}

fn seed_record(address: &str) -> SeedRecord {
    SeedRecord {
        address: EmailAddress::parse(address).unwrap(),
        provider: Provider::Gmail,
        daily_cap: seeds::DEFAULT_DAILY_CAP,
        imap: endpoint("imap.gmail.com", 993, TlsMode::Implicit, address),
        smtp: None,
        folders: "{}".to_owned(),
        source: Source::Config,
    }
}

struct Fixture {
    sender_id: i64,
    seed_id: i64,
    campaign_id: i64,
}

async fn fixture(store: &Store) -> Fixture {
    let pool = store.pool();
    let sender_id = senders::upsert(pool, &sender_record("ops"), 10)
        .await
        .unwrap();
    let seed_id = seeds::upsert(pool, &seed_record("seed1@gmail.test"), 10)
        .await
        .unwrap();
    let campaign_id = campaigns::upsert_from_config(pool, "spring", sender_id, "{}", 10)
        .await
        .unwrap();
    // Only active campaigns' rows are claimed.
    campaigns::set_status(pool, campaign_id, CampaignStatus::Active, None, None, 10)
        .await
        .unwrap();
    Fixture {
        sender_id,
        seed_id,
        campaign_id,
    }
}

fn new_send(f: &Fixture, n: usize, run_at: i64) -> NewSend {
    NewSend {
        campaign_id: f.campaign_id,
        seed_id: f.seed_id,
        kind: SendKind::Warmup,
        message_id: Some(format!("<{n}.{run_at}@warm.test>")),
        subject: format!("hello {n}"),
        in_reply_to: None,
        plan_day: Some("2026-11-29".to_owned()),
        run_at,
    }
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

// ---------------------------------------------------------------------------------------
// Tests

async fn schema_is_complete(store: Store) {
    let tables = [
        "settings",
        "senders",
        "seeds",
        "campaigns",
        "outbox",
        "placements",
        "engagement_events",
        "preflight_runs",
        "preflight_results",
        "imap_cursors",
    ];
    for table in tables {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(store.pool())
            .await
            .unwrap_or_else(|e| panic!("{table}: {e}"));
        assert_eq!(n, 0, "{table} starts empty");
    }
    let expected = if store.pool().connect_options().database_url.scheme() == "sqlite" {
        Backend::Sqlite
    } else {
        Backend::Postgres
    };
    assert_eq!(store.backend(), expected);
    store.ping().await.unwrap();

    if store.backend() == Backend::Sqlite {
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(mode, "wal");
    }
    // References are enforced on both backends: by the outbox's foreign keys on SQLite, by
    // the seed's planning day (`seed_days`) and the campaign look-up on PostgreSQL, where
    // the outbox has no foreign keys (migration 20261129000100).
    let f = fixture(&store).await;
    let orphan_seed = NewSend {
        seed_id: f.seed_id + 1000,
        ..new_send(&f, 1, 1)
    };
    let err = outbox::enqueue(store.pool(), &orphan_seed, 1)
        .await
        .unwrap_err();
    match &err {
        StoreError::Query(sqlx::Error::Database(db)) => {
            assert!(db.is_foreign_key_violation(), "{err}")
        }
        other => panic!("expected a foreign key violation, got {other:?}"),
    }
    let orphan_campaign = NewSend {
        campaign_id: f.campaign_id + 1000,
        ..new_send(&f, 2, 1)
    };
    let err = outbox::enqueue(store.pool(), &orphan_campaign, 1)
        .await
        .unwrap_err();
    assert!(
        err.is_foreign_key_violation() || matches!(err, StoreError::NotFound { .. }),
        "{err}"
    );
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(n, 0, "nothing of the refused rows was written");
}

async fn sender_upsert_round_trip(store: Store) {
    let pool = store.pool();
    let rec = sender_record("ops");
    let id = senders::upsert(pool, &rec, 100).await.unwrap();
    let row = senders::get(pool, id).await.unwrap().expect("by id");
    assert_eq!(row.record, rec);
    assert_eq!((row.created_at, row.updated_at), (100, 100));

    // Same name: same row, every field replaced, created_at kept.
    let mut changed = sender_record("ops");
    changed.dkim = None;
    changed.imap = None;
    changed.display_name = None;
    changed.ips = vec![];
    changed.smtp = endpoint("smtp2.warm.test", 465, TlsMode::Implicit, "ops");
    changed.smtp.secret = SecretRef::None;
    assert_eq!(senders::upsert(pool, &changed, 200).await.unwrap(), id);
    let row = senders::get_by_name(pool, "ops").await.unwrap().unwrap();
    assert_eq!(row.record, changed);
    assert_eq!((row.id, row.created_at, row.updated_at), (id, 100, 200));

    let other = senders::upsert(pool, &sender_record("news"), 300)
        .await
        .unwrap();
    assert_ne!(other, id);
    let names: Vec<_> = senders::list(pool)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.record.name)
        .collect();
    assert_eq!(names, ["news", "ops"]);
    assert!(senders::get(pool, 9999).await.unwrap().is_none());
    assert!(
        senders::get_by_name(pool, "nobody")
            .await
            .unwrap()
            .is_none()
    );
}

async fn seed_upsert_keeps_status(store: Store) {
    let pool = store.pool();
    let mut rec = seed_record("Seed.One@gmail.test");
    rec.smtp = Some(endpoint("smtp.gmail.com", 587, TlsMode::Starttls, "seed"));
    let id = seeds::upsert(pool, &rec, 100).await.unwrap();
    let row = seeds::get(pool, id).await.unwrap().unwrap();
    assert_eq!(row.record, rec);
    assert_eq!(row.status, SeedStatus::Active);

    assert!(
        seeds::set_status(pool, id, SeedStatus::Broken, Some("LOGIN failed"), 150)
            .await
            .unwrap()
    );
    assert!(
        !seeds::set_status(pool, 9999, SeedStatus::Broken, None, 150)
            .await
            .unwrap()
    );

    let mut changed = rec.clone();
    changed.imap.host = "imap2.gmail.com".to_owned();
    changed.smtp = None;
    changed.folders = r#"{"spam":"[Gmail]/Spam"}"#.to_owned();
    assert_eq!(seeds::upsert(pool, &changed, 200).await.unwrap(), id);
    let row = seeds::get_by_address(pool, &rec.address)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.record, changed);
    assert_eq!(row.status, SeedStatus::Broken, "an upsert keeps the status");
    assert_eq!(row.status_reason.as_deref(), Some("LOGIN failed"));
    assert_eq!((row.created_at, row.updated_at), (100, 200));
    assert_eq!(seeds::list(pool).await.unwrap().len(), 1);
}

async fn bad_stored_value_is_corrupt(store: Store) {
    let pool = store.pool();
    let id = seeds::upsert(pool, &seed_record("seed@gmail.test"), 1)
        .await
        .unwrap();
    // No CHECK can catch a malformed address: the decoder must.
    sqlx::query("UPDATE seeds SET address = $1 WHERE id = $2")
        .bind("not an address")
        .bind(id)
        .execute(pool)
        .await
        .unwrap();
    match seeds::get(pool, id).await {
        Err(StoreError::Corrupt { table, column, .. }) => {
            assert_eq!((table, column), ("seeds", "address"));
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    sqlx::query("UPDATE seeds SET address = $1, imap_secret = $2 WHERE id = $3")
        .bind("seed@gmail.test")
        .bind("plain-text-password")
        .bind(id)
        .execute(pool)
        .await
        .unwrap();
    let err = seeds::list(pool).await.unwrap_err();
    assert!(matches!(
        err,
        StoreError::Corrupt {
            column: "imap_secret",
            ..
        }
    ));
    assert!(!err.to_string().contains("plain-text-password"), "{err}");
}

async fn check_constraints_reject_unknown_words(store: Store) {
    let pool = store.pool();
    let f = fixture(&store).await;
    let err: StoreError = sqlx::query(
        "INSERT INTO seeds (address, provider, status, imap_host, imap_port, imap_tls, \
           imap_username, imap_secret, source, created_at, updated_at) \
         VALUES ('x@y.test', 'gmail', 'zombie', 'h', 993, 'implicit', 'u', '', 'config', 1, 1)",
    )
    .execute(pool)
    .await
    .unwrap_err()
    .into();
    assert!(err.is_check_violation(), "{err}");
    assert!(!err.is_transient());

    let bad_updates: [&'static str; 5] = [
        "UPDATE campaigns SET status = 'archived' WHERE id = $1",
        "UPDATE campaigns SET status = 'paused' WHERE id = $1", // paused needs a reason
        "UPDATE campaigns SET status = 'paused', pause_reason = 'boredom' WHERE id = $1",
        "UPDATE campaigns SET auto_resume = 2 WHERE id = $1",
        "UPDATE senders SET smtp_tls = 'ssl' WHERE id = $1",
    ];
    for sql in bad_updates {
        let id = if sql.contains("senders") {
            f.sender_id
        } else {
            f.campaign_id
        };
        let err: StoreError = sqlx::query(sql)
            .bind(id)
            .execute(pool)
            .await
            .unwrap_err()
            .into();
        assert!(err.is_check_violation(), "{sql}: {err}");
    }

    let oid = outbox::enqueue(pool, &new_send(&f, 1, 100), 1)
        .await
        .unwrap();
    for sql in [
        "UPDATE outbox SET status = 'lost' WHERE id = $1",
        "UPDATE outbox SET status = 'sending' WHERE id = $1", // sending needs a lease
        "UPDATE outbox SET kind = 'spam' WHERE id = $1",
    ] {
        let err: StoreError = sqlx::query(sql)
            .bind(oid)
            .execute(pool)
            .await
            .unwrap_err()
            .into();
        assert!(err.is_check_violation(), "{sql}: {err}");
    }
    assert_eq!(
        outbox::get(pool, oid).await.unwrap().unwrap().status,
        OutboxStatus::Planned
    );
}

async fn campaign_upsert_keeps_status_and_transitions(store: Store) {
    let pool = store.pool();
    let f = fixture(&store).await;
    // A campaign of its own: the fixture's is already active.
    let cid = campaigns::upsert_from_config(pool, "autumn", f.sender_id, "{}", 10)
        .await
        .unwrap();
    let c = campaigns::get(pool, cid).await.unwrap().unwrap();
    assert_eq!(c.status, CampaignStatus::Draft);
    assert_eq!(
        (c.sender_name.as_str(), c.auto_resume, c.started_at),
        ("ops", true, None)
    );
    assert_eq!(c.source, Source::Config);

    use CampaignStatus::*;
    // draft → active records started_at once.
    assert!(
        campaigns::transition(pool, cid, &[Draft], Active, None, None, 100)
            .await
            .unwrap()
    );
    assert!(
        !campaigns::transition(pool, cid, &[Draft], Active, None, None, 101)
            .await
            .unwrap()
    );

    // A config reload changes the plan, never the status.
    let again = campaigns::upsert_from_config(pool, "autumn", f.sender_id, r#"{"v":2}"#, 150)
        .await
        .unwrap();
    assert_eq!(again, cid);
    let c = campaigns::get_by_name(pool, "autumn")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((c.status, c.plan.as_str()), (Active, r#"{"v":2}"#));
    assert_eq!(
        (c.started_at, c.created_at, c.updated_at),
        (Some(100), 10, 150)
    );

    let moved = campaigns::transition(
        pool,
        cid,
        &[Active],
        Paused,
        Some(PauseReason::Preflight),
        Some("SPF fails for 192.0.2.10"),
        200,
    )
    .await
    .unwrap();
    assert!(moved);
    let c = campaigns::get(pool, cid).await.unwrap().unwrap();
    assert_eq!(c.status, Paused);
    assert_eq!(c.pause_reason, Some(PauseReason::Preflight));
    assert_eq!(c.pause_detail.as_deref(), Some("SPF fails for 192.0.2.10"));

    // Resuming clears the reason and keeps the first started_at.
    assert!(
        campaigns::transition(pool, cid, &[Paused, Draft], Active, None, None, 300)
            .await
            .unwrap()
    );
    let c = campaigns::get(pool, cid).await.unwrap().unwrap();
    assert_eq!(
        (c.status, c.pause_reason, c.pause_detail),
        (Active, None, None)
    );
    assert_eq!(c.started_at, Some(100));
    assert!(
        !campaigns::transition(pool, cid, &[], Completed, None, None, 301)
            .await
            .unwrap()
    );

    // set_status: unconditional, but a pause still needs a reason.
    let err = campaigns::set_status(pool, cid, Paused, None, None, 400)
        .await
        .unwrap_err();
    assert!(err.is_check_violation(), "{err}");
    campaigns::set_status(pool, cid, Paused, Some(PauseReason::Manual), None, 400)
        .await
        .unwrap();
    campaigns::set_status(pool, cid, Completed, Some(PauseReason::Manual), None, 500)
        .await
        .unwrap();
    let c = campaigns::get(pool, cid).await.unwrap().unwrap();
    assert_eq!((c.status, c.pause_reason), (Completed, None));
    assert!(matches!(
        campaigns::set_status(pool, 9999, Active, None, None, 1).await,
        Err(StoreError::NotFound { .. })
    ));

    assert!(
        campaigns::set_auto_resume(pool, cid, false, 600)
            .await
            .unwrap()
    );
    let all = campaigns::list(pool).await.unwrap();
    assert_eq!(all.len(), 2);
    let autumn = all.iter().find(|c| c.id == cid).unwrap();
    assert!(!autumn.auto_resume);
}

async fn outbox_enqueue_claim_mark_sent(store: Store) {
    let pool = store.pool();
    let f = fixture(&store).await;
    let ids = [
        outbox::enqueue(pool, &new_send(&f, 1, 100), 50)
            .await
            .unwrap(),
        outbox::enqueue(pool, &new_send(&f, 2, 200), 50)
            .await
            .unwrap(),
        outbox::enqueue(pool, &new_send(&f, 3, 300), 50)
            .await
            .unwrap(),
    ];
    let row = outbox::get(pool, ids[0]).await.unwrap().unwrap();
    assert_eq!(row.status, OutboxStatus::Planned);
    assert_eq!(
        (row.attempts, row.lease_owner.as_deref(), row.created_at),
        (0, None, 50)
    );

    let claimed = outbox::claim_due(&store, 250, "node-a", 60, 10)
        .await
        .unwrap();
    assert_eq!(claimed.iter().map(|r| r.id).collect::<Vec<_>>(), ids[..2]);
    for r in &claimed {
        assert_eq!(r.status, OutboxStatus::Sending);
        assert_eq!(
            (r.lease_owner.as_deref(), r.lease_until, r.attempts),
            (Some("node-a"), Some(310), 1)
        );
    }
    assert!(
        outbox::claim_due(&store, 250, "node-b", 60, 10)
            .await
            .unwrap()
            .is_empty()
    );

    assert!(
        outbox::mark_sent(pool, ids[0], "node-a", "250 2.0.0 OK queued", 260)
            .await
            .unwrap()
    );
    let sent = outbox::get_by_message_id(pool, claimed[0].message_id.as_deref().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sent.status, OutboxStatus::Sent);
    assert_eq!(
        (sent.sent_at, sent.smtp_reply.as_deref()),
        (Some(260), Some("250 2.0.0 OK queued"))
    );
    assert_eq!(
        (sent.lease_until, sent.lease_owner.as_deref()),
        (None, Some("node-a"))
    );
    // A second mark_sent finds nothing to do.
    assert!(
        !outbox::mark_sent(pool, ids[0], "node-a", "250 again", 261)
            .await
            .unwrap()
    );

    let counts = outbox::count_by_status(pool, f.campaign_id).await.unwrap();
    let counts = sorted(counts.into_iter().map(|(s, n)| (s.as_str(), n)).collect());
    assert_eq!(counts, [("planned", 1), ("sending", 1), ("sent", 1)]);
    let listed = outbox::list_for_campaign(pool, f.campaign_id)
        .await
        .unwrap();
    assert_eq!(listed.iter().map(|r| r.id).collect::<Vec<_>>(), ids);

    // A duplicate Message-ID is refused.
    let err = outbox::enqueue(pool, &new_send(&f, 1, 100), 50)
        .await
        .unwrap_err();
    assert!(err.is_unique_violation(), "{err}");
}

async fn claim_respects_limit_and_order(store: Store) {
    let f = fixture(&store).await;
    let pool = store.pool();
    // More due rows than the limit: the oldest quarter-hour first (one enqueued last), then
    // by id within a quarter-hour (`outbox_due` keys slots of 900 s).
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(
            outbox::enqueue(pool, &new_send(&f, n, 1_000 - n as i64), 50)
                .await
                .unwrap(),
        );
    }
    let late = outbox::enqueue(pool, &new_send(&f, 9, 890), 50)
        .await
        .unwrap();
    let one = outbox::claim_due(&store, 1_000, "node-a", 60, 1)
        .await
        .unwrap();
    assert_eq!(one.iter().map(|r| r.id).collect::<Vec<_>>(), [late]);
    let two = outbox::claim_due(&store, 1_000, "node-a", 60, 2)
        .await
        .unwrap();
    // Rows come back sorted by time: the two claimed were ids[0] (run_at 1000) and ids[1] (999).
    assert_eq!(
        two.iter().map(|r| r.id).collect::<Vec<_>>(),
        [ids[1], ids[0]]
    );
    let rest = outbox::claim_due(&store, 1_000, "node-a", 60, 100)
        .await
        .unwrap();
    assert_eq!(
        rest.iter().map(|r| r.id).collect::<Vec<_>>(),
        [ids[4], ids[3], ids[2]]
    );
}

async fn plan_days_and_missing_sweep(store: Store) {
    let pool = store.pool();
    let f = fixture(&store).await;
    let day = |n: usize, d: &str| NewSend {
        plan_day: Some(d.to_owned()),
        ..new_send(&f, n, 100)
    };
    let a = outbox::enqueue(pool, &day(1, "2026-11-27"), 50)
        .await
        .unwrap();
    let b = outbox::enqueue(pool, &day(2, "2026-11-28"), 50)
        .await
        .unwrap();
    let c = outbox::enqueue(pool, &day(3, "2026-11-28"), 50)
        .await
        .unwrap();
    let reply = NewSend {
        kind: SendKind::Reply,
        in_reply_to: Some("<2.100@warm.test>".to_owned()),
        ..day(4, "2026-11-28")
    };
    let r = outbox::enqueue(pool, &reply, 50).await.unwrap();
    // Days are claimed once, whoever plans them; a day with no sends is not a sending day.
    for (d, sends) in [("2026-11-27", 1), ("2026-11-28", 3), ("2026-11-26", 0)] {
        assert!(
            outbox::claim_plan_day(pool, f.campaign_id, d, sends, 50)
                .await
                .unwrap()
        );
    }
    assert!(
        !outbox::claim_plan_day(pool, f.campaign_id, "2026-11-28", 3, 51)
            .await
            .unwrap(),
        "a second claim of the same day loses"
    );
    assert!(
        outbox::has_plan_day(pool, f.campaign_id, "2026-11-28")
            .await
            .unwrap()
    );
    assert!(
        !outbox::has_plan_day(pool, f.campaign_id, "2026-11-29")
            .await
            .unwrap()
    );
    assert!(
        !outbox::has_plan_day(pool, f.campaign_id + 1, "2026-11-28")
            .await
            .unwrap()
    );
    assert_eq!(
        outbox::plan_days_before(pool, f.campaign_id, "2026-11-29")
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        outbox::plan_days_before(pool, f.campaign_id, "2026-11-28")
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        outbox::plan_days_before(pool, f.campaign_id, "2026-11-27")
            .await
            .unwrap(),
        0
    );

    // Nothing sent yet: nothing to scan, nothing missing.
    assert!(
        ledger::seeds_awaiting_placement(pool)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        ledger::record_missing(pool, 10_000, 10_000).await.unwrap(),
        0
    );

    // The warm-up claim never takes a reply; the reply sender claims only replies.
    let claimed = outbox::claim_due(&store, 100, "node-a", 60, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 3);
    assert!(claimed.iter().all(|row| row.kind == SendKind::Warmup));
    let mut conn = pool.acquire().await.unwrap();
    let replies = hearth::store::replies::claim_due(&mut conn, 100, "node-a", 60, 10)
        .await
        .unwrap();
    drop(conn);
    assert_eq!(replies.iter().map(|row| row.id).collect::<Vec<_>>(), [r]);
    for (id, at) in [(a, 100), (b, 100), (c, 300), (r, 100)] {
        assert!(
            outbox::mark_sent(pool, id, "node-a", "250 OK", at)
                .await
                .unwrap()
        );
    }
    let waiting = ledger::seeds_awaiting_placement(pool).await.unwrap();
    assert_eq!(
        waiting.iter().map(|s| s.id).collect::<Vec<_>>(),
        [f.seed_id]
    );

    let seen = placement_for(a, f.seed_id, "<1.100@warm.test>", Placement::Inbox);
    assert!(ledger::record(pool, &seen, 150).await.unwrap());
    // b was sent before the cutoff and never seen; c is not overdue yet; replies are not
    // placement measurements.
    assert_eq!(ledger::record_missing(pool, 200, 400).await.unwrap(), 1);
    assert_eq!(ledger::record_missing(pool, 200, 401).await.unwrap(), 0);
    let missing = ledger::get_by_message_id(pool, "<2.100@warm.test>")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(missing.record.placement, Placement::Missing);
    assert_eq!(
        (missing.record.outbox_id, missing.record.provider),
        (b, Provider::Gmail)
    );
    assert_eq!(
        (
            missing.record.folder,
            missing.record.seen_at,
            missing.created_at
        ),
        (None, None, 400)
    );
    assert_eq!(
        waiting.len(),
        ledger::seeds_awaiting_placement(pool).await.unwrap().len()
    );

    assert_eq!(ledger::record_missing(pool, 1000, 1000).await.unwrap(), 1);
    assert!(
        ledger::seeds_awaiting_placement(pool)
            .await
            .unwrap()
            .is_empty()
    );
    // A disabled seed is out of rotation: not offered for scanning.
    let d = outbox::enqueue(pool, &day(5, "2026-11-29"), 50)
        .await
        .unwrap();
    outbox::claim_due(&store, 100, "node-a", 60, 10)
        .await
        .unwrap();
    outbox::mark_sent(pool, d, "node-a", "250 OK", 100)
        .await
        .unwrap();
    assert_eq!(
        ledger::seeds_awaiting_placement(pool).await.unwrap().len(),
        1
    );
    seeds::set_status(pool, f.seed_id, SeedStatus::Disabled, Some("by hand"), 500)
        .await
        .unwrap();
    assert!(
        ledger::seeds_awaiting_placement(pool)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn outbox_retry_and_failure(store: Store) {
    let pool = store.pool();
    let f = fixture(&store).await;
    let id = outbox::enqueue(pool, &new_send(&f, 1, 100), 50)
        .await
        .unwrap();
    let claimed = outbox::claim_due(&store, 100, "node-a", 60, 1)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);

    assert!(
        outbox::mark_retry(pool, id, "node-a", 500, "421 4.7.0 try later")
            .await
            .unwrap()
    );
    let row = outbox::get(pool, id).await.unwrap().unwrap();
    assert_eq!(
        (row.status, row.run_at, row.attempts),
        (OutboxStatus::Planned, 500, 1)
    );
    assert_eq!(row.last_error.as_deref(), Some("421 4.7.0 try later"));
    assert_eq!((row.lease_owner, row.lease_until), (None, None));
    assert!(
        outbox::claim_due(&store, 499, "node-a", 60, 1)
            .await
            .unwrap()
            .is_empty()
    );

    let again = outbox::claim_due(&store, 500, "node-b", 60, 1)
        .await
        .unwrap();
    assert_eq!((again[0].id, again[0].attempts), (id, 2));
    assert!(
        !outbox::mark_failed(pool, id, "node-a", "not mine")
            .await
            .unwrap()
    );
    assert!(
        outbox::mark_failed(pool, id, "node-b", "550 5.1.1 no such user")
            .await
            .unwrap()
    );
    let row = outbox::get(pool, id).await.unwrap().unwrap();
    assert_eq!(row.status, OutboxStatus::Failed);
    assert_eq!(row.last_error.as_deref(), Some("550 5.1.1 no such user"));

    let planned = outbox::enqueue(pool, &new_send(&f, 2, 600), 50)
        .await
        .unwrap();
    assert_eq!(
        outbox::cancel_planned(pool, f.campaign_id).await.unwrap(),
        1
    );
    let row = outbox::get(pool, planned).await.unwrap().unwrap();
    assert_eq!(row.status, OutboxStatus::Cancelled);
}

async fn concurrent_claimers_never_share_a_row(store: Store) {
    let f = fixture(&store).await;
    let mut tx = store.begin().await.unwrap();
    for n in 0..200 {
        outbox::enqueue(&mut *tx, &new_send(&f, n, 1000 + n as i64), 1)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();

    let mut claimers = Vec::new();
    for c in 0..4 {
        let store = store.clone();
        claimers.push(tokio::spawn(async move {
            let owner = format!("node-{c}");
            let mut mine = Vec::new();
            loop {
                let batch = outbox::claim_due(&store, 5000, &owner, 60, 7)
                    .await
                    .unwrap();
                if batch.is_empty() {
                    break;
                }
                assert!(
                    batch.len() <= 7,
                    "claimed {} rows with limit 7",
                    batch.len()
                );
                for r in batch {
                    assert_eq!(r.lease_owner.as_deref(), Some(owner.as_str()));
                    mine.push(r.id);
                }
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for c in claimers {
        all.extend(c.await.unwrap());
    }
    let unique: HashSet<_> = all.iter().copied().collect();
    assert_eq!(all.len(), 200, "every row claimed exactly once");
    assert_eq!(unique.len(), 200, "no row claimed twice");
    let counts = outbox::count_by_status(store.pool(), f.campaign_id)
        .await
        .unwrap();
    assert_eq!(counts.len(), 1);
    assert_eq!(counts[0].0, OutboxStatus::Sending);
    assert_eq!(counts[0].1, 200);
    let rows = outbox::list_for_campaign(store.pool(), f.campaign_id)
        .await
        .unwrap();
    assert!(rows.iter().all(|r| r.attempts == 1));
}

async fn lease_ownership(store: Store) {
    let pool = store.pool();
    let f = fixture(&store).await;
    let id = outbox::enqueue(pool, &new_send(&f, 1, 100), 50)
        .await
        .unwrap();
    // Not claimed yet: nobody may complete it.
    assert!(
        !outbox::mark_sent(pool, id, "node-a", "250 OK", 100)
            .await
            .unwrap()
    );
    outbox::claim_due(&store, 100, "node-a", 60, 10)
        .await
        .unwrap();
    assert!(
        !outbox::mark_sent(pool, id, "node-b", "250 OK", 110)
            .await
            .unwrap()
    );
    assert!(
        !outbox::mark_retry(pool, id, "node-b", 200, "x")
            .await
            .unwrap()
    );
    assert!(!outbox::mark_failed(pool, id, "node-b", "x").await.unwrap());
    assert_eq!(
        outbox::get(pool, id).await.unwrap().unwrap().status,
        OutboxStatus::Sending
    );
    assert!(
        outbox::mark_sent(pool, id, "node-a", "250 OK", 110)
            .await
            .unwrap()
    );
}

async fn expired_sending_is_listed_and_released(store: Store) {
    let pool = store.pool();
    let f = fixture(&store).await;
    let a = outbox::enqueue(pool, &new_send(&f, 1, 100), 50)
        .await
        .unwrap();
    let b = outbox::enqueue(pool, &new_send(&f, 2, 100), 50)
        .await
        .unwrap();
    outbox::claim_due(&store, 1000, "node-a", 60, 1)
        .await
        .unwrap(); // a: lease until 1060
    outbox::claim_due(&store, 1030, "node-b", 60, 1)
        .await
        .unwrap(); // b: lease until 1090

    assert!(
        outbox::expired_sending(pool, 1060)
            .await
            .unwrap()
            .is_empty()
    );
    let expired = outbox::expired_sending(pool, 1061).await.unwrap();
    assert_eq!(expired.iter().map(|r| r.id).collect::<Vec<_>>(), [a]);
    let expired = outbox::expired_sending(pool, 2000).await.unwrap();
    assert_eq!(expired.iter().map(|r| r.id).collect::<Vec<_>>(), [a, b]);

    // An expired lease is not claimable: only reconciliation puts it back.
    assert!(
        outbox::claim_due(&store, 2000, "node-c", 60, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        outbox::release_for_retry(pool, a, 2100, "lease expired; not in Sent folder")
            .await
            .unwrap()
    );
    assert!(
        !outbox::release_for_retry(pool, a, 2100, "twice")
            .await
            .unwrap()
    );
    let row = outbox::get(pool, a).await.unwrap().unwrap();
    assert_eq!(
        (row.status, row.run_at, row.lease_owner),
        (OutboxStatus::Planned, 2100, None)
    );
    assert_eq!(
        row.last_error.as_deref(),
        Some("lease expired; not in Sent folder")
    );
    let claimed = outbox::claim_due(&store, 2100, "node-c", 60, 10)
        .await
        .unwrap();
    assert_eq!(
        (claimed.len(), claimed[0].id, claimed[0].attempts),
        (1, a, 2)
    );
}

fn placement_for(
    outbox_id: i64,
    seed_id: i64,
    message_id: &str,
    placement: Placement,
) -> NewPlacement {
    NewPlacement {
        outbox_id,
        seed_id,
        message_id: message_id.to_owned(),
        placement,
        folder: Some("[Gmail]/Spam".to_owned()),
        provider: Provider::Gmail,
        seen_at: Some(400),
        latency_secs: Some(40),
        auth_spf: Some("pass".to_owned()),
        auth_dkim: Some("pass".to_owned()),
        auth_dmarc: Some("pass".to_owned()),
        auth_results: Some("mx.google.com; spf=pass; dkim=pass; dmarc=pass".to_owned()),
        imap_uidvalidity: Some(7),
        imap_uid: Some(4_000_000_000),
        gmail: None,
    }
}

async fn ledger_record_is_idempotent(store: Store) {
    let pool = store.pool();
    let f = fixture(&store).await;
    let send = new_send(&f, 1, 100);
    let a = outbox::enqueue(pool, &send, 50).await.unwrap();
    let b = outbox::enqueue(pool, &new_send(&f, 2, 100), 50)
        .await
        .unwrap();

    let first = placement_for(
        a,
        f.seed_id,
        send.message_id.as_deref().unwrap(),
        Placement::Spam,
    );
    assert!(ledger::record(pool, &first, 401).await.unwrap());
    assert!(
        !ledger::record(pool, &first, 402).await.unwrap(),
        "same message again"
    );
    let mut later = first.clone();
    later.placement = Placement::Inbox;
    assert!(
        !ledger::record(pool, &later, 403).await.unwrap(),
        "first sighting wins"
    );

    let missing = NewPlacement {
        folder: None,
        seen_at: None,
        latency_secs: None,
        auth_spf: None,
        auth_dkim: None,
        auth_dmarc: None,
        auth_results: None,
        imap_uidvalidity: None,
        imap_uid: None,
        ..placement_for(b, f.seed_id, "<2.100@warm.test>", Placement::Missing)
    };
    assert!(ledger::record(pool, &missing, 500).await.unwrap());

    let rows = ledger::list_for_campaign(pool, f.campaign_id)
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0].record.clone(), rows[0].created_at),
        (first.clone(), 401)
    );
    assert_eq!(rows[1].record, missing);
    let got = ledger::get_by_message_id(pool, send.message_id.as_deref().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.record.placement, Placement::Spam);
    assert!(
        ledger::get_by_message_id(pool, "<nope@x>")
            .await
            .unwrap()
            .is_none()
    );
    let counts = ledger::counts_for_campaign(pool, f.campaign_id)
        .await
        .unwrap();
    let mut counts: Vec<_> = counts.into_iter().map(|(p, n)| (p.as_str(), n)).collect();
    counts.sort();
    assert_eq!(counts, [("missing", 1), ("spam", 1)]);
}

/// A scan's chunk: this seed's outbox rows counted among the Message-IDs found, and their
/// placements inserted in statements that join the outbox (more rows than one SQLite
/// statement holds), where the first sighting still wins and other seeds' mail is skipped;
/// the ledger writer's connection and a pooled one agree.
async fn scan_batch_attributes_and_records_in_bulk(store: Store) {
    let pool = store.pool();
    let f = fixture(&store).await;
    let other_seed = seeds::upsert(pool, &seed_record("seed2@gmail.test"), 10)
        .await
        .unwrap();
    let sends: Vec<NewSend> = (0..5_000).map(|n| new_send(&f, n, 100)).collect();
    let theirs = NewSend {
        seed_id: other_seed,
        ..new_send(&f, 9_999, 100)
    };
    let mut conn = pool.acquire().await.unwrap();
    outbox_bulk::enqueue_many(&mut conn, &sends, 50)
        .await
        .unwrap();
    outbox_bulk::enqueue_many(&mut conn, std::slice::from_ref(&theirs), 50)
        .await
        .unwrap();

    let mut ids: Vec<&str> = sends
        .iter()
        .map(|s| s.message_id.as_deref().unwrap())
        .collect();
    ids.extend([
        "<unknown@warm.test>",
        theirs.message_id.as_deref().unwrap(),
        sends[1].message_id.as_deref().unwrap(),
    ]);
    let seen = scan_batch::attribute(&mut conn, f.seed_id, &ids)
        .await
        .unwrap();
    assert_eq!(
        seen,
        scan_batch::Attribution {
            found: 5_000,
            sending: vec![]
        }
    );
    // One row claimed (a send not yet confirmed): named.
    let claimed = outbox::claim_due_on(&mut conn, 100, "node", 60, 1)
        .await
        .unwrap();
    let seen = scan_batch::attribute(&mut conn, f.seed_id, &ids)
        .await
        .unwrap();
    assert_eq!(seen.sending, vec![claimed[0].message_id.clone().unwrap()]);
    // The same, read once for the whole seed (what a scan does beside its SELECT).
    assert_eq!(
        scan_batch::sending(&mut conn, f.seed_id).await.unwrap(),
        vec![claimed[0].message_id.clone().unwrap()]
    );
    assert!(
        scan_batch::sending(&mut conn, other_seed)
            .await
            .unwrap()
            .is_empty()
    );

    let folder = scan_batch::FolderSighting {
        seed_id: f.seed_id,
        provider: Provider::Gmail,
        placement: Placement::Inbox,
        folder: "INBOX",
        imap_uidvalidity: 7,
        seen_at: 400,
    };
    let sighting = |message_id: &str, uid: i64| scan_batch::Sighting {
        message_id: message_id.into(),
        arrived: 150,
        auth_spf: Some("pass".into()),
        auth_dkim: None,
        auth_dmarc: Some("fail".into()),
        auth_results: Some("mx.gmail.test; spf=pass; dmarc=fail".into()),
        imap_uid: Some(uid),
    };
    // The first message already has its placement; the second is in the chunk twice.
    let first = outbox::get_by_message_id(pool, sends[0].message_id.as_deref().unwrap())
        .await
        .unwrap()
        .unwrap();
    let earlier = placement_for(
        first.id,
        f.seed_id,
        first.message_id.as_deref().unwrap(),
        Placement::Spam,
    );
    assert!(ledger::record(pool, &earlier, 300).await.unwrap());
    let mut chunk: Vec<_> = (0..5_000)
        .map(|n| sighting(sends[n].message_id.as_deref().unwrap(), n as i64 + 1))
        .collect();
    chunk.insert(2, sighting(sends[1].message_id.as_deref().unwrap(), 99_999));
    chunk.push(sighting(theirs.message_id.as_deref().unwrap(), 6_000));
    chunk.push(sighting("<unknown@warm.test>", 6_001));
    chunk[3].arrived = 50; // before its run_at: no negative latency
    // As a scan records (on a SQLite file, the store's ledger writer connection), then
    // again on a pooled connection.
    let recorded = scan_batch::record_sightings_on(&store, &folder, &chunk)
        .await
        .unwrap();
    assert_eq!(recorded, 4_999);
    let again = scan_batch::record_sightings(&mut conn, &folder, &chunk)
        .await
        .unwrap();
    assert_eq!(again, 0, "a re-scan records nothing");
    let again = scan_batch::record_sightings_on(&store, &folder, &chunk[..100])
        .await
        .unwrap();
    assert_eq!(again, 0, "nor through the ledger writer");
    drop(conn);

    let rows = ledger::list_for_campaign(pool, f.campaign_id)
        .await
        .unwrap();
    assert_eq!(
        rows.len(),
        5_000,
        "not the other seed's, not the unknown one"
    );
    let get = |id: &str| rows.iter().find(|r| r.record.message_id == id).unwrap();
    assert_eq!(get(sends[0].message_id.as_deref().unwrap()).record, earlier);
    let second = get(sends[1].message_id.as_deref().unwrap());
    let outbox_id = outbox::get_by_message_id(pool, sends[1].message_id.as_deref().unwrap())
        .await
        .unwrap()
        .unwrap()
        .id;
    assert_eq!(
        (second.record.clone(), second.created_at),
        (
            NewPlacement {
                outbox_id,
                seed_id: f.seed_id,
                message_id: sends[1].message_id.clone().unwrap(),
                placement: Placement::Inbox,
                folder: Some("INBOX".into()),
                provider: Provider::Gmail,
                seen_at: Some(400),
                latency_secs: Some(50),
                auth_spf: Some("pass".into()),
                auth_dkim: None,
                auth_dmarc: Some("fail".into()),
                auth_results: Some("mx.gmail.test; spf=pass; dmarc=fail".into()),
                imap_uidvalidity: Some(7),
                imap_uid: Some(2),
                gmail: None,
            },
            400
        ),
        "the first sighting in the chunk wins"
    );
    assert_eq!(
        get(sends[2].message_id.as_deref().unwrap())
            .record
            .latency_secs,
        Some(0)
    );
    assert_eq!(
        get(sends[4_999].message_id.as_deref().unwrap())
            .record
            .imap_uid,
        Some(5_000)
    );
}

async fn engagement_events_are_idempotent(store: Store) {
    let pool = store.pool();
    let f = fixture(&store).await;
    let send = new_send(&f, 1, 100);
    let oid = outbox::enqueue(pool, &send, 50).await.unwrap();
    ledger::record(
        pool,
        &placement_for(
            oid,
            f.seed_id,
            send.message_id.as_deref().unwrap(),
            Placement::Spam,
        ),
        400,
    )
    .await
    .unwrap();
    let pid = ledger::get_by_message_id(pool, send.message_id.as_deref().unwrap())
        .await
        .unwrap()
        .unwrap()
        .id;

    assert!(
        engagement::record(pool, pid, EngagementAction::Rescue, 500, Some("to INBOX"))
            .await
            .unwrap()
    );
    assert!(
        !engagement::record(pool, pid, EngagementAction::Rescue, 501, None)
            .await
            .unwrap()
    );
    assert!(
        engagement::record(pool, pid, EngagementAction::Open, 502, None)
            .await
            .unwrap()
    );
    let events = engagement::list_for_placement(pool, pid).await.unwrap();
    let got: Vec<_> = events
        .iter()
        .map(|e| (e.action, e.at, e.detail.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            (EngagementAction::Rescue, 500, Some("to INBOX")),
            (EngagementAction::Open, 502, None)
        ]
    );
}

async fn settings_get_or_insert_is_race_safe(store: Store) {
    let mut racers = Vec::new();
    for n in 0..8 {
        let store = store.clone();
        racers.push(tokio::spawn(async move {
            settings::get_or_insert(store.pool(), "mark_secret", || format!("secret-{n}"))
                .await
                .unwrap()
        }));
    }
    let mut values = HashSet::new();
    for r in racers {
        values.insert(r.await.unwrap());
    }
    assert_eq!(
        values.len(),
        1,
        "every racer sees the one stored value: {values:?}"
    );
    let stored = settings::get(store.pool(), "mark_secret")
        .await
        .unwrap()
        .unwrap();
    assert!(values.contains(&stored));
    // Later calls never replace it; set() does.
    let again = settings::get_or_insert(store.pool(), "mark_secret", || "other".into())
        .await
        .unwrap();
    assert_eq!(again, stored);
    settings::set(store.pool(), "mark_secret", "rotated")
        .await
        .unwrap();
    assert_eq!(
        settings::get(store.pool(), "mark_secret")
            .await
            .unwrap()
            .as_deref(),
        Some("rotated")
    );
    assert_eq!(settings::get(store.pool(), "absent").await.unwrap(), None);
}

async fn preflight_run_round_trip(store: Store) {
    let pool = store.pool();
    let f = fixture(&store).await;
    assert!(
        preflight::latest_run(pool, f.sender_id)
            .await
            .unwrap()
            .is_none()
    );

    let old = preflight::start_run(pool, f.sender_id, PreflightTrigger::Start, 100)
        .await
        .unwrap();
    assert!(
        preflight::finish_run(pool, old, Verdict::Pass, 110)
            .await
            .unwrap()
    );

    let run = preflight::start_run(pool, f.sender_id, PreflightTrigger::Manual, 200)
        .await
        .unwrap();
    let open = preflight::latest_run(pool, f.sender_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((open.id, open.verdict, open.finished_at), (run, None, None));
    assert!(open.results.is_empty());
    // The gate still sees the last finished run.
    let finished = preflight::latest_finished_run(pool, f.sender_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((finished.id, finished.verdict), (old, Some(Verdict::Pass)));

    let results = [
        NewCheckResult {
            check_id: "spf".into(),
            verdict: Verdict::Fail,
            evidence: "v=spf1 -all".into(),
            remediation: Some("add ip4:192.0.2.10".into()),
        },
        NewCheckResult {
            check_id: "ptr".into(),
            verdict: Verdict::Pass,
            evidence: "192.0.2.10 -> mta1.warm.test".into(),
            remediation: None,
        },
    ];
    for r in &results {
        preflight::add_result(pool, run, r).await.unwrap();
    }
    assert!(
        preflight::finish_run(pool, run, Verdict::Fail, 210)
            .await
            .unwrap()
    );
    assert!(
        !preflight::finish_run(pool, run, Verdict::Pass, 220)
            .await
            .unwrap()
    );

    let got = preflight::latest_run(pool, f.sender_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.id, run);
    assert_eq!(
        (got.trigger, got.verdict),
        (PreflightTrigger::Manual, Some(Verdict::Fail))
    );
    assert_eq!((got.started_at, got.finished_at), (200, Some(210)));
    let got_results: Vec<_> = got.results.iter().map(|r| r.result.clone()).collect();
    assert_eq!(got_results, results);
    assert_eq!(preflight::get_run(pool, run).await.unwrap().unwrap(), got);
    assert_eq!(
        preflight::latest_finished_run(pool, f.sender_id)
            .await
            .unwrap()
            .unwrap()
            .id,
        run
    );
}

async fn cursors_upsert(store: Store) {
    let pool = store.pool();
    let f = fixture(&store).await;
    assert!(
        cursors::get(pool, f.seed_id, "INBOX")
            .await
            .unwrap()
            .is_none()
    );
    cursors::set(pool, f.seed_id, "INBOX", 7, 100, 1000)
        .await
        .unwrap();
    cursors::set(pool, f.seed_id, "[Gmail]/Spam", 9, 5, 1000)
        .await
        .unwrap();
    cursors::set(pool, f.seed_id, "INBOX", 7, 4_294_967_295, 1100)
        .await
        .unwrap();
    let c = cursors::get(pool, f.seed_id, "INBOX")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (c.uidvalidity, c.last_uid, c.updated_at),
        (7, 4_294_967_295, 1100)
    );
    let spam = cursors::get(pool, f.seed_id, "[Gmail]/Spam")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((spam.uidvalidity, spam.last_uid), (9, 5));
}

async fn csv_import_rolled_back_leaves_nothing(store: Store) {
    let batch: Vec<_> = ["a@gmail.test", "b@outlook.test", "c@yahoo.test"]
        .iter()
        .map(|a| SeedRecord {
            source: Source::Import,
            ..seed_record(a)
        })
        .collect();

    // Rolled back explicitly.
    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        seeds::insert_many_in_tx(&mut tx, &batch, 10).await.unwrap(),
        3
    );
    assert_eq!(seeds::list(&mut *tx).await.unwrap().len(), 3);
    tx.rollback().await.unwrap();
    assert!(seeds::list(store.pool()).await.unwrap().is_empty());

    // A bad row in the middle fails the import; dropping the transaction rolls back.
    let mut with_dup = batch.clone();
    with_dup.insert(1, batch[0].clone());
    {
        let mut tx = store.begin().await.unwrap();
        let err = seeds::insert_many_in_tx(&mut tx, &with_dup, 10)
            .await
            .unwrap_err();
        assert!(err.is_unique_violation(), "{err}");
    }
    assert!(seeds::list(store.pool()).await.unwrap().is_empty());

    // Committed.
    let mut tx = store.begin().await.unwrap();
    seeds::insert_many_in_tx(&mut tx, &batch, 10).await.unwrap();
    tx.commit().await.unwrap();
    let rows = seeds::list(store.pool()).await.unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r.record.source == Source::Import));
}
