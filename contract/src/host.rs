//! The host a challenge belongs to, read from an HTTP `:authority` (or `Host`) value.
//!
//! Normalisation: ASCII lower case; the port (`:5002`) removed; one trailing dot removed;
//! IPv6 literals lose their brackets and take their canonical text form. The result must be a
//! DNS name (labels of `a-z 0-9 -`, 1 to 63 characters, not starting or ending with `-`,
//! 253 characters at most) or an IP literal. Anything else is refused: such a request cannot
//! belong to a challenge we issued, so it never reaches the backend.

use core::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Longest DNS name in text form (RFC 1035 section 2.3.4, less the root dot).
pub const MAX_NAME_LEN: usize = 253;
/// Longest DNS label (RFC 1035 section 2.3.4).
pub const MAX_LABEL_LEN: usize = 63;

/// Why an authority was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostError {
    Empty,
    BadPort,
    BadIpLiteral,
    TooLong,
    BadLabel,
    BadCharacter,
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HostError::Empty => "empty host",
            HostError::BadPort => "malformed port",
            HostError::BadIpLiteral => "malformed IP literal",
            HostError::TooLong => "host name longer than 253 characters",
            HostError::BadLabel => "empty, too long or hyphen-edged label",
            HostError::BadCharacter => "character not allowed in a host name",
        })
    }
}

impl std::error::Error for HostError {}

/// Normalise an HTTP authority (`Example.COM:8080`, `example.com.`, `[::1]:80`) to the host a
/// challenge is stored under (`example.com`, `::1`).
pub fn normalize_host(authority: &str) -> Result<String, HostError> {
    if authority.is_empty() {
        return Err(HostError::Empty);
    }
    if let Some(rest) = authority.strip_prefix('[') {
        return normalize_ipv6(rest);
    }
    let host = match authority.rsplit_once(':') {
        Some((host, port)) => {
            check_port(port)?;
            host
        }
        None => authority,
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() {
        return Err(HostError::Empty);
    }
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok(ip.to_string());
    }
    normalize_dns_name(host)
}

fn normalize_ipv6(rest: &str) -> Result<String, HostError> {
    let (literal, after) = rest.split_once(']').ok_or(HostError::BadIpLiteral)?;
    match after {
        "" => {}
        _ => check_port(after.strip_prefix(':').ok_or(HostError::BadPort)?)?,
    }
    let ip: Ipv6Addr = literal.parse().map_err(|_| HostError::BadIpLiteral)?;
    Ok(ip.to_string())
}

/// RFC 3986 allows an empty port; otherwise 1 to 5 digits, at most 65535.
fn check_port(port: &str) -> Result<(), HostError> {
    if port.is_empty() {
        return Ok(());
    }
    if port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HostError::BadPort);
    }
    match port.parse::<u32>() {
        Ok(p) if p <= 65535 => Ok(()),
        _ => Err(HostError::BadPort),
    }
}

fn normalize_dns_name(host: &str) -> Result<String, HostError> {
    if host.len() > MAX_NAME_LEN {
        return Err(HostError::TooLong);
    }
    let mut last_label = "";
    for label in host.split('.') {
        check_label(label)?;
        last_label = label;
    }
    // A name whose last label is all digits would be read as a (malformed) IPv4 address.
    if last_label.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HostError::BadIpLiteral);
    }
    Ok(host.to_ascii_lowercase())
}

/// One label of a DNS host name (RFC 1123 section 2.1, "LDH"): 1 to [`MAX_LABEL_LEN`] ASCII
/// letters, digits and `-`, neither first nor last `-`. The backend checks the names
/// operators enable with this same rule, so a name it accepts is a host the filter accepts.
pub fn check_label(label: &str) -> Result<(), HostError> {
    if label.is_empty() || label.len() > MAX_LABEL_LEN {
        return Err(HostError::BadLabel);
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(HostError::BadLabel);
    }
    if !label
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(HostError::BadCharacter);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(s: &str) -> String {
        normalize_host(s).unwrap()
    }

    #[test]
    fn normalises() {
        assert_eq!(ok("Example.COM"), "example.com");
        assert_eq!(ok("example.com:5002"), "example.com");
        assert_eq!(ok("example.com."), "example.com");
        assert_eq!(ok("example.com.:80"), "example.com");
        assert_eq!(ok("example.com:"), "example.com");
        assert_eq!(ok("xn--bcher-kva.example"), "xn--bcher-kva.example");
        assert_eq!(ok("localhost"), "localhost");
        assert_eq!(ok("192.0.2.1:80"), "192.0.2.1");
        assert_eq!(ok("[::1]:80"), "::1");
        assert_eq!(ok("[2001:DB8:0::1]"), "2001:db8::1");
    }

    #[test]
    fn refuses() {
        use HostError::*;
        let cases: &[(&str, HostError)] = &[
            ("", Empty),
            (":80", Empty),
            (".", Empty),
            ("example.com..", BadLabel),
            ("a..b", BadLabel),
            ("-a.com", BadLabel),
            ("a-.com", BadLabel),
            ("exa_mple.com", BadCharacter),
            ("exa mple.com", BadCharacter),
            ("example.com:http", BadPort),
            ("example.com:65536", BadPort),
            ("example.com:123456", BadPort),
            ("[::1", BadIpLiteral),
            ("[::1]x", BadPort),
            ("[not-ip]", BadIpLiteral),
            ("1.2.3.999", BadIpLiteral),
            ("::1", BadCharacter),
            ("bücher.example", BadCharacter),
            ("a/b", BadCharacter),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_host(input), Err(*want), "input {input:?}");
        }
        assert_eq!(normalize_host(&"a".repeat(64)), Err(BadLabel));
        let long = [
            "a".repeat(63),
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(63),
        ]
        .join(".");
        assert_eq!(normalize_host(&long), Err(TooLong));
    }

    proptest! {
        #[test]
        fn never_panics_and_output_is_a_fixed_point(s in any::<String>()) {
            if let Ok(host) = normalize_host(&s) {
                prop_assert!(crate::lookup::is_normal_host(&host));
                prop_assert!(!host.is_empty() && host.len() <= MAX_NAME_LEN);
                prop_assert!(host.bytes().all(|b| !b.is_ascii_uppercase()));
            }
        }

        #[test]
        fn dns_names_round_trip(
            labels in proptest::collection::vec("[a-zA-Z0-9]([a-zA-Z0-9-]{0,20}[a-zA-Z0-9])?", 1..5),
            port in proptest::option::of(0u16..),
        ) {
            let name = format!("{}.example", labels.join("."));
            let authority = match port { Some(p) => format!("{name}:{p}"), None => name.clone() };
            let host = normalize_host(&authority).unwrap();
            prop_assert_eq!(&host, &name.to_ascii_lowercase());
            prop_assert_eq!(normalize_host(&host).unwrap(), host);
        }
    }
}
