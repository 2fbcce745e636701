//! Gmail's IMAP extensions, used only where the server announces `X-GM-EXT-1` (Gmail and
//! Google Workspace). Other servers never receive an `X-GM-…` command.
//!
//! What Hearth does with them (Google's "IMAP Extensions" page for Gmail):
//! - **Labels**: the scan's `UID FETCH` asks for `X-GM-LABELS` too, and the ledger keeps the
//!   labels of each found message (`placements.gmail_labels`).
//! - **Tabs**: Gmail does not show its inbox tabs as labels over IMAP (no
//!   `CATEGORY_PROMOTIONS` in `X-GM-LABELS`), but its search language knows them: for the new
//!   UIDs found in the inbox, one `UID SEARCH UID <set> X-GM-RAW "category:<tab>"` per
//!   non-primary tab (promotions, social, updates, forums: four round trips per batch, none
//!   when the batch is empty). A message in none of them is in Primary. The tab decides the
//!   folder class ([`GmailTab::placement`]) and is kept in `placements.gmail_tab`.
//! - **Mark important**: `UID STORE <set> +X-GM-LABELS (\Important)`, at the plan's
//!   `important` rate. Adding a label twice is harmless, so a pass that stored the label but
//!   died before recording the event simply stores it again.
//! - **Rescue out of Promotions**: Gmail's IMAP has no way to change a message's tab. The
//!   category labels exist only in the Gmail REST API (`CATEGORY_PROMOTIONS`,
//!   `CATEGORY_PERSONAL`, changed with `users.messages.modify`); over IMAP they are neither
//!   listed in `X-GM-LABELS` nor documented as storable, and the message already carries
//!   `\Inbox`, so adding it changes nothing. Hearth sends no undocumented command to a real
//!   mailbox: its "rescue" of a Promotions message is the strongest documented signal a
//!   person can give over IMAP, `+X-GM-LABELS (\Important)`, recorded as the `rescue` event
//!   with that detail. The message stays in the Promotions tab; its placement stays
//!   `promotions` in the ledger (first sighting wins).
//!
//! Known limits: the tab is read once, at first sight (a later move by Gmail is not seen);
//! `X-GM-RAW` runs Gmail's web search, so a tab that the account has turned off matches
//! nothing and its mail counts as Primary, which is also what the account owner sees.
//!
//! No real Gmail is reachable from the lab: this protocol handling is tested against a
//! scripted IMAP server that answers in Gmail's documented formats (tests/gmail.rs), and the
//! lab's Dovecot proves that none of it is sent to a server without the extension.

use std::collections::HashMap;

use async_imap::types::Fetch;
use futures::TryStreamExt as _;

use super::imap::{Caps, ImapError, Session};
use crate::domain::GmailTab;

/// The capability that announces Gmail's extensions.
pub const CAPABILITY: &str = "X-GM-EXT-1";

/// Gmail's system label for "important" (with its backslash, as Gmail spells it).
pub const IMPORTANT: &str = "\\Important";

/// Whether the server speaks Gmail's extensions.
pub fn supported(caps: &Caps) -> bool {
    caps.has(CAPABILITY)
}

/// The `X-GM-LABELS` of a FETCH response, as Gmail spelled them (`\Inbox`, `Work`, …).
pub fn labels(f: &Fetch) -> Vec<String> {
    f.gmail_labels()
        .map(|l| l.iter().map(|s| s.to_string()).collect())
        .unwrap_or_default()
}

/// The tabs Hearth asks about, in the order it asks; anything else is Primary.
const TABS: [GmailTab; 4] = [
    GmailTab::Promotions,
    GmailTab::Social,
    GmailTab::Updates,
    GmailTab::Forums,
];

/// The tab of each of `uids` in the selected inbox (Primary when no category matches).
pub async fn tabs(
    session: &mut Session,
    uids: &[u32],
) -> Result<HashMap<u32, GmailTab>, ImapError> {
    let mut out: HashMap<u32, GmailTab> = uids.iter().map(|u| (*u, GmailTab::Primary)).collect();
    if uids.is_empty() {
        return Ok(out);
    }
    let set = uid_set(uids);
    for tab in TABS {
        let query = format!("UID {set} X-GM-RAW \"category:{}\"", tab.as_str());
        for uid in session.uid_search(&query).await? {
            // The first tab found wins (Gmail puts a message in one tab).
            if out.get(&uid) == Some(&GmailTab::Primary) {
                out.insert(uid, tab);
            }
        }
    }
    Ok(out)
}

/// Adds `label` to the messages `uids` (a UID set) of the selected folder.
pub async fn add_label(session: &mut Session, uids: &str, label: &str) -> Result<(), ImapError> {
    let _: Vec<_> = session
        .uid_store(uids, format!("+X-GM-LABELS ({label})"))
        .await?
        .try_collect()
        .await?;
    Ok(())
}

fn uid_set(uids: &[u32]) -> String {
    uids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}
