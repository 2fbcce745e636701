//! The running lab (scripts/lab), for the integration tests that need real mail servers.
//!
//! Without the lab a test says so on stderr and passes, unless HEARTH_TEST_REQUIRE_LAB=1 (as
//! scripts/test sets), where a missing lab is a failure.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The lab directory when the lab answers on `ports` (127.0.0.1), else `None` (see above).
pub fn lab_dir(suite: &str, ports: &[u16]) -> Option<PathBuf> {
    let dir =
        PathBuf::from(std::env::var("HEARTH_LAB_DIR").unwrap_or_else(|_| "/tmp/hearth-lab".into()));
    let up = dir.join("tls/ca.pem").exists()
        && ports.iter().all(|p| {
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], *p));
            std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
        });
    if up {
        return Some(dir);
    }
    if std::env::var("HEARTH_TEST_REQUIRE_LAB").as_deref() == Ok("1") {
        panic!(
            "HEARTH_TEST_REQUIRE_LAB=1 but the lab is not running at {}: run scripts/lab up",
            dir.display()
        );
    }
    let _ = writeln!(
        std::io::stderr(),
        "{suite}: skipped (lab not running; scripts/lab up)"
    );
    None
}

/// config/lab.toml pointed at this lab, a data directory of the test's, and port 0.
pub fn lab_config_text(lab: &Path, data: &Path) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(root.join("config/lab.toml"))
        .expect("config/lab.toml")
        .replace("/tmp/hearth-lab", lab.to_str().expect("UTF-8 path"))
        .replace(
            "data_dir = \"data/lab\"",
            &format!("data_dir = {:?}", data.to_str().expect("UTF-8 path")),
        )
        .replace("bind = \"127.0.0.1:8080\"", "bind = \"127.0.0.1:0\"")
}

/// How many copies of `message_id` the mailbox `user` holds, across all its folders.
#[allow(dead_code)]
pub async fn copies_in_mailbox(lab: &Path, user: &str, message_id: &str) -> usize {
    use futures::TryStreamExt as _;
    let endpoint = hearth::domain::Endpoint {
        host: "127.0.0.1".into(),
        port: 1993,
        tls: hearth::domain::TlsMode::Implicit,
        ca_file: Some(lab.join("tls/ca.pem")),
        username: user.into(),
        secret: hearth::secrets::SecretRef::None,
    };
    let pw = secrecy::SecretString::from("lab-pass-1".to_owned());
    let mut s = hearth::engagement::imap::connect(&endpoint, &pw, Duration::from_secs(10))
        .await
        .expect("IMAP login to the lab");
    let names: Vec<_> = s
        .list(Some(""), Some("*"))
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let folders: Vec<String> = names
        .iter()
        .map(hearth::engagement::folders::from_imap)
        .filter(|f| f.selectable)
        .map(|f| f.name)
        .collect();
    let bare = message_id.trim_matches(['<', '>']);
    let mut n = 0;
    for f in folders {
        s.select(&f).await.unwrap();
        n += s
            .uid_search(format!("HEADER Message-ID \"{bare}\""))
            .await
            .unwrap()
            .len();
    }
    let _ = s.logout().await;
    n
}
