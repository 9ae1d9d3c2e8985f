//! The challenge lookup request, filter -> backend.
//!
//! ```text
//! GET /acme-edge/v1/challenge/{host}/{token}
//! 200 text/plain  body = key authorization        (token held for that host)
//! 404                                              (no such token for that host)
//! ```
//!
//! `{host}` is a [`normalize_host`] result and `{token}` a
//! [`validate_token`] result; neither contains `/`, `?`, `%` or
//! anything else that would need escaping, so the path is built by plain concatenation.

use crate::{normalize_host, validate_token};

/// Path prefix of the backend's challenge lookup endpoint.
pub const LOOKUP_PREFIX: &str = "/acme-edge/v1/challenge/";

/// The path the filter requests for `host` (already normalised) and `token` (already
/// validated).
pub fn lookup_path(host: &str, token: &str) -> String {
    let mut path = String::with_capacity(LOOKUP_PREFIX.len() + host.len() + 1 + token.len());
    path.push_str(LOOKUP_PREFIX);
    path.push_str(host);
    path.push('/');
    path.push_str(token);
    path
}

/// Read `(host, token)` back from a lookup path; `None` unless both parts are well formed and
/// the host is already in normal form.
pub fn parse_lookup_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix(LOOKUP_PREFIX)?;
    let (host, token) = rest.split_once('/')?;
    if !is_normal_host(host) {
        return None;
    }
    Some((host, validate_token(token).ok()?))
}

/// True when `host` is exactly what [`normalize_host`] makes of it (IPv6 without brackets).
pub fn is_normal_host(host: &str) -> bool {
    let normal = if host.contains(':') {
        normalize_host(&format!("[{host}]"))
    } else {
        normalize_host(host)
    };
    normal.is_ok_and(|n| n == host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trips() {
        let p = lookup_path("example.com", "tok_en-1");
        assert_eq!(p, "/acme-edge/v1/challenge/example.com/tok_en-1");
        assert_eq!(parse_lookup_path(&p), Some(("example.com", "tok_en-1")));
        let p = lookup_path("::1", "t");
        assert_eq!(parse_lookup_path(&p), Some(("::1", "t")));
    }

    #[test]
    fn refuses_malformed() {
        for p in [
            "/acme-edge/v1/challenge/example.com",
            "/acme-edge/v1/challenge/example.com/",
            "/acme-edge/v1/challenge/Example.com/t",
            "/acme-edge/v1/challenge/example.com:80/t",
            "/acme-edge/v1/challenge/example.com/t/u",
            "/acme-edge/v1/challenge//t",
            "/acme-edge/v1/challenge/0:0::1/t",
            "/other/example.com/t",
        ] {
            assert_eq!(parse_lookup_path(p), None, "{p}");
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = parse_lookup_path(&s);
            let _ = parse_lookup_path(&format!("{LOOKUP_PREFIX}{s}"));
        }
    }
}
