//! Folder discovery: which mailbox is the inbox, which is spam, which are worth scanning.
//! SPECIAL-USE attributes (RFC 6154) first, then the provider's well-known names for servers
//! without them (Exchange Online's `Junk Email`, Yahoo's `Bulk`), then per-seed overrides.

use crate::config::FolderOverrides;
use crate::domain::{Placement, Provider};

/// The role a server announces for a folder (the part of LIST that matters here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecialUse {
    Junk,
    Sent,
    Drafts,
    Trash,
    All,
    Archive,
    Flagged,
}

/// One line of a LIST answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedFolder {
    pub name: String,
    pub special_use: Option<SpecialUse>,
    pub selectable: bool,
}

/// The folders of one seed inbox, by role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderMap {
    pub inbox: String,
    pub spam: Option<String>,
    /// Every folder to search for warm-up mail, with the placement a find there means.
    pub scan: Vec<(String, Placement)>,
    /// The folder warm-up mail is filed into (the seed's override, or
    /// [`super::act::DEFAULT_WARMUP_FOLDER`]), and whether the server listed it: engagement
    /// looks there only if it exists, and creates it when it first files a message.
    pub warmup: String,
    pub warmup_listed: bool,
}

/// Names that mean "spam" on servers that do not announce SPECIAL-USE, per provider first.
fn spam_names(provider: Provider) -> &'static [&'static str] {
    match provider {
        Provider::Gmail => &["[Gmail]/Spam", "[Google Mail]/Spam"],
        Provider::Outlook => &["Junk Email", "Junk E-mail", "Junk"],
        Provider::Yahoo => &["Bulk", "Bulk Mail", "Spam"],
        Provider::Other => &[
            "Junk",
            "Spam",
            "Junk Email",
            "Junk E-mail",
            "Bulk",
            "Bulk Mail",
            "INBOX.Junk",
            "INBOX.Spam",
            "Spamverdacht",
            "Courrier indésirable",
            "Correo no deseado",
        ],
    }
}

/// Names of folders that never hold newly delivered mail, for servers without SPECIAL-USE.
const NOT_DELIVERY: &[&str] = &[
    "Sent",
    "Sent Items",
    "Sent Mail",
    "Sent Messages",
    "Drafts",
    "Draft",
    "Trash",
    "Deleted Items",
    "Deleted Messages",
    "Outbox",
    "Archive",
    "Notes",
    "Conversation History",
    "Sync Issues",
    "Calendar",
    "Contacts",
    "Tasks",
    "Journal",
];

pub fn discover(
    listed: &[ListedFolder],
    provider: Provider,
    overrides: &FolderOverrides,
) -> FolderMap {
    let exists = |n: &str| listed.iter().any(|f| f.name == n && f.selectable);
    let inbox = overrides
        .inbox
        .clone()
        .filter(|n| exists(n))
        .unwrap_or_else(|| "INBOX".to_owned());
    let spam = overrides
        .spam
        .clone()
        .filter(|n| exists(n))
        .or_else(|| {
            listed
                .iter()
                .find(|f| f.special_use == Some(SpecialUse::Junk) && f.selectable)
                .map(|f| f.name.clone())
        })
        .or_else(|| {
            spam_names(provider)
                .iter()
                .chain(spam_names(Provider::Other))
                .find(|n| exists(n))
                .map(|n| (*n).to_owned())
        });
    // Mail filed there was found (and recorded) elsewhere first; delivery never lands there.
    let warmup = overrides
        .warmup
        .clone()
        .unwrap_or_else(|| super::act::DEFAULT_WARMUP_FOLDER.to_owned());
    let mut scan = vec![(inbox.clone(), Placement::Inbox)];
    if let Some(s) = &spam {
        scan.push((s.clone(), Placement::Spam));
    }
    for f in listed {
        let skip = !f.selectable
            || f.name.eq_ignore_ascii_case("INBOX")
            || f.name == inbox
            || Some(&f.name) == spam.as_ref()
            || f.name == warmup
            || f.special_use.is_some()
            || NOT_DELIVERY
                .iter()
                .any(|n| last_segment(&f.name).eq_ignore_ascii_case(n))
            || f.name.starts_with("[Gmail]/")
            || f.name.starts_with("[Google Mail]/");
        if !skip {
            scan.push((f.name.clone(), Placement::Other));
        }
    }
    FolderMap {
        inbox,
        spam,
        scan,
        warmup_listed: exists(&warmup),
        warmup,
    }
}

fn last_segment(name: &str) -> &str {
    name.rsplit(['/', '.']).next().unwrap_or(name)
}

/// Converts async-imap's LIST answer.
pub fn from_imap(name: &async_imap::types::Name) -> ListedFolder {
    use async_imap::types::NameAttribute as A;
    let mut special_use = None;
    let mut selectable = true;
    for a in name.attributes() {
        match a {
            A::Junk => special_use = Some(SpecialUse::Junk),
            A::Sent => special_use = Some(SpecialUse::Sent),
            A::Drafts => special_use = Some(SpecialUse::Drafts),
            A::Trash => special_use = Some(SpecialUse::Trash),
            A::All => special_use = Some(SpecialUse::All),
            A::Archive => special_use = Some(SpecialUse::Archive),
            A::Flagged => special_use = Some(SpecialUse::Flagged),
            A::NoSelect => selectable = false,
            A::Extension(e) if e.eq_ignore_ascii_case("\\NonExistent") => selectable = false,
            _ => {}
        }
    }
    ListedFolder {
        name: name.name().to_owned(),
        special_use,
        selectable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str, su: Option<SpecialUse>) -> ListedFolder {
        ListedFolder {
            name: name.into(),
            special_use: su,
            selectable: true,
        }
    }

    #[test]
    fn providers() {
        let gmail = [
            f("INBOX", None),
            f("[Gmail]/Spam", Some(SpecialUse::Junk)),
            f("[Gmail]/Sent Mail", Some(SpecialUse::Sent)),
            f("[Gmail]/All Mail", Some(SpecialUse::All)),
            f("Receipts", None),
        ];
        let outlook = [
            f("INBOX", None),
            f("Junk Email", None),
            f("Sent Items", None),
            f("Deleted Items", None),
            f("Archive", None),
        ];
        let yahoo = [
            f("INBOX", None),
            f("Bulk", Some(SpecialUse::Junk)),
            f("Sent", Some(SpecialUse::Sent)),
        ];
        let none = FolderOverrides::default();
        let g = discover(&gmail, Provider::Gmail, &none);
        assert_eq!(g.spam.as_deref(), Some("[Gmail]/Spam"));
        assert_eq!(
            g.scan,
            vec![
                ("INBOX".into(), Placement::Inbox),
                ("[Gmail]/Spam".into(), Placement::Spam),
                ("Receipts".into(), Placement::Other)
            ]
        );
        let o = discover(&outlook, Provider::Outlook, &none);
        assert_eq!(o.spam.as_deref(), Some("Junk Email"));
        assert_eq!(
            o.scan.len(),
            2,
            "Sent/Deleted/Archive are not scanned: {:?}",
            o.scan
        );
        let y = discover(&yahoo, Provider::Yahoo, &none);
        assert_eq!(y.spam.as_deref(), Some("Bulk"));
        assert_eq!((y.warmup.as_str(), y.warmup_listed), ("Warmup", false));
        let filed = [f("INBOX", None), f("Warmup", None), f("Hearth", None)];
        let w = discover(&filed, Provider::Other, &none);
        assert_eq!((w.warmup.as_str(), w.warmup_listed), ("Warmup", true));
        assert_eq!(
            w.scan.len(),
            2,
            "the warm-up folder is not scanned: {:?}",
            w.scan
        );
        let elsewhere = FolderOverrides {
            warmup: Some("Hearth".into()),
            ..Default::default()
        };
        let h = discover(&filed, Provider::Other, &elsewhere);
        assert_eq!((h.warmup.as_str(), h.warmup_listed), ("Hearth", true));
        assert!(
            h.scan.iter().any(|(name, _)| name == "Warmup"),
            "{:?}",
            h.scan
        );
        // An unknown provider still finds Yahoo's name; an override wins over everything.
        assert_eq!(
            discover(&outlook, Provider::Other, &none).spam.as_deref(),
            Some("Junk Email")
        );
        let ov = FolderOverrides {
            spam: Some("Archive".into()),
            ..Default::default()
        };
        assert_eq!(
            discover(&outlook, Provider::Outlook, &ov).spam.as_deref(),
            Some("Archive")
        );
    }
}
