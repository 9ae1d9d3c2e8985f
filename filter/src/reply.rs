//! The local replies the filter sends instead of forwarding a request.

/// Seconds a client is told to wait after a 503: long enough for a backend restart, short
/// enough for a CA's validation retries.
pub const RETRY_AFTER_SECS: &str = "5";

/// A complete local reply: status, headers and body.
///
/// HEAD requests get the same reply: Envoy sends only its headers (with the `content-length`
/// of the body a GET would get), which is what HTTP asks of a HEAD answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u32,
    pub headers: Vec<(&'static str, &'static str)>,
    pub body: Option<Vec<u8>>,
}

impl Reply {
    /// The key authorization, exactly as the backend gave it.
    pub fn found(key_authorization: &[u8]) -> Reply {
        Reply {
            status: 200,
            headers: vec![
                ("content-type", "text/plain"),
                ("cache-control", "no-store"),
            ],
            body: body(key_authorization),
        }
    }

    /// No such token for this host, or a token that cannot be one.
    pub fn not_found() -> Reply {
        Reply::text(404, vec![], b"not found\n")
    }

    /// The `:authority` is not a DNS name or IP literal.
    pub fn bad_host() -> Reply {
        Reply::text(400, vec![], b"bad host\n")
    }

    /// Challenges are only fetched with GET (and HEAD).
    pub fn method_not_allowed() -> Reply {
        Reply::text(405, vec![("allow", "GET, HEAD")], b"method not allowed\n")
    }

    /// The backend failed or did not answer in time.
    pub fn unavailable() -> Reply {
        let headers = vec![("retry-after", RETRY_AFTER_SECS)];
        Reply::text(503, headers, b"challenge backend unavailable\n")
    }

    fn text(status: u32, mut headers: Vec<(&'static str, &'static str)>, text: &[u8]) -> Reply {
        headers.push(("content-type", "text/plain"));
        headers.push(("cache-control", "no-store"));
        Reply {
            status,
            headers,
            body: body(text),
        }
    }
}

fn body(bytes: &[u8]) -> Option<Vec<u8>> {
    (!bytes.is_empty()).then(|| bytes.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_headers() {
        let found = Reply::found(b"x");
        assert_eq!(found.body.as_deref(), Some(&b"x"[..]));
        assert_eq!(found.status, 200);
        assert!(found.headers.contains(&("content-type", "text/plain")));
        assert!(found.headers.contains(&("cache-control", "no-store")));
        let r = Reply::method_not_allowed();
        assert_eq!(r.status, 405);
        assert!(r.headers.contains(&("allow", "GET, HEAD")));
        let r = Reply::unavailable();
        assert_eq!(r.status, 503);
        assert!(r.headers.contains(&("retry-after", RETRY_AFTER_SECS)));
        assert_eq!(Reply::bad_host().status, 400);
        assert_eq!(Reply::not_found().status, 404);
    }
}
