//! The `hearth` binary as users run it: config check, serve on SQLite and PostgreSQL,
//! seed import, campaign state changes, and bad input that changes nothing.

#[path = "common/lab.rs"]
mod lab;
#[path = "common/pg.rs"]
#[allow(dead_code)]
mod pg;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_hearth");

fn hearth(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("HEARTH_CONFIG")
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

const MINIMAL: &str = r#"
[server]
bind = "127.0.0.1:0"

# Tests never query any DNS server but the lab's.
[dns]
nameservers = ["127.0.0.1:5353"]

[preflight]
ip_blocklists = ["bl.lab.test"]
domain_blocklists = ["dbl.lab.test"]

[[senders]]
name = "main"
address = "hello@sender.test"
helo = "mta1.sender.test"
smtp = { host = "127.0.0.1", port = 1, password = "pw" }

[[seeds]]
address = "seed1@gmail.test"
imap = { host = "127.0.0.1", port = 1, password = "pw" }

[[campaigns]]
name = "warm"
sender = "main"
plan = { start_per_day = 1, window = { days = ["mon","tue","wed","thu","fri","sat","sun"], start = "00:00", end = "23:59" } }
"#;

#[test]
fn version_and_help() {
    let dir = tempfile::tempdir().unwrap();
    let o = hearth(dir.path(), &["--version"]);
    assert!(o.status.success());
    assert!(text(&o).contains(env!("CARGO_PKG_VERSION")));
    let o = hearth(dir.path(), &["campaign", "--help"]);
    assert!(text(&o).contains("start"), "{}", text(&o));
    let o = hearth(dir.path(), &["no-such-command"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn config_check_accepts_the_example_and_rejects_bad_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let o = hearth(root, &["config", "check", "config/hearth.toml"]);
    assert!(o.status.success(), "{}", text(&o));

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        MINIMAL
            .replace("helo = \"mta1.sender.test\"", "helo = \"localhost\"")
            .replace("[server]", "[server]\nbnid = 1"),
    )
    .unwrap();
    let o = hearth(dir.path(), &["config", "check", "bad.toml"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let out = text(&o);
    assert!(
        out.contains("bad.toml") && out.contains("unknown field `bnid`"),
        "{out}"
    );

    std::fs::write(
        &bad,
        MINIMAL.replace("helo = \"mta1.sender.test\"", "helo = \"localhost\""),
    )
    .unwrap();
    let o = hearth(dir.path(), &["config", "check", "bad.toml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("bad.toml: senders[0].helo: \"localhost\" is 'localhost'"),
        "{}",
        text(&o)
    );
    assert!(
        !dir.path().join("data").exists(),
        "config check must not touch the database"
    );

    let o = hearth(dir.path(), &["config", "check", "missing.toml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o).contains("missing.toml: cannot read"),
        "{}",
        text(&o)
    );
}

/// A running `hearth serve`, stopped with SIGTERM on drop.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(dir: &Path, config: &str, env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(BIN);
        cmd.args(["--config", config, "serve"])
            .current_dir(dir)
            .env_remove("HEARTH_CONFIG")
            .env("RUST_LOG", "info")
            .env("HEARTH_LOG__FORMAT", "text")
            .env("HEARTH_SERVER__BIND", "127.0.0.1:0")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn hearth serve");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent && line.contains("HTTP listening") {
                    let addr = line
                        .split("local=")
                        .nth(1)
                        .and_then(|s| s.split_whitespace().next())
                        .unwrap_or_default()
                        .to_owned();
                    let _ = tx.send(Ok(addr));
                    sent = true;
                } else if !sent {
                    let _ = tx.send(Err(line));
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut log = Vec::new();
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(Ok(addr)) => return Server { child, addr },
                Ok(Err(line)) => log.push(line),
                Err(_) => {
                    let _ = child.kill();
                    panic!("hearth serve did not start:\n{}", log.join("\n"));
                }
            }
        }
    }

    fn get(&self, path: &str) -> (u16, String) {
        let mut s = TcpStream::connect(&self.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        let code = resp
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = resp.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
        (code, body)
    }

    fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "hearth did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn serve_on_sqlite_with_the_example_config() {
    let dir = tempfile::tempdir().unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/hearth.toml");
    let server = Server::start(dir.path(), example.to_str().unwrap(), &[]);
    let (code, body) = server.get("/healthz");
    assert_eq!(code, 200, "{body}");
    let (code, body) = server.get("/readyz");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"backend\":\"sqlite\""), "{body}");
    assert!(
        dir.path().join("data/hearth.db").exists(),
        "SQLite file created under data_dir"
    );
    let status = server.stop();
    assert!(status.success(), "graceful stop: {status}");
}

#[test]
fn serve_with_unreachable_mail_servers_still_starts_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("h.toml"), MINIMAL).unwrap();
    let server = Server::start(dir.path(), "h.toml", &[]);
    let (code, _) = server.get("/healthz");
    assert_eq!(code, 200);
    // The first probe runs at start; /readyz names each unreachable server and the reason.
    let mut body = String::new();
    for _ in 0..100 {
        body = server.get("/readyz").1;
        if body.contains("seed seed1@gmail.test imap") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(body.contains("\"status\":\"degraded\""), "{body}");
    assert!(
        body.contains("sender main smtp") && body.contains("127.0.0.1:1 unreachable"),
        "{body}"
    );
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_on_postgres() {
    let Some(admin) = pg::admin_url() else { return };
    let db = pg::TestDb::create(&admin).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("h.toml"), MINIMAL).unwrap();
    let url = db.url.clone();
    let path = dir.path().to_owned();
    let body = tokio::task::spawn_blocking(move || {
        let server = Server::start(&path, "h.toml", &[("HEARTH_SERVER__DATABASE_URL", &url)]);
        let (code, body) = server.get("/readyz");
        assert_eq!(code, 200, "{body}");
        assert!(server.stop().success());
        body
    })
    .await
    .unwrap();
    assert!(body.contains("\"backend\":\"postgres\""), "{body}");
    db.drop_db().await;
}

#[test]
fn unreachable_database_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("h.toml"), MINIMAL).unwrap();
    let o = Command::new(BIN)
        .args(["--config", "h.toml", "campaign", "list"])
        .current_dir(dir.path())
        .env(
            "HEARTH_SERVER__DATABASE_URL",
            "postgres://hearth:s3cret@127.0.0.1:9/hearth",
        )
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = text(&o);
    assert!(
        out.contains("cannot open the database postgres://hearth:***@127.0.0.1:9/hearth"),
        "{out}"
    );
    assert!(!out.contains("s3cret"), "password leaked: {out}");
}

#[test]
fn seeds_import_is_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("h.toml"), MINIMAL).unwrap();
    std::fs::write(
        dir.path().join("bad.csv"),
        "address,provider,imap_host,imap_port,imap_password\n\
         a@gmail.test,gmail,127.0.0.1,1143,pw\n\
         broken-address,gmail,127.0.0.1,1143,pw\n\
         c@yahoo.test,yahoo,127.0.0.1,99999,pw\n",
    )
    .unwrap();
    let o = hearth(
        dir.path(),
        &["--config", "h.toml", "seeds", "import", "bad.csv"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("bad.csv: line 3: address"), "{out}");
    assert!(out.contains("bad.csv: line 4: imap_port"), "{out}");
    let o = hearth(
        dir.path(),
        &["--config", "h.toml", "seeds", "list", "--json"],
    );
    let list = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        !list.contains("a@gmail.test"),
        "nothing imported from a bad file: {list}"
    );

    std::fs::write(
        dir.path().join("good.csv"),
        "address,provider,imap_host,imap_port,imap_tls,imap_password\n\
         a@gmail.test,gmail,127.0.0.1,1993,implicit,secret-pw\n\
         b@outlook.test,outlook,imap.example.com,,,env:B_PASSWORD\n",
    )
    .unwrap();
    let o = Command::new(BIN)
        .args(["--config", "h.toml", "seeds", "import", "good.csv"])
        .current_dir(dir.path())
        .env("B_PASSWORD", "x")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("imported 2 seeds"));
    let o = hearth(
        dir.path(),
        &["--config", "h.toml", "seeds", "list", "--json"],
    );
    let list = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        list.contains("a@gmail.test") && list.contains("b@outlook.test"),
        "{list}"
    );
    assert!(
        list.contains("seed1@gmail.test"),
        "config seeds are listed too: {list}"
    );
    // The plain password is never stored as such.
    let db = std::fs::read(dir.path().join("data/hearth.db")).unwrap();
    let wal = std::fs::read(dir.path().join("data/hearth.db-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        assert!(
            !bytes.windows(9).any(|w| w == b"secret-pw"),
            "plain secret in the database"
        );
    }
}

/// config/lab.toml with its paths pointed at the running lab and `dir`, or None without a lab.
fn lab_config(dir: &Path) -> Option<String> {
    let lab = lab::lab_dir("cli lab tests", &[5353, 5587])?;
    Some(lab::lab_config_text(&lab, &dir.join("data")))
}

#[test]
fn campaign_lifecycle_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let Some(config) = lab_config(dir.path()) else {
        return;
    };
    std::fs::write(dir.path().join("h.toml"), config).unwrap();
    let run = |args: &[&str]| {
        let mut all = vec!["--config", "h.toml", "campaign"];
        all.extend_from_slice(args);
        hearth(dir.path(), &all)
    };
    let o = run(&["list"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("draft"), "{}", text(&o));
    let o = run(&["pause", "lab-warmup"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "pausing a draft is refused: {}",
        text(&o)
    );
    let o = run(&["start", "lab-warmup"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("sends planned for today"), "{}", text(&o));
    let o = run(&["start", "lab-warmup"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "starting twice is refused: {}",
        text(&o)
    );
    let o = run(&["pause", "lab-warmup"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = run(&["list", "--json"]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        out.contains("\"status\": \"paused\"") && out.contains("\"pause_reason\": \"manual\""),
        "{out}"
    );
    let o = run(&["resume", "lab-warmup"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = run(&["start", "nope"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("no campaign named \"nope\""));
}

#[test]
fn preflight_and_spf_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let Some(config) = lab_config(dir.path()) else {
        return;
    };
    std::fs::write(dir.path().join("h.toml"), config).unwrap();
    let o = hearth(dir.path(), &["--config", "h.toml", "preflight", "lab"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("rdns.fcrdns"), "{}", text(&o));
    let o = hearth(
        dir.path(),
        &["--config", "h.toml", "preflight", "lab", "--json"],
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v["verdict"], "pass", "{v}");
    // Ad hoc, no config file: a broken identity exits 1 and says how to fix it.
    let o = hearth(
        dir.path(),
        &[
            "preflight",
            "--helo",
            "mta.noptr.pf.test",
            "--ip",
            "192.0.2.102",
            "--mail-from",
            "hello@noptr.pf.test",
            "--dns",
            "127.0.0.1:5353",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("rdns.ptr") && text(&o).contains("dig -x 192.0.2.102"),
        "{}",
        text(&o)
    );
    let o = hearth(
        dir.path(),
        &["preflight", "--helo", "x.test", "--ip", "not-an-ip"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    // spfquery-like output: the result word on the first line.
    let o = hearth(
        dir.path(),
        &[
            "spf",
            "--ip",
            "192.0.2.10",
            "--helo",
            "mta1.sender.test",
            "--mail-from",
            "hello@sender.test",
            "--dns",
            "127.0.0.1:5353",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).lines().next(),
        Some("pass")
    );
    let o = hearth(
        dir.path(),
        &[
            "spf",
            "--ip",
            "192.0.2.99",
            "--helo",
            "mta1.sender.test",
            "--mail-from",
            "hello@sender.test",
            "--dns",
            "127.0.0.1:5353",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).lines().next(),
        Some("fail"),
        "{}",
        text(&o)
    );
}

#[test]
fn log_format_json_from_the_command_line_or_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("h.toml");
    std::fs::write(&cfg, MINIMAL).unwrap();
    let lines = |o: &Output| -> Vec<String> {
        String::from_utf8_lossy(&o.stderr)
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .current_dir(dir.path())
            .env_remove("HEARTH_CONFIG")
            .env_remove("HEARTH_LOG_FORMAT")
            .env("RUST_LOG", "info")
            .output()
            .expect("run hearth")
    };
    // --log-format json: every log line is a JSON object with level, fields and target.
    let o = run(&[
        "--config",
        "h.toml",
        "--log-format",
        "json",
        "seeds",
        "list",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let logged = lines(&o);
    assert!(!logged.is_empty(), "nothing logged");
    for l in &logged {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{l}");
    }
    assert!(
        logged
            .iter()
            .any(|l| l.contains("config written to the store"))
    );
    // The config's log.format does the same; the flag wins over it.
    std::fs::write(&cfg, format!("{MINIMAL}\n[log]\nformat = \"json\"\n")).unwrap();
    let o = run(&["--config", "h.toml", "seeds", "list"]);
    assert!(lines(&o).iter().all(|l| l.starts_with('{')), "{}", text(&o));
    let o = run(&[
        "--config",
        "h.toml",
        "--log-format",
        "text",
        "seeds",
        "list",
    ]);
    assert!(
        lines(&o).iter().all(|l| !l.starts_with('{')) && !lines(&o).is_empty(),
        "{}",
        text(&o)
    );
    let o = run(&["--config", "h.toml", "--log-format", "xml", "seeds", "list"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("expected text or json"), "{}", text(&o));
}
