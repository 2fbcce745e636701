//! Planning against a real store, on a fresh SQLite file and on a fresh PostgreSQL database
//! (from `DATABASE_URL`; see tests/common/pg.rs): bulk enqueue across chunk boundaries, the
//! seeds' day as the planner sees it, and the scheduler over two weeks (idempotent days,
//! caps across campaigns, one message a day per sender and seed, the ramp on sending days).

#[path = "common/pg.rs"]
mod pg;

mod planning {
    pub mod bench;
    pub mod store;
}

use hearth::cli::bench_planning;

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use hearth::clock::ManualClock;
use hearth::config::Config;
use hearth::domain::{CampaignStatus, OutboxStatus, PreflightTrigger, SendKind, Verdict};
use hearth::startup::App;
use hearth::store::{campaigns, outbox, preflight, seeds};

/// Runs `body` with a fresh SQLite URL, then (when configured) a fresh PostgreSQL URL.
async fn on_both<F, Fut>(body: F)
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    body(format!("sqlite://{}", dir.path().join("h.db").display())).await;
    if let Some(admin) = pg::admin_url() {
        let db = pg::TestDb::create(&admin).await;
        let outcome =
            futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(body(db.url.clone())))
                .await;
        db.drop_db().await;
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }
}

const SEEDS: &[(&str, &str)] = &[
    ("a1@gmail.test", "gmail"),
    ("a2@gmail.test", "gmail"),
    ("a3@gmail.test", "gmail"),
    ("b1@outlook.test", "outlook"),
    ("b2@outlook.test", "outlook"),
    ("c1@yahoo.test", "yahoo"),
];

fn config(url: &str, data: &Path) -> Config {
    let mut text = format!(
        r#"
[server]
bind = "127.0.0.1:0"
database_url = "{url}"
data_dir = "{data}"
secret_key = "planning-test"

[dns]
nameservers = ["127.0.0.1:9"]
"#,
        data = data.display()
    );
    for name in ["one", "two"] {
        text.push_str(&format!(
            r#"
[[senders]]
name = "{name}"
address = "hello@{name}.test"
helo = "mta.{name}.test"
smtp = {{ host = "127.0.0.1", port = 2525, tls = "none", password = "pw" }}
"#
        ));
    }
    for (address, provider) in SEEDS {
        let cap = if address.ends_with("1@gmail.test") || address.starts_with("b1@") {
            1
        } else {
            2
        };
        text.push_str(&format!(
            r#"
[[seeds]]
address = "{address}"
provider = "{provider}"
daily_cap = {cap}
imap = {{ host = "127.0.0.1", port = 1143, tls = "none", password = "pw" }}
"#
        ));
    }
    // "one" ramps on weekdays; "two" sends 4 a day, every day, with a provider mix.
    text.push_str(
        r#"
[[campaigns]]
name = "ramp"
sender = "one"
plan = { start_per_day = 3, increase_per_day = 1, max_per_day = 5, variance_percent = 0, timezone = "Europe/Berlin", window = { days = ["mon", "tue", "wed", "thu", "fri"], start = "09:00", end = "17:00" } }

[[campaigns]]
name = "steady"
sender = "two"
plan = { start_per_day = 4, max_per_day = 4, variance_percent = 0, timezone = "Europe/Berlin", provider_mix = { gmail = 50, outlook = 50 }, window = { days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], start = "00:00", end = "23:59" } }
"#,
    );
    Config::from_toml(&text, None, &[]).expect("valid config")
}

/// 2026-11-30 is a Monday; 05:00 UTC is before both windows' days are far along.
const MONDAY: i64 = 1_796_014_800;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduler_over_two_weeks() {
    on_both(|url| async move {
        let data = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(MONDAY);
        let app = App::build(config(&url, data.path()), Arc::new(clock.clone()))
            .await
            .unwrap();
        let pool = app.store.pool().clone();
        // Two seeds take one message a day only (daily_cap = 1 in the config).
        let caps: HashMap<i64, usize> = seeds::list(&pool)
            .await
            .unwrap()
            .iter()
            .map(|s| (s.id, s.record.daily_cap as usize))
            .collect();
        let mut ids = HashMap::new();
        for name in ["ramp", "steady"] {
            let c = campaigns::get_by_name(&pool, name).await.unwrap().unwrap();
            let from = [CampaignStatus::Draft];
            assert!(
                campaigns::transition(&pool, c.id, &from, CampaignStatus::Active, None, None, 0)
                    .await
                    .unwrap()
            );
            ids.insert(name, (c.id, c.sender_id));
        }
        let mut ramp = Vec::new();
        for day in 0..14 {
            let now = MONDAY + day * 86_400;
            clock.set(now);
            // A passing preflight a moment ago: the scheduler need not ask DNS again.
            for (_, sender) in ids.values() {
                let run = preflight::start_run(&pool, *sender, PreflightTrigger::Schedule, now)
                    .await
                    .unwrap();
                preflight::finish_run(&pool, run, Verdict::Pass, now)
                    .await
                    .unwrap();
            }
            let first = hearth::scheduler::run_once(&app).await.unwrap();
            assert_eq!(
                hearth::scheduler::run_once(&app).await.unwrap(),
                0,
                "day {day} twice"
            );
            let rows = outbox::list_for_campaign(&pool, ids["ramp"].0)
                .await
                .unwrap();
            let today = rows
                .iter()
                .filter(|r| r.run_at >= now && r.run_at < now + 86_400)
                .count();
            ramp.push(today);
            assert!(first >= today, "day {day}");
        }
        // Weekdays ramp 3, 4, 5, 5, 5; the weekend plans nothing and does not move the ramp.
        assert_eq!(ramp, [3, 4, 5, 5, 5, 0, 0, 5, 5, 5, 5, 5, 0, 0]);

        let mut all = Vec::new();
        for (id, sender) in ids.values() {
            for r in outbox::list_for_campaign(&pool, *id).await.unwrap() {
                all.push((r, *sender));
            }
        }
        // Per seed and local day (both plans are in one zone): caps, and one pair a day.
        let mut per_seed_day: HashMap<(i64, String), usize> = HashMap::new();
        let mut per_pair_day: HashMap<(i64, i64, String), usize> = HashMap::new();
        for (r, sender) in &all {
            assert_eq!(
                (r.kind, r.status),
                (SendKind::Warmup, OutboxStatus::Planned)
            );
            let day = r.plan_day.clone().unwrap();
            *per_pair_day
                .entry((*sender, r.seed_id, day.clone()))
                .or_default() += 1;
            *per_seed_day.entry((r.seed_id, day)).or_default() += 1;
        }
        assert!(
            per_pair_day.values().all(|n| *n == 1),
            "one message a day per pair"
        );
        for ((seed, day), n) in &per_seed_day {
            assert!(*n <= caps[seed], "seed {seed} on {day}: {n}");
        }
        // The capped seeds were full on some day: the caps did bite.
        assert!(
            per_seed_day
                .iter()
                .any(|((seed, _), n)| caps[seed] == 1 && *n == 1)
        );
        // Within a campaign's day, sends keep the minimum gap.
        for (id, _) in ids.values() {
            let rows = outbox::list_for_campaign(&pool, *id).await.unwrap();
            for w in rows.windows(2) {
                if w[0].plan_day == w[1].plan_day {
                    assert!(w[1].run_at - w[0].run_at >= 120);
                }
            }
        }
        app.store.close().await;
    })
    .await;
}

/// Another node claims a campaign's day after this node read `campaign_days` and before it
/// writes (here: inside the gate, which runs between the two): this node's batch skips that
/// campaign, sends and all, and plans the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_claimed_meanwhile_by_another_node_is_not_planned_twice() {
    on_both(|url| async move {
        let data = tempfile::tempdir().unwrap();
        let app = App::build(
            config(&url, data.path()),
            Arc::new(ManualClock::new(MONDAY)),
        )
        .await
        .unwrap();
        let pool = app.store.pool().clone();
        for name in ["ramp", "steady"] {
            let c = campaigns::get_by_name(&pool, name).await.unwrap().unwrap();
            campaigns::set_status(&pool, c.id, CampaignStatus::Active, None, None, 0)
                .await
                .unwrap();
        }
        let steady = campaigns::get_by_name(&pool, "steady")
            .await
            .unwrap()
            .unwrap();
        let mut planned = 0;
        let groups =
            hearth::scheduler::day_groups(campaigns::list(&pool).await.unwrap(), MONDAY).unwrap();
        assert_eq!(groups.len(), 2, "one group per sender");
        for group in groups {
            let other_node = pool.clone();
            let day = group.day.clone();
            let steady_id = steady.id;
            planned += hearth::scheduler::plan_group(
                &app.store,
                &app.config.content,
                MONDAY,
                group,
                async move |_: &hearth::store::senders::SenderRow| {
                    outbox::claim_plan_day(&other_node, steady_id, &day, 4, MONDAY)
                        .await
                        .unwrap();
                    Ok(Vec::new())
                },
            )
            .await
            .unwrap();
        }
        assert_eq!(
            outbox::list_for_campaign(&pool, steady.id)
                .await
                .unwrap()
                .len(),
            0,
            "the other node's day stands"
        );
        let ramp = campaigns::get_by_name(&pool, "ramp")
            .await
            .unwrap()
            .unwrap();
        let ramp_rows = outbox::list_for_campaign(&pool, ramp.id).await.unwrap();
        assert_eq!((planned, ramp_rows.len()), (3, 3));
        app.store.close().await;
    })
    .await;
}
