//! Email addresses as Hearth uses them: `local@domain`, with a valid domain.

use std::fmt;
use std::str::FromStr;

use super::DomainName;

/// A mailbox address (`local@domain`), domain lower-cased, local part kept as written.
/// Quoted local parts and address literals are refused: no seed or sender needs them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EmailAddress {
    local: String,
    domain: DomainName,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseAddressError {
    #[error("has no '@'")]
    NoAt,
    #[error("has an empty local part")]
    EmptyLocal,
    #[error("has a local part longer than 64 characters")]
    LocalTooLong,
    #[error("has an invalid character {0:?} in the local part")]
    BadLocalChar(char),
    #[error("has an invalid domain: it {0}")]
    Domain(#[from] super::ParseNameError),
}

impl EmailAddress {
    pub fn parse(input: &str) -> Result<Self, ParseAddressError> {
        let s = input.trim();
        let (local, domain) = s.rsplit_once('@').ok_or(ParseAddressError::NoAt)?;
        if local.is_empty() {
            return Err(ParseAddressError::EmptyLocal);
        }
        if local.len() > 64 {
            return Err(ParseAddressError::LocalTooLong);
        }
        // RFC 5322 dot-atom text.
        const SPECIALS: &str = "!#$%&'*+-/=?^_`{|}~.";
        if let Some(c) = local
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || SPECIALS.contains(*c)))
        {
            return Err(ParseAddressError::BadLocalChar(c));
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(ParseAddressError::BadLocalChar('.'));
        }
        let domain = DomainName::parse(domain)?;
        if !domain.is_qualified() {
            return Err(ParseAddressError::Domain(
                super::ParseNameError::NotQualified,
            ));
        }
        Ok(Self {
            local: local.to_owned(),
            domain,
        })
    }

    pub fn local(&self) -> &str {
        &self.local
    }

    pub fn domain(&self) -> &DomainName {
        &self.domain
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

impl FromStr for EmailAddress {
    type Err = ParseAddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let ok = [
            "a@b.test",
            "first.last+tag@Example.COM",
            "x_y@sub.example.org",
        ];
        for a in ok {
            assert!(EmailAddress::parse(a).is_ok(), "{a}");
        }
        assert_eq!(
            EmailAddress::parse("Ann@Example.COM").unwrap().to_string(),
            "Ann@example.com"
        );
        let bad = [
            ("nobody", ParseAddressError::NoAt),
            ("@x.test", ParseAddressError::EmptyLocal),
            ("a b@x.test", ParseAddressError::BadLocalChar(' ')),
            ("a..b@x.test", ParseAddressError::BadLocalChar('.')),
        ];
        for (a, e) in bad {
            assert_eq!(EmailAddress::parse(a), Err(e), "{a}");
        }
        assert!(EmailAddress::parse("a@localhost").is_err());
        assert!(EmailAddress::parse("a@[127.0.0.1]").is_err());
    }
}
