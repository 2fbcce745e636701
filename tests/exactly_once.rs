//! Exactly once, with real processes and real mail servers: a `hearth serve` killed with
//! SIGKILL in the middle of a batch, then started again; and two `hearth serve` nodes on one
//! PostgreSQL database. Every planned message ends up in its seed mailbox exactly once.

#[path = "common/lab.rs"]
mod lab;
#[path = "common/pg.rs"]
#[allow(dead_code)]
mod pg;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hearth::config::Config;
use hearth::domain::{CampaignStatus, OutboxStatus, SendKind};
use hearth::startup::App;
use hearth::store::{self, outbox::NewSend};

const BIN: &str = env!("CARGO_BIN_EXE_hearth");

/// The lab config with short leases (so a killed node's rows are reconciled in seconds), a
/// high daily maximum, and the given database.
fn config_text(lab: &Path, data: &Path, database_url: Option<&str>) -> String {
    let mut text = lab::lab_config_text(lab, data)
        .replace(
            "scan_interval_secs = 10",
            "scan_interval_secs = 2\nlease_secs = 2\nresend_after_secs = 8",
        )
        .replace("max_per_day = 12", "max_per_day = 500");
    if let Some(url) = database_url {
        text = text.replace("[server]", &format!("[server]\ndatabase_url = {url:?}"));
    }
    text
}

/// Activates the lab campaign and enqueues `n` sends due now, round-robin over its seeds.
async fn prepare(config: &str, n: usize) -> Vec<String> {
    let config = Config::from_toml(config, None, &[]).unwrap();
    let app = App::build(config, Arc::new(hearth::clock::SystemClock))
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
        CampaignStatus::Active,
        None,
        None,
        app.clock.now(),
    )
    .await
    .unwrap();
    let seeds = store::seeds::list(&pool).await.unwrap();
    let domain = hearth::domain::DomainName::parse("sender.test").unwrap();
    let mut ids = Vec::new();
    for i in 0..n {
        let message_id = hearth::sender::message::new_message_id(&domain);
        store::outbox::enqueue(
            &pool,
            &NewSend {
                campaign_id: c.id,
                seed_id: seeds[i % seeds.len()].id,
                kind: SendKind::Warmup,
                message_id: Some(message_id.clone()),
                subject: format!("exactly once {i}"),
                in_reply_to: None,
                plan_day: None,
                run_at: 0,
            },
            app.clock.now(),
        )
        .await
        .unwrap();
        ids.push(message_id);
    }
    app.store.close().await;
    ids
}

/// A `hearth serve` child, killed when dropped: a failing test leaves no node behind to send
/// into the lab or hold its sessions while the next tests run.
struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

impl std::ops::Deref for Node {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Node {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

fn spawn_serve(dir: &Path, node: &str) -> (Node, std::sync::mpsc::Receiver<String>) {
    let mut child = Command::new(BIN)
        .args(["--config", "h.toml", "serve"])
        .current_dir(dir)
        .env_remove("HEARTH_CONFIG")
        .env("RUST_LOG", "hearth=info")
        .env("HEARTH_SERVER__NODE_ID", node)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hearth serve");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (Node(child), rx)
}

fn stop(mut child: Node) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "hearth did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until every row of `ids` is `sent`, reading the database the nodes write. (The nodes'
/// scheduler also plans the lab campaign's day: only our rows count.)
async fn wait_all_sent(
    config: &str,
    ids: &[String],
    within: Duration,
) -> Vec<store::outbox::OutboxRow> {
    let config = Config::from_toml(config, None, &[]).unwrap();
    let store = hearth::startup::open_store(&config).await.unwrap();
    let deadline = Instant::now() + within;
    loop {
        let c = store::campaigns::get_by_name(store.pool(), "lab-warmup")
            .await
            .unwrap()
            .unwrap();
        let rows: Vec<_> = store::outbox::list_for_campaign(store.pool(), c.id)
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.message_id.as_ref().is_some_and(|m| ids.contains(m)))
            .collect();
        let pending: Vec<_> = rows
            .iter()
            .filter(|r| r.status != OutboxStatus::Sent)
            .map(|r| (r.status, r.last_error.clone()))
            .collect();
        if pending.is_empty() && rows.len() == ids.len() {
            store.close().await;
            return rows;
        }
        assert!(
            Instant::now() < deadline,
            "not all sent in time: {pending:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn assert_each_delivered_once(lab: &Path, config: &str, ids: &[String]) {
    let config = Config::from_toml(config, None, &[]).unwrap();
    let store = hearth::startup::open_store(&config).await.unwrap();
    for id in ids {
        let row = store::outbox::get_by_message_id(store.pool(), id)
            .await
            .unwrap()
            .unwrap();
        let seed = store::seeds::get(store.pool(), row.seed_id)
            .await
            .unwrap()
            .unwrap();
        let user = seed.record.address.to_string();
        // Delivery through two MTAs is asynchronous: wait (bounded) for the copy to arrive.
        let mut copies = 0;
        for _ in 0..50 {
            copies = lab::copies_in_mailbox(lab, &user, id).await;
            if copies > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(copies, 1, "{id} to {user}: {copies} copies");
    }
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_batch_then_restart_delivers_each_message_once() {
    let Some(lab) = lab::lab_dir("exactly-once lab tests", &[5587, 1993]) else {
        return;
    };
    hearth::tls::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let config = config_text(&lab, &dir.path().join("data"), None);
    std::fs::write(dir.path().join("h.toml"), &config).unwrap();
    let n = 40;
    let ids = prepare(&config, n).await;

    // First node: killed as soon as it reports its first sent message.
    let (mut child, lines) = spawn_serve(dir.path(), "first");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let line = lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("no message sent within 60 s");
        if line.contains(" sent") && line.contains("message_id") {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();

    // Second life: everything ends up sent, interrupted rows reconciled before any resend.
    let (child, _lines) = spawn_serve(dir.path(), "second");
    let rows = wait_all_sent(&config, &ids, Duration::from_secs(90)).await;
    stop(child);
    let by_first = rows
        .iter()
        .filter(|r| r.lease_owner.as_deref() == Some("first"))
        .count();
    eprintln!("exactly-once: {by_first} of {n} rows were claimed by the killed node");
    assert_each_delivered_once(&lab, &config, &ids).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_postgres_never_send_twice() {
    let Some(lab) = lab::lab_dir("exactly-once lab tests", &[5587, 1993]) else {
        return;
    };
    let Some(admin) = pg::admin_url() else { return };
    hearth::tls::install_crypto_provider();
    let db = pg::TestDb::create(&admin).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_text(&lab, &dir.path().join("data"), Some(&db.url));
    std::fs::write(dir.path().join("h.toml"), &config).unwrap();
    let n = 60;
    let ids = prepare(&config, n).await;
    let (a, _la) = spawn_serve(dir.path(), "node-a");
    let (b, _lb) = spawn_serve(dir.path(), "node-b");
    let rows = wait_all_sent(&config, &ids, Duration::from_secs(90)).await;
    stop(a);
    stop(b);
    let by_a = rows
        .iter()
        .filter(|r| r.lease_owner.as_deref() == Some("node-a"))
        .count();
    eprintln!("two nodes: node-a sent {by_a}, node-b sent {}", n - by_a);
    // (The nodes' scheduler also plans the lab campaign's day: only our rows are checked.)
    let twice: Vec<_> = rows
        .iter()
        .filter(|r| r.message_id.as_ref().is_some_and(|m| ids.contains(m)) && r.attempts != 1)
        .map(|r| (r.id, r.attempts, r.last_error.clone(), r.smtp_reply.clone()))
        .collect();
    assert!(twice.is_empty(), "rows claimed more than once: {twice:?}");
    assert_each_delivered_once(&lab, &config, &ids).await;
    db.drop_db().await;
}
