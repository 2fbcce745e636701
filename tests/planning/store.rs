//! The store side of planning on both backends: bulk enqueue across chunk boundaries, bulk
//! day claims, and the seeds' day as the planner sees it.

use hearth::domain::{EmailAddress, OutboxStatus, SendKind};
use hearth::store::outbox::NewSend;
use hearth::store::outbox_bulk::{self, DayClaim, DayWindow, PlanBatch, SeedLoad};
use hearth::store::{campaigns, outbox, seeds, senders};

use crate::on_both;

async fn fixture(pool: &sqlx::AnyPool) -> (i64, i64, Vec<i64>) {
    use hearth::domain::{Endpoint, HeloName, Provider, Source, TlsMode};
    use hearth::secrets::SecretRef;
    let ep = |host: &str, user: &str| Endpoint {
        host: host.to_owned(),
        port: 587,
        tls: TlsMode::Starttls,
        ca_file: None,
        username: user.to_owned(),
        secret: SecretRef::Env("PW".into()),
    };
    let mut sender_ids = Vec::new();
    for name in ["x", "y"] {
        let rec = senders::SenderRecord {
            name: name.to_owned(),
            address: EmailAddress::parse(&format!("hi@{name}.test")).unwrap(),
            display_name: None,
            helo: HeloName::parse(&format!("mta.{name}.test")).unwrap(),
            ips: vec![],
            smtp: ep("smtp.test", "hi"),
            dkim: None,
            imap: None,
            source: Source::Config,
        };
        sender_ids.push(senders::upsert(pool, &rec, 1).await.unwrap());
    }
    let mut seed_ids = Vec::new();
    for (address, provider) in [
        ("s1@gmail.test", Provider::Gmail),
        ("s2@yahoo.test", Provider::Yahoo),
    ] {
        let rec = seeds::SeedRecord {
            address: EmailAddress::parse(address).unwrap(),
            provider,
            daily_cap: seeds::DEFAULT_DAILY_CAP,
            imap: ep("imap.test", address),
            smtp: None,
            folders: "{}".to_owned(),
            source: Source::Config,
        };
        seed_ids.push(seeds::upsert(pool, &rec, 1).await.unwrap());
    }
    let cx = campaigns::upsert_from_config(pool, "cx", sender_ids[0], "{}", 1)
        .await
        .unwrap();
    let cy = campaigns::upsert_from_config(pool, "cy", sender_ids[1], "{}", 1)
        .await
        .unwrap();
    (cx, cy, seed_ids)
}

fn send(campaign_id: i64, seed_id: i64, n: usize, run_at: i64) -> NewSend {
    NewSend {
        campaign_id,
        seed_id,
        kind: SendKind::Warmup,
        // As planning writes them: the claim gives the Message-ID.
        message_id: None,
        subject: format!("subject {n}"),
        in_reply_to: None,
        plan_day: Some("2026-11-30".to_owned()),
        run_at,
    }
}

/// The stored row of `s`: by Message-ID when it has one, else by its campaign and its
/// subject (unique per `n` in these tests).
async fn row_of(pool: &sqlx::AnyPool, s: &NewSend) -> Option<outbox::OutboxRow> {
    match &s.message_id {
        Some(id) => outbox::get_by_message_id(pool, id).await.unwrap(),
        None => outbox::list_for_campaign(pool, s.campaign_id)
            .await
            .unwrap()
            .into_iter()
            .find(|r| r.subject == s.subject),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_enqueue_crosses_chunks_and_claims_days_once() {
    on_both(|url| async move {
        let store = hearth::store::Store::connect(&url).await.unwrap();
        let pool = store.pool();
        let (cx, cy, seed_ids) = fixture(pool).await;
        // More rows than one statement holds on either backend (3,276 and 6,553 a chunk).
        let mut sends: Vec<NewSend> = (0..9_001)
            .map(|n| send(cx, seed_ids[n % 2], n, 1_000 + n as i64))
            .collect();
        sends[5].in_reply_to = Some("<parent@x.test>".to_owned());
        sends[6].plan_day = None;
        sends[7].message_id = Some("<kept@planning.test>".to_owned());
        let mut tx = pool.begin().await.unwrap();
        assert_eq!(
            outbox_bulk::enqueue_many(&mut tx, &sends, 77)
                .await
                .unwrap(),
            9_001
        );
        assert_eq!(
            outbox_bulk::enqueue_many(&mut tx, &[], 77).await.unwrap(),
            0
        );
        tx.commit().await.unwrap();
        let counts = outbox::count_by_status(pool, cx).await.unwrap();
        assert_eq!(counts, vec![(OutboxStatus::Planned, 9_001)]);
        for s in [&sends[0], &sends[5], &sends[6], &sends[7], &sends[9_000]] {
            let row = row_of(pool, s).await.unwrap();
            let back = NewSend {
                campaign_id: row.campaign_id,
                seed_id: row.seed_id,
                kind: row.kind,
                message_id: row.message_id.clone(),
                subject: row.subject.clone(),
                in_reply_to: row.in_reply_to.clone(),
                plan_day: row.plan_day.clone(),
                run_at: row.run_at,
            };
            assert_eq!(&back, s);
            assert_eq!(
                (row.status, row.created_at, row.attempts),
                (OutboxStatus::Planned, 77, 0)
            );
        }
        // A message id twice fails the whole statement (the caller's transaction rolls back).
        let mut tx = pool.begin().await.unwrap();
        let with_id = || NewSend {
            message_id: Some("<twice@planning.test>".to_owned()),
            ..send(cy, seed_ids[0], 1, 5)
        };
        let dup = [with_id(), with_id()];
        assert!(outbox_bulk::enqueue_many(&mut tx, &dup, 1).await.is_err());
        drop(tx);
        assert!(outbox::count_by_status(pool, cy).await.unwrap().is_empty());

        assert!(
            outbox::claim_plan_day(pool, cx, "2026-11-30", 3, 1)
                .await
                .unwrap()
        );
        let claims = [
            DayClaim {
                campaign_id: cx,
                plan_day: "2026-11-30".into(),
                sends: 3,
                by_provider: "gmail=2 yahoo=1".into(),
            },
            DayClaim {
                campaign_id: cy,
                plan_day: "2026-11-30".into(),
                sends: 2,
                by_provider: "outlook=2".into(),
            },
            DayClaim {
                campaign_id: cx,
                plan_day: "2026-12-01".into(),
                sends: 0,
                by_provider: String::new(),
            },
        ];
        let mut conn = pool.acquire().await.unwrap();
        let mut got = outbox_bulk::claim_plan_days(&mut conn, &claims, 5)
            .await
            .unwrap();
        got.sort_unstable();
        assert_eq!(got, [cx, cy]);
        assert!(
            outbox_bulk::claim_plan_days(&mut conn, &claims, 6)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            outbox::plan_days_before(pool, cx, "2026-12-02")
                .await
                .unwrap(),
            1
        );
        // What the scheduler reads back for planning 2026-12-01 with a look-back from
        // 2026-11-24: cx's day is claimed, one sending day before it each, and the mix of the
        // days before (cx's first claim, by `claim_plan_day`, says nothing of providers).
        let so_far = outbox_bulk::days_so_far(&mut conn, "2026-12-01", "2026-11-24")
            .await
            .unwrap();
        assert_eq!(so_far.claimed, [cx].into_iter().collect());
        assert_eq!(
            so_far.sending_days_before,
            [(cx, 1), (cy, 1)].into_iter().collect()
        );
        use hearth::domain::Provider;
        assert_eq!(
            so_far.recent_by_provider,
            [(cy, vec![(Provider::Outlook, 2)]), (cx, vec![])]
                .into_iter()
                .collect()
        );
        drop(conn);
        store.close().await;
    })
    .await;
}

/// `(campaign_id, gen)` of the dirty roll-up marks of 2026-11-30.
async fn dirty_gens(pool: &sqlx::AnyPool) -> Vec<(i64, i64)> {
    let rows: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT campaign_id, gen FROM rollup_dirty WHERE plan_day = '2026-11-30' \
         ORDER BY campaign_id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_of_sends_binds_shared_columns_once_and_marks_its_days_dirty() {
    on_both(|url| async move {
        let store = hearth::store::Store::connect(&url).await.unwrap();
        let pool = store.pool();
        let (cx, cy, seed_ids) = fixture(pool).await;
        // cx's day is already dirty (one earlier row); cy's is not.
        let mut tx = pool.begin().await.unwrap();
        outbox_bulk::enqueue_many(&mut tx, &[send(cx, seed_ids[0], 0, 1)], 5)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let before = dirty_gens(pool).await;
        assert_eq!(before.len(), 1);
        // A day's plan for both campaigns, more rows than one statement holds (6552 a
        // chunk on SQLite, 13106 on PostgreSQL), all sharing kind and plan day.
        let sends: Vec<NewSend> = (1..14_001)
            .map(|n| {
                send(
                    if n % 3 == 0 { cy } else { cx },
                    seed_ids[n % 2],
                    n,
                    n as i64,
                )
            })
            .collect();
        let mut tx = pool.begin().await.unwrap();
        let n = outbox_bulk::enqueue_many(&mut tx, &sends, 77)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(n, 14_000);
        let planned = |c| {
            let pool = pool.clone();
            async move { outbox::count_by_status(&pool, c).await.unwrap() }
        };
        assert_eq!(planned(cx).await, vec![(OutboxStatus::Planned, 9_335)]);
        assert_eq!(planned(cy).await, vec![(OutboxStatus::Planned, 4_666)]);
        for s in [&sends[0], &sends[6_600], &sends[13_999]] {
            let row = row_of(pool, s).await.unwrap();
            assert_eq!(
                (
                    row.campaign_id,
                    row.seed_id,
                    row.kind,
                    row.subject.as_str(),
                    row.in_reply_to.as_deref(),
                    row.plan_day.as_deref(),
                    row.run_at,
                    row.status,
                    row.created_at,
                ),
                (
                    s.campaign_id,
                    s.seed_id,
                    SendKind::Warmup,
                    s.subject.as_str(),
                    None,
                    Some("2026-11-30"),
                    s.run_at,
                    OutboxStatus::Planned,
                    77,
                )
            );
        }
        // Both days are dirty, and the one a refresh may have read before has a new `gen`,
        // so that refresh cannot clear it.
        let after = dirty_gens(pool).await;
        assert_eq!(
            after.iter().map(|(c, _)| *c).collect::<Vec<_>>(),
            vec![cx, cy]
        );
        assert!(after[0].1 > before[0].1);
        // A mixed batch (the general path) marks the day again too.
        let gen_before = after[0].1;
        let mut tx = pool.begin().await.unwrap();
        let mixed = [send(cx, seed_ids[0], 20_000, 9), {
            let mut r = send(cx, seed_ids[1], 20_001, 9);
            r.in_reply_to = Some("<p@x.test>".to_owned());
            r
        }];
        outbox_bulk::enqueue_many(&mut tx, &mixed, 78)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert!(dirty_gens(pool).await[0].1 > gen_before);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_day_counts_what_the_planning_days_hold() {
    on_both(|url| async move {
        let store = hearth::store::Store::connect(&url).await.unwrap();
        let pool = store.pool();
        let (cx, cy, seed_ids) = fixture(pool).await;
        let (s1, s2) = (seed_ids[0], seed_ids[1]);
        let x = campaigns::get(pool, cx).await.unwrap().unwrap().sender_id;
        let y = campaigns::get(pool, cy).await.unwrap().unwrap().sender_id;
        let (day, end) = (100_000, 100_000 + 86_400);
        let window = |sender_id, day_start| DayWindow {
            sender_id,
            day_start,
            day_end: day_start + 86_400,
        };
        let load = |seed_id, planned, last_run_at| SeedLoad {
            seed_id,
            planned,
            last_run_at,
        };
        let mut conn = pool.acquire().await.unwrap();
        for (w, loads) in [
            (window(x, day), vec![load(s1, 2, day + 300)]), // this sender, today
            (window(x, day), vec![load(s1, 1, day + 100)]), // adds up
            (window(y, day), vec![load(s1, 1, day + 200)]), // another sender, today
            (window(x, day - 86_400), vec![load(s1, 4, day - 50_000)]), // yesterday
            (window(x, end), vec![load(s1, 8, end + 10)]),  // tomorrow
            // Another time zone's day overlapping today: counted (on the safe side).
            (window(y, day - 3_600), vec![load(s1, 16, day - 3_000)]),
            // Too long ago to steer the rotation.
            (
                window(x, day - seeds::ROTATION_LOOKBACK_SECS - 86_400),
                vec![load(s2, 1, day - seeds::ROTATION_LOOKBACK_SECS - 1)],
            ),
        ] {
            outbox_bulk::add_seed_loads(&mut conn, w, &loads)
                .await
                .unwrap();
        }
        drop(conn);
        let s2_address = EmailAddress::parse("s2@yahoo.test").unwrap();
        assert!(seeds::set_daily_cap(pool, &s2_address, 7, 2).await.unwrap());
        let got = seeds::planning_day(pool, x, day, end).await.unwrap();
        let brief: Vec<_> = got
            .iter()
            .map(|s| {
                (
                    s.id,
                    s.daily_cap,
                    s.planned_today,
                    s.pair_today,
                    s.last_sent_at,
                )
            })
            .collect();
        assert_eq!(
            brief,
            [
                (s1, seeds::DEFAULT_DAILY_CAP, 3 + 1 + 16, 3, Some(end + 10)),
                (s2, 7, 0, 0, None)
            ]
        );
        // A seed taken out of rotation is not a candidate.
        seeds::set_status(pool, s2, hearth::domain::SeedStatus::Disabled, None, 3)
            .await
            .unwrap();
        assert_eq!(
            seeds::planning_day(pool, x, day, end).await.unwrap().len(),
            1
        );
        store.close().await;
    })
    .await;
}

/// Planning's own writers (a native SQLite connection with foreign keys off, PostgreSQL's
/// COPY) write exactly the rows given, texts byte for byte, with the seeds' loads and the
/// roll-up marks; a batch naming a seed that does not exist is refused whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planning_writers_keep_rows_and_references() {
    on_both(|url| async move {
        let store = hearth::store::Store::connect(&url).await.unwrap();
        let pool = store.pool();
        let (cx, cy, seed_ids) = fixture(pool).await;
        let x = campaigns::get(pool, cx).await.unwrap().unwrap().sender_id;
        let window = DayWindow {
            sender_id: x,
            day_start: 200_000,
            day_end: 200_000 + 86_400,
        };
        let mut sends: Vec<NewSend> = (0..40)
            .map(|n| {
                send(
                    if n % 2 == 0 { cx } else { cy },
                    seed_ids[n % seed_ids.len()],
                    n,
                    200_000 + n as i64,
                )
            })
            .collect();
        sends[0].subject = "tab\there, back\\slash, new\nline, cr\r, \\N, ünïcode".to_owned();
        let claims = |day: &str, sends: &[NewSend]| {
            [cx, cy]
                .iter()
                .map(|&c| DayClaim {
                    campaign_id: c,
                    plan_day: day.to_owned(),
                    sends: sends.iter().filter(|s| s.campaign_id == c).count() as i64,
                    by_provider: String::new(),
                })
                .collect::<Vec<_>>()
        };
        let write = |batch: PlanBatch| {
            let store = store.clone();
            async move {
                if let Some(mut conn) = store.sqlite_connection().await.unwrap() {
                    sqlx::Executor::execute(&mut conn, "PRAGMA foreign_keys = OFF")
                        .await
                        .unwrap();
                    outbox_bulk::write_batch_sqlite(&mut conn, batch, window, 5).await
                } else {
                    let mut conn = store.pg_connection().await.unwrap().unwrap();
                    outbox_bulk::write_batch_pg(&mut conn, batch, window, 5).await
                }
            }
        };
        let written = write(PlanBatch {
            claims: claims("2026-11-30", &sends),
            sends: sends.clone(),
        })
        .await
        .unwrap();
        assert_eq!(written, 40);
        for s in &sends {
            let row = row_of(pool, s).await.expect("written");
            assert_eq!(
                (
                    row.campaign_id,
                    row.seed_id,
                    row.subject.as_str(),
                    row.run_at
                ),
                (s.campaign_id, s.seed_id, s.subject.as_str(), s.run_at)
            );
            assert_eq!(row.plan_day.as_deref(), Some("2026-11-30"));
        }
        let got = seeds::planning_day(pool, x, window.day_start, window.day_end)
            .await
            .unwrap();
        let loads: i64 = got.iter().map(|s| i64::from(s.planned_today)).sum();
        assert_eq!(loads, 40);
        let marked: Vec<i64> = dirty_gens(pool).await.iter().map(|d| d.0).collect();
        assert!(marked.contains(&cx) && marked.contains(&cy), "{marked:?}");

        // The next day, one send names a seed that is not there: nothing of it is written.
        let mut next: Vec<NewSend> = (0..4)
            .map(|n| {
                let mut s = send(cx, seed_ids[0], 100 + n, 300_000 + n as i64);
                s.plan_day = Some("2026-12-01".to_owned());
                s
            })
            .collect();
        next[3].seed_id = seed_ids.iter().max().unwrap() + 1_000;
        let err = write(PlanBatch {
            claims: claims("2026-12-01", &next)[..1].to_vec(),
            sends: next,
        })
        .await
        .unwrap_err();
        assert!(
            err.is_foreign_key_violation()
                || matches!(err, hearth::store::StoreError::NotFound { .. }),
            "{err}"
        );
        let days: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM campaign_days WHERE plan_day = '2026-12-01'")
                .fetch_one(pool)
                .await
                .unwrap();
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE run_at >= 300000")
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!((days, rows), (0, 0));

        // A send with its Message-ID and a parent goes in with every column (the full COPY
        // row on PostgreSQL, texts escaped; the ten-column INSERT on SQLite).
        let mut full = send(cy, seed_ids[1], 200, 400_000);
        full.plan_day = Some("2026-12-02".to_owned());
        full.message_id = Some("<full\\row@planning.test>".to_owned());
        full.in_reply_to = Some("<parent\tx@planning.test>".to_owned());
        let written = write(PlanBatch {
            claims: claims("2026-12-02", std::slice::from_ref(&full))[1..].to_vec(),
            sends: vec![full.clone()],
        })
        .await
        .unwrap();
        assert_eq!(written, 1);
        let row = row_of(pool, &full).await.expect("written");
        assert_eq!(
            (
                row.message_id.as_deref(),
                row.in_reply_to.as_deref(),
                row.status,
                row.subject.as_str()
            ),
            (
                full.message_id.as_deref(),
                full.in_reply_to.as_deref(),
                OutboxStatus::Planned,
                full.subject.as_str()
            )
        );
        store.close().await;
    })
    .await;
}
