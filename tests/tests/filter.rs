//! The challenge filter inside a real Envoy 1.40 (V8), loading the built wasm, in front of a
//! controllable fake backend.
//!
//! One Envoy per filter configuration. Within a test every scenario uses hosts of its own, so
//! scenarios do not depend on each other or on their order; only taking the backend down is
//! last, because it is meant to affect everything.
//!
//! Needs the filter built for wasm32-wasip1 and Envoy installed: `cargo xtask test` does both.

use acme_edge_tests::envoy::{Envoy, EnvoyConfig, HttpResponse};
use acme_edge_tests::fixture::{Behavior, ChallengeBackend};
use anyhow::{Context, Result};

const PREFIX: &str = "/.well-known/acme-challenge/";
const NORMAL_ROUTE_BODY: &str = "ok\n";

fn counter_name(name: &str) -> String {
    format!("wasmcustom.acme_edge.{name}")
}

/// A fake backend and an Envoy running `envoy/edge.yaml` with the given filter settings.
fn start(settings: &str) -> Result<(ChallengeBackend, Envoy)> {
    let backend = ChallengeBackend::start()?;
    let envoy = EnvoyConfig::edge(backend.addr())
        .context("the end-to-end tests need the built filter and Envoy: run `cargo xtask test`")?
        .http_only()?
        .filter_settings(settings)
        .start()?;
    Ok((backend, envoy))
}

fn get(envoy: &Envoy, path: &str, authority: &str) -> HttpResponse {
    request(envoy, "GET", path, authority)
}

fn request(envoy: &Envoy, method: &str, path: &str, authority: &str) -> HttpResponse {
    match envoy.request(method, path, authority) {
        Ok(r) => r,
        Err(e) => panic!("{method} {path} (host {authority}): {e:#}\n{}", envoy.log()),
    }
}

fn challenge(token: &str) -> String {
    format!("{PREFIX}{token}")
}

/// Counter deltas around `f`.
fn counted(envoy: &Envoy, names: &[&str], f: impl FnOnce()) -> Vec<u64> {
    let read = |envoy: &Envoy| -> Vec<u64> {
        let stats = envoy.stats().expect("admin /stats");
        names
            .iter()
            .map(|n| stats.get(&counter_name(n)).copied().unwrap_or(0))
            .collect()
    };
    let before = read(envoy);
    f();
    read(envoy)
        .iter()
        .zip(before)
        .map(|(after, before)| after - before)
        .collect()
}

fn assert_normal_route(r: &HttpResponse, what: &str) {
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, NORMAL_ROUTE_BODY),
        "{what}: expected the normal route's answer, got {r:?}"
    );
}

fn assert_unavailable(r: &HttpResponse, what: &str) {
    assert_eq!(r.status, 503, "{what}: {r:?}");
    let retry: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{what}: no numeric retry-after in {r:?}"));
    assert!((1..=60).contains(&retry), "{what}: retry-after {retry}");
}

/// Non-challenge requests all reach the normal route.
fn assert_other_traffic_served(envoy: &Envoy, n: usize) {
    for i in 0..n {
        let r = get(envoy, &format!("/page/{i}"), "shop.example");
        assert_normal_route(&r, "non-challenge request");
    }
}

#[test]
fn default_settings() -> Result<()> {
    let (mut backend, envoy) = start("")?;
    served_with_exact_body_and_headers(&backend, &envoy);
    head_has_no_body(&backend, &envoy);
    other_methods_get_405(&backend, &envoy);
    bad_tokens_never_reach_the_backend(&backend, &envoy);
    bad_hosts_never_reach_the_backend(&backend, &envoy);
    host_is_normalised(&backend, &envoy);
    miss_is_404(&backend, &envoy);
    backend_error_is_503(&backend, &envoy);
    backend_timeout_is_503(&backend, &envoy);
    answers_are_cached(&backend, &envoy);
    assert_other_traffic_served(&envoy, 5);

    // Last: with the backend down, challenges fail softly and other traffic is untouched.
    backend.stop();
    let r = get(&envoy, &challenge("downtoken"), "down.example");
    assert_unavailable(&r, "backend down");
    let before = envoy.counter("http.edge_http.downstream_rq_5xx")?;
    assert_other_traffic_served(&envoy, 100);
    assert_eq!(envoy.counter("http.edge_http.downstream_rq_5xx")?, before);
    Ok(())
}

fn served_with_exact_body_and_headers(backend: &ChallengeBackend, envoy: &Envoy) {
    let key_authorization = "tok-served.thumbprint_Abc-123";
    backend.insert("served.example", "tok-served", key_authorization);
    let names = ["handled", "served", "cache_hits", "passed"];
    let deltas = counted(envoy, &names, || {
        let r = get(envoy, &challenge("tok-served"), "served.example");
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.body, key_authorization.as_bytes());
        assert_eq!(r.header("content-type"), Some("text/plain"));
        assert_eq!(r.header("cache-control"), Some("no-store"));
    });
    assert_eq!(deltas, [1, 1, 0, 0], "{names:?}");
    assert_eq!(backend.requests_for("served.example"), 1);
    assert!(
        backend
            .paths()
            .contains(&"/acme-edge/v1/challenge/served.example/tok-served".to_owned())
    );
}

fn head_has_no_body(backend: &ChallengeBackend, envoy: &Envoy) {
    backend.insert("head.example", "tok-head", "tok-head.x");
    let r = request(envoy, "HEAD", &challenge("tok-head"), "head.example");
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.is_empty(), "{r:?}");
    assert_eq!(r.header("content-type"), Some("text/plain"));
}

fn other_methods_get_405(backend: &ChallengeBackend, envoy: &Envoy) {
    backend.insert("method.example", "tok-method", "tok-method.x");
    let deltas = counted(envoy, &["invalid"], || {
        for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
            let r = request(envoy, method, &challenge("tok-method"), "method.example");
            assert_eq!(r.status, 405, "{method}: {r:?}");
            assert_eq!(r.header("allow"), Some("GET, HEAD"), "{method}");
        }
    });
    assert_eq!(deltas, [4]);
    assert_eq!(backend.requests_for("method.example"), 0);
}

fn bad_tokens_never_reach_the_backend(backend: &ChallengeBackend, envoy: &Envoy) {
    let before = backend.requests();
    let long = "a".repeat(256);
    // (`..` never gets here: Envoy normalises `/.well-known/acme-challenge/..` to `/.well-known/`.)
    let tokens = ["", "a.b", "a%2Fb", "a=", "a/b", long.as_str(), "?x=1"];
    let deltas = counted(envoy, &["invalid", "handled"], || {
        for token in tokens {
            let r = get(envoy, &challenge(token), "badtoken.example");
            assert_eq!(r.status, 404, "token {token:?}: {r:?}");
        }
    });
    assert_eq!(deltas, [tokens.len() as u64; 2]);
    assert_eq!(
        backend.requests(),
        before,
        "a bad token reached the backend"
    );
}

fn bad_hosts_never_reach_the_backend(backend: &ChallengeBackend, envoy: &Envoy) {
    let before = backend.requests();
    let hosts = [
        "exa_mple.com",
        "a..b",
        "-a.example",
        "host.example:http",
        "1.2.3.999",
    ];
    let deltas = counted(envoy, &["invalid"], || {
        for host in hosts {
            let r = get(envoy, &challenge("tok-badhost"), host);
            assert_eq!(r.status, 400, "host {host:?}: {r:?}");
        }
    });
    assert_eq!(deltas, [hosts.len() as u64]);
    assert_eq!(backend.requests(), before, "a bad host reached the backend");
}

fn host_is_normalised(backend: &ChallengeBackend, envoy: &Envoy) {
    backend.insert("normal.example", "tok-norm", "tok-norm.x");
    for (i, authority) in ["Normal.EXAMPLE", "normal.example.", "NORMAL.example.:8080"]
        .iter()
        .enumerate()
    {
        // A distinct token per request keeps the cache out of the way.
        let token = format!("tok-norm{i}");
        backend.insert("normal.example", &token, &format!("{token}.x"));
        let r = get(envoy, &challenge(&token), authority);
        assert_eq!(
            (r.status, r.text()),
            (200, format!("{token}.x")),
            "{authority}"
        );
    }
    assert_eq!(backend.requests_for("normal.example"), 3);
}

fn miss_is_404(backend: &ChallengeBackend, envoy: &Envoy) {
    let deltas = counted(envoy, &["not_found", "passed"], || {
        let r = get(envoy, &challenge("tok-miss"), "miss.example");
        assert_eq!(r.status, 404, "{r:?}");
        assert_ne!(r.text(), NORMAL_ROUTE_BODY);
    });
    assert_eq!(deltas, [1, 0]);
    assert_eq!(backend.requests_for("miss.example"), 1);
}

fn backend_error_is_503(backend: &ChallengeBackend, envoy: &Envoy) {
    backend.insert("error.example", "tok-err", "tok-err.x");
    backend.behave("error.example", Behavior::Fail(500));
    let deltas = counted(envoy, &["backend_errors"], || {
        let r = get(envoy, &challenge("tok-err"), "error.example");
        assert_unavailable(&r, "backend 500");
        let r = request(envoy, "HEAD", &challenge("tok-err"), "error.example");
        assert_unavailable(&r, "backend 500, HEAD");
        assert!(r.body.is_empty());
    });
    assert_eq!(deltas, [2]);
}

fn backend_timeout_is_503(backend: &ChallengeBackend, envoy: &Envoy) {
    backend.insert("hang.example", "tok-hang", "tok-hang.x");
    backend.behave("hang.example", Behavior::Hang);
    // The default timeout (2 s) applies; the request must end with 503, not hang.
    let r = get(envoy, &challenge("tok-hang"), "hang.example");
    assert_unavailable(&r, "backend never answers");
    assert_eq!(backend.requests_for("hang.example"), 1);
}

fn answers_are_cached(backend: &ChallengeBackend, envoy: &Envoy) {
    backend.insert("cache.example", "tok-cache", "tok-cache.x");
    let deltas = counted(envoy, &["served", "cache_hits"], || {
        for _ in 0..5 {
            let r = get(envoy, &challenge("tok-cache"), "cache.example");
            assert_eq!((r.status, r.text().as_str()), (200, "tok-cache.x"));
        }
    });
    assert_eq!(deltas, [5, 4]);
    assert_eq!(
        backend.requests_for("cache.example"),
        1,
        "cache hits reached the backend"
    );
    // Misses are not cached.
    for _ in 0..2 {
        assert_eq!(
            get(envoy, &challenge("tok-nc"), "cache-miss.example").status,
            404
        );
    }
    assert_eq!(backend.requests_for("cache-miss.example"), 2);
}

#[test]
fn pass_settings() -> Result<()> {
    let settings = r#"{"on_miss":"pass","on_error":"pass","timeout_ms":300,"cache_ttl_ms":0}"#;
    let (mut backend, envoy) = start(settings)?;

    let deltas = counted(&envoy, &["not_found", "passed"], || {
        let r = get(&envoy, &challenge("tok-own"), "own-client.example");
        assert_normal_route(&r, "miss with on_miss pass");
    });
    assert_eq!(deltas, [1, 1]);
    assert_eq!(backend.requests_for("own-client.example"), 1);

    backend.behave("error.example", Behavior::Fail(502));
    let r = get(&envoy, &challenge("tok-err"), "error.example");
    assert_normal_route(&r, "backend error with on_error pass");

    backend.behave("hang.example", Behavior::Hang);
    let r = get(&envoy, &challenge("tok-hang"), "hang.example");
    assert_normal_route(&r, "backend timeout with on_error pass");

    // cache_ttl_ms 0: every request asks the backend.
    backend.insert("nocache.example", "tok-nc", "tok-nc.x");
    for _ in 0..3 {
        let r = get(&envoy, &challenge("tok-nc"), "nocache.example");
        assert_eq!((r.status, r.text().as_str()), (200, "tok-nc.x"));
    }
    assert_eq!(backend.requests_for("nocache.example"), 3);

    // Bad requests are still refused: passing them on would hand them to customer routes.
    assert_eq!(get(&envoy, &challenge("a.b"), "x.example").status, 404);

    backend.stop();
    let deltas = counted(&envoy, &["backend_errors", "passed"], || {
        let r = get(&envoy, &challenge("tok-down"), "down.example");
        assert_normal_route(&r, "backend down with on_error pass");
    });
    assert_eq!(deltas, [1, 1]);
    assert_other_traffic_served(&envoy, 50);
    Ok(())
}

#[test]
fn disabled_filter_passes_everything() -> Result<()> {
    let (backend, envoy) = start(r#"{"enabled":false}"#)?;
    backend.insert("off.example", "tok-off", "tok-off.x");
    let deltas = counted(&envoy, &["handled"], || {
        let r = get(&envoy, &challenge("tok-off"), "off.example");
        assert_normal_route(&r, "enabled false");
        let r = get(&envoy, &challenge("a.b"), "bad_host");
        assert_normal_route(&r, "enabled false, malformed");
    });
    assert_eq!(deltas, [0]);
    assert_eq!(backend.requests(), 0);
    Ok(())
}

#[test]
fn unknown_cluster_is_a_backend_error() -> Result<()> {
    // Envoy refuses the call-out itself (no such cluster): handled like a failed lookup.
    let (backend, envoy) = start(r#"{"cluster":"no_such_cluster"}"#)?;
    backend.insert("nocluster.example", "tok-nc", "tok-nc.x");
    let deltas = counted(&envoy, &["backend_errors"], || {
        let r = get(&envoy, &challenge("tok-nc"), "nocluster.example");
        assert_unavailable(&r, "unknown cluster");
    });
    assert_eq!(deltas, [1]);
    assert_eq!(backend.requests(), 0);
    Ok(())
}

fn refused(settings: &str) -> Result<String> {
    let backend = ChallengeBackend::start()?;
    EnvoyConfig::edge(backend.addr())
        .context("the end-to-end tests need the built filter and Envoy: run `cargo xtask test`")?
        .http_only()?
        .filter_settings(settings)
        .refused()
}

#[test]
fn unknown_key_is_refused_and_named() -> Result<()> {
    let log = refused(r#"{"cache_ttl":5}"#)?;
    assert!(log.contains("unknown key `cache_ttl`"), "{log}");
    Ok(())
}

#[test]
fn bad_value_type_is_refused_and_named() -> Result<()> {
    let log = refused(r#"{"timeout_ms":"2000","on_miss":"drop"}"#)?;
    assert!(log.contains("key `timeout_ms`"), "{log}");
    assert!(log.contains("key `on_miss`"), "{log}");
    Ok(())
}
