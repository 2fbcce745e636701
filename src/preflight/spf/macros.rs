//! RFC 7208 §7: macro strings. Parsed once with the record (a syntax error anywhere makes the
//! record a permerror), expanded during evaluation.

use std::net::IpAddr;

/// Where a macro string appears decides which letters it may use (§7.2: `c`, `r` and `t`
/// only in explanation text) and whether spaces are literal text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Context {
    /// A domain-spec of a mechanism or of `redirect=`/`exp=`.
    Domain,
    /// The value of an unknown modifier: any letter, no spaces (terms are split on spaces).
    Modifier,
    /// An explanation string fetched by `exp=`: any letter, spaces allowed.
    Explanation,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Letter {
    Sender,
    Local,
    SenderDomain,
    Domain,
    Ip,
    ValidatedName,
    Version,
    Helo,
    ClientIp,
    Receiver,
    Timestamp,
}

impl Letter {
    fn from_char(c: char, ctx: Context) -> Option<Self> {
        let letter = match c.to_ascii_lowercase() {
            's' => Self::Sender,
            'l' => Self::Local,
            'o' => Self::SenderDomain,
            'd' => Self::Domain,
            'i' => Self::Ip,
            'p' => Self::ValidatedName,
            'v' => Self::Version,
            'h' => Self::Helo,
            'c' => Self::ClientIp,
            'r' => Self::Receiver,
            't' => Self::Timestamp,
            _ => return None,
        };
        let exp_only = matches!(letter, Self::ClientIp | Self::Receiver | Self::Timestamp);
        (!exp_only || ctx != Context::Domain).then_some(letter)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Macro {
        letter: Letter,
        /// Keep this many right-hand parts (after reversal); `None` keeps all.
        keep: Option<usize>,
        reverse: bool,
        /// Split on these; empty means the default `.`.
        delimiters: String,
        /// An upper-case letter: URL-escape the result.
        escape: bool,
    },
}

/// A parsed macro string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MacroString {
    parts: Vec<Part>,
    /// The literal text after the last macro-expand (`%{…}`, `%%`, `%_`, `%-`), for the
    /// domain-end rule of domain-specs.
    tail: String,
    ends_with_expand: bool,
}

/// The values macros expand to (§7.3).
#[derive(Debug, Clone)]
pub(crate) struct Vars<'a> {
    /// `<sender>`: local-part@domain, the local part already `postmaster` when it was empty.
    pub sender: &'a str,
    pub local: &'a str,
    pub sender_domain: &'a str,
    /// The `<domain>` of the record being evaluated.
    pub domain: &'a str,
    /// The client address, IPv4-mapped addresses already turned into IPv4.
    pub ip: IpAddr,
    pub helo: &'a str,
    /// `%{p}`: the validated name, or `unknown`.
    pub validated: &'a str,
    /// `%{t}`: Unix seconds.
    pub now: i64,
}

/// The most right-hand parts a transformer may ask for; RFC 7208 requires at least 128.
const MAX_KEEP: usize = 128;

impl MacroString {
    pub(crate) fn parse(s: &str, ctx: Context) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut tail_start = 0;
        let mut ends_with_expand = false;
        let mut chars = s.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                '%' => {
                    let (_, next) = chars.next().ok_or_else(|| {
                        format!("{s:?}: '%' at the end (write %% for a percent sign)")
                    })?;
                    match next {
                        '%' => literal.push('%'),
                        '_' => literal.push(' '),
                        '-' => literal.push_str("%20"),
                        '{' => {
                            if !literal.is_empty() {
                                parts.push(Part::Literal(std::mem::take(&mut literal)));
                            }
                            let mut body = String::new();
                            let mut closed = None;
                            for (j, b) in chars.by_ref() {
                                if b == '}' {
                                    closed = Some(j);
                                    break;
                                }
                                body.push(b);
                            }
                            let close = closed.ok_or_else(|| format!("{s:?}: unterminated %{{"))?;
                            parts
                                .push(parse_expand(&body, ctx).map_err(|e| format!("{s:?}: {e}"))?);
                            tail_start = close + 1;
                            ends_with_expand = true;
                            continue;
                        }
                        other => {
                            return Err(format!(
                                "{s:?}: '%{other}' is not a macro (use %%, %_, %- or %{{…}})"
                            ));
                        }
                    }
                    // %%, %_ and %- are macro-expands too (for the domain-end rule).
                    tail_start = i + 2;
                    ends_with_expand = true;
                }
                ' ' if ctx == Context::Explanation => {
                    literal.push(' ');
                    ends_with_expand = false;
                }
                '!'..='~' => {
                    literal.push(c);
                    ends_with_expand = false;
                }
                other => {
                    return Err(format!("{s:?}: character {other:?} is not allowed"));
                }
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Self {
            parts,
            tail: s[tail_start..].to_owned(),
            ends_with_expand,
        })
    }

    /// A domain-spec (§7.1): a macro string that ends in a macro-expand or in `.toplabel`
    /// (optionally followed by a dot), where a toplabel is not all digits and neither starts
    /// nor ends with a dash.
    pub(crate) fn parse_domain_spec(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("empty domain-spec".into());
        }
        let spec = Self::parse(s, Context::Domain)?;
        if spec.ends_with_expand {
            return Ok(spec);
        }
        let tail = spec.tail.strip_suffix('.').unwrap_or(&spec.tail);
        match tail.rsplit_once('.') {
            Some((_, top)) if is_toplabel(top) => Ok(spec),
            _ => Err(format!("{s:?} does not end in a valid top-level label")),
        }
    }

    /// Whether expansion needs `%{p}` (and so a PTR lookup).
    pub(crate) fn uses_validated_name(&self) -> bool {
        self.parts.iter().any(|p| {
            matches!(
                p,
                Part::Macro {
                    letter: Letter::ValidatedName,
                    ..
                }
            )
        })
    }

    /// Whether expansion depends on the connecting client (so it cannot be expanded ahead of
    /// a real check, as `inspect` would like).
    pub(crate) fn depends_on_client(&self) -> bool {
        self.parts.iter().any(|p| {
            matches!(
                p,
                Part::Macro {
                    letter: Letter::Sender
                        | Letter::Local
                        | Letter::Ip
                        | Letter::ValidatedName
                        | Letter::Version
                        | Letter::ClientIp
                        | Letter::Timestamp
                        | Letter::Helo,
                    ..
                }
            )
        })
    }

    pub(crate) fn expand(&self, vars: &Vars<'_>) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Macro {
                    letter,
                    keep,
                    reverse,
                    delimiters,
                    escape,
                } => {
                    let value = value_of(*letter, vars);
                    let delimiters = if delimiters.is_empty() {
                        "."
                    } else {
                        delimiters.as_str()
                    };
                    let mut pieces: Vec<&str> = value.split(|c| delimiters.contains(c)).collect();
                    if *reverse {
                        pieces.reverse();
                    }
                    if let Some(n) = keep {
                        let skip = pieces.len().saturating_sub(*n);
                        pieces.drain(..skip);
                    }
                    let joined = pieces.join(".");
                    if *escape {
                        url_escape(&joined, &mut out);
                    } else {
                        out.push_str(&joined);
                    }
                }
            }
        }
        out
    }
}

/// The inside of `%{…}`: a letter, optional digits, optional `r`, then delimiters.
fn parse_expand(body: &str, ctx: Context) -> Result<Part, String> {
    let mut chars = body.chars().peekable();
    let first = chars.next().ok_or("empty macro %{}")?;
    let letter = Letter::from_char(first, ctx)
        .ok_or_else(|| format!("unknown or misplaced macro letter {first:?}"))?;
    let mut digits = String::new();
    while let Some(d) = chars.next_if(char::is_ascii_digit) {
        digits.push(d);
    }
    let keep = if digits.is_empty() {
        None
    } else {
        let n: usize = digits
            .parse()
            .map_err(|_| format!("bad transformer digits {digits:?}"))?;
        if n == 0 {
            return Err("transformer digits must be non-zero".into());
        }
        Some(n.min(MAX_KEEP))
    };
    let reverse = chars.next_if(|c| c.eq_ignore_ascii_case(&'r')).is_some();
    let mut delimiters = String::new();
    for c in chars {
        if !matches!(c, '.' | '-' | '+' | ',' | '/' | '_' | '=') {
            return Err(format!("{c:?} is not a macro delimiter"));
        }
        delimiters.push(c);
    }
    Ok(Part::Macro {
        letter,
        keep,
        reverse,
        delimiters,
        escape: first.is_ascii_uppercase(),
    })
}

fn value_of(letter: Letter, vars: &Vars<'_>) -> String {
    match letter {
        Letter::Sender => vars.sender.to_owned(),
        Letter::Local => vars.local.to_owned(),
        Letter::SenderDomain => vars.sender_domain.to_owned(),
        Letter::Domain => vars.domain.to_owned(),
        Letter::Ip => dotted_ip(vars.ip),
        Letter::ValidatedName => vars.validated.to_owned(),
        Letter::Version => match vars.ip {
            IpAddr::V4(_) => "in-addr".into(),
            IpAddr::V6(_) => "ip6".into(),
        },
        Letter::Helo => vars.helo.to_owned(),
        Letter::ClientIp => vars.ip.to_string(),
        // We do not know the name receivers would give; RFC 7208 §7.3 allows "unknown".
        Letter::Receiver => "unknown".into(),
        Letter::Timestamp => vars.now.to_string(),
    }
}

/// `%{i}`: dotted quad for IPv4, 32 dot-separated nibbles for IPv6.
fn dotted_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let nibbles: Vec<String> = v6
                .octets()
                .iter()
                .flat_map(|b| [b >> 4, b & 0xf])
                .map(|n| format!("{n:x}"))
                .collect();
            nibbles.join(".")
        }
    }
}

/// RFC 3986 escaping of everything but the unreserved characters.
fn url_escape(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// `toplabel = ( *alphanum ALPHA *alphanum ) / ( 1*alphanum "-" *( alphanum / "-" ) alphanum )`
fn is_toplabel(s: &str) -> bool {
    let b = s.as_bytes();
    if b.is_empty() || !b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-') {
        return false;
    }
    if b.contains(&b'-') {
        b[0].is_ascii_alphanumeric() && b[b.len() - 1].is_ascii_alphanumeric()
    } else {
        b.iter().any(u8::is_ascii_alphabetic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(ip: &str) -> Vars<'static> {
        Vars {
            sender: "strong-bad@email.example.com",
            local: "strong-bad",
            sender_domain: "email.example.com",
            domain: "email.example.com",
            ip: ip.parse().unwrap(),
            helo: "mx.example.org",
            validated: "unknown",
            now: 1_000,
        }
    }

    fn expand(s: &str, ctx: Context, ip: &str) -> String {
        MacroString::parse(s, ctx).unwrap().expand(&vars(ip))
    }

    #[test]
    fn rfc7208_section_7_4_examples() {
        let d = Context::Domain;
        let cases = [
            ("%{s}", "strong-bad@email.example.com"),
            ("%{o}", "email.example.com"),
            ("%{d}", "email.example.com"),
            ("%{d4}", "email.example.com"),
            ("%{d3}", "email.example.com"),
            ("%{d2}", "example.com"),
            ("%{d1}", "com"),
            ("%{dr}", "com.example.email"),
            ("%{d2r}", "example.email"),
            ("%{l}", "strong-bad"),
            ("%{l-}", "strong.bad"),
            ("%{lr}", "strong-bad"),
            ("%{lr-}", "bad.strong"),
            ("%{l1r-}", "strong"),
            (
                "%{ir}.%{v}._spf.%{d2}",
                "3.2.0.192.in-addr._spf.example.com",
            ),
            ("%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com"),
            (
                "%{lr-}.lp.%{ir}.%{v}._spf.%{d2}",
                "bad.strong.lp.3.2.0.192.in-addr._spf.example.com",
            ),
            (
                "%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}",
                "3.2.0.192.in-addr.strong.lp._spf.example.com",
            ),
            (
                "%{d2}.trusted-domains.example.net",
                "example.com.trusted-domains.example.net",
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(expand(spec, d, "192.0.2.3"), want, "{spec}");
        }
        assert_eq!(
            expand("%{ir}.%{v}._spf.%{d2}", d, "2001:db8::cb01"),
            "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com"
        );
    }

    #[test]
    fn escapes_and_url_encoding() {
        let e = Context::Explanation;
        assert_eq!(
            expand("a%%b%_c%-d", Context::Domain, "192.0.2.3"),
            "a%b c%20d"
        );
        assert_eq!(
            expand("%{c} is %{v}", e, "2001:db8::1"),
            "2001:db8::1 is ip6"
        );
        assert_eq!(expand("t=%{t} r=%{r}", e, "192.0.2.3"), "t=1000 r=unknown");
        let mut v = vars("192.0.2.3");
        v.local = "jack&jill=up";
        let s = MacroString::parse("l=%{L}", e).unwrap();
        assert_eq!(s.expand(&v), "l=jack%26jill%3Dup");
        v.local = "foo-bar+zip+quux";
        let s = MacroString::parse("%{l2r+-}", Context::Domain).unwrap();
        assert_eq!(s.expand(&v), "bar.foo");
    }

    #[test]
    fn syntax_errors() {
        let bad = [
            ("%", Context::Domain),
            ("%(ir)", Context::Domain),
            ("foo%.bar", Context::Domain),
            ("%{x}", Context::Domain),
            ("%{d0}", Context::Domain),
            ("%{d", Context::Domain),
            ("%{d2r*}", Context::Domain),
            ("%{c}", Context::Domain),
            ("%{r}", Context::Domain),
            ("%{t}", Context::Domain),
            ("a b", Context::Domain),
            ("caf\u{e9}", Context::Explanation),
            ("tab\there", Context::Explanation),
        ];
        for (s, ctx) in bad {
            assert!(
                MacroString::parse(s, ctx).is_err(),
                "{s:?} should be an error"
            );
        }
        assert!(MacroString::parse("%{c} %{r} %{t}", Context::Explanation).is_ok());
        assert!(MacroString::parse("%{c}", Context::Modifier).is_ok());
    }

    #[test]
    fn domain_specs() {
        for good in [
            "example.com",
            "example.com.",
            "%{d}",
            "_spf.%{d2}",
            "foo:bar/baz.example.com",
            "a.xn--zckzah",
            "x.1-2",
            "%{d}%%",
        ] {
            assert!(MacroString::parse_domain_spec(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "museum",
            "museum.",
            "abc.123",
            "111.222.33.44",
            "example.-com",
            "example.com-",
            "-all",
            "example.com:8080",
            "%{d}com",
        ] {
            assert!(MacroString::parse_domain_spec(bad).is_err(), "{bad}");
        }
    }
}
