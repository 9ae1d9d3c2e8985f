//! Domain names as operators enable them: validated once, then carried as [`DomainName`].
//!
//! Normal form: internationalised names in punycode (`bücher.example` ->
//! `xn--bcher-kva.example`), ASCII lower case, no trailing dot. HTTP-01 can only prove control
//! of one exact host name, so wildcards are refused with their own reason, and IP addresses
//! (which need a different identifier type and CA support) are refused for now.

use std::fmt;
use std::net::IpAddr;

// The name and label rules are the filter/backend contract's: a name enabled here is a host
// the filter accepts.
use acme_edge_contract::{HostError, MAX_LABEL_LEN, MAX_NAME_LEN};

/// A domain name in normal form, fit to be ordered from an ACME CA with HTTP-01.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DomainName(String);

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DomainError {
    #[error("the domain name is empty")]
    Empty,
    #[error("wildcard names cannot be validated with HTTP-01; enable each host name instead")]
    Wildcard,
    #[error("IP addresses are not supported; enable a DNS name")]
    IpAddress,
    #[error("not a valid internationalised domain name")]
    Idna,
    #[error("longer than {MAX_NAME_LEN} characters")]
    TooLong,
    #[error(
        "label {0:?} is empty, longer than {MAX_LABEL_LEN} characters, or starts or ends with '-'"
    )]
    BadLabel(String),
    #[error("label {0:?} has characters other than letters, digits and '-'")]
    BadCharacter(String),
    #[error("a single-label name cannot get a publicly trusted certificate; use a full name")]
    SingleLabel,
    #[error("the last label is all digits, which is not a DNS name")]
    NumericTld,
}

impl DomainName {
    /// Validate and normalise `input` (as typed by an operator or sent to the API).
    pub fn parse(input: &str) -> Result<DomainName, DomainError> {
        let trimmed = input.trim();
        let name = trimmed.strip_suffix('.').unwrap_or(trimmed);
        if name.is_empty() {
            return Err(DomainError::Empty);
        }
        if name.contains('*') {
            return Err(DomainError::Wildcard);
        }
        if is_ip_literal(name) {
            return Err(DomainError::IpAddress);
        }
        let ascii = to_ascii(name)?;
        check_dns_name(&ascii)?;
        Ok(DomainName(ascii))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The registered domain the name is under ([`registered_domain`]).
    pub fn registered_domain(&self) -> &str {
        registered_domain(&self.0)
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for DomainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for DomainName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// The registered domain of a name in normal form: the label below its public suffix, by the
/// Public Suffix List (its private part included, as Let's Encrypt reads it): what the CA
/// counts certificates per. `www.example.co.uk` is under `example.co.uk`; a name the list
/// sees as a public suffix itself is its own.
pub fn registered_domain(name: &str) -> &str {
    psl::domain_str(name).unwrap_or(name)
}

fn is_ip_literal(name: &str) -> bool {
    let unbracketed = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    unbracketed.parse::<IpAddr>().is_ok()
}

/// UTS #46 processing (lower-cases, maps, punycodes); ASCII names pass through lower-cased.
fn to_ascii(name: &str) -> Result<String, DomainError> {
    if name.is_ascii() {
        return Ok(name.to_ascii_lowercase());
    }
    idna::domain_to_ascii_strict(name).map_err(|_| DomainError::Idna)
}

fn check_dns_name(name: &str) -> Result<(), DomainError> {
    if name.len() > MAX_NAME_LEN {
        return Err(DomainError::TooLong);
    }
    let labels: Vec<&str> = name.split('.').collect();
    for label in &labels {
        check_label(label)?;
    }
    if labels.len() < 2 {
        return Err(DomainError::SingleLabel);
    }
    let tld = labels.last().copied().unwrap_or_default();
    if tld.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DomainError::NumericTld);
    }
    Ok(())
}

/// The contract's label rule ([`acme_edge_contract::check_label`]), its refusal naming the
/// label.
fn check_label(label: &str) -> Result<(), DomainError> {
    acme_edge_contract::check_label(label).map_err(|e| match e {
        HostError::BadCharacter => DomainError::BadCharacter(label.to_owned()),
        _ => DomainError::BadLabel(label.to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(s: &str) -> String {
        DomainName::parse(s).unwrap().into_string()
    }

    #[test]
    fn registered_domains_follow_the_public_suffix_list() {
        for (name, registered) in [
            ("www.example.com", "example.com"),
            ("example.com", "example.com"),
            ("new.blog.example.co.uk", "example.co.uk"),
            ("a.b.c.example.test", "example.test"),
            ("shop.alice.github.io", "alice.github.io"),
            ("xn--bcher-kva.example", "xn--bcher-kva.example"),
            ("co.uk", "co.uk"),
        ] {
            assert_eq!(registered_domain(name), registered, "{name}");
        }
        let name = DomainName::parse("WWW.Example.CO.UK").unwrap();
        assert_eq!(name.registered_domain(), "example.co.uk");
    }

    #[test]
    fn normalises() {
        assert_eq!(ok("Example.COM"), "example.com");
        assert_eq!(ok("example.com."), "example.com");
        assert_eq!(ok(" www.example.com "), "www.example.com");
        assert_eq!(ok("bücher.example"), "xn--bcher-kva.example");
        assert_eq!(ok("BÜCHER.example"), "xn--bcher-kva.example");
        assert_eq!(ok("xn--bcher-kva.example"), "xn--bcher-kva.example");
        assert_eq!(ok("a-b.c0.example"), "a-b.c0.example");
    }

    #[test]
    fn refuses_with_a_reason() {
        use DomainError::*;
        let cases: &[(&str, DomainError)] = &[
            ("", Empty),
            (".", Empty),
            ("*.example.com", Wildcard),
            ("foo.*.example.com", Wildcard),
            ("192.0.2.1", IpAddress),
            ("::1", IpAddress),
            ("[2001:db8::1]", IpAddress),
            ("localhost", SingleLabel),
            ("a..example", BadLabel(String::new())),
            ("-a.example", BadLabel("-a".into())),
            ("a_b.example", BadCharacter("a_b".into())),
            ("a b.example", BadCharacter("a b".into())),
            ("example.com:443", BadCharacter("com:443".into())),
            ("a.b.123", NumericTld),
        ];
        for (input, want) in cases {
            assert_eq!(
                DomainName::parse(input).as_ref(),
                Err(want),
                "input {input:?}"
            );
        }
        assert!(matches!(
            DomainName::parse(&format!("{}.example", "a".repeat(64))),
            Err(BadLabel(_))
        ));
        let long = [
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(63),
        ]
        .join(".");
        assert_eq!(DomainName::parse(&long), Err(TooLong));
        assert_eq!(
            DomainName::parse("xn--.example"),
            Err(BadLabel("xn--".into()))
        );
    }

    /// A label as an operator types it: letters of either case, digits, inner hyphens.
    const ASCII_LABEL: &str = "[a-zA-Z0-9]([a-zA-Z0-9-]{0,20}[a-zA-Z0-9])?";
    /// A label with at least one letter outside ASCII, which becomes punycode.
    const UNICODE_LABEL: &str = "[a-z0-9äöüéñ]{0,5}[äöüéñ][a-z0-9äöüéñ]{0,5}";

    /// The properties every accepted name has: ASCII, parsed again unchanged, and exactly the
    /// host the filter normalises a request's `:authority` to.
    fn assert_normal(name: &DomainName) -> Result<(), TestCaseError> {
        prop_assert!(name.as_str().is_ascii());
        prop_assert_eq!(DomainName::parse(name.as_str()), Ok(name.clone()));
        prop_assert!(acme_edge_contract::is_normal_host(name.as_str()));
        Ok(())
    }

    proptest! {
        #[test]
        fn never_panics(s in any::<String>()) {
            if let Ok(name) = DomainName::parse(&s) {
                assert_normal(&name)?;
            }
        }

        #[test]
        fn host_names_are_accepted_lower_cased(
            labels in proptest::collection::vec(ASCII_LABEL, 1..5),
            trailing_dot: bool,
            padded: bool,
        ) {
            let name = format!("{}.example", labels.join("."));
            let mut input = if trailing_dot { format!("{name}.") } else { name.clone() };
            if padded {
                input = format!(" {input}\t");
            }
            let parsed = DomainName::parse(&input);
            prop_assert!(parsed.is_ok(), "{:?}: {:?}", input, parsed);
            let parsed = parsed.unwrap();
            prop_assert_eq!(parsed.as_str(), name.to_ascii_lowercase());
            assert_normal(&parsed)?;
        }

        #[test]
        fn internationalised_names_become_punycode(
            labels in proptest::collection::vec(UNICODE_LABEL, 1..4),
            upper: bool,
        ) {
            let name = format!("{}.example", labels.join("."));
            let input = if upper { name.to_uppercase() } else { name.clone() };
            let parsed = DomainName::parse(&input);
            prop_assert!(parsed.is_ok(), "{:?}: {:?}", input, parsed);
            let parsed = parsed.unwrap();
            let punycoded = parsed.as_str().split('.').filter(|l| l.starts_with("xn--"));
            prop_assert_eq!(punycoded.count(), labels.len());
            prop_assert_eq!(DomainName::parse(&name), Ok(parsed.clone()));
            assert_normal(&parsed)?;
        }
    }
}
