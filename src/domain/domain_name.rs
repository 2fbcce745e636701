//! Domain names and HELO names (RFC 1035 / RFC 1123 / RFC 5321 §4.1.1.1).

use std::fmt;
use std::str::FromStr;

/// Why a string is not an acceptable domain or HELO name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseNameError {
    #[error("is empty")]
    Empty,
    #[error("is longer than 253 characters")]
    TooLong,
    #[error("has an empty label (two dots in a row, or a leading dot)")]
    EmptyLabel,
    #[error("has a label longer than 63 characters: {0:?}")]
    LabelTooLong(String),
    #[error("has a label that starts or ends with '-': {0:?}")]
    HyphenAtEdge(String),
    #[error("has an invalid character {0:?} (only letters, digits, '-' and '.')")]
    BadChar(char),
    #[error("is an IP address literal, not a name")]
    IpLiteral,
    #[error("is not fully qualified (needs at least two labels, like mta1.example.com)")]
    NotQualified,
    #[error("is 'localhost', which no receiver accepts as a HELO name")]
    Localhost,
    #[error("is all digits and dots (a numeric host name)")]
    Numeric,
    #[error("ends with a dot")]
    TrailingDot,
}

/// A syntactically valid DNS host/domain name, stored lower-case without a trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DomainName(String);

impl DomainName {
    pub fn parse(input: &str) -> Result<Self, ParseNameError> {
        let s = input.trim();
        let s = s.strip_suffix('.').unwrap_or(s);
        if s.is_empty() {
            return Err(ParseNameError::Empty);
        }
        if s.len() > 253 {
            return Err(ParseNameError::TooLong);
        }
        if s.starts_with('[') || s.parse::<std::net::IpAddr>().is_ok() {
            return Err(ParseNameError::IpLiteral);
        }
        for label in s.split('.') {
            if label.is_empty() {
                return Err(ParseNameError::EmptyLabel);
            }
            if label.len() > 63 {
                return Err(ParseNameError::LabelTooLong(label.to_owned()));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(ParseNameError::HyphenAtEdge(label.to_owned()));
            }
            if let Some(c) = label
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
            {
                return Err(ParseNameError::BadChar(c));
            }
        }
        if s.chars().all(|c| c.is_ascii_digit() || c == '.') {
            return Err(ParseNameError::Numeric);
        }
        Ok(Self(s.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when this is a name with at least two labels.
    pub fn is_qualified(&self) -> bool {
        self.0.contains('.')
    }
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for DomainName {
    type Err = ParseNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Host-name syntax as Postfix's `valid_hostname()` judges it (what `reject_invalid_helo_hostname`
/// applies): letters, digits and inner hyphens in labels of 1–63 octets, no empty label or
/// trailing dot, not all-numeric, at most 255 octets.
pub fn valid_hostname(s: &str) -> Result<(), ParseNameError> {
    if s.is_empty() {
        return Err(ParseNameError::Empty);
    }
    if s.len() > 255 {
        return Err(ParseNameError::TooLong);
    }
    if s.ends_with('.') && s.len() > 1 {
        return Err(ParseNameError::TrailingDot);
    }
    for label in s.split('.') {
        if label.is_empty() {
            return Err(ParseNameError::EmptyLabel);
        }
        if label.len() > 63 {
            return Err(ParseNameError::LabelTooLong(label.to_owned()));
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
        {
            return Err(ParseNameError::BadChar(c));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(ParseNameError::HyphenAtEdge(label.to_owned()));
        }
    }
    if s.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(ParseNameError::Numeric);
    }
    Ok(())
}

/// The name a sender announces in HELO/EHLO: a fully qualified domain name that is
/// neither an address literal nor `localhost` (RFC 5321 §4.1.1.1, and what receivers enforce).
/// Underscores are refused here even though DNS allows them in other names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HeloName(DomainName);

impl HeloName {
    pub fn parse(input: &str) -> Result<Self, ParseNameError> {
        let t = input.trim();
        if t.starts_with('[') || t.parse::<std::net::IpAddr>().is_ok() {
            return Err(ParseNameError::IpLiteral);
        }
        valid_hostname(t)?;
        let name = DomainName::parse(input)?;
        if let Some(c) = name.as_str().chars().find(|c| *c == '_') {
            return Err(ParseNameError::BadChar(c));
        }
        if name.as_str() == "localhost" || name.as_str().ends_with(".localhost") {
            return Err(ParseNameError::Localhost);
        }
        if !name.is_qualified() {
            return Err(ParseNameError::NotQualified);
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    pub fn domain(&self) -> &DomainName {
        &self.0
    }
}

impl fmt::Display for HeloName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for HeloName {
    type Err = ParseNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helo_names() {
        let cases: &[(&str, Result<&str, ParseNameError>)] = &[
            ("mta1.example.com", Ok("mta1.example.com")),
            ("MTA1.Example.COM", Ok("mta1.example.com")),
            ("mta1.example.com.", Err(ParseNameError::TrailingDot)),
            ("localhost", Err(ParseNameError::Localhost)),
            ("mail", Err(ParseNameError::NotQualified)),
            ("192.0.2.1", Err(ParseNameError::IpLiteral)),
            ("[192.0.2.1]", Err(ParseNameError::IpLiteral)),
            ("a..b", Err(ParseNameError::EmptyLabel)),
            ("-a.example", Err(ParseNameError::HyphenAtEdge("-a".into()))),
            ("a_b.example", Err(ParseNameError::BadChar('_'))),
            ("a b.example", Err(ParseNameError::BadChar(' '))),
            ("123.456", Err(ParseNameError::Numeric)),
            ("", Err(ParseNameError::Empty)),
        ];
        for (input, want) in cases {
            let got = HeloName::parse(input).map(|h| h.as_str().to_owned());
            assert_eq!(got, want.clone().map(str::to_owned), "input {input:?}");
        }
    }

    #[test]
    fn dkim_style_names_are_domains_but_not_helo() {
        assert!(DomainName::parse("hearth._domainkey.example.com").is_ok());
        assert!(HeloName::parse("hearth._domainkey.example.com").is_err());
    }
}
