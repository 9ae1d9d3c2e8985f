//! The configuration as a whole: files, environment, every problem reported.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::acme::*;
use super::admin::*;
use super::challenge::*;
use super::sds::*;
use super::storage::*;
use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

fn keys(err: ConfigError) -> Vec<String> {
    err.problems.into_iter().map(|p| p.key).collect()
}

const MINIMAL: &str = "[acme]\nterms_agreed = true\n";
const EXAMPLE: &str = include_str!("../../acme-edge.example.toml");

#[test]
fn defaults_are_valid() {
    let c = Config::parse(MINIMAL, no_env).unwrap();
    assert_eq!(c.acme.directory_url.as_str(), LETS_ENCRYPT_PRODUCTION);
    assert_eq!(c.acme.max_in_flight_orders, DEFAULT_MAX_IN_FLIGHT_ORDERS);
    assert_eq!(c.admin.listen, DEFAULT_ADMIN_LISTEN);
    assert_eq!(c.challenge.listen, DEFAULT_CHALLENGE_LISTEN);
    assert_eq!(
        c.sds.listen,
        SdsListen::Unix(PathBuf::from(DEFAULT_SDS_SOCKET))
    );
    assert_eq!(c.sds.socket_group, None);
    assert!(!c.sds.insecure_plaintext);
    assert_eq!(c.sds.max_names_per_proxy, DEFAULT_MAX_NAMES_PER_PROXY);
    assert_eq!(c.storage.sqlite_path(), Some(Path::new("acme-edge.db")));
    assert_eq!(
        c.admin.token,
        TokenSource::File(PathBuf::from("admin-token"))
    );
}

#[test]
fn postgres_storage_and_lease() {
    let text = format!(
        "{MINIMAL}[storage]\nurl = \"postgres://acme@db.internal:5432/acme\"\nlease_secs = 10\n"
    );
    let c = Config::parse(&text, no_env).unwrap();
    assert_eq!(
        c.storage.postgres_url(),
        Some("postgres://acme@db.internal:5432/acme")
    );
    assert_eq!(c.storage.sqlite_path(), None);
    assert_eq!(c.storage.lease, Duration::from_secs(10));
    assert_eq!(
        Config::parse(MINIMAL, no_env).unwrap().storage.lease,
        DEFAULT_LEASE
    );
    let env = |name: &str| (name == "ACME_EDGE_STORAGE_LEASE_SECS").then(|| "1".to_owned());
    assert_eq!(
        keys(Config::parse(MINIMAL, env).unwrap_err()),
        ["storage.lease_secs"],
        "below the range, from the environment too"
    );
    let bad = format!("{MINIMAL}[storage]\nurl = \"postgres://\"\n");
    assert_eq!(
        keys(Config::parse(&bad, no_env).unwrap_err()),
        ["storage.url"]
    );
}

#[test]
fn example_file_parses() {
    // Parsing at all means the example agrees to the terms (`refuses_without_terms`).
    let c = Config::parse(EXAMPLE, no_env).unwrap();
    assert_eq!(c.acme.directory_url.as_str(), LETS_ENCRYPT_STAGING);
}

#[test]
fn refuses_without_terms() {
    assert_eq!(
        keys(Config::parse("", no_env).unwrap_err()),
        ["acme.terms_agreed"]
    );
}

#[test]
fn reports_every_problem() {
    let text = r#"
        [acme]
        terms_agreed = "yes"
        directory_urll = "x"
        max_in_flight_orders = 0
        key_type = "dsa"
        contact = ["not-an-address"]
        eab_key_id = "kid"
        [storage]
        url = "mysql://x"
        [admin]
        listen = "nowhere"
        token = "short"
        [challenge]
        listen = "127.0.0.1:9000"
        [sds]
        listen = "127.0.0.1:9000"
        [extra]
    "#;
    let mut got = keys(Config::parse(text, no_env).unwrap_err());
    got.sort();
    let mut want = vec![
        "acme.terms_agreed",
        "acme.directory_urll",
        "acme.key_type",
        "acme.terms_agreed",
        "acme.max_in_flight_orders",
        "acme.contact",
        "acme.eab_key_id",
        "storage.url",
        "admin.listen",
        "admin.token",
        "sds.listen",
        "extra",
    ];
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn semantic_problems_all_reported() {
    let text = r#"
        [acme]
        terms_agreed = true
        max_in_flight_orders = 0
        max_concurrent_requests = 101
        profile = "short lived"
        request_timeout_secs = 0
        contact = ["not-an-address", "ops@example.com"]
        eab_key_id = "kid"
        ca_root_file = "/nonexistent/root.pem"
        [admin]
        token = "short"
    "#;
    let mut got = keys(Config::parse(text, no_env).unwrap_err());
    got.sort();
    assert_eq!(
        got,
        [
            "acme.ca_root_file",
            "acme.contact",
            "acme.eab_key_id",
            "acme.max_concurrent_requests",
            "acme.max_in_flight_orders",
            "acme.profile",
            "acme.request_timeout_secs",
            "admin.token",
        ]
    );
}

#[test]
fn environment_overrides_the_file() {
    let env = |name: &str| match name {
        "ACME_EDGE_ADMIN_TOKEN" => Some("0123456789abcdef-from-env".to_owned()),
        "ACME_EDGE_STORAGE_URL" => Some("sqlite:///var/lib/acme-edge/db.sqlite".to_owned()),
        "ACME_EDGE_ACME_TERMS_AGREED" => Some("true".to_owned()),
        "ACME_EDGE_ACME_MAX_IN_FLIGHT_ORDERS" => Some("7".to_owned()),
        "ACME_EDGE_ACME_MAX_CONCURRENT_REQUESTS" => Some("3".to_owned()),
        "ACME_EDGE_ACME_CONTACT" => Some("a@example.com, b@example.com".to_owned()),
        _ => None,
    };
    let c = Config::parse("[acme]\nterms_agreed = false\n", env).unwrap();
    assert_eq!(
        c.admin.token,
        TokenSource::Value(Secret::new("0123456789abcdef-from-env".to_owned()))
    );
    assert_eq!(c.acme.max_in_flight_orders, 7);
    assert_eq!(c.acme.max_concurrent_requests, 3);
    assert_eq!(c.acme.contact, ["a@example.com", "b@example.com"]);
    // Without a token, the token file is next to the database the environment names.
    let env_without_token = |name: &str| match name {
        "ACME_EDGE_ADMIN_TOKEN" => None,
        name => env(name),
    };
    let c = Config::parse("[acme]\nterms_agreed = false\n", env_without_token).unwrap();
    assert_eq!(
        c.admin.token,
        TokenSource::File(PathBuf::from("/var/lib/acme-edge/admin-token"))
    );
}

#[test]
fn bad_environment_value_is_reported_under_its_key() {
    let env =
        |name: &str| (name == "ACME_EDGE_ACME_MAX_IN_FLIGHT_ORDERS").then(|| "many".to_owned());
    assert_eq!(
        keys(Config::parse(MINIMAL, env).unwrap_err()),
        ["acme.max_in_flight_orders"]
    );
}

#[test]
fn ari_check_interval_defaults_to_twelve_hours_and_is_range_checked() {
    let c = Config::parse(MINIMAL, no_env).unwrap();
    assert_eq!(c.acme.ari_check_interval, Duration::from_secs(12 * 3600));
    let text = format!("{MINIMAL}\nari_check_interval_secs = 59\n");
    assert_eq!(
        keys(Config::parse(&text, no_env).unwrap_err()),
        ["acme.ari_check_interval_secs"]
    );
    let env =
        |name: &str| (name == "ACME_EDGE_ACME_ARI_CHECK_INTERVAL_SECS").then(|| "3600".to_owned());
    assert_eq!(
        Config::parse(MINIMAL, env).unwrap().acme.ari_check_interval,
        Duration::from_secs(3600)
    );
    let env =
        |name: &str| (name == "ACME_EDGE_ACME_ARI_CHECK_INTERVAL_SECS").then(|| "86401".to_owned());
    assert_eq!(
        keys(Config::parse(MINIMAL, env).unwrap_err()),
        ["acme.ari_check_interval_secs"]
    );
}

#[test]
fn syntax_error_is_reported() {
    assert_eq!(
        keys(Config::parse("[acme", no_env).unwrap_err()),
        ["<toml>"]
    );
}

#[test]
fn debug_hides_secrets() {
    let c = Config::parse(
        "[acme]\nterms_agreed = true\neab_key_id = \"k\"\neab_hmac_key = \"c2VjcmV0\"\n[admin]\ntoken = \"0123456789abcdefSECRET\"\n",
        no_env,
    )
    .unwrap();
    let text = format!("{c:?}");
    assert!(
        !text.contains("SECRET") && !text.contains("c2VjcmV0"),
        "{text}"
    );
}

/// A CA, a server chain and key signed by it, and an unrelated key, as PEM files.
fn sds_tls_files(dir: &Path) -> [PathBuf; 4] {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["sds.internal".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let other = rcgen::KeyPair::generate().unwrap();
    let files = ["server.crt", "server.key", "ca.crt", "other.key"].map(|f| dir.join(f));
    let texts = [
        leaf.pem(),
        key.serialize_pem(),
        ca_cert.pem(),
        other.serialize_pem(),
    ];
    for (file, text) in files.iter().zip(texts) {
        std::fs::write(file, text).unwrap();
    }
    files
}

fn with_sds_tls(cert: &Path, key: &Path, ca: &Path) -> String {
    format!(
        "{MINIMAL}[sds]\nlisten = \"0.0.0.0:8082\"\n\
         tls_cert_file = {:?}\ntls_key_file = {:?}\nclient_ca_file = {:?}\n",
        cert.display().to_string(),
        key.display().to_string(),
        ca.display().to_string()
    )
}

#[test]
fn sds_mutual_tls_files_are_loaded_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let [cert, key, ca, other_key] = sds_tls_files(dir.path());

    let c = Config::parse(&with_sds_tls(&cert, &key, &ca), no_env).unwrap();
    let tls = c.sds.tls.as_ref().unwrap();
    assert!(tls.cert_pem.contains("BEGIN CERTIFICATE"));
    assert!(tls.client_ca_pem.contains("BEGIN CERTIFICATE"));
    assert_eq!(Config::parse(MINIMAL, no_env).unwrap().sds.tls, None);

    // A key that is not the certificate's.
    let text = with_sds_tls(&cert, &other_key, &ca);
    assert_eq!(
        keys(Config::parse(&text, no_env).unwrap_err()),
        ["sds.tls_key_file"]
    );
    // Not PEM at all, and a missing file: each under its own key.
    let text = with_sds_tls(&key, &key, &dir.path().join("missing.crt"));
    let mut got = keys(Config::parse(&text, no_env).unwrap_err());
    got.sort();
    assert_eq!(got, ["sds.client_ca_file", "sds.tls_cert_file"]);
}

#[test]
fn sds_mutual_tls_needs_all_three_files() {
    let dir = tempfile::tempdir().unwrap();
    let [cert, ..] = sds_tls_files(dir.path());
    let text = format!(
        "{MINIMAL}[sds]\ntls_cert_file = {:?}\n",
        cert.display().to_string()
    );
    let mut got = keys(Config::parse(&text, no_env).unwrap_err());
    got.sort();
    assert_eq!(got, ["sds.client_ca_file", "sds.tls_key_file"]);
}

/// Every key has its `ACME_EDGE_<SECTION>_<KEY>` override: the names the parser asks the
/// environment for are exactly these (a new key adds its own; list it here, and in
/// docs/configuration.md).
#[test]
fn every_key_has_an_environment_override() {
    let asked = std::cell::RefCell::new(Vec::new());
    Config::parse(MINIMAL, |name| {
        asked.borrow_mut().push(name.to_owned());
        None
    })
    .unwrap();
    let mut asked = asked.into_inner();
    asked.sort();
    let mut want = [
        "ACME_EDGE_ACME_DIRECTORY_URL",
        "ACME_EDGE_ACME_CONTACT",
        "ACME_EDGE_ACME_TERMS_AGREED",
        "ACME_EDGE_ACME_CA_ROOT_FILE",
        "ACME_EDGE_ACME_EAB_KEY_ID",
        "ACME_EDGE_ACME_EAB_HMAC_KEY",
        "ACME_EDGE_ACME_KEY_TYPE",
        "ACME_EDGE_ACME_PROFILE",
        "ACME_EDGE_ACME_MAX_IN_FLIGHT_ORDERS",
        "ACME_EDGE_ACME_MAX_CONCURRENT_REQUESTS",
        "ACME_EDGE_ACME_REQUEST_TIMEOUT_SECS",
        "ACME_EDGE_ACME_RETRY_BASE_SECS",
        "ACME_EDGE_ACME_ORDER_BUDGET",
        "ACME_EDGE_ACME_ORDER_BUDGET_WINDOW_SECS",
        "ACME_EDGE_ACME_ARI_CHECK_INTERVAL_SECS",
        "ACME_EDGE_ACME_ALLOW_INSECURE_DIRECTORY",
        "ACME_EDGE_ACME_LIMITS_PRESET",
        "ACME_EDGE_ACME_LIMITS_NEW_ORDERS",
        "ACME_EDGE_ACME_LIMITS_NEW_ORDERS_WINDOW_SECS",
        "ACME_EDGE_ACME_LIMITS_REGISTERED_DOMAIN_CERTIFICATES",
        "ACME_EDGE_ACME_LIMITS_REGISTERED_DOMAIN_WINDOW_SECS",
        "ACME_EDGE_ACME_LIMITS_EXACT_SET_CERTIFICATES",
        "ACME_EDGE_ACME_LIMITS_EXACT_SET_WINDOW_SECS",
        "ACME_EDGE_ACME_LIMITS_AUTHORIZATION_FAILURES",
        "ACME_EDGE_ACME_LIMITS_AUTHORIZATION_FAILURES_WINDOW_SECS",
        "ACME_EDGE_ACME_LIMITS_CONSECUTIVE_AUTHORIZATION_FAILURES",
        "ACME_EDGE_ACME_LIMITS_RENEWALS_EXEMPT",
        "ACME_EDGE_STORAGE_URL",
        "ACME_EDGE_STORAGE_LEASE_SECS",
        "ACME_EDGE_ADMIN_LISTEN",
        "ACME_EDGE_ADMIN_TOKEN",
        "ACME_EDGE_ADMIN_TOKEN_FILE",
        "ACME_EDGE_ADMIN_METRICS_REQUIRE_TOKEN",
        "ACME_EDGE_ADMIN_TLS_CERT_FILE",
        "ACME_EDGE_ADMIN_TLS_KEY_FILE",
        "ACME_EDGE_ADMIN_CONSOLE_DIR",
        "ACME_EDGE_ADMIN_MAX_CONNECTIONS",
        "ACME_EDGE_ADMIN_HEADER_READ_TIMEOUT_SECS",
        "ACME_EDGE_ADMIN_IDLE_TIMEOUT_SECS",
        "ACME_EDGE_CHALLENGE_LISTEN",
        "ACME_EDGE_CHALLENGE_MAX_CONNECTIONS",
        "ACME_EDGE_CHALLENGE_HEADER_READ_TIMEOUT_SECS",
        "ACME_EDGE_CHALLENGE_IDLE_TIMEOUT_SECS",
        "ACME_EDGE_CHALLENGE_FILTER_WASM_FILE",
        "ACME_EDGE_LOG_FORMAT",
        "ACME_EDGE_SDS_INSECURE_PLAINTEXT",
        "ACME_EDGE_SDS_LISTEN",
        "ACME_EDGE_SDS_SOCKET_GROUP",
        "ACME_EDGE_SDS_TLS_CERT_FILE",
        "ACME_EDGE_SDS_TLS_KEY_FILE",
        "ACME_EDGE_SDS_CLIENT_CA_FILE",
        "ACME_EDGE_SDS_MAX_NAMES_PER_PROXY",
        // Not an override: where a service manager keeps the service's state.
        "STATE_DIRECTORY",
    ];
    want.sort();
    assert_eq!(asked, want);
}

#[test]
fn environment_values_are_read_as_their_keys_type() {
    let env = |name: &str| match name {
        // All digits, yet a string key: stays the string.
        "ACME_EDGE_ADMIN_TOKEN" => Some("12345678901234567890".to_owned()),
        // A word that is a boolean, yet a string key.
        "ACME_EDGE_ACME_PROFILE" => Some("true".to_owned()),
        "ACME_EDGE_ACME_TERMS_AGREED" => Some(" true ".to_owned()),
        "ACME_EDGE_ACME_RETRY_BASE_SECS" => Some("5".to_owned()),
        "ACME_EDGE_ACME_CONTACT" => Some("ops@example.com".to_owned()),
        "ACME_EDGE_ADMIN_METRICS_REQUIRE_TOKEN" => Some("true".to_owned()),
        "ACME_EDGE_SDS_LISTEN" => Some("127.0.0.1:9999".to_owned()),
        _ => None,
    };
    let c = Config::parse("", env).unwrap();
    assert_eq!(
        c.admin.token,
        TokenSource::Value(Secret::new("12345678901234567890".to_owned()))
    );
    assert_eq!(c.acme.profile.as_deref(), Some("true"));
    assert_eq!(c.acme.retry_base, Duration::from_secs(5));
    assert_eq!(c.acme.contact, ["ops@example.com"]);
    assert!(c.admin.metrics_require_token);
    assert_eq!(c.sds.listen.tcp().map(|a| a.port()), Some(9999));
}

#[test]
fn secrets_never_print() {
    let text = format!(
        "{MINIMAL}eab_key_id = \"kid\"\neab_hmac_key = \"c2VjcmV0\"\n\
         [storage]\nurl = \"postgres://acme:PASSWORD@db.internal/acme\"\n\
         [admin]\ntoken = \"0123456789abcdefSECRET\"\n"
    );
    let c = Config::parse(&text, no_env).unwrap();
    let eab = c.acme.eab.as_ref().unwrap();
    assert_eq!(eab.key_id, "kid");
    assert_eq!(eab.hmac_key.expose(), b"secret");
    for shown in [format!("{c:?}"), format!("{c:#?}")] {
        for secret in ["SECRET", "c2VjcmV0", "secret", "PASSWORD", "115, 101"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }
    let secret = Secret::new("hunter2");
    assert_eq!(format!("{secret} {secret:?}"), "<redacted> <redacted>");
}

/// The example says its values are the defaults unless a comment says otherwise.
#[test]
fn example_file_shows_the_defaults() {
    let c = Config::parse(EXAMPLE, no_env).unwrap();
    assert_eq!(c.acme.key_type, DEFAULT_KEY_TYPE);
    assert_eq!(c.acme.max_in_flight_orders, DEFAULT_MAX_IN_FLIGHT_ORDERS);
    assert_eq!(
        c.acme.max_concurrent_requests,
        DEFAULT_MAX_CONCURRENT_REQUESTS
    );
    assert_eq!(c.acme.request_timeout, DEFAULT_REQUEST_TIMEOUT);
    assert_eq!(c.acme.ari_check_interval, DEFAULT_ARI_CHECK_INTERVAL);
    let defaults = Config::parse(MINIMAL, no_env).unwrap();
    assert_eq!(c.storage, defaults.storage);
    assert_eq!(c.admin, defaults.admin);
    assert_eq!(c.challenge, defaults.challenge);
    assert_eq!(c.sds, defaults.sds);
}

#[test]
fn directory_url_is_a_web_url_kept_as_written() {
    let parse = |url: &str| {
        Config::parse(&format!("{MINIMAL}directory_url = \"{url}\"\n"), no_env)
            .map(|c| c.acme.directory_url.to_string())
            .map_err(keys)
    };
    assert_eq!(parse("letsencrypt-staging").unwrap(), LETS_ENCRYPT_STAGING);
    assert_eq!(
        parse("https://127.0.0.1:14000/dir").unwrap(),
        "https://127.0.0.1:14000/dir"
    );
    assert_eq!(
        parse("HTTPS://CA.example/Dir").unwrap(),
        "HTTPS://CA.example/Dir"
    );
    for bad in [
        "https://",
        "ftp://ca.example/dir",
        "ca.example/dir",
        "/dir",
        "https://a b/",
    ] {
        assert_eq!(parse(bad).unwrap_err(), ["acme.directory_url"], "{bad}");
    }
}

#[test]
fn a_plain_http_directory_needs_an_explicit_setting() {
    let text = format!("{MINIMAL}directory_url = \"http://127.0.0.1:14000/dir\"\n");
    let refused = Config::parse(&text, no_env).unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("acme.allow_insecure_directory"),
        "the message names the setting: {refused}"
    );
    assert_eq!(keys(refused), ["acme.directory_url"]);
    let allowed = format!("{text}allow_insecure_directory = true\n");
    let c = Config::parse(&allowed, no_env).unwrap();
    assert_eq!(c.acme.directory_url.as_str(), "http://127.0.0.1:14000/dir");
}

/// Each named limit holds at both ends: its bounds pass, one beyond fails under the key.
#[test]
fn every_limit_is_enforced_at_both_ends() {
    fn secs(range: &std::ops::RangeInclusive<Duration>) -> (u64, u64) {
        (range.start().as_secs(), range.end().as_secs())
    }
    fn count(range: &std::ops::RangeInclusive<usize>) -> (u64, u64) {
        (*range.start() as u64, *range.end() as u64)
    }
    let limits = [
        (
            "acme",
            "max_in_flight_orders",
            count(&MAX_IN_FLIGHT_ORDERS_RANGE),
        ),
        (
            "acme",
            "max_concurrent_requests",
            count(&MAX_CONCURRENT_REQUESTS_RANGE),
        ),
        ("acme", "request_timeout_secs", secs(&REQUEST_TIMEOUT_RANGE)),
        ("acme", "retry_base_secs", secs(&RETRY_BASE_RANGE)),
        (
            "acme",
            "order_budget",
            (u64::from(MIN_ORDER_BUDGET), u64::from(u32::MAX)),
        ),
        (
            "acme",
            "order_budget_window_secs",
            secs(&ORDER_BUDGET_WINDOW_RANGE),
        ),
        (
            "acme",
            "ari_check_interval_secs",
            secs(&ARI_CHECK_INTERVAL_RANGE),
        ),
        ("storage", "lease_secs", secs(&LEASE_RANGE)),
    ];
    // A CA without limits: how the budget compares with the CA's is checked on its own
    // (`the_budget_stays_under_the_cas_limit`).
    let base = format!("{MINIMAL}[acme.limits]\npreset = \"none\"\n");
    for (section, key, (low, high)) in limits {
        let with = |value: u64| {
            let name = super::env::name(section, key);
            Config::parse(&base, move |n| (n == name).then(|| value.to_string()))
        };
        for fine in [low, high] {
            assert!(with(fine).is_ok(), "{section}.{key} = {fine}");
        }
        for beyond in [low - 1, high + 1] {
            let Err(e) = with(beyond) else {
                panic!("{section}.{key} = {beyond} passed");
            };
            assert_eq!(keys(e), [format!("{section}.{key}")], "{beyond}");
        }
    }
}

#[test]
fn sds_listens_on_a_unix_socket_or_tcp() {
    let parse = |listen: &str| {
        let text = format!("{MINIMAL}[sds]\nlisten = {listen:?}\n");
        Config::parse(&text, no_env).map(|c| c.sds.listen)
    };
    assert_eq!(
        parse("unix:/run/x/sds.sock").unwrap(),
        SdsListen::Unix(PathBuf::from("/run/x/sds.sock"))
    );
    assert_eq!(
        parse("127.0.0.1:8082").unwrap(),
        SdsListen::Tcp("127.0.0.1:8082".parse().unwrap())
    );
    assert_eq!(
        parse("[::1]:8082").unwrap(),
        SdsListen::Tcp("[::1]:8082".parse().unwrap())
    );
    for bad in [
        "unix:relative.sock",
        "sds.sock",
        "",
        &format!("unix:/{}", "a".repeat(120)),
    ] {
        assert_eq!(keys(parse(bad).unwrap_err()), ["sds.listen"], "{bad:?}");
    }
}

#[test]
fn private_keys_are_not_served_in_plain_text_off_loopback() {
    let text = format!("{MINIMAL}[sds]\nlisten = \"0.0.0.0:8082\"\n");
    let refused = Config::parse(&text, no_env).unwrap_err();
    assert_eq!(keys(refused.clone()), ["sds.listen"]);
    let message = refused.to_string();
    for fix in ["sds.tls_cert_file", "unix:", "sds.insecure_plaintext"] {
        assert!(message.contains(fix), "the message names {fix}: {message}");
    }
    let lab = format!("{text}insecure_plaintext = true\n");
    assert!(Config::parse(&lab, no_env).unwrap().sds.insecure_plaintext);
}

#[test]
fn the_socket_group_is_resolved_and_only_for_a_socket() {
    let with = |extra: &str| format!("{MINIMAL}[sds]\n{extra}");
    let root = Config::parse(&with("socket_group = \"root\"\n"), no_env).unwrap();
    assert_eq!(root.sds.socket_group, Some(0));
    let numeric = Config::parse(&with("socket_group = \"4242\"\n"), no_env).unwrap();
    assert_eq!(numeric.sds.socket_group, Some(4242));
    let unknown = Config::parse(&with("socket_group = \"no-such-group-x\"\n"), no_env);
    assert_eq!(keys(unknown.unwrap_err()), ["sds.socket_group"]);
    let tcp = with("listen = \"127.0.0.1:8082\"\nsocket_group = \"root\"\n");
    assert_eq!(
        keys(Config::parse(&tcp, no_env).unwrap_err()),
        ["sds.socket_group"]
    );
}

#[test]
fn listener_limits_default_and_are_checked_per_listener() {
    let c = Config::parse(MINIMAL, no_env).unwrap();
    assert_eq!(c.admin.limits, ListenerLimits::default());
    assert_eq!(c.challenge.limits, ListenerLimits::default());
    let text = format!(
        "{MINIMAL}[challenge]\nmax_connections = 10\nidle_timeout_secs = 5\n\
         [admin]\nheader_read_timeout_secs = 0\nmax_connections = 0\n"
    );
    let mut got = keys(Config::parse(&text, no_env).unwrap_err());
    got.sort();
    assert_eq!(
        got,
        ["admin.header_read_timeout_secs", "admin.max_connections"]
    );
    let text = format!("{MINIMAL}[challenge]\nmax_connections = 10\nidle_timeout_secs = 5\n");
    let c = Config::parse(&text, no_env).unwrap();
    assert_eq!(c.challenge.limits.max_connections, 10);
    assert_eq!(c.challenge.limits.idle_timeout, Duration::from_secs(5));
    assert_eq!(c.admin.limits, ListenerLimits::default());
}

#[test]
fn admin_tls_files_are_both_or_neither_and_must_match() {
    let dir = tempfile::tempdir().unwrap();
    let [cert, key, _ca, other_key] = sds_tls_files(dir.path());
    let with = |cert: Option<&Path>, key: Option<&Path>| {
        let mut text = format!("{MINIMAL}[admin]\n");
        if let Some(cert) = cert {
            text.push_str(&format!("tls_cert_file = {cert:?}\n"));
        }
        if let Some(key) = key {
            text.push_str(&format!("tls_key_file = {key:?}\n"));
        }
        Config::parse(&text, no_env)
    };
    let c = with(Some(&cert), Some(&key)).unwrap();
    let tls = c.admin.tls.as_ref().unwrap();
    assert!(tls.cert_pem.contains("BEGIN CERTIFICATE"));
    assert!(
        !format!("{tls:?}").contains("PRIVATE"),
        "the key never prints"
    );
    assert_eq!(with(None, None).unwrap().admin.tls, None);
    assert_eq!(
        keys(with(Some(&cert), None).unwrap_err()),
        ["admin.tls_key_file"]
    );
    assert_eq!(
        keys(with(None, Some(&key)).unwrap_err()),
        ["admin.tls_cert_file"]
    );
    assert_eq!(
        keys(with(Some(&cert), Some(&other_key)).unwrap_err()),
        ["admin.tls_key_file"]
    );
}

#[test]
fn the_log_format_is_text_or_json() {
    assert_eq!(
        Config::parse(MINIMAL, no_env).unwrap().log.format,
        LogFormat::Text
    );
    let json = format!("{MINIMAL}[log]\nformat = \"json\"\n");
    assert_eq!(
        Config::parse(&json, no_env).unwrap().log.format,
        LogFormat::Json
    );
    let env = |name: &str| (name == "ACME_EDGE_LOG_FORMAT").then(|| "json".to_owned());
    assert_eq!(
        Config::parse(MINIMAL, env).unwrap().log.format,
        LogFormat::Json
    );
    let bad = format!("{MINIMAL}[log]\nformat = \"xml\"\n");
    assert_eq!(
        keys(Config::parse(&bad, no_env).unwrap_err()),
        ["log.format"]
    );
}

#[test]
fn under_a_service_manager_the_database_is_in_its_state_directory() {
    let env = |name: &str| (name == "STATE_DIRECTORY").then(|| "/var/lib/acme-edge".to_owned());
    let c = Config::parse(MINIMAL, env).unwrap();
    assert_eq!(
        c.storage.sqlite_path(),
        Some(Path::new("/var/lib/acme-edge/acme-edge.db"))
    );
    // The generated admin token goes next to it.
    assert_eq!(
        c.admin.token,
        TokenSource::File(PathBuf::from("/var/lib/acme-edge/admin-token"))
    );
    // A configured URL wins; without a state directory, the working directory.
    let explicit = format!("{MINIMAL}[storage]\nurl = \"sqlite:///srv/db.sqlite\"\n");
    let c = Config::parse(&explicit, env).unwrap();
    assert_eq!(c.storage.sqlite_path(), Some(Path::new("/srv/db.sqlite")));
    let c = Config::parse(MINIMAL, no_env).unwrap();
    assert_eq!(c.storage.sqlite_path(), Some(Path::new("acme-edge.db")));
}

#[test]
fn filter_wasm_file_is_read_once_with_its_sha256() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("f.wasm");
    std::fs::write(&wasm, b"\0asm\x01\0\0\0").unwrap();
    let text = format!(
        "{MINIMAL}[challenge]\nfilter_wasm_file = {:?}\n",
        wasm.display().to_string()
    );
    let c = Config::parse(&text, |_| None).unwrap();
    let filter = c.challenge.filter.unwrap();
    assert_eq!(filter.bytes.as_ref(), b"\0asm\x01\0\0\0");
    assert_eq!(filter.sha256, sha256_hex(b"\0asm\x01\0\0\0"));
    assert_eq!(
        sha256_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );

    std::fs::write(&wasm, b"text").unwrap();
    let err = Config::parse(&text, |_| None).unwrap_err().to_string();
    assert!(err.contains("challenge.filter_wasm_file"), "{err}");
    assert!(err.contains("not a WebAssembly module"), "{err}");
    let missing = format!("{MINIMAL}[challenge]\nfilter_wasm_file = \"/nonexistent.wasm\"\n");
    let err = Config::parse(&missing, |_| None).unwrap_err().to_string();
    assert!(err.contains("/nonexistent.wasm"), "{err}");
}

#[test]
fn the_cas_limits_come_from_the_directory_and_the_section() {
    let le = Config::parse(MINIMAL, no_env).unwrap().acme.limits;
    assert_eq!(le, Preset::Letsencrypt.limits());
    let private = "[acme]\nterms_agreed = true\ndirectory_url = \"https://ca.internal/dir\"\n";
    let none = Config::parse(private, no_env).unwrap().acme.limits;
    assert_eq!(none, Preset::None.limits());

    let raised = format!("{MINIMAL}[acme.limits]\nnew_orders = 3000\nexact_set_certificates = 0\n");
    let raised = Config::parse(&raised, no_env).unwrap().acme.limits;
    assert_eq!(
        raised.new_orders,
        Some(Limit {
            count: 3000,
            window: Duration::from_secs(3 * 3600)
        })
    );
    assert_eq!(raised.exact_set, None);
    let env = |name: &str| (name == "ACME_EDGE_ACME_LIMITS_PRESET").then(|| "none".to_owned());
    assert_eq!(
        Config::parse(MINIMAL, env).unwrap().acme.limits.preset,
        Preset::None
    );

    let bad = format!(
        "{MINIMAL}[acme.limits]\npreset = \"ours\"\nbogus = 1\nnew_orders_window_secs = 0\n"
    );
    let mut got = keys(Config::parse(&bad, no_env).unwrap_err());
    got.sort();
    assert_eq!(
        got,
        [
            "acme.limits.bogus",
            "acme.limits.new_orders_window_secs",
            "acme.limits.preset"
        ]
    );
}

#[test]
fn the_budget_stays_under_the_cas_limit() {
    let over = format!("{MINIMAL}order_budget = 301\n");
    assert_eq!(
        keys(Config::parse(&over, no_env).unwrap_err()),
        ["acme.order_budget"]
    );
    // The same rate in another window is the same rate.
    let same = format!("{MINIMAL}order_budget = 100\norder_budget_window_secs = 3600\n");
    assert!(Config::parse(&same, no_env).is_ok());
    let raised = format!("{MINIMAL}order_budget = 1000\n[acme.limits]\nnew_orders = 1200\n");
    assert!(Config::parse(&raised, no_env).is_ok());
}
