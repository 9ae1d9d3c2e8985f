//! The local replies the filter sends instead of forwarding a request.

/// Seconds a client is told to wait after a 503: long enough for a backend restart, short
/// enough for a CA's validation retries.
pub const RETRY_AFTER_SECS: &str = "5";

/// A complete local reply: status, headers and body (`None` for HEAD or when empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u32,
    pub headers: Vec<(&'static str, &'static str)>,
    pub body: Option<Vec<u8>>,
}

impl Reply {
    /// The key authorization, exactly as the backend gave it.
    pub fn found(key_authorization: &[u8], head: bool) -> Reply {
        Reply {
            status: 200,
            headers: vec![
                ("content-type", "text/plain"),
                ("cache-control", "no-store"),
            ],
            body: body(key_authorization, head),
        }
    }

    /// No such token for this host, or a token that cannot be one.
    pub fn not_found(head: bool) -> Reply {
        Reply::text(404, vec![], b"not found\n", head)
    }

    /// The `:authority` is not a DNS name or IP literal.
    pub fn bad_host(head: bool) -> Reply {
        Reply::text(400, vec![], b"bad host\n", head)
    }

    /// Challenges are only fetched with GET (and HEAD).
    pub fn method_not_allowed() -> Reply {
        Reply::text(
            405,
            vec![("allow", "GET, HEAD")],
            b"method not allowed\n",
            false,
        )
    }

    /// The backend failed or did not answer in time.
    pub fn unavailable(head: bool) -> Reply {
        let headers = vec![("retry-after", RETRY_AFTER_SECS)];
        Reply::text(503, headers, b"challenge backend unavailable\n", head)
    }

    fn text(
        status: u32,
        mut headers: Vec<(&'static str, &'static str)>,
        text: &[u8],
        head: bool,
    ) -> Reply {
        headers.push(("content-type", "text/plain"));
        headers.push(("cache-control", "no-store"));
        Reply {
            status,
            headers,
            body: body(text, head),
        }
    }
}

fn body(bytes: &[u8], _head: bool) -> Option<Vec<u8>> {
    (!bytes.is_empty()).then(|| bytes.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_replies_have_no_body() {
        assert_eq!(Reply::found(b"k.a", true).body, None);
        assert_eq!(Reply::found(b"k.a", false).body, Some(b"k.a".to_vec()));
        assert_eq!(Reply::not_found(true).body, None);
        assert_eq!(Reply::bad_host(true).body, None);
        assert_eq!(Reply::unavailable(true).body, None);
    }

    #[test]
    fn statuses_and_headers() {
        let found = Reply::found(b"x", false);
        assert_eq!(found.status, 200);
        assert!(found.headers.contains(&("content-type", "text/plain")));
        assert!(found.headers.contains(&("cache-control", "no-store")));
        let r = Reply::method_not_allowed();
        assert_eq!(r.status, 405);
        assert!(r.headers.contains(&("allow", "GET, HEAD")));
        let r = Reply::unavailable(false);
        assert_eq!(r.status, 503);
        assert!(r.headers.contains(&("retry-after", RETRY_AFTER_SECS)));
        assert_eq!(Reply::bad_host(false).status, 400);
        assert_eq!(Reply::not_found(false).status, 404);
    }
}
