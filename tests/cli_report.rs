//! `hearth report` and `hearth status` as users run them, on a SQLite file the test fills
//! through the library (outbox rows, placements) between runs.

use std::path::Path;
use std::process::{Command, Output};

use hearth::clock::{Clock as _, SystemClock};
#[path = "common/ledger.rs"]
mod ledger_fixture;

use hearth::domain::{Placement, Provider};
use hearth::store::{Store, campaigns, seeds};

const BIN: &str = env!("CARGO_BIN_EXE_hearth");

fn hearth(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("HEARTH_CONFIG")
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run hearth")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn config(db: &str) -> String {
    format!(
        r#"
[server]
bind = "127.0.0.1:0"
database_url = "{db}"
secret_key = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

[dns]
nameservers = ["127.0.0.1:5353"]

[[senders]]
name = "main"
address = "hello@sender.test"
helo = "mta1.sender.test"
smtp = {{ host = "127.0.0.1", port = 1, password = "pw" }}

[[seeds]]
address = "seed1@gmail.test"
provider = "gmail"
imap = {{ host = "127.0.0.1", port = 1, password = "pw" }}

[[campaigns]]
name = "warm"
sender = "main"
plan = {{ start_per_day = 1, window = {{ days = ["mon","tue","wed","thu","fri","sat","sun"], start = "00:00", end = "23:59" }} }}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_and_status_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("h.db").display());
    std::fs::write(dir.path().join("hearth.toml"), config(&db)).unwrap();
    let cfg = ["--config", "hearth.toml"];
    let run = |args: &[&str]| hearth(dir.path(), &[&cfg[..], args].concat());

    // A fresh install: the campaign is there, nothing sent yet.
    let o = run(&["status"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("warm") && out.contains("draft"), "{out}");
    let o = run(&["report", "warm"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("no messages in this period"),
        "{}",
        text(&o)
    );

    // Today: three messages to the gmail seed, two in the inbox and one in spam.
    let now = SystemClock.now();
    let today = hearth::planner::local_date(chrono_tz::UTC, now)
        .format("%Y-%m-%d")
        .to_string();
    let store = Store::connect(&db).await.unwrap();
    let pool = store.pool();
    let c = campaigns::get_by_name(pool, "warm").await.unwrap().unwrap();
    let seed = seeds::list(pool).await.unwrap().remove(0);
    for (n, placement) in [Placement::Inbox, Placement::Inbox, Placement::Spam]
        .into_iter()
        .enumerate()
    {
        ledger_fixture::delivered(
            pool,
            ledger_fixture::Delivered {
                campaign_id: c.id,
                seed_id: seed.id,
                provider: Provider::Gmail,
                message_id: format!("<{n}@sender.test>"),
                plan_day: Some(today.clone()),
                sent_at: now,
                placement,
                folder: None,
                latency: Some(60),
                auth: [Some("pass"), Some("pass"), Some("fail")],
            },
        )
        .await;
    }
    store.close().await;

    let o = run(&["report", "warm", "--days", "7"]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("gmail — inbox"), "{out}");
    // Six days without mail, then today at 66.7 % inbox: the sparkline's last bar.
    assert!(out.contains("inbox       ▆ —"), "{out}");
    assert!(
        out.contains(&today) && out.contains("66.7") && out.contains("33.3"),
        "{out}"
    );

    let o = run(&["report", "warm", "--format", "json"]);
    assert!(o.status.success(), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["totals"]["inbox"], 2);
    assert_eq!(v["totals"]["spam"], 1);
    assert_eq!(v["totals"]["dmarc_pass_pct"], 0.0);
    // 60 s lies in the bucket [53.8, 64): reported as its middle (report::latency).
    assert_eq!(v["totals"]["latency_p50_secs"], 59);

    let o = run(&["report", "warm", "--days", "2", "--format", "csv"]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", text(&o));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[2].starts_with(&format!("warm,{today},gmail,3,3,0,3,3,2,1,")),
        "{out}"
    );

    let o = run(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["campaign"]["name"], "warm");
    assert_eq!(v[0]["inbox_pct"], 66.7);

    // Bad input is exit 2.
    assert_eq!(run(&["report", "nope"]).status.code(), Some(2));
    assert_eq!(
        run(&["report", "warm", "--days", "0"]).status.code(),
        Some(2)
    );
    assert_eq!(
        run(&["report", "warm", "--format", "xml"]).status.code(),
        Some(2)
    );
}
