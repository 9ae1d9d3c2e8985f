//! Deciding, from the request headers alone, whether a request is a challenge fetch, and if so
//! which host and token it asks for.
//!
//! Checks run in this order, each answered without asking the backend:
//! 1. path outside the prefix: not ours, passes untouched;
//! 2. token (path after the prefix, query string dropped) not 1-255 base64url characters: 404,
//!    since no challenge can live there;
//! 3. `:authority` missing or not a DNS name / IP literal: 400, since the request is malformed;
//! 4. method other than GET or HEAD: 405 with `allow: GET, HEAD`.
//!
//! Header values arrive as bytes; anything that is not UTF-8 fails the check it reaches.

use crate::reply::Reply;
use acme_edge_contract::{normalize_host, validate_token};

/// What the request headers say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not a challenge path: the filter stays out of the way.
    Pass,
    /// A challenge path that cannot be served: answer this right away.
    Reject(Reply),
    /// A well-formed challenge fetch: look it up.
    Lookup(Challenge),
}

/// A well-formed challenge fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Normalised host (lower case, no port, no trailing dot).
    pub host: String,
    pub token: String,
}

/// Classify a request by its `:method`, `:path` and `:authority` header values.
pub fn classify(
    prefix: &str,
    method: Option<&[u8]>,
    path: &[u8],
    authority: Option<&[u8]>,
) -> Verdict {
    let Some(rest) = path.strip_prefix(prefix.as_bytes()) else {
        return Verdict::Pass;
    };
    let Some(token) = token(rest) else {
        return Verdict::Reject(Reply::not_found());
    };
    let Some(host) = authority.and_then(host) else {
        return Verdict::Reject(Reply::bad_host());
    };
    match method {
        Some(b"GET") | Some(b"HEAD") => Verdict::Lookup(Challenge {
            host,
            token: token.to_owned(),
        }),
        _ => Verdict::Reject(Reply::method_not_allowed()),
    }
}

fn token(rest: &[u8]) -> Option<&str> {
    let end = rest.iter().position(|&b| b == b'?').unwrap_or(rest.len());
    let raw = std::str::from_utf8(rest.get(..end)?).ok()?;
    validate_token(raw).ok()
}

fn host(authority: &[u8]) -> Option<String> {
    normalize_host(std::str::from_utf8(authority).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use acme_edge_contract::ACME_CHALLENGE_PREFIX as P;
    use proptest::prelude::*;

    fn get(path: &str, authority: &str) -> Verdict {
        classify(P, Some(b"GET"), path.as_bytes(), Some(authority.as_bytes()))
    }

    fn lookup(host: &str, token: &str) -> Verdict {
        Verdict::Lookup(Challenge {
            host: host.into(),
            token: token.into(),
        })
    }

    #[test]
    fn other_paths_pass() {
        for path in [
            "/",
            "/index.html",
            "/.well-known/acme-challenge",
            "/.well-known/other/x",
        ] {
            assert_eq!(get(path, "example.com"), Verdict::Pass, "{path}");
        }
        // Prefix match is exact bytes: case matters, as in Envoy's route match.
        assert_eq!(get("/.WELL-KNOWN/acme-challenge/t", "a.com"), Verdict::Pass);
    }

    #[test]
    fn well_formed_challenges_are_looked_up() {
        assert_eq!(
            get("/.well-known/acme-challenge/tok_1-x", "Example.COM.:5002"),
            lookup("example.com", "tok_1-x")
        );
        assert_eq!(get(&format!("{P}t?x=1"), "a.com"), lookup("a.com", "t"));
        assert_eq!(get(&format!("{P}t"), "[::1]:80"), lookup("::1", "t"));
        let head = classify(P, Some(b"HEAD"), format!("{P}t").as_bytes(), Some(b"a.com"));
        assert_eq!(head, lookup("a.com", "t"));
    }

    #[test]
    fn bad_tokens_are_404() {
        let long = "a".repeat(256);
        for token in ["", "?q", "a/b", "a.b", "a%2fb", "a=", long.as_str(), "t#f"] {
            let v = get(&format!("{P}{token}"), "a.com");
            assert_eq!(v, Verdict::Reject(Reply::not_found()), "{token:?}");
        }
        let v = classify(
            P,
            Some(b"GET"),
            b"/.well-known/acme-challenge/\xff",
            Some(b"a.com"),
        );
        assert_eq!(v, Verdict::Reject(Reply::not_found()));
    }

    #[test]
    fn bad_hosts_are_400() {
        for host in ["", "exa_mple.com", "a..b", "a.com:http", "[::1"] {
            let v = get(&format!("{P}t"), host);
            assert_eq!(v, Verdict::Reject(Reply::bad_host()), "{host:?}");
        }
        let v = classify(P, Some(b"GET"), format!("{P}t").as_bytes(), None);
        assert_eq!(v, Verdict::Reject(Reply::bad_host()));
        let v = classify(P, Some(b"GET"), format!("{P}t").as_bytes(), Some(b"\xc3("));
        assert_eq!(v, Verdict::Reject(Reply::bad_host()));
    }

    #[test]
    fn other_methods_are_405() {
        for m in [&b"POST"[..], b"PUT", b"get", b"OPTIONS", b""] {
            let v = classify(P, Some(m), format!("{P}t").as_bytes(), Some(b"a.com"));
            assert_eq!(v, Verdict::Reject(Reply::method_not_allowed()));
        }
        let v = classify(P, None, format!("{P}t").as_bytes(), Some(b"a.com"));
        assert_eq!(v, Verdict::Reject(Reply::method_not_allowed()));
    }

    #[test]
    fn custom_prefix() {
        let v = classify("/acme/", Some(b"GET"), b"/acme/t", Some(b"a.com"));
        assert_eq!(v, lookup("a.com", "t"));
        let v = classify(
            "/acme/",
            Some(b"GET"),
            format!("{P}t").as_bytes(),
            Some(b"a.com"),
        );
        assert_eq!(v, Verdict::Pass);
    }

    proptest! {
        #[test]
        fn never_panics(
            method in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8)),
            path in proptest::collection::vec(any::<u8>(), 0..300),
            authority in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
        ) {
            let _ = classify(P, method.as_deref(), &path, authority.as_deref());
            let mut challenge = P.as_bytes().to_vec();
            challenge.extend_from_slice(&path);
            let _ = classify(P, method.as_deref(), &challenge, authority.as_deref());
        }

        #[test]
        fn lookups_carry_valid_parts(
            token in "[A-Za-z0-9_-]{1,255}",
            query in proptest::option::of("[ -~]{0,20}"),
            host in "[a-zA-Z][a-zA-Z0-9]{0,10}(\\.[a-zA-Z][a-zA-Z0-9]{0,10}){0,3}",
        ) {
            let path = match query { Some(q) => format!("{P}{token}?{q}"), None => format!("{P}{token}") };
            let v = get(&path, &host);
            prop_assert_eq!(v, lookup(&host.to_ascii_lowercase(), &token));
        }

        #[test]
        fn outside_prefix_always_passes(path in "/[a-z.-]{0,40}") {
            prop_assume!(!path.starts_with(P));
            prop_assert_eq!(get(&path, "bad host"), Verdict::Pass);
        }
    }
}
