//! The filter's settings: the JSON plugin configuration, parsed once in `on_configure`.
//!
//! ```json
//! {"cluster": "acme_backend", "timeout_ms": 2000, "prefix": "/.well-known/acme-challenge/",
//!  "on_miss": "respond", "on_error": "respond", "enabled": true, "cache_ttl_ms": 10000}
//! ```
//!
//! Every key is optional; an empty configuration means all defaults. Unknown keys, wrong
//! types and out-of-range values are all reported (not only the first), and any of them makes
//! the filter refuse the configuration, so Envoy refuses it too.

use acme_edge_contract::ACME_CHALLENGE_PREFIX;
use serde_json::{Map, Value};
use std::fmt;

/// Envoy cluster the lookups go to, unless configured.
pub const DEFAULT_CLUSTER: &str = "acme_backend";
/// Lookup timeout. A CA waits about 10 s for an answer; 2 s leaves time for its retries while
/// bounding how long a stuck backend holds a request.
pub const DEFAULT_TIMEOUT_MS: u64 = 2_000;
/// The longest lookup timeout accepted: beyond this a CA has given up anyway.
pub const MAX_TIMEOUT_MS: u64 = 60_000;
/// How long a found answer is reused. CAs validate from several vantage points within a few
/// seconds; 10 s covers one validation round while a revoked token disappears quickly.
pub const DEFAULT_CACHE_TTL_MS: u64 = 10_000;
/// The longest cache lifetime accepted: an answer is only useful during one validation.
pub const MAX_CACHE_TTL_MS: u64 = 300_000;
/// The longest accepted prefix; a longer one is a configuration mistake.
const MAX_PREFIX_LEN: usize = 1_024;

/// What to do when the backend gives no answer to hand out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// Answer the client ourselves (404 on a miss, 503 on an error).
    Respond,
    /// Let the request continue to the normal routes (e.g. a customer's own ACME client).
    Pass,
}

/// The parsed plugin configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub cluster: String,
    pub timeout_ms: u64,
    pub prefix: String,
    pub on_miss: Fallback,
    pub on_error: Fallback,
    pub enabled: bool,
    /// 0 turns the cache off.
    pub cache_ttl_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            cluster: DEFAULT_CLUSTER.to_owned(),
            timeout_ms: DEFAULT_TIMEOUT_MS,
            prefix: ACME_CHALLENGE_PREFIX.to_owned(),
            on_miss: Fallback::Respond,
            on_error: Fallback::Respond,
            enabled: true,
            cache_ttl_ms: DEFAULT_CACHE_TTL_MS,
        }
    }
}

/// One problem with the plugin configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("configuration is not valid JSON: {0}")]
    NotJson(String),
    #[error("configuration must be a JSON object")]
    NotAnObject,
    #[error("unknown key `{0}`")]
    UnknownKey(String),
    #[error("key `{key}`: expected {expected}")]
    BadValue {
        key: &'static str,
        expected: &'static str,
    },
}

/// All problems found in one configuration, reported together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsErrors(pub Vec<SettingsError>);

impl fmt::Display for SettingsErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SettingsErrors {}

/// Parse the plugin configuration bytes (possibly empty) into [`Settings`].
pub fn parse_settings(raw: &[u8]) -> Result<Settings, SettingsErrors> {
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Ok(Settings::default());
    }
    let value: Value = serde_json::from_slice(raw)
        .map_err(|e| SettingsErrors(vec![SettingsError::NotJson(e.to_string())]))?;
    match value {
        Value::Object(map) => from_map(&map),
        _ => Err(SettingsErrors(vec![SettingsError::NotAnObject])),
    }
}

fn from_map(map: &Map<String, Value>) -> Result<Settings, SettingsErrors> {
    let mut settings = Settings::default();
    let mut errors = Vec::new();
    for (key, value) in map {
        if let Err(e) = apply(&mut settings, key, value) {
            errors.push(e);
        }
    }
    if errors.is_empty() {
        Ok(settings)
    } else {
        Err(SettingsErrors(errors))
    }
}

fn apply(s: &mut Settings, key: &str, value: &Value) -> Result<(), SettingsError> {
    match key {
        "cluster" => s.cluster = cluster(value).ok_or(bad("cluster", CLUSTER))?,
        "timeout_ms" => {
            s.timeout_ms = integer(value, 1, MAX_TIMEOUT_MS).ok_or(bad("timeout_ms", TIMEOUT))?
        }
        "prefix" => s.prefix = prefix(value).ok_or(bad("prefix", PREFIX))?,
        "on_miss" => s.on_miss = fallback(value).ok_or(bad("on_miss", FALLBACK))?,
        "on_error" => s.on_error = fallback(value).ok_or(bad("on_error", FALLBACK))?,
        "enabled" => s.enabled = value.as_bool().ok_or(bad("enabled", "true or false"))?,
        "cache_ttl_ms" => {
            s.cache_ttl_ms =
                integer(value, 0, MAX_CACHE_TTL_MS).ok_or(bad("cache_ttl_ms", CACHE_TTL))?
        }
        other => return Err(SettingsError::UnknownKey(other.to_owned())),
    }
    Ok(())
}

const CLUSTER: &str = "a non-empty string of at most 255 printable ASCII characters";
const TIMEOUT: &str = "an integer from 1 to 60000";
const PREFIX: &str = "a string starting and ending with `/`, printable ASCII, at most 1024 long";
const FALLBACK: &str = "\"respond\" or \"pass\"";
const CACHE_TTL: &str = "an integer from 0 (off) to 300000";

fn bad(key: &'static str, expected: &'static str) -> SettingsError {
    SettingsError::BadValue { key, expected }
}

fn cluster(value: &Value) -> Option<String> {
    let s = value.as_str()?;
    let ok = !s.is_empty() && s.len() <= 255 && s.bytes().all(|b| b.is_ascii_graphic());
    ok.then(|| s.to_owned())
}

fn integer(value: &Value, min: u64, max: u64) -> Option<u64> {
    value.as_u64().filter(|n| (min..=max).contains(n))
}

fn prefix(value: &Value) -> Option<String> {
    let s = value.as_str()?;
    let ok = s.len() <= MAX_PREFIX_LEN
        && s.starts_with('/')
        && s.ends_with('/')
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#');
    ok.then(|| s.to_owned())
}

fn fallback(value: &Value) -> Option<Fallback> {
    match value.as_str()? {
        "respond" => Some(Fallback::Respond),
        "pass" => Some(Fallback::Pass),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(s: &str) -> Result<Settings, SettingsErrors> {
        parse_settings(s.as_bytes())
    }

    fn errors(s: &str) -> Vec<SettingsError> {
        parse(s).expect_err(s).0
    }

    #[test]
    fn empty_means_defaults() {
        assert_eq!(parse(""), Ok(Settings::default()));
        assert_eq!(parse(" \n"), Ok(Settings::default()));
        assert_eq!(parse("{}"), Ok(Settings::default()));
        let d = Settings::default();
        assert_eq!(d.cluster, "acme_backend");
        assert_eq!(d.timeout_ms, 2000);
        assert_eq!(d.prefix, "/.well-known/acme-challenge/");
        assert_eq!(
            (d.on_miss, d.on_error),
            (Fallback::Respond, Fallback::Respond)
        );
        assert!(d.enabled);
        assert_eq!(d.cache_ttl_ms, 10_000);
    }

    #[test]
    fn reads_every_key() {
        let s = parse(
            r#"{"cluster":"b","timeout_ms":5,"prefix":"/x/","on_miss":"pass",
                "on_error":"pass","enabled":false,"cache_ttl_ms":0}"#,
        )
        .unwrap();
        let want = Settings {
            cluster: "b".into(),
            timeout_ms: 5,
            prefix: "/x/".into(),
            on_miss: Fallback::Pass,
            on_error: Fallback::Pass,
            enabled: false,
            cache_ttl_ms: 0,
        };
        assert_eq!(s, want);
    }

    #[test]
    fn reports_every_bad_key() {
        let errs = errors(r#"{"clustr":"x","timeout_ms":"1","on_miss":"drop","enabled":1}"#);
        assert_eq!(errs.len(), 4, "{errs:?}");
        assert!(errs.contains(&SettingsError::UnknownKey("clustr".into())));
        assert!(errs.contains(&bad("timeout_ms", TIMEOUT)));
        assert!(errs.contains(&bad("on_miss", FALLBACK)));
        assert!(errs.contains(&bad("enabled", "true or false")));
        let text = SettingsErrors(errs).to_string();
        assert!(text.contains("unknown key `clustr`"), "{text}");
        assert!(text.contains("key `timeout_ms`"), "{text}");
    }

    #[test]
    fn refuses_bad_values() {
        let cases = [
            (r#"{"cluster":""}"#, "cluster"),
            (r#"{"cluster":"a b"}"#, "cluster"),
            (r#"{"cluster":7}"#, "cluster"),
            (r#"{"timeout_ms":0}"#, "timeout_ms"),
            (r#"{"timeout_ms":60001}"#, "timeout_ms"),
            (r#"{"timeout_ms":-1}"#, "timeout_ms"),
            (r#"{"timeout_ms":1.5}"#, "timeout_ms"),
            (r#"{"prefix":"x/"}"#, "prefix"),
            (r#"{"prefix":"/x"}"#, "prefix"),
            (r#"{"prefix":"/a?b/"}"#, "prefix"),
            (r#"{"on_error":null}"#, "on_error"),
            (r#"{"enabled":"true"}"#, "enabled"),
            (r#"{"cache_ttl_ms":300001}"#, "cache_ttl_ms"),
        ];
        for (json, key) in cases {
            let errs = errors(json);
            assert!(
                matches!(errs.as_slice(), [SettingsError::BadValue { key: k, .. }] if *k == key),
                "{json}: {errs:?}"
            );
        }
    }

    #[test]
    fn refuses_non_objects() {
        assert!(matches!(
            errors("{").as_slice(),
            [SettingsError::NotJson(_)]
        ));
        assert_eq!(errors("[]"), vec![SettingsError::NotAnObject]);
        assert_eq!(errors("\"x\""), vec![SettingsError::NotAnObject]);
        assert!(matches!(
            errors("\u{0}").as_slice(),
            [SettingsError::NotJson(_)]
        ));
    }

    proptest! {
        #[test]
        fn never_panics(raw in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_settings(&raw);
        }

        #[test]
        fn in_range_numbers_are_kept(t in 1u64..=MAX_TIMEOUT_MS, c in 0u64..=MAX_CACHE_TTL_MS) {
            let s = parse(&format!(r#"{{"timeout_ms":{t},"cache_ttl_ms":{c}}}"#)).unwrap();
            prop_assert_eq!((s.timeout_ms, s.cache_ttl_ms), (t, c));
        }

        #[test]
        fn unknown_keys_are_named(key in "[a-z_]{1,12}") {
            let known = ["cluster", "timeout_ms", "prefix", "on_miss", "on_error", "enabled",
                         "cache_ttl_ms"];
            prop_assume!(!known.contains(&key.as_str()));
            let errs = errors(&format!(r#"{{"{key}":1}}"#));
            prop_assert_eq!(errs, vec![SettingsError::UnknownKey(key)]);
        }
    }
}
