//! Everything in the filter that reads bytes a client, the backend or an operator controls:
//! the plugin configuration, the request headers, the backend's answer and cached values.
//! Besides "never panics", it checks the promises the proxy-wasm glue relies on.

#![no_main]

use acme_edge_contract::{ACME_CHALLENGE_PREFIX, lookup_path, parse_lookup_path};
use acme_edge_filter::cache;
use acme_edge_filter::outcome::{MAX_KEY_AUTHORIZATION_LEN, Outcome, decide};
use acme_edge_filter::request::{Verdict, classify};
use acme_edge_filter::settings::{Settings, parse_settings};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_settings(data);

    // Input split as method \0 path \0 authority; the path also tried under the prefix.
    let mut parts = data.splitn(3, |&b| b == 0);
    let method = parts.next();
    let path = parts.next().unwrap_or_default();
    let authority = parts.next();
    let mut challenge = ACME_CHALLENGE_PREFIX.as_bytes().to_vec();
    challenge.extend_from_slice(path);
    for p in [path, challenge.as_slice()] {
        if let Verdict::Lookup(c) = classify(ACME_CHALLENGE_PREFIX, method, p, authority) {
            // What goes to the backend must read back as the same host and token.
            let lookup = lookup_path(&c.host, &c.token);
            assert_eq!(
                parse_lookup_path(&lookup),
                Some((c.host.as_str(), c.token.as_str()))
            );
            // Every valid challenge fits a cache slot.
            let value = cache::encode(&c.host, &c.token, b"k", 2).expect("fits a slot");
            assert_eq!(cache::lookup(&value, &c.host, &c.token, 1), Some(&b"k"[..]));
        }
    }

    let _ = cache::lookup(data, "a.example", "t", 0);

    let (status, body) = data.split_at(data.len().min(3));
    if let Outcome::Serve(ka) = decide(&Settings::default(), Some(status), Some(body)) {
        assert!(!ka.is_empty() && ka.len() <= MAX_KEY_AUTHORIZATION_LEN);
    }
});
