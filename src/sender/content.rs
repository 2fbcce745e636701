//! Human-looking warm-up content from a small built-in corpus, mixed with the user's templates
//! (`template.rs`) at a configured share. No links, images or tracking.

use rand::RngExt as _;
use rand::seq::IndexedRandom as _;

const SUBJECTS: &[&str] = &[
    "Quick question about {topic}",
    "Following up on {topic}",
    "Thoughts on {topic}?",
    "Notes from this week: {topic}",
    "Re-checking the {topic} plan",
    "{topic} — a small update",
    "Can we talk about {topic}?",
    "Idea for {topic}",
];

const TOPICS: &[&str] = &[
    "the quarterly review",
    "next week's offsite",
    "the onboarding checklist",
    "our reading list",
    "the garden project",
    "the team lunch",
    "the budget draft",
    "the new schedule",
    "the product roadmap",
    "Friday's workshop",
];

const OPENINGS: &[&str] = &[
    "Hi {name},",
    "Hello {name},",
    "Hey {name},",
    "Good morning {name},",
];

const PARAGRAPHS: &[&str] = &[
    "I went through the notes again and I think we are close. There are two open points left, and both look easy to settle once we have a few minutes together.",
    "Thanks again for the help last time. It made a real difference, and the rest of the group noticed it too.",
    "I have been thinking about the timeline. If we move the first step a little earlier, the rest falls into place without any rush at the end.",
    "Would Tuesday or Wednesday afternoon work for a short call? Half an hour should be plenty.",
    "I put together a short summary so we have everything in one place. Let me know if I missed something important.",
    "No rush on this one. Whenever you get a moment is fine, I just did not want it to slip through the cracks.",
    "The first draft is done. It is rough in places, but the structure is there and the main ideas hold up.",
    "One more thing: the room we used last time is free again next month, if we want it.",
];

const CLOSINGS: &[&str] = &["Best,", "Thanks,", "Cheers,", "Talk soon,", "Kind regards,"];

/// One generated message body.
#[derive(Debug, Clone)]
pub struct Content {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// A subject line alone (the body is written when the message is sent).
pub fn subject() -> String {
    let mut rng = rand::rng();
    let topic = TOPICS.choose(&mut rng).copied().unwrap_or("the plan");
    SUBJECTS
        .choose(&mut rng)
        .copied()
        .unwrap_or("{topic}")
        .replace("{topic}", topic)
}

/// Generates a subject and a plain-text body with a matching HTML alternative.
pub fn generate(recipient_name: &str, sender_name: &str) -> Content {
    let mut rng = rand::rng();
    let topic = TOPICS.choose(&mut rng).copied().unwrap_or("the plan");
    let subject = SUBJECTS
        .choose(&mut rng)
        .copied()
        .unwrap_or("{topic}")
        .replace("{topic}", topic);
    let opening_template = OPENINGS.choose(&mut rng).copied().unwrap_or("Hi {name},");
    let opening = opening_template.replace("{name}", recipient_name);
    let count = rng.random_range(2..=3);
    let paragraphs: Vec<&str> = PARAGRAPHS.sample(&mut rng, count).copied().collect();
    let closing = CLOSINGS.choose(&mut rng).copied().unwrap_or("Best,");
    let body_len: usize = paragraphs.iter().map(|p| p.len() + 9).sum();
    let mut text = String::with_capacity(opening.len() + body_len + sender_name.len() + 32);
    let mut html = String::with_capacity(text.capacity() + 64);
    // The corpus has nothing to escape (a test holds it to that): only the names are escaped.
    let mut name = String::with_capacity(recipient_name.len());
    push_escaped(&mut name, recipient_name);
    text.push_str(&opening);
    text.push_str("\n\n");
    html.push_str("<p>");
    html.push_str(&opening_template.replace("{name}", &name));
    html.push_str("</p>\n");
    for p in &paragraphs {
        text.push_str(p);
        text.push_str("\n\n");
        html.push_str("<p>");
        html.push_str(p);
        html.push_str("</p>\n");
    }
    text.push_str(closing);
    text.push('\n');
    text.push_str(sender_name);
    text.push('\n');
    html.push_str("<p>");
    html.push_str(closing);
    html.push_str("<br>");
    push_escaped(&mut html, sender_name);
    html.push_str("</p>\n");
    Content {
        subject,
        text,
        html,
    }
}

/// The built-in corpus and the user's templates, mixed.
#[derive(Debug, Clone, Default)]
pub struct Library {
    pub templates: Vec<super::template::Template>,
    /// The share of messages written from a template (0 to 1); the rest from the corpus.
    pub share: f64,
}

impl Library {
    /// The template a message uses, if any. Decided by its [`ContentKey`] alone, so the
    /// scheduler (which writes the subject) and the sender (which writes the body) agree.
    pub fn pick(&self, key: ContentKey) -> Option<&super::template::Template> {
        use sha2::Digest as _;
        if self.templates.is_empty() || self.share <= 0.0 {
            return None;
        }
        let digest = sha2::Sha256::new()
            .chain_update(key.campaign_id.to_be_bytes())
            .chain_update(key.seed_id.to_be_bytes())
            .chain_update(key.created_at.to_be_bytes())
            .finalize();
        let h = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
        let draw = (h % 10_000) as f64 / 10_000.0;
        (draw < self.share)
            .then(|| &self.templates[((h / 10_000) % self.templates.len() as u64) as usize])
    }

    /// The subject of a message: its template's, or one from the corpus.
    pub fn subject(&self, key: ContentKey, sender_name: &str, weekday: chrono::Weekday) -> String {
        match self.pick(key) {
            Some(t) => t.subject(&super::template::Vars {
                seed_name: "",
                sender_name,
                weekday,
            }),
            None => subject(),
        }
    }
}

/// The name a sender signs with: its display name, or one made from its address.
pub fn sender_name(s: &crate::store::senders::SenderRecord) -> String {
    s.display_name
        .clone()
        .unwrap_or_else(|| name_from_local(s.address.local()))
}

/// What decides an outbox row's template: its campaign, seed and creation time, all known
/// when the row is written (the subject is chosen then) and never changed after (a retry
/// moves `run_at`; the Message-ID comes only with the claim).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentKey {
    pub campaign_id: i64,
    pub seed_id: i64,
    pub created_at: i64,
}

/// The body of one message: its template's (see [`Library::pick`]), or from the corpus.
/// `weekday` is asked for only when a template is used.
pub fn generate_for(
    library: &Library,
    key: ContentKey,
    recipient_name: &str,
    sender_name: &str,
    weekday: impl FnOnce() -> chrono::Weekday,
) -> Content {
    match library.pick(key) {
        Some(t) => {
            let vars = super::template::Vars {
                seed_name: recipient_name,
                sender_name,
                weekday: weekday(),
            };
            let (text, html) = t.bodies(&vars);
            Content {
                subject: t.subject(&vars),
                text,
                html,
            }
        }
        None => generate(recipient_name, sender_name),
    }
}

/// Appends `s` with `&`, `<`, `>` and `"` escaped for HTML.
pub(crate) fn push_escaped(out: &mut String, s: &str) {
    let mut rest = s;
    while let Some(i) = rest.find(['&', '<', '>', '"']) {
        out.push_str(&rest[..i]);
        out.push_str(match rest.as_bytes()[i] {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            _ => "&quot;",
        });
        rest = &rest[i + 1..];
    }
    out.push_str(rest);
}

/// A friendly first name from an address's local part (`ann.lee` → `Ann`).
pub fn name_from_local(local: &str) -> String {
    let first = local
        .split(['.', '_', '-', '+'])
        .next()
        .unwrap_or(local)
        .trim_end_matches(|c: char| c.is_ascii_digit());
    let mut chars = first.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => "there".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_has_no_links_and_escapes_html() {
        for _ in 0..50 {
            let c = generate("<Ann>", "Bo");
            assert!(!c.text.contains("http") && !c.html.contains("href"));
            assert!(c.html.contains("&lt;Ann&gt;"));
            assert!(c.text.contains("<Ann>,\n\n"));
            assert!(c.text.ends_with("\nBo\n") && c.html.ends_with("<br>Bo</p>\n"));
            assert!(!c.subject.contains('{'));
        }
    }

    #[test]
    fn the_corpus_needs_no_html_escaping() {
        for s in OPENINGS.iter().chain(PARAGRAPHS).chain(CLOSINGS) {
            let mut escaped = String::new();
            push_escaped(&mut escaped, s);
            assert_eq!(&escaped, s);
        }
    }

    #[test]
    fn escapes_html() {
        let mut out = String::new();
        push_escaped(&mut out, "a & b <c> \"d\" e");
        assert_eq!(out, "a &amp; b &lt;c&gt; &quot;d&quot; e");
    }

    #[test]
    fn templates_are_mixed_in_at_the_share_and_chosen_by_content_key() {
        let t = super::super::template::Template::parse(
            "On {{weekday}}",
            "Hi {{seed_name}},\n\nnothing to add.\n{{sender_name}}",
            None,
            false,
        )
        .unwrap();
        let lib = Library {
            templates: vec![t],
            share: 0.3,
        };
        let ids: Vec<ContentKey> = (0..2000)
            .map(|seed_id| ContentKey {
                campaign_id: 7,
                seed_id,
                created_at: 1_800_000_000,
            })
            .collect();
        let used = ids.iter().filter(|id| lib.pick(**id).is_some()).count();
        assert!(
            (500..700).contains(&used),
            "{used} of 2000 at a share of 0.3"
        );
        for id in &ids {
            let c = generate_for(&lib, *id, "Ann", "Bo", || chrono::Weekday::Fri);
            let subject = lib.subject(*id, "Bo", chrono::Weekday::Fri);
            if lib.pick(*id).is_some() {
                assert_eq!(
                    (c.subject.as_str(), subject.as_str()),
                    ("On Friday", "On Friday")
                );
                assert_eq!(c.text, "Hi Ann,\n\nnothing to add.\nBo\n");
            } else {
                assert!(!c.text.contains("nothing to add") && subject != "On Friday");
            }
        }
        let none = Library::default();
        assert!(none.pick(ids[0]).is_none());
    }

    #[test]
    fn names() {
        assert_eq!(name_from_local("ann.lee"), "Ann");
        assert_eq!(name_from_local("seed1"), "Seed");
        assert_eq!(name_from_local("123"), "there");
    }
}
