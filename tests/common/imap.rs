//! IMAP helpers for the lab tests: log into a lab mailbox, find every copy of a message with
//! its folder and flags, read its header, put mail into a folder with a chosen arrival date.
#![allow(dead_code)] // each test binary uses some of these

use std::path::Path;
use std::time::Duration;

use futures::TryStreamExt as _;
use hearth::engagement::imap::{self, Session};

/// A session as `user` (password `lab-pass-1`) over IMAPS :1993, verified against the lab CA.
pub async fn session(lab: &Path, user: &str) -> Session {
    let endpoint = hearth::domain::Endpoint {
        host: "127.0.0.1".into(),
        port: 1993,
        tls: hearth::domain::TlsMode::Implicit,
        ca_file: Some(lab.join("tls/ca.pem")),
        username: user.into(),
        secret: hearth::secrets::SecretRef::None,
    };
    let pw = secrecy::SecretString::from("lab-pass-1".to_owned());
    imap::connect(&endpoint, &pw, Duration::from_secs(10))
        .await
        .expect("IMAP login to the lab")
}

/// The selectable folders of the mailbox.
pub async fn folders(s: &mut Session) -> Vec<String> {
    let names: Vec<_> = s
        .list(Some(""), Some("*"))
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    names
        .iter()
        .map(hearth::engagement::folders::from_imap)
        .filter(|f| f.selectable)
        .map(|f| f.name)
        .collect()
}

/// `(folder, flags)` of every copy of the message in the mailbox.
pub async fn where_is(lab: &Path, user: &str, message_id: &str) -> Vec<(String, Vec<String>)> {
    let mut s = session(lab, user).await;
    let bare = message_id.trim_matches(['<', '>']);
    let mut out = Vec::new();
    for f in folders(&mut s).await {
        s.select(&f).await.unwrap();
        let uids: Vec<String> = s
            .uid_search(format!("HEADER Message-ID \"{bare}\""))
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.to_string())
            .collect();
        if uids.is_empty() {
            continue;
        }
        let fetches: Vec<_> = s
            .uid_fetch(uids.join(","), "FLAGS")
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        for x in &fetches {
            out.push((f.clone(), x.flags().map(|fl| format!("{fl:?}")).collect()));
        }
    }
    let _ = s.logout().await;
    out
}

/// The whole message (its first copy), or `None` when the mailbox has none.
pub async fn fetch_message(lab: &Path, user: &str, message_id: &str) -> Option<Vec<u8>> {
    let mut s = session(lab, user).await;
    let bare = message_id.trim_matches(['<', '>']);
    let mut found = None;
    for f in folders(&mut s).await {
        s.select(&f).await.unwrap();
        let uids = s
            .uid_search(format!("HEADER Message-ID \"{bare}\""))
            .await
            .unwrap();
        if let Some(uid) = uids.into_iter().next() {
            let fetches: Vec<_> = s
                .uid_fetch(uid.to_string(), "BODY.PEEK[]")
                .await
                .unwrap()
                .try_collect()
                .await
                .unwrap();
            found = fetches.first().and_then(|x| x.body()).map(<[u8]>::to_vec);
            break;
        }
    }
    let _ = s.logout().await;
    found
}

/// Appends `raw` to `folder` with the given INTERNALDATE (`"01-Jan-2026 10:00:00 +0000"`).
pub async fn append(lab: &Path, user: &str, folder: &str, date: &str, raw: &str) {
    let mut s = session(lab, user).await;
    let _ = s.create(folder).await; // may exist
    s.append(
        folder,
        None,
        Some(&format!("\"{date}\"")),
        raw.replace('\n', "\r\n"),
    )
    .await
    .unwrap();
    let _ = s.logout().await;
}

/// Moves every copy of the message in `user`'s mailbox to `to` (as a provider's filter
/// would). Returns how many it moved.
pub async fn move_message(lab: &Path, user: &str, message_id: &str, to: &str) -> usize {
    let mut s = session(lab, user).await;
    let bare = message_id.trim_matches(['<', '>']);
    let mut n = 0;
    for f in folders(&mut s).await {
        if f == to {
            continue;
        }
        s.select(&f).await.unwrap();
        let uids: Vec<String> = s
            .uid_search(format!("HEADER Message-ID \"{bare}\""))
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.to_string())
            .collect();
        if !uids.is_empty() {
            s.uid_mv(uids.join(","), to).await.unwrap();
            n += uids.len();
        }
    }
    let _ = s.logout().await;
    n
}

/// Deletes every copy of the message from `user`'s mailbox (\Deleted + UID EXPUNGE).
pub async fn delete_message(lab: &Path, user: &str, message_id: &str) -> usize {
    let mut s = session(lab, user).await;
    let bare = message_id.trim_matches(['<', '>']);
    let mut n = 0;
    for f in folders(&mut s).await {
        s.select(&f).await.unwrap();
        let uids: Vec<String> = s
            .uid_search(format!("HEADER Message-ID \"{bare}\""))
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.to_string())
            .collect();
        if uids.is_empty() {
            continue;
        }
        let set = uids.join(",");
        let _: Vec<_> = s
            .uid_store(&set, "+FLAGS.SILENT (\\Deleted)")
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        let _: Vec<_> = s
            .uid_expunge(&set)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        n += uids.len();
    }
    let _ = s.logout().await;
    n
}
