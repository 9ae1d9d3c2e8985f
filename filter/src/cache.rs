//! The process-wide answer cache, kept in proxy-wasm shared data.
//!
//! Shared data is shared by every worker's VM, and Envoy never deletes a key, so the cache is
//! a fixed table: [`SLOTS`] keys per backend cluster, `acme_edge.cache.<cluster>.<slot>`, the
//! slot chosen by an FNV-1a hash of host and token. A new answer overwrites whatever its slot
//! held (expired or not: a collision only costs one more backend call later). Each value
//! holds its own host and token, so a collision can never serve another challenge's answer,
//! and at most [`MAX_ENTRY_LEN`] bytes, so the whole cache stays under about 1.6 MB per
//! cluster whatever clients send.
//!
//! Value layout: `expires_at_ms` (u64, big endian), host length (u8), token length (u8),
//! host, token, key authorization.

use crate::outcome::MAX_KEY_AUTHORIZATION_LEN;
use acme_edge_contract::{MAX_TOKEN_LEN, host::MAX_NAME_LEN};

/// Slots per backend cluster. Only a handful of challenges are validated at any moment; 1024
/// keeps collisions rare while bounding memory.
pub const SLOTS: u64 = 1_024;

const HEADER_LEN: usize = 8 + 1 + 1;
/// The largest value ever stored.
pub const MAX_ENTRY_LEN: usize =
    HEADER_LEN + MAX_NAME_LEN + MAX_TOKEN_LEN + MAX_KEY_AUTHORIZATION_LEN;

/// The shared-data key of the slot for `host` and `token`.
pub fn slot_key(cluster: &str, host: &str, token: &str) -> String {
    let slot = fnv1a(&[host.as_bytes(), b"/", token.as_bytes()]) % SLOTS;
    format!("acme_edge.cache.{cluster}.{slot}")
}

/// The value to store, or `None` when a part is too long to be stored (then it is not cached).
pub fn encode(
    host: &str,
    token: &str,
    key_authorization: &[u8],
    expires_at_ms: u64,
) -> Option<Vec<u8>> {
    let host_len = u8::try_from(host.len()).ok()?;
    let token_len = u8::try_from(token.len()).ok()?;
    if key_authorization.len() > MAX_KEY_AUTHORIZATION_LEN {
        return None;
    }
    let mut v = Vec::with_capacity(HEADER_LEN + host.len() + token.len() + key_authorization.len());
    v.extend_from_slice(&expires_at_ms.to_be_bytes());
    v.push(host_len);
    v.push(token_len);
    v.extend_from_slice(host.as_bytes());
    v.extend_from_slice(token.as_bytes());
    v.extend_from_slice(key_authorization);
    Some(v)
}

/// The key authorization stored in `value` for exactly `host` and `token`, if it has not
/// expired at `now_ms`. Malformed values (another version, truncation) read as a miss.
pub fn lookup<'v>(value: &'v [u8], host: &str, token: &str, now_ms: u64) -> Option<&'v [u8]> {
    let expires = u64::from_be_bytes(value.get(..8)?.try_into().ok()?);
    let host_len = usize::from(*value.get(8)?);
    let token_len = usize::from(*value.get(9)?);
    let rest = value.get(HEADER_LEN..)?;
    let (stored_host, rest) = rest.split_at_checked(host_len)?;
    let (stored_token, key_authorization) = rest.split_at_checked(token_len)?;
    let fresh = now_ms < expires;
    let same = stored_host == host.as_bytes() && stored_token == token.as_bytes();
    (fresh && same && !key_authorization.is_empty()).then_some(key_authorization)
}

fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in parts.iter().flat_map(|p| p.iter()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip_and_expiry() {
        let v = encode("a.com", "tok", b"tok.thumb", 1_000).unwrap();
        assert_eq!(lookup(&v, "a.com", "tok", 999), Some(&b"tok.thumb"[..]));
        assert_eq!(lookup(&v, "a.com", "tok", 1_000), None);
        assert_eq!(lookup(&v, "b.com", "tok", 0), None);
        assert_eq!(lookup(&v, "a.com", "tok2", 0), None);
        assert_eq!(lookup(&v, "a.co", "mtok", 0), None);
    }

    #[test]
    fn refuses_oversized_parts() {
        assert!(encode(&"a".repeat(256), "t", b"k", 1).is_none());
        assert!(encode("a", "t", &vec![b'k'; MAX_KEY_AUTHORIZATION_LEN + 1], 1).is_none());
        let v = encode(
            &"a".repeat(MAX_NAME_LEN),
            &"t".repeat(MAX_TOKEN_LEN),
            &vec![b'k'; MAX_KEY_AUTHORIZATION_LEN],
            1,
        )
        .unwrap();
        assert_eq!(v.len(), MAX_ENTRY_LEN);
    }

    #[test]
    fn slot_keys_are_bounded_and_stable() {
        let k = slot_key("acme_backend", "a.com", "t");
        assert_eq!(k, slot_key("acme_backend", "a.com", "t"));
        let slot: u64 = k.rsplit('.').next().unwrap().parse().unwrap();
        assert!(slot < SLOTS);
        assert!(k.starts_with("acme_edge.cache.acme_backend."));
    }

    #[test]
    fn truncated_values_miss() {
        let v = encode("a.com", "tok", b"k", u64::MAX).unwrap();
        for len in 0..v.len() {
            assert_eq!(lookup(&v[..len], "a.com", "tok", 0), None, "len {len}");
        }
    }

    proptest! {
        #[test]
        fn lookup_never_panics(v in proptest::collection::vec(any::<u8>(), 0..600),
                               now: u64) {
            let _ = lookup(&v, "a.com", "t", now);
        }

        #[test]
        fn round_trips(host in "[a-z.]{1,253}", token in "[A-Za-z0-9_-]{1,255}",
                       ka in proptest::collection::vec(any::<u8>(), 1..=MAX_KEY_AUTHORIZATION_LEN),
                       exp in 1u64..) {
            let v = encode(&host, &token, &ka, exp).unwrap();
            prop_assert!(v.len() <= MAX_ENTRY_LEN);
            prop_assert_eq!(lookup(&v, &host, &token, exp - 1), Some(ka.as_slice()));
            prop_assert_eq!(lookup(&v, &host, &token, exp), None);
        }
    }
}
