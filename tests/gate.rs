//! The preflight gate against the lab's DNS, with records broken and repaired at run time
//! (`scripts/lab dns`): a broken identity cannot start; fixed, it starts; broken while running,
//! the campaign pauses with the failing checks; fixed again, it resumes by itself.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

#[path = "common/lab.rs"]
mod lab;

use hearth::config::Config;
use hearth::domain::{CampaignStatus, PauseReason, Verdict};
use hearth::preflight::{CheckId, gate};
use hearth::startup::App;
use hearth::store;

fn lab_dir() -> Option<PathBuf> {
    lab::lab_dir("gate lab tests", &[5353, 5587])
}

fn lab_dns(args: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/lab");
    let out = Command::new(script)
        .arg("dns")
        .args(args)
        .output()
        .expect("run scripts/lab dns");
    assert!(
        out.status.success(),
        "scripts/lab dns {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Puts the gate identity's records back however the test ends.
struct Restore;
impl Drop for Restore {
    fn drop(&mut self) {
        lab_dns(&[
            "set",
            "2.0.192.in-addr.arpa",
            "130",
            "PTR",
            "1",
            "mta.gate.pf.test.",
        ]);
        lab_dns(&[
            "set",
            "gate.pf.test",
            "@",
            "TXT",
            "1",
            "v=spf1 ip4:192.0.2.130 -all",
        ]);
    }
}

fn config(lab: &Path, data: &Path) -> Config {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut text = lab::lab_config_text(lab, data);
    text.push_str(&format!(
        r#"
[[senders]]
name = "gate"
address = "hello@gate.pf.test"
helo = "mta.gate.pf.test"
ips = ["192.0.2.130"]
smtp = {{ host = "127.0.0.1", port = 5587, ca_file = "{lab}/tls/ca.pem", username = "hello@sender.test", password = "lab-pass-1" }}
dkim = {{ domain = "gate.pf.test", selector = "hearth", key_file = "{lab}/dkim/sender.test.hearth.key" }}

[[campaigns]]
name = "gate-warmup"
sender = "gate"
"#,
        lab = lab.display()
    ));
    Config::from_toml(&text, Some(&root.join("config/lab.toml")), &[]).expect("valid config")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_identity_blocks_start_pauses_and_resumes() {
    let Some(lab) = lab_dir() else { return };
    hearth::tls::install_crypto_provider();
    let data = tempfile::tempdir().unwrap();
    let app = App::build(
        config(&lab, data.path()),
        Arc::new(hearth::clock::SystemClock),
    )
    .await
    .unwrap();
    let pool = app.store.pool().clone();
    let sender = store::senders::get_by_name(&pool, "gate")
        .await
        .unwrap()
        .unwrap();
    let campaign = || async {
        store::campaigns::get_by_name(&pool, "gate-warmup")
            .await
            .unwrap()
            .unwrap()
    };
    let _restore = Restore;

    // Broken: no PTR. The start is refused, naming the check.
    lab_dns(&["del", "2.0.192.in-addr.arpa", "130", "PTR"]);
    let (blocked, report) = gate::check_before_start(&app, &sender)
        .await
        .unwrap()
        .expect_err("must be blocked");
    assert_eq!(blocked.failing, vec![CheckId::RdnsPtr], "{report:#?}");

    // Fixed: the start goes through.
    lab_dns(&[
        "set",
        "2.0.192.in-addr.arpa",
        "130",
        "PTR",
        "1",
        "mta.gate.pf.test.",
    ]);
    let report = gate::check_before_start(&app, &sender)
        .await
        .unwrap()
        .expect("must pass now");
    assert_eq!(report.verdict(), Verdict::Pass, "{report:#?}");
    let c = campaign().await;
    assert!(
        store::campaigns::transition(
            &pool,
            c.id,
            &[CampaignStatus::Draft],
            CampaignStatus::Active,
            None,
            None,
            app.clock.now()
        )
        .await
        .unwrap()
    );

    // Broken while running: SPF no longer authorizes the IP. The scheduled re-check pauses it.
    lab_dns(&["set", "gate.pf.test", "@", "TXT", "1", "v=spf1 -all"]);
    let applied = gate::recheck_all(&app, false).await.unwrap();
    assert!(
        applied.paused.contains(&"gate-warmup".to_owned()),
        "{applied:?}"
    );
    let c = campaign().await;
    assert_eq!(
        (c.status, c.pause_reason),
        (CampaignStatus::Paused, Some(PauseReason::Preflight))
    );
    assert!(
        c.pause_detail
            .as_deref()
            .unwrap_or("")
            .contains("spf.mail_from"),
        "{:?}",
        c.pause_detail
    );
    // The lab's own campaign (another sender, still a draft) is untouched.
    let lab_campaign = store::campaigns::get_by_name(&pool, "lab-warmup")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lab_campaign.status, CampaignStatus::Draft);

    // Still broken: the frequent re-check of paused campaigns keeps it paused.
    let applied = gate::recheck_all(&app, true).await.unwrap();
    assert!(applied.resumed.is_empty());

    // Fixed: the next re-check resumes it without anyone's help.
    lab_dns(&[
        "set",
        "gate.pf.test",
        "@",
        "TXT",
        "1",
        "v=spf1 ip4:192.0.2.130 -all",
    ]);
    let applied = gate::recheck_all(&app, true).await.unwrap();
    assert_eq!(applied.resumed, vec!["gate-warmup".to_owned()]);
    let c = campaign().await;
    assert_eq!((c.status, c.pause_reason), (CampaignStatus::Active, None));

    // The history shows when it broke and when it was fixed.
    let history = store::preflight::recent_verdicts(&pool, sender.id, 10)
        .await
        .unwrap();
    let verdicts: Vec<Verdict> = history.iter().rev().map(|(v, _)| *v).collect();
    assert_eq!(
        verdicts,
        vec![
            Verdict::Fail,
            Verdict::Pass,
            Verdict::Fail,
            Verdict::Fail,
            Verdict::Pass
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_pause_is_never_lifted_by_preflight() {
    let Some(lab) = lab_dir() else { return };
    hearth::tls::install_crypto_provider();
    let data = tempfile::tempdir().unwrap();
    let app = App::build(
        config(&lab, data.path()),
        Arc::new(hearth::clock::SystemClock),
    )
    .await
    .unwrap();
    let pool = app.store.pool().clone();
    let c = store::campaigns::get_by_name(&pool, "lab-warmup")
        .await
        .unwrap()
        .unwrap();
    store::campaigns::set_status(
        &pool,
        c.id,
        CampaignStatus::Paused,
        Some(PauseReason::Manual),
        Some("by hand"),
        0,
    )
    .await
    .unwrap();
    let sender = store::senders::get_by_name(&pool, "lab")
        .await
        .unwrap()
        .unwrap();
    let (report, applied) =
        gate::recheck_sender(&app, &sender, hearth::domain::PreflightTrigger::Manual)
            .await
            .unwrap();
    assert_eq!(report.verdict(), Verdict::Pass, "{report:#?}");
    assert!(applied.resumed.is_empty());
    let c = store::campaigns::get_by_name(&pool, "lab-warmup")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.pause_reason, Some(PauseReason::Manual));
}

/// Without the lab: a DNS server that never answers makes every check `unknown`. That blocks
/// a start, but pauses a running campaign only once it has lasted past the grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_pauses_only_after_the_grace_period() {
    hearth::tls::install_crypto_provider();
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let data = tempfile::tempdir().unwrap();
    // An Ed25519 DKIM key (base64 of a 32-byte seed).
    let key = data.path().join("dkim.key");
    std::fs::write(&key, "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=").unwrap();
    let text = format!(
        r#"
[server]
bind = "127.0.0.1:0"
data_dir = {data:?}

[dns]
nameservers = ["{ns}"]
timeout_ms = 100
attempts = 1

[preflight]
ip_blocklists = ["bl.lab.test"]
domain_blocklists = ["dbl.lab.test"]
unknown_grace_minutes = 60
smtp_timeout_secs = 1

[[senders]]
name = "s"
address = "hello@sender.test"
helo = "mta1.sender.test"
ips = ["192.0.2.10"]
smtp = {{ host = "127.0.0.1", port = 9 }}
dkim = {{ selector = "s1", key_file = {key:?} }}

[[seeds]]
address = "seed1@gmail.test"
imap = {{ host = "127.0.0.1", port = 9 }}

[[campaigns]]
name = "c"
sender = "s"
"#,
        data = data.path().to_str().unwrap(),
        ns = silent.local_addr().unwrap(),
        key = key.to_str().unwrap(),
    );
    let config = Config::from_toml(&text, None, &[]).unwrap();
    let clock = hearth::clock::ManualClock::new(1_800_000_000);
    let app = App::build(config, Arc::new(clock.clone())).await.unwrap();
    let pool = app.store.pool().clone();
    let sender = store::senders::get_by_name(&pool, "s")
        .await
        .unwrap()
        .unwrap();

    let (blocked, _) = gate::check_before_start(&app, &sender)
        .await
        .unwrap()
        .expect_err("unknown blocks a start");
    assert!(
        blocked.failing.is_empty() && blocked.unknown.contains(&CheckId::RdnsPtr),
        "{blocked:?}"
    );

    let c = store::campaigns::get_by_name(&pool, "c")
        .await
        .unwrap()
        .unwrap();
    store::campaigns::set_status(
        &pool,
        c.id,
        CampaignStatus::Active,
        None,
        None,
        hearth::clock::Clock::now(&clock),
    )
    .await
    .unwrap();
    clock.advance(30 * 60);
    let applied = gate::recheck_all(&app, false).await.unwrap();
    assert!(
        applied.paused.is_empty(),
        "30 minutes of unknown is within the grace period"
    );
    clock.advance(31 * 60);
    let applied = gate::recheck_all(&app, false).await.unwrap();
    assert_eq!(
        applied.paused,
        vec!["c".to_owned()],
        "61 minutes of unknown pauses"
    );
    let c = store::campaigns::get_by_name(&pool, "c")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.pause_reason, Some(PauseReason::Preflight));
    assert!(c.pause_detail.unwrap().starts_with("could not verify"));
    drop(silent);
}
