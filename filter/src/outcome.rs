//! Turning the backend's answer to a lookup into what the client gets.

use crate::counters::Counter;
use crate::reply::Reply;
use crate::settings::{Fallback, Settings};

/// The longest key authorization accepted from the backend. A real one is the token (at most
/// 255 characters), a dot and a 43-character thumbprint; anything much longer is not one, and
/// bounding it bounds what a cache slot holds.
pub const MAX_KEY_AUTHORIZATION_LEN: usize = 1_024;

/// Lookups sent per challenge request at most: a failed one is tried once more.
pub const LOOKUP_ATTEMPTS: u8 = 2;

/// Whether a lookup's answer is worth another try: anything but "found" (200) or "missing"
/// (404), as no answer at all (`None`), a 5xx, or Envoy's own 503/504 for a broken
/// connection or a timeout.
pub fn worth_retrying(status: Option<&[u8]>) -> bool {
    !matches!(status, Some(b"200" | b"404"))
}

/// What the filter does once the backend has answered (or failed to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Found: answer with this key authorization (and cache it).
    Serve(Vec<u8>),
    /// Answer the client with this reply.
    Respond(Reply, Counter),
    /// Let the request continue to the normal routes.
    Pass(Counter),
}

/// Decide from the lookup's `:status` (`None` on timeout or connection failure, when Envoy
/// reports no headers) and body.
pub fn decide(settings: &Settings, status: Option<&[u8]>, body: Option<&[u8]>) -> Outcome {
    match status {
        Some(b"200") => match body {
            Some(b) if !b.is_empty() && b.len() <= MAX_KEY_AUTHORIZATION_LEN => {
                Outcome::Serve(b.to_vec())
            }
            _ => error(settings),
        },
        Some(b"404") => match settings.on_miss {
            Fallback::Respond => Outcome::Respond(Reply::not_found(), Counter::NotFound),
            Fallback::Pass => Outcome::Pass(Counter::NotFound),
        },
        _ => error(settings),
    }
}

/// The outcome when no lookup could even be sent (e.g. the cluster is unknown to Envoy).
pub fn error(settings: &Settings) -> Outcome {
    match settings.on_error {
        Fallback::Respond => Outcome::Respond(Reply::unavailable(), Counter::BackendErrors),
        Fallback::Pass => Outcome::Pass(Counter::BackendErrors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn with(on_miss: Fallback, on_error: Fallback) -> Settings {
        Settings {
            on_miss,
            on_error,
            ..Settings::default()
        }
    }

    #[test]
    fn only_failures_are_tried_again() {
        assert!(!worth_retrying(Some(b"200")));
        assert!(!worth_retrying(Some(b"404")));
        for failed in [
            None,
            Some(&b"503"[..]),
            Some(b"504"),
            Some(b"500"),
            Some(b"400"),
        ] {
            assert!(worth_retrying(failed), "{failed:?}");
        }
    }

    #[test]
    fn found_is_served() {
        let s = Settings::default();
        let o = decide(&s, Some(b"200"), Some(b"t.thumb"));
        assert_eq!(o, Outcome::Serve(b"t.thumb".to_vec()));
    }

    #[test]
    fn miss_follows_on_miss() {
        let s = with(Fallback::Respond, Fallback::Pass);
        let o = decide(&s, Some(b"404"), Some(b"x"));
        assert_eq!(o, Outcome::Respond(Reply::not_found(), Counter::NotFound));
        let s = with(Fallback::Pass, Fallback::Respond);
        assert_eq!(
            decide(&s, Some(b"404"), None),
            Outcome::Pass(Counter::NotFound)
        );
    }

    #[test]
    fn errors_follow_on_error() {
        let respond = with(Fallback::Pass, Fallback::Respond);
        let pass = with(Fallback::Respond, Fallback::Pass);
        let too_long = vec![b'a'; MAX_KEY_AUTHORIZATION_LEN + 1];
        type StatusAndBody<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);
        let cases: [StatusAndBody; 7] = [
            (None, None),
            (Some(b"500"), Some(b"x")),
            (Some(b"503"), None),
            (Some(b"200"), None),
            (Some(b"200"), Some(b"")),
            (Some(b"200"), Some(&too_long)),
            (Some(b"20"), Some(b"x")),
        ];
        for (status, body) in cases {
            assert_eq!(
                decide(&respond, status, body),
                Outcome::Respond(Reply::unavailable(), Counter::BackendErrors)
            );
            assert_eq!(
                decide(&pass, status, body),
                Outcome::Pass(Counter::BackendErrors)
            );
        }
    }

    proptest! {
        #[test]
        fn total(status in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..5)),
                 body in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..1100))) {
            let o = decide(&Settings::default(), status.as_deref(), body.as_deref());
            if let Outcome::Serve(ka) = o {
                prop_assert_eq!(status.as_deref(), Some(&b"200"[..]));
                prop_assert!(!ka.is_empty() && ka.len() <= MAX_KEY_AUTHORIZATION_LEN);
            }
        }
    }
}
