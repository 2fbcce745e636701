//! RFC 7208 §4.5 record selection and §4.6/§5/§6/§12 record syntax. Any syntax error anywhere
//! in the record is a permerror, found before anything is evaluated.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::macros::{Context, MacroString};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Qualifier {
    Pass,
    Fail,
    SoftFail,
    Neutral,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mechanism {
    All,
    Include(MacroString),
    /// `None` means the current domain.
    A {
        domain: Option<MacroString>,
        cidr4: u8,
        cidr6: u8,
    },
    Mx {
        domain: Option<MacroString>,
        cidr4: u8,
        cidr6: u8,
    },
    Ptr(Option<MacroString>),
    Ip4 {
        net: Ipv4Addr,
        len: u8,
    },
    Ip6 {
        net: Ipv6Addr,
        len: u8,
    },
    Exists(MacroString),
}

impl Mechanism {
    /// The terms that count against the limit of 10 DNS-querying terms (§4.6.4).
    pub(crate) fn queries_dns(&self) -> bool {
        !matches!(self, Self::All | Self::Ip4 { .. } | Self::Ip6 { .. })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Directive {
    pub qualifier: Qualifier,
    pub mechanism: Mechanism,
    /// The term as published, for explanations.
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub directives: Vec<Directive>,
    pub redirect: Option<MacroString>,
    pub exp: Option<MacroString>,
    /// Whether `%{p}` appears in a domain-spec (RFC 7208 says not to use it, like `ptr`).
    pub uses_validated_name: bool,
}

/// Whether a TXT string is an SPF record: exactly `v=spf1`, or `v=spf1` and a space (§4.5;
/// the version is case-insensitive).
pub(crate) fn is_spf(txt: &str) -> bool {
    let b = txt.as_bytes();
    b.len() >= 6 && b[..6].eq_ignore_ascii_case(b"v=spf1") && (b.len() == 6 || b[6] == b' ')
}

/// The SPF records among a domain's TXT records.
pub(crate) fn select(txts: &[String]) -> Vec<&str> {
    txts.iter()
        .map(String::as_str)
        .filter(|t| is_spf(t))
        .collect()
}

pub(crate) fn parse(record: &str) -> Result<Record, String> {
    if !is_spf(record) {
        return Err("the record does not start with \"v=spf1\"".into());
    }
    if let Some(c) = record.chars().find(|c| !(' '..='~').contains(c)) {
        return Err(format!(
            "the record contains {c:?}; SPF records are printable US-ASCII only"
        ));
    }
    let mut out = Record {
        directives: Vec::new(),
        redirect: None,
        exp: None,
        uses_validated_name: false,
    };
    for term in record[6..].split(' ').filter(|t| !t.is_empty()) {
        if let Some((name, value)) = modifier(term) {
            match name.to_ascii_lowercase().as_str() {
                "redirect" => {
                    if out.redirect.is_some() {
                        return Err("\"redirect=\" appears more than once".into());
                    }
                    let spec = domain_spec(value, term)?;
                    out.uses_validated_name |= spec.uses_validated_name();
                    out.redirect = Some(spec);
                }
                "exp" => {
                    if out.exp.is_some() {
                        return Err("\"exp=\" appears more than once".into());
                    }
                    out.exp = Some(domain_spec(value, term)?);
                }
                // Unknown modifiers are ignored, but their values must still be macro strings.
                _ => {
                    MacroString::parse(value, Context::Modifier)
                        .map_err(|e| format!("in {term:?}: {e}"))?;
                }
            }
        } else {
            let directive = directive(term)?;
            out.uses_validated_name |= match &directive.mechanism {
                Mechanism::Include(d) | Mechanism::Exists(d) | Mechanism::Ptr(Some(d)) => {
                    d.uses_validated_name()
                }
                Mechanism::A {
                    domain: Some(d), ..
                }
                | Mechanism::Mx {
                    domain: Some(d), ..
                } => d.uses_validated_name(),
                _ => false,
            };
            out.directives.push(directive);
        }
    }
    Ok(out)
}

/// `name "=" value` when the part before the first `=` is a modifier name
/// (`ALPHA *( ALPHA / DIGIT / "-" / "_" / "." )`); anything else is a mechanism.
fn modifier(term: &str) -> Option<(&str, &str)> {
    let (name, value) = term.split_once('=')?;
    let mut chars = name.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    .then_some((name, value))
}

fn domain_spec(s: &str, term: &str) -> Result<MacroString, String> {
    MacroString::parse_domain_spec(s).map_err(|e| format!("in {term:?}: {e}"))
}

fn directive(term: &str) -> Result<Directive, String> {
    let (qualifier, rest) = match term.as_bytes()[0] {
        b'+' => (Qualifier::Pass, &term[1..]),
        b'-' => (Qualifier::Fail, &term[1..]),
        b'~' => (Qualifier::SoftFail, &term[1..]),
        b'?' => (Qualifier::Neutral, &term[1..]),
        _ => (Qualifier::Pass, term),
    };
    let split = rest.find([':', '/']).unwrap_or(rest.len());
    let (name, args) = rest.split_at(split);
    let bad = |why: &str| format!("invalid term {term:?}: {why}");
    let mechanism = match name.to_ascii_lowercase().as_str() {
        "all" => {
            if !args.is_empty() {
                return Err(bad("\"all\" takes no argument"));
            }
            Mechanism::All
        }
        "include" => Mechanism::Include(required_spec(args, term)?),
        "exists" => Mechanism::Exists(required_spec(args, term)?),
        "a" | "mx" => {
            let (rest, cidr4, cidr6) = dual_cidr(args).map_err(|e| bad(&e))?;
            let domain = optional_spec(rest, term)?;
            let (cidr4, cidr6) = (cidr4.unwrap_or(32), cidr6.unwrap_or(128));
            if name.eq_ignore_ascii_case("a") {
                Mechanism::A {
                    domain,
                    cidr4,
                    cidr6,
                }
            } else {
                Mechanism::Mx {
                    domain,
                    cidr4,
                    cidr6,
                }
            }
        }
        "ptr" => Mechanism::Ptr(optional_spec(args, term)?),
        "ip4" => {
            let (net, len) = network(args, 32).map_err(|e| bad(&e))?;
            let net = net
                .parse::<Ipv4Addr>()
                .map_err(|_| bad("not an IPv4 address"))?;
            Mechanism::Ip4 {
                net,
                len: len.unwrap_or(32),
            }
        }
        "ip6" => {
            let (net, len) = network(args, 128).map_err(|e| bad(&e))?;
            let net = net
                .parse::<Ipv6Addr>()
                .map_err(|_| bad("not an IPv6 address"))?;
            Mechanism::Ip6 {
                net,
                len: len.unwrap_or(128),
            }
        }
        _ => return Err(format!("unknown mechanism or malformed term {term:?}")),
    };
    Ok(Directive {
        qualifier,
        mechanism,
        text: term.to_owned(),
    })
}

/// `":" domain-spec`, required.
fn required_spec(args: &str, term: &str) -> Result<MacroString, String> {
    match args.strip_prefix(':') {
        Some(spec) => domain_spec(spec, term),
        None if args.starts_with('/') => Err(format!(
            "invalid term {term:?}: this mechanism takes no CIDR length"
        )),
        None => Err(format!("invalid term {term:?}: a domain is required")),
    }
}

/// `[ ":" domain-spec ]`.
fn optional_spec(args: &str, term: &str) -> Result<Option<MacroString>, String> {
    if args.is_empty() {
        return Ok(None);
    }
    required_spec(args, term).map(Some)
}

/// Splits a trailing `dual-cidr-length` (`[ "/" ip4-len ] [ "//" ip6-len ]`) off `args`.
fn dual_cidr(args: &str) -> Result<(&str, Option<u8>, Option<u8>), String> {
    let mut rest = args;
    let mut cidr6 = None;
    if let Some((head, digits)) = rest.rsplit_once("//")
        && is_digits(digits)
    {
        cidr6 = Some(cidr_length(digits, 128)?);
        rest = head;
    }
    let mut cidr4 = None;
    if let Some((head, digits)) = rest.rsplit_once('/')
        && is_digits(digits)
    {
        cidr4 = Some(cidr_length(digits, 32)?);
        rest = head;
    }
    Ok((rest, cidr4, cidr6))
}

/// `":" network [ "/" length ]` of ip4/ip6.
fn network(args: &str, max: u8) -> Result<(&str, Option<u8>), String> {
    let body = args.strip_prefix(':').ok_or("an address is required")?;
    if body.contains("//") {
        return Err("dual CIDR lengths are only for a and mx".into());
    }
    match body.split_once('/') {
        Some((net, len)) => Ok((net, Some(cidr_length(len, max)?))),
        None => Ok((body, None)),
    }
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// A CIDR length: decimal without leading zeros, at most `max`.
fn cidr_length(digits: &str, max: u8) -> Result<u8, String> {
    let valid =
        is_digits(digits) && (digits == "0" || !digits.starts_with('0')) && digits.len() <= 3;
    match digits.parse::<u8>() {
        Ok(n) if valid && n <= max => Ok(n),
        _ => Err(format!(
            "invalid CIDR length /{digits} (0 to {max}, no leading zeros)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection() {
        let txts: Vec<String> = [
            "v=spf1 -all",
            "V=SpF1",
            "v=spf10",
            "v=spf1mx",
            "spf1",
            "google-site-verification=x",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(select(&txts), vec!["v=spf1 -all", "V=SpF1"]);
    }

    #[test]
    fn valid_records() {
        let r = parse("v=spf1 a mx/24 a:%{d}.example.com//64 -ptr ~include:_spf.example.com ?exists:%{i}.x.example.com ip4:192.0.2.0/24 ip6:2001:db8::/32 redirect=example.net exp=why.example.com moo.cow-far_out=man:dog/cat").unwrap();
        assert_eq!(r.directives.len(), 8);
        assert!(r.redirect.is_some() && r.exp.is_some());
        assert_eq!(
            r.directives[1].mechanism,
            Mechanism::Mx {
                domain: None,
                cidr4: 24,
                cidr6: 128
            }
        );
        assert!(matches!(
            &r.directives[2].mechanism,
            Mechanism::A {
                domain: Some(_),
                cidr4: 32,
                cidr6: 64
            }
        ));
        assert_eq!(r.directives[3].qualifier, Qualifier::Fail);
        assert_eq!(r.directives[4].qualifier, Qualifier::SoftFail);
        assert_eq!(r.directives[5].qualifier, Qualifier::Neutral);
        assert_eq!(
            r.directives[6].mechanism,
            Mechanism::Ip4 {
                net: "192.0.2.0".parse().unwrap(),
                len: 24
            }
        );
        assert!(parse("v=spf1").unwrap().directives.is_empty());
        assert!(parse("v=spf1   a   -all  ").is_ok());
        assert!(parse("v=spf1 a:foo:bar/baz.example.com").is_ok());
        assert!(parse("v=spf1 default=-").is_ok());
    }

    #[test]
    fn syntax_errors_are_permerrors() {
        let bad = [
            "v=spf1 ip4:192.0.2.1 -all moo",
            "v=spf1 -all.",
            "v=spf1 -all:foobar",
            "v=spf1 all/8",
            "v=spf1 ptr/0",
            "v=spf1 ptr:",
            "v=spf1 a/33",
            "v=spf1 a//129",
            "v=spf1 a/24/64",
            "v=spf1 a/032",
            "v=spf1 a:",
            "v=spf1 a:museum",
            "v=spf1 a:abc.123",
            "v=spf1 a:example.com:8080",
            "v=spf1 include",
            "v=spf1 include:",
            "v=spf1 include:example.com/24",
            "v=spf1 exists",
            "v=spf1 exists:example.com/24",
            "v=spf1 ip4",
            "v=spf1 ip4:1.2.3",
            "v=spf1 ip4:1.2.3.4:8080",
            "v=spf1 ip4:1.2.3.4//32",
            "v=spf1 ip4:1.2.3.4/33",
            "v=spf1 ip4:01.2.3.4",
            "v=spf1 ip6",
            "v=spf1 ip6::CAFE::BABE",
            "v=spf1 ip6:::1/129",
            "v=spf1 ip6:::1//33",
            "v=spf1 redirect:example.com",
            "v=spf1 redirect=",
            "v=spf1 redirect=-all",
            "v=spf1 redirect=a.example.com redirect=a.example.com",
            "v=spf1 exp=",
            "v=spf1 exp=a.example.com exp=b.example.com",
            "v=spf1 exp=%{r}.example.com",
            "v=spf1 1up=foo",
            "v=spf1 =all",
            "v=spf1 foo=%abc",
            "v=spf1 moo.cow/far_out=man:dog/cat",
            "v=spf1 a:foo.example.com\0",
            "v=spf1 \u{80}a -all",
            "v=spf1 a\t-all",
        ];
        for record in bad {
            assert!(parse(record).is_err(), "{record:?} should be a permerror");
        }
    }

    #[test]
    fn counts_only_dns_terms() {
        let r =
            parse("v=spf1 all ip4:192.0.2.1 ip6:::1 a mx ptr include:x.example exists:y.example")
                .unwrap();
        let n = r
            .directives
            .iter()
            .filter(|d| d.mechanism.queries_dns())
            .count();
        assert_eq!(n, 5);
    }
}
