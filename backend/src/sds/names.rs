//! Secret names as Envoy requests them, and the key we look them up under.
//!
//! Envoy's SNI mapper passes the client's SNI through unchanged, so a client may ask for
//! `Example.COM` or `example.com.`. The name Envoy subscribed to is the one it must get back
//! (it matches responses by exact name); the certificate is looked up under the normal form.

use acme_edge_contract::normalize_host;

/// The xDS wildcard resource name ("everything of this type").
pub const WILDCARD: &str = "*";

/// What a requested secret name refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requested {
    /// `*`: every secret the server knows.
    Wildcard,
    /// A domain, in normal form (the certificate source's key).
    Domain(String),
    /// Not a name any certificate can be issued for: answered as not existing.
    Invalid,
}

/// Classify a requested secret name. Total: never panics, whatever Envoy (or a client's SNI)
/// sends.
pub fn classify(raw: &str) -> Requested {
    if raw == WILDCARD {
        return Requested::Wildcard;
    }
    // `normalize_host` reads `:` as a port separator and `[..]` as an IPv6 literal; neither
    // has a meaning in an SNI (RFC 6066 section 3 allows host names only).
    if raw.contains([':', '[', ']']) {
        return Requested::Invalid;
    }
    match normalize_host(raw) {
        Ok(name) => Requested::Domain(name),
        Err(_) => Requested::Invalid,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn classifies() {
        let domain = |s: &str| Requested::Domain(s.to_owned());
        assert_eq!(classify("*"), Requested::Wildcard);
        assert_eq!(classify("example.com"), domain("example.com"));
        assert_eq!(classify("Example.COM."), domain("example.com"));
        assert_eq!(classify("192.0.2.1"), domain("192.0.2.1"));
        for bad in [
            "",
            ".",
            "example.com:443",
            "[::1]",
            "::1",
            "a..b",
            "*.example.com",
            "a b",
        ] {
            assert_eq!(classify(bad), Requested::Invalid, "{bad:?}");
        }
        assert_eq!(classify(&"a".repeat(300)), Requested::Invalid);
    }

    proptest! {
        #[test]
        fn never_panics_and_domains_are_normal(raw in any::<String>()) {
            if let Requested::Domain(name) = classify(&raw) {
                prop_assert_eq!(classify(&name), Requested::Domain(name.clone()));
                prop_assert!(!name.bytes().any(|b| b.is_ascii_uppercase()));
            }
        }
    }
}
