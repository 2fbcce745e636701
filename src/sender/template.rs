//! User content templates: a subject, a text body and optionally an HTML body, with simple
//! placeholders, parsed once at config load (a bad placeholder is a config error naming the
//! key), then rendered per message.
//!
//! Placeholders: `{{seed_name}}` (the recipient's first name, from the seed address; bodies
//! only, since subjects are written when the day is planned), `{{sender_name}}` (the sender's
//! display name) and `{{weekday}}` (the send day in the campaign's time zone, e.g. `Tuesday`).
//!
//! Links, images and tracking are **rejected**, not stripped: a template with `http://`,
//! `https://`, `www.`, `mailto:`, `<a`, `href=`, `<img`, `src=`, `url(`, `<script`,
//! `<iframe`, `<form` … fails to load with the key, so what is sent is exactly what was
//! written. `content.allow_links = true` admits plain links (`http(s)://`, `www.`, `mailto:`,
//! `<a href>`); images, scripts and remote resources stay refused.

use std::fmt::Write as _;

/// One placeholder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    SeedName,
    SenderName,
    Weekday,
}

impl Placeholder {
    const ALL: &'static [(&'static str, Placeholder)] = &[
        ("seed_name", Placeholder::SeedName),
        ("sender_name", Placeholder::SenderName),
        ("weekday", Placeholder::Weekday),
    ];
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Var(Placeholder),
}

/// A parsed text with placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern(Vec<Piece>);

/// What a placeholder stands for in one message.
#[derive(Debug, Clone, Copy)]
pub struct Vars<'a> {
    pub seed_name: &'a str,
    pub sender_name: &'a str,
    pub weekday: chrono::Weekday,
}

fn weekday_name(d: chrono::Weekday) -> &'static str {
    use chrono::Weekday::*;
    match d {
        Mon => "Monday",
        Tue => "Tuesday",
        Wed => "Wednesday",
        Thu => "Thursday",
        Fri => "Friday",
        Sat => "Saturday",
        Sun => "Sunday",
    }
}

impl Pattern {
    /// Parses `{{name}}` placeholders; `allowed` are the ones this field may use.
    pub fn parse(s: &str, allowed: &[Placeholder]) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut rest = s;
        while let Some(i) = rest.find("{{") {
            if i > 0 {
                pieces.push(Piece::Text(rest[..i].to_owned()));
            }
            let after = &rest[i + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| format!("unclosed placeholder at {:?}", trim(&rest[i..])))?;
            let name = after[..end].trim();
            let known = Placeholder::ALL.iter().find(|(n, _)| *n == name);
            match known {
                Some((_, p)) if allowed.contains(p) => pieces.push(Piece::Var(*p)),
                Some(_) => return Err(format!("{{{{{name}}}}} cannot be used here")),
                None => {
                    let names: Vec<String> = allowed
                        .iter()
                        .filter_map(|a| Placeholder::ALL.iter().find(|(_, p)| p == a))
                        .map(|(n, _)| format!("{{{{{n}}}}}"))
                        .collect();
                    return Err(format!(
                        "unknown placeholder {{{{{name}}}}}; expected one of {}",
                        names.join(", ")
                    ));
                }
            }
            rest = &after[end + 2..];
        }
        if let Some(i) = rest.find("}}") {
            return Err(format!("stray \"}}}}\" at {:?}", trim(&rest[i..])));
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_owned()));
        }
        Ok(Self(pieces))
    }

    /// Writes the pattern; placeholder values are HTML-escaped when `html`.
    fn render_into(&self, out: &mut String, vars: &Vars<'_>, html: bool) {
        for p in &self.0 {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Var(v) => {
                    let value = match v {
                        Placeholder::SeedName => vars.seed_name,
                        Placeholder::SenderName => vars.sender_name,
                        Placeholder::Weekday => weekday_name(vars.weekday),
                    };
                    if html {
                        super::content::push_escaped(out, value);
                    } else {
                        out.push_str(value);
                    }
                }
            }
        }
    }

    pub fn render(&self, vars: &Vars<'_>) -> String {
        let mut out = String::new();
        self.render_into(&mut out, vars, false);
        out
    }
}

fn trim(s: &str) -> String {
    s.chars().take(20).collect()
}

/// A user template, valid by construction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    subject: Pattern,
    text: Pattern,
    html: Option<Pattern>,
}

/// Which field of a template is wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct TemplateError {
    pub field: &'static str,
    pub message: String,
}

/// Always refused: images, scripts and other remote resources (tracking pixels).
const NEVER: &[&str] = &[
    "<img",
    "src=",
    "url(",
    "<script",
    "<iframe",
    "<object",
    "<embed",
    "<link",
    "<form",
    "<style",
    "<video",
    "<audio",
    "background=",
    "@import",
];
/// Refused unless `allow_links`.
const LINKS: &[&str] = &[
    "http://", "https://", "www.", "mailto:", "<a ", "<a>", "href=",
];

impl Template {
    pub fn parse(
        subject: &str,
        text: &str,
        html: Option<&str>,
        allow_links: bool,
    ) -> Result<Self, TemplateError> {
        let bad = |field: &'static str, message: String| TemplateError { field, message };
        let body = [
            Placeholder::SeedName,
            Placeholder::SenderName,
            Placeholder::Weekday,
        ];
        let subject_vars = [Placeholder::SenderName, Placeholder::Weekday];
        if subject.trim().is_empty() {
            return Err(bad("subject", "expected a subject line".into()));
        }
        if subject.contains(['\r', '\n']) {
            return Err(bad("subject", "must be one line".into()));
        }
        if text.trim().is_empty() {
            return Err(bad("text", "expected a text body".into()));
        }
        for (field, value) in [
            ("subject", Some(subject)),
            ("text", Some(text)),
            ("html", html),
        ] {
            let Some(value) = value else { continue };
            let lower = value.to_ascii_lowercase();
            if let Some(found) = NEVER.iter().find(|n| lower.contains(*n)) {
                return Err(bad(
                    field,
                    format!(
                        "{found:?} is not allowed: no images, scripts or remote resources in warm-up mail"
                    ),
                ));
            }
            if !allow_links && let Some(found) = LINKS.iter().find(|n| lower.contains(*n)) {
                return Err(bad(
                    field,
                    format!(
                        "{found:?}: links are not allowed (set content.allow_links = true to allow them)"
                    ),
                ));
            }
        }
        Ok(Self {
            subject: Pattern::parse(subject, &subject_vars).map_err(|m| bad("subject", m))?,
            text: Pattern::parse(text, &body).map_err(|m| bad("text", m))?,
            html: html
                .map(|h| Pattern::parse(h, &body))
                .transpose()
                .map_err(|m| bad("html", m))?,
        })
    }

    pub fn subject(&self, vars: &Vars<'_>) -> String {
        self.subject.render(vars)
    }

    /// The text body, and the HTML body (the template's, or paragraphs made from the text).
    pub fn bodies(&self, vars: &Vars<'_>) -> (String, String) {
        let mut text = self.text.render(vars);
        if !text.ends_with('\n') {
            text.push('\n');
        }
        let html = match &self.html {
            Some(h) => {
                let mut out = String::new();
                h.render_into(&mut out, vars, true);
                out
            }
            None => html_from_text(&text),
        };
        (text, html)
    }
}

/// Paragraphs at blank lines, `<br>` at single line breaks, everything escaped.
fn html_from_text(text: &str) -> String {
    let mut out = String::new();
    for para in text.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
        out.push_str("<p>");
        for (i, line) in para.lines().enumerate() {
            if i > 0 {
                out.push_str("<br>");
            }
            super::content::push_escaped(&mut out, line);
        }
        let _ = writeln!(out, "</p>");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars<'static> {
        Vars {
            seed_name: "Ann <A>",
            sender_name: "Bo",
            weekday: chrono::Weekday::Tue,
        }
    }

    #[test]
    fn renders_placeholders() {
        let t = Template::parse(
            "Plans for {{ weekday }}",
            "Hi {{seed_name}},\n\nsee you {{weekday}}.\n{{sender_name}}",
            None,
            false,
        )
        .unwrap();
        assert_eq!(t.subject(&vars()), "Plans for Tuesday");
        let (text, html) = t.bodies(&vars());
        assert_eq!(text, "Hi Ann <A>,\n\nsee you Tuesday.\nBo\n");
        assert_eq!(
            html,
            "<p>Hi Ann &lt;A&gt;,</p>\n<p>see you Tuesday.<br>Bo</p>\n"
        );
        let t = Template::parse("s", "t", Some("<p>{{seed_name}}</p>"), false).unwrap();
        assert_eq!(t.bodies(&vars()).1, "<p>Ann &lt;A&gt;</p>");
    }

    #[test]
    fn bad_templates_are_refused_with_the_field() {
        let cases: &[(&str, &str, Option<&str>, &str)] = &[
            (
                "s",
                "Hi {{name}}",
                None,
                "text: unknown placeholder {{name}}",
            ),
            ("s", "Hi {{seed_name", None, "text: unclosed placeholder"),
            ("s", "Hi }} there", None, "text: stray"),
            (
                "For {{seed_name}}",
                "t",
                None,
                "subject: {{seed_name}} cannot be used here",
            ),
            (
                "s",
                "see https://x.test",
                None,
                "text: \"https://\": links are not allowed",
            ),
            (
                "s",
                "t",
                Some("<p><a href=\"#\">x</a></p>"),
                "html: \"<a \": links",
            ),
            (
                "s",
                "t",
                Some("<img src=\"cid:x\">"),
                "html: \"<img\" is not allowed",
            ),
            ("", "t", None, "subject: expected"),
            ("s", " ", None, "text: expected"),
        ];
        for (s, t, h, want) in cases {
            let e = Template::parse(s, t, *h, false).unwrap_err().to_string();
            assert!(e.starts_with(want), "{e} (wanted {want})");
        }
        assert!(Template::parse("s", "see https://x.test", None, true).is_ok());
        assert!(Template::parse("s", "t", Some("<img src=x>"), true).is_err());
    }
}
