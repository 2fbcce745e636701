//! A scripted IMAP server on 127.0.0.1 that answers like Gmail's IMAP, for testing Hearth's
//! handling of Gmail's extensions (X-GM-EXT-1, X-GM-LABELS, X-GM-RAW). No real Gmail is
//! reachable from the lab and Dovecot has no such extensions, so this is a double of that one
//! protocol, not a mail server: it keeps a few messages in memory, answers the commands
//! Hearth sends in the formats of Google's "IMAP Extensions" page (the capability list, the
//! `[Gmail]/…` LIST with SPECIAL-USE, `* n FETCH (X-GM-LABELS (…) UID n)` after a label STORE,
//! `OK Success`), and records every command it receives. Anything it does not know gets a
//! `BAD`, so a surprise command fails the test instead of passing silently.
#![allow(dead_code)] // each test binary uses some of these

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpListener;

/// One message in a folder.
#[derive(Debug, Clone)]
pub struct Message {
    pub uid: u32,
    /// The header block, lines ending in CRLF, ending with an empty line.
    pub header: String,
    pub body: String,
    pub labels: Vec<String>,
    pub flags: Vec<String>,
    /// The Gmail tab ("primary", "promotions", …) `X-GM-RAW "category:…"` matches.
    pub tab: &'static str,
}

#[derive(Debug, Clone)]
struct Folder {
    name: String,
    attrs: &'static str,
    uidvalidity: u32,
    uidnext: u32,
    messages: Vec<Message>,
}

#[derive(Debug, Default)]
struct State {
    folders: Vec<Folder>,
    commands: Vec<String>,
}

/// The running server: its address, what it was sent, and its folders.
#[derive(Clone)]
pub struct GmailServer {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl GmailServer {
    /// Starts the server with Gmail's folders (INBOX, `[Gmail]/…`), all empty.
    pub async fn start() -> GmailServer {
        let folders = [
            ("INBOX", "\\HasNoChildren"),
            ("[Gmail]", "\\Noselect \\HasChildren"),
            ("[Gmail]/All Mail", "\\HasNoChildren \\All"),
            ("[Gmail]/Drafts", "\\HasNoChildren \\Drafts"),
            ("[Gmail]/Important", "\\HasNoChildren \\Important"),
            ("[Gmail]/Sent Mail", "\\HasNoChildren \\Sent"),
            ("[Gmail]/Spam", "\\HasNoChildren \\Junk"),
            ("[Gmail]/Starred", "\\HasNoChildren \\Flagged"),
            ("[Gmail]/Trash", "\\HasNoChildren \\Trash"),
        ]
        .into_iter()
        .enumerate()
        .map(|(i, (name, attrs))| Folder {
            name: name.into(),
            attrs,
            uidvalidity: 600 + i as u32,
            uidnext: 1,
            messages: Vec::new(),
        })
        .collect();
        let state = Arc::new(Mutex::new(State {
            folders,
            commands: Vec::new(),
        }));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let s = state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let s = s.clone();
                tokio::spawn(async move { serve(stream, s).await });
            }
        });
        GmailServer { addr, state }
    }

    /// Delivers a message into `folder`; returns its UID.
    pub fn deliver(&self, folder: &str, header: &str, labels: &[&str], tab: &'static str) -> u32 {
        let mut st = self.state.lock().unwrap();
        let f = st.folders.iter_mut().find(|f| f.name == folder).unwrap();
        let uid = f.uidnext;
        f.uidnext += 1;
        f.messages.push(Message {
            uid,
            header: format!("{}\r\n", header.replace('\n', "\r\n")),
            body: "Hello.\r\n".into(),
            labels: labels.iter().map(|l| (*l).to_owned()).collect(),
            flags: Vec::new(),
            tab,
        });
        uid
    }

    /// Every command received so far (without its tag), in order.
    pub fn commands(&self) -> Vec<String> {
        self.state.lock().unwrap().commands.clone()
    }

    /// (folder, UIDs) of every folder, for failure messages.
    pub fn dump(&self) -> Vec<(String, Vec<u32>)> {
        let st = self.state.lock().unwrap();
        st.folders
            .iter()
            .map(|f| (f.name.clone(), f.messages.iter().map(|m| m.uid).collect()))
            .collect()
    }

    /// The message whose header holds `needle`: (folder, message).
    pub fn find(&self, needle: &str) -> Option<(String, Message)> {
        let st = self.state.lock().unwrap();
        st.folders.iter().find_map(|f| {
            f.messages
                .iter()
                .find(|m| m.header.contains(needle))
                .map(|m| (f.name.clone(), m.clone()))
        })
    }
}

async fn serve(stream: tokio::net::TcpStream, state: Arc<Mutex<State>>) {
    let (r, mut w) = stream.into_split();
    let mut lines = BufReader::new(r).lines();
    let _ = w
        .write_all(b"* OK Gimap ready for requests from 127.0.0.1 k2if6111336rvb.0\r\n")
        .await;
    let mut selected: Option<String> = None;
    while let Ok(Some(line)) = lines.next_line().await {
        let Some((tag, command)) = line.split_once(' ') else {
            continue;
        };
        let (out, bye) = {
            let mut st = state.lock().unwrap();
            st.commands.push(command.to_owned());
            answer(&mut st, &mut selected, tag, command)
        };
        if w.write_all(&out).await.is_err() || bye {
            break;
        }
    }
}

fn ok(tag: &str, text: &str) -> Vec<u8> {
    format!("{tag} OK {text}\r\n").into_bytes()
}

/// The answer to one command, and whether the connection ends after it.
fn answer(
    st: &mut State,
    selected: &mut Option<String>,
    tag: &str,
    command: &str,
) -> (Vec<u8>, bool) {
    let upper = command.to_ascii_uppercase();
    let verb = upper.split(' ').next().unwrap_or("");
    let mut out = Vec::new();
    match verb {
        "CAPABILITY" => {
            out.extend(b"* CAPABILITY IMAP4rev1 UNSELECT IDLE NAMESPACE QUOTA ID XLIST CHILDREN X-GM-EXT-1 UIDPLUS COMPRESS=DEFLATE ENABLE MOVE CONDSTORE ESEARCH UTF8=ACCEPT LIST-EXTENDED LIST-STATUS LITERAL- SPECIAL-USE APPENDLIMIT=35651584\r\n");
            out.extend(ok(tag, "Thats all she wrote! k2if6111336rvb.0"));
        }
        "LOGIN" => out.extend(ok(tag, "seed@gmail.test authenticated (Success)")),
        "NOOP" => out.extend(ok(tag, "Success")),
        "ID" => {
            out.extend(b"* ID (\"name\" \"GImap\" \"vendor\" \"Google, Inc.\" \"support-url\" \"http://mail.google.com/support\")\r\n");
            out.extend(ok(tag, "Success"));
        }
        "LOGOUT" => {
            out.extend(b"* BYE LOGOUT Requested\r\n");
            out.extend(ok(tag, "73 good day (Success)"));
            return (out, true);
        }
        "LIST" => {
            for f in &st.folders {
                out.extend(format!("* LIST ({}) \"/\" \"{}\"\r\n", f.attrs, f.name).into_bytes());
            }
            out.extend(ok(tag, "Success"));
        }
        "CREATE" => {
            let name = unquote(command["CREATE ".len()..].trim());
            if !st.folders.iter().any(|f| f.name == name) {
                st.folders.push(Folder {
                    name,
                    attrs: "\\HasNoChildren",
                    uidvalidity: 900 + st.folders.len() as u32,
                    uidnext: 1,
                    messages: Vec::new(),
                });
            }
            out.extend(ok(tag, "Success"));
        }
        "SELECT" | "EXAMINE" => {
            let name = unquote(command[verb.len() + 1..].trim());
            match st
                .folders
                .iter()
                .find(|f| f.name == name && !f.attrs.contains("Noselect"))
            {
                None => {
                    *selected = None;
                    out.extend(
                        format!("{tag} NO [NONEXISTENT] Unknown Mailbox: {name} (Failure)\r\n")
                            .into_bytes(),
                    );
                }
                Some(f) => {
                    out.extend(b"* FLAGS (\\Answered \\Flagged \\Draft \\Deleted \\Seen $NotPhishing $Phishing)\r\n");
                    out.extend(b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Draft \\Deleted \\Seen $NotPhishing $Phishing \\*)] Flags permitted.\r\n");
                    out.extend(
                        format!("* OK [UIDVALIDITY {}] UIDs valid.\r\n", f.uidvalidity)
                            .into_bytes(),
                    );
                    out.extend(
                        format!("* {} EXISTS\r\n* 0 RECENT\r\n", f.messages.len()).into_bytes(),
                    );
                    out.extend(
                        format!("* OK [UIDNEXT {}] Predicted next UID.\r\n", f.uidnext)
                            .into_bytes(),
                    );
                    out.extend(
                        format!("{tag} OK [READ-WRITE] {name} selected. (Success)\r\n")
                            .into_bytes(),
                    );
                    *selected = Some(name);
                }
            }
        }
        "UID" => {
            let Some(folder) = selected.clone() else {
                out.extend(
                    format!("{tag} BAD Command received in Invalid state.\r\n").into_bytes(),
                );
                return (out, false);
            };
            let rest = &command[4..];
            let (sub, args) = rest.split_once(' ').unwrap_or((rest, ""));
            match sub.to_ascii_uppercase().as_str() {
                "SEARCH" => {
                    let f = st.folders.iter().find(|f| f.name == folder).unwrap();
                    let hits: Vec<String> = f
                        .messages
                        .iter()
                        .filter(|m| matches_search(m, args, f.uidnext))
                        .map(|m| m.uid.to_string())
                        .collect();
                    let list = if hits.is_empty() {
                        String::new()
                    } else {
                        format!(" {}", hits.join(" "))
                    };
                    out.extend(format!("* SEARCH{list}\r\n").into_bytes());
                    out.extend(ok(tag, "SEARCH completed (Success)"));
                }
                "FETCH" => {
                    let (set, items) = args.split_once(' ').unwrap();
                    let f = st.folders.iter().find(|f| f.name == folder).unwrap();
                    for (i, m) in f.messages.iter().enumerate() {
                        if in_set(m.uid, set, f.uidnext) {
                            out.extend(fetch_line(i + 1, m, items));
                        }
                    }
                    out.extend(ok(tag, "Success"));
                }
                "STORE" => {
                    let mut parts = args.splitn(3, ' ');
                    let (set, op, list) = (
                        parts.next().unwrap(),
                        parts.next().unwrap(),
                        parts.next().unwrap_or(""),
                    );
                    let values: Vec<String> = list
                        .trim_matches(['(', ')'])
                        .split(' ')
                        .filter(|v| !v.is_empty())
                        .map(str::to_owned)
                        .collect();
                    let op_upper = op.to_ascii_uppercase();
                    let f = st.folders.iter_mut().find(|f| f.name == folder).unwrap();
                    let uidnext = f.uidnext;
                    for (i, m) in f.messages.iter_mut().enumerate() {
                        if !in_set(m.uid, set, uidnext) {
                            continue;
                        }
                        let target = if op_upper.contains("X-GM-LABELS") {
                            &mut m.labels
                        } else {
                            &mut m.flags
                        };
                        for v in &values {
                            if op.starts_with('+') && !target.contains(v) {
                                target.push(v.clone());
                            } else if op.starts_with('-') {
                                target.retain(|x| x != v);
                            }
                        }
                        if op_upper == "+X-GM-LABELS" || op_upper == "-X-GM-LABELS" {
                            out.extend(
                                format!(
                                    "* {} FETCH (X-GM-LABELS ({}) UID {})\r\n",
                                    i + 1,
                                    m.labels.join(" "),
                                    m.uid
                                )
                                .into_bytes(),
                            );
                        } else if !op_upper.ends_with(".SILENT") {
                            out.extend(
                                format!(
                                    "* {} FETCH (FLAGS ({}) UID {})\r\n",
                                    i + 1,
                                    m.flags.join(" "),
                                    m.uid
                                )
                                .into_bytes(),
                            );
                        }
                    }
                    out.extend(ok(tag, "Success"));
                }
                "MOVE" => {
                    let (set, to) = args.split_once(' ').unwrap();
                    let to = unquote(to.trim());
                    let from = st.folders.iter().position(|f| f.name == folder).unwrap();
                    let uidnext = st.folders[from].uidnext;
                    let mut moved = Vec::new();
                    let mut seq = 1;
                    let mut expunged = Vec::new();
                    st.folders[from].messages.retain(|m| {
                        let go = in_set(m.uid, set, uidnext);
                        if go {
                            moved.push(m.clone());
                            expunged.push(seq);
                        } else {
                            seq += 1;
                        }
                        !go
                    });
                    let Some(dest) = st.folders.iter_mut().find(|f| f.name == to) else {
                        out.extend(
                            format!("{tag} NO [TRYCREATE] No folder {to} (Failure)\r\n")
                                .into_bytes(),
                        );
                        return (out, false);
                    };
                    for mut m in moved {
                        m.uid = dest.uidnext;
                        dest.uidnext += 1;
                        dest.messages.push(m);
                    }
                    for n in expunged {
                        out.extend(format!("* {n} EXPUNGE\r\n").into_bytes());
                    }
                    out.extend(ok(tag, "Success"));
                }
                _ => out.extend(format!("{tag} BAD Unknown command\r\n").into_bytes()),
            }
        }
        _ => out.extend(format!("{tag} BAD Unknown command\r\n").into_bytes()),
    }
    (out, false)
}

fn unquote(s: &str) -> String {
    s.trim_matches('"').to_owned()
}

/// Whether `uid` is in the IMAP sequence set `set` (`1,3:5,7:*`).
fn in_set(uid: u32, set: &str, uidnext: u32) -> bool {
    set.split(',').any(|part| {
        let bound = |s: &str| {
            if s == "*" {
                uidnext.saturating_sub(1).max(1)
            } else {
                s.parse().unwrap()
            }
        };
        match part.split_once(':') {
            Some((a, b)) => {
                let (a, b) = (bound(a), bound(b));
                (a.min(b)..=a.max(b)).contains(&uid)
            }
            None => bound(part) == uid,
        }
    })
}

/// The search keys Hearth sends: `UID <set>`, `HEADER <name> "<text>"`, `X-GM-RAW "…"`, ALL.
fn matches_search(m: &Message, args: &str, uidnext: u32) -> bool {
    let mut tokens = tokenize(args).into_iter();
    let mut ok = true;
    while let Some(t) = tokens.next() {
        match t.to_ascii_uppercase().as_str() {
            "ALL" => {}
            "UID" => ok &= in_set(m.uid, &tokens.next().unwrap(), uidnext),
            "HEADER" => {
                let name = tokens.next().unwrap().to_ascii_lowercase();
                let text = tokens.next().unwrap();
                ok &= m.header.lines().any(|l| {
                    l.to_ascii_lowercase().starts_with(&format!("{name}:")) && l.contains(&text)
                });
            }
            "X-GM-RAW" => {
                let raw = tokens.next().unwrap();
                let tab = raw
                    .strip_prefix("category:")
                    .expect("only category: searches");
                ok &= m.tab == tab;
            }
            other => panic!("the scripted Gmail server does not know the search key {other}"),
        }
    }
    ok
}

fn tokenize(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ' ' {
            continue;
        }
        let mut t = String::new();
        if c == '"' {
            for c in chars.by_ref() {
                if c == '"' {
                    break;
                }
                t.push(c);
            }
        } else {
            t.push(c);
            while let Some(&c) = chars.peek() {
                if c == ' ' {
                    break;
                }
                t.push(c);
                chars.next();
            }
        }
        out.push(t);
    }
    out
}

/// The fields of `header` named in `names` (upper case), folded lines and all, in the
/// header's order, then the empty line: `BODY[HEADER.FIELDS (…)]` (RFC 3501).
fn header_fields(header: &str, names: &[&str]) -> String {
    let mut out = String::new();
    let mut keep = false;
    for line in header.split_inclusive("\r\n") {
        if line == "\r\n" {
            break;
        }
        if !line.starts_with([' ', '\t']) {
            let name = line.split(':').next().unwrap_or("").to_ascii_uppercase();
            keep = names.contains(&name.as_str());
        }
        if keep {
            out.push_str(line);
        }
    }
    out.push_str("\r\n");
    out
}

/// `* n FETCH (…)` with the items asked for, in Gmail's order (labels first).
fn fetch_line(seq: usize, m: &Message, items: &str) -> Vec<u8> {
    let items = items.to_ascii_uppercase();
    let mut parts: Vec<Vec<u8>> = Vec::new();
    if items.contains("X-GM-LABELS") {
        parts.push(format!("X-GM-LABELS ({})", m.labels.join(" ")).into_bytes());
    }
    parts.push(format!("UID {}", m.uid).into_bytes());
    if items.contains("FLAGS") {
        parts.push(format!("FLAGS ({})", m.flags.join(" ")).into_bytes());
    }
    if items.contains("INTERNALDATE") {
        parts.push(b"INTERNALDATE \"29-Nov-2026 10:00:00 +0000\"".to_vec());
    }
    let literal = |name: &str, text: &str| -> Vec<u8> {
        format!("{name} {{{}}}\r\n{text}", text.len()).into_bytes()
    };
    if items.contains("BODY.PEEK[HEADER]") {
        parts.push(literal("BODY[HEADER]", &m.header));
    } else if let Some(fields) = items
        .split_once("BODY.PEEK[HEADER.FIELDS (")
        .and_then(|(_, rest)| rest.split_once(")]"))
        .map(|(fields, _)| fields)
    {
        let names: Vec<&str> = fields.split(' ').collect();
        parts.push(literal(
            &format!("BODY[HEADER.FIELDS ({fields})]"),
            &header_fields(&m.header, &names),
        ));
    } else if items.contains("BODY.PEEK[]") {
        parts.push(literal("BODY[]", &format!("{}{}", m.header, m.body)));
    }
    let mut out = format!("* {seq} FETCH (").into_bytes();
    out.extend(parts.join(&b' '));
    out.extend(b")\r\n");
    out
}
