//! A three-day ramp watched in seconds: `hearth serve --time-scale 8640` (a day every ten
//! seconds) against the lab. Each sending day gets the planned volume, every send goes out
//! inside the window, and every message arrives in its seed mailbox exactly once.

#[path = "common/lab.rs"]
mod lab;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{TimeZone as _, Timelike as _};
use hearth::config::Config;
use hearth::domain::OutboxStatus;
use hearth::store;

const BIN: &str = env!("CARGO_BIN_EXE_hearth");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_day_ramp_under_time_scale() {
    let Some(lab) = lab::lab_dir("ramp lab tests", &[5587, 1993]) else {
        return;
    };
    hearth::tls::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    // A window of 06:00–20:00 UTC; the ramp is 6, 8, 10 on successive sending days.
    let text = lab::lab_config_text(&lab, &dir.path().join("data"))
        .replace(
            "start = \"00:00\", end = \"23:59\"",
            "start = \"06:00\", end = \"20:00\"",
        )
        .replace("scan_interval_secs = 10", "scan_interval_secs = 60");
    std::fs::write(dir.path().join("h.toml"), &text).unwrap();
    let hearth = |args: &[&str]| {
        Command::new(BIN)
            .args(["--config", "h.toml"])
            .args(args)
            .current_dir(dir.path())
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    };
    let o = hearth(&["campaign", "start", "lab-warmup"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let mut child = Command::new(BIN)
        .args(["--config", "h.toml", "serve", "--time-scale", "8640"])
        .current_dir(dir.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let config = Config::from_toml(&text, None, &[]).unwrap();
    let store = hearth::startup::open_store(&config).await.unwrap();
    let c = store::campaigns::get_by_name(store.pool(), "lab-warmup")
        .await
        .unwrap()
        .unwrap();
    // Wait for three sending days whose sends all went out (bounded: about 5 plan days).
    let deadline = Instant::now() + Duration::from_secs(60);
    let days = loop {
        let rows = store::outbox::list_for_campaign(store.pool(), c.id)
            .await
            .unwrap();
        let mut days: BTreeMap<String, Vec<store::outbox::OutboxRow>> = BTreeMap::new();
        for r in rows {
            days.entry(r.plan_day.clone().unwrap_or_default())
                .or_default()
                .push(r);
        }
        let complete = days
            .values()
            .take(3)
            .filter(|d| d.iter().all(|r| r.status == OutboxStatus::Sent))
            .count();
        if days.len() >= 3 && complete == 3 {
            break days;
        }
        assert!(
            Instant::now() < deadline,
            "after 60 s: {:?}",
            days.iter()
                .map(|(d, r)| (d.clone(), r.len()))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();

    let first_three: Vec<_> = days.iter().take(3).collect();
    let volumes: Vec<usize> = first_three.iter().map(|(_, r)| r.len()).collect();
    // The first day may be cut short when the test starts just before the window closes;
    // it still counts as a sending day.
    assert!(
        volumes[0] <= 6 && volumes[0] > 0 && volumes[1..] == [8, 10],
        "volumes {volumes:?} on days {:?}",
        first_three.iter().map(|(d, _)| d).collect::<Vec<_>>()
    );
    for (day, rows) in &first_three {
        for r in rows.iter() {
            let sent = chrono::Utc.timestamp_opt(r.sent_at.unwrap(), 0).unwrap();
            assert_eq!(
                &sent.format("%Y-%m-%d").to_string(),
                *day,
                "sent on its plan day"
            );
            // Inside the window (the dispatcher ticks every ~0.2 s = ~30 plan minutes).
            assert!(
                (6..=20).contains(&sent.hour()),
                "{:?} sent at {sent}",
                r.message_id
            );
        }
        // One message per seed and day at most twice (pair_daily_max = 2, daily_cap = 2).
        let mut per_seed: BTreeMap<i64, usize> = BTreeMap::new();
        for r in rows.iter() {
            *per_seed.entry(r.seed_id).or_default() += 1;
        }
        assert!(per_seed.values().all(|n| *n <= 2), "{day}: {per_seed:?}");
    }
    for (_, rows) in &first_three {
        for r in rows.iter() {
            let seed = store::seeds::get(store.pool(), r.seed_id)
                .await
                .unwrap()
                .unwrap();
            let user = seed.record.address.to_string();
            let message_id = r
                .message_id
                .as_deref()
                .expect("a sent row has a Message-ID");
            let mut copies = 0;
            for _ in 0..50 {
                copies = lab::copies_in_mailbox(&lab, &user, message_id).await;
                if copies > 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert_eq!(copies, 1, "{message_id} to {user}");
        }
    }
    store.close().await;
}
