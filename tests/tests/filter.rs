//! The challenge filter inside a real Envoy 1.40 (V8), loading the built wasm, in front of a
//! controllable fake backend.
//!
//! One Envoy per filter configuration. Within a test every scenario uses hosts of its own, so
//! scenarios do not depend on each other or on their order; only taking the backend down is
//! last, because it is meant to affect everything.
//!
//! Needs the filter built for wasm32-wasip1 and Envoy installed: `cargo xtask test` does both.

use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::time::Duration;

use acme_edge_tests::envoy::{Envoy, EnvoyConfig, HttpResponse};
use acme_edge_tests::fixture::{Behavior, ChallengeBackend};
use anyhow::{Context, Result};

const PREFIX: &str = "/.well-known/acme-challenge/";
const NORMAL_ROUTE_BODY: &str = "ok\n";

fn counter_name(name: &str) -> String {
    format!("wasmcustom.acme_edge.{name}")
}

/// A fake backend and an Envoy running the edge bootstrap with the given filter settings.
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
    a_failed_lookup_is_tried_once_more(&backend, &envoy);
    backend_timeout_is_503(&backend, &envoy);
    answers_are_cached(&backend, &envoy);
    challenge_paths_are_normalised(&backend, &envoy);
    oversized_headers_get_431(&envoy);
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
    // (`..` never gets here: Envoy normalises it away, see `challenge_paths_are_normalised`.)
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
    let deltas = counted(envoy, &["backend_errors", "lookup_retries"], || {
        let r = get(envoy, &challenge("tok-err"), "error.example");
        assert_unavailable(&r, "backend 500");
        let r = request(envoy, "HEAD", &challenge("tok-err"), "error.example");
        assert_unavailable(&r, "backend 500, HEAD");
        assert!(r.body.is_empty());
    });
    // Each request's lookup was tried twice before the 503.
    assert_eq!(deltas, [2, 2]);
    assert_eq!(backend.requests_for("error.example"), 4);
}

/// A lookup that fails once (a connection broken by the backend's restart, say) is sent
/// again, and the client gets the answer, not a 503.
fn a_failed_lookup_is_tried_once_more(backend: &ChallengeBackend, envoy: &Envoy) {
    backend.insert("once.example", "tok-once", "tok-once.x");
    backend.behave("once.example", Behavior::FailOnce(503));
    let deltas = counted(
        envoy,
        &["backend_errors", "lookup_retries", "served"],
        || {
            let r = get(envoy, &challenge("tok-once"), "once.example");
            assert_eq!((r.status, r.text().as_str()), (200, "tok-once.x"), "{r:?}");
        },
    );
    assert_eq!(deltas, [0, 1, 1]);
    assert_eq!(backend.requests_for("once.example"), 2);
}

fn backend_timeout_is_503(backend: &ChallengeBackend, envoy: &Envoy) {
    backend.insert("hang.example", "tok-hang", "tok-hang.x");
    backend.behave("hang.example", Behavior::Hang);
    // The default timeout (2 s) applies to each of the two lookups; the request must end
    // with 503, not hang.
    let r = get(envoy, &challenge("tok-hang"), "hang.example");
    assert_unavailable(&r, "backend never answers");
    assert_eq!(backend.requests_for("hang.example"), 2);
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

/// `edge.yaml` normalises paths before the route match: the filter sees, and answers, one
/// spelling of each challenge path; escaped slashes are left alone.
fn challenge_paths_are_normalised(backend: &ChallengeBackend, envoy: &Envoy) {
    backend.insert("slashes.example", "tok-slashes", "tok-slashes.x");
    let answered = [
        "//.well-known//acme-challenge//tok-slashes",
        "/.well-known/./acme-challenge/x/../tok-slashes",
        "/.well-known/acme-challenge/%2e%2e/acme-challenge/tok-slashes",
    ];
    let deltas = counted(envoy, &["handled", "served"], || {
        for path in answered {
            let r = get(envoy, path, "slashes.example");
            assert_eq!(
                (r.status, r.text().as_str()),
                (200, "tok-slashes.x"),
                "{path}"
            );
        }
    });
    assert_eq!(deltas, [answered.len() as u64; 2]);
    // One lookup: the filter saw the same token each time (the rest were cache hits).
    assert_eq!(backend.requests_for("slashes.example"), 1);

    // Dot-segments leave the prefix (`/.well-known/`), and `%2F` is not a slash to the route:
    // neither is a challenge path, so neither enters the filter.
    let deltas = counted(envoy, &["handled"], || {
        for path in [
            "/.well-known/acme-challenge/..",
            "/.well-known%2Facme-challenge/tok-slashes",
        ] {
            assert_normal_route(&get(envoy, path, "slashes.example"), path);
        }
    });
    assert_eq!(deltas, [0]);
}

/// Request headers over `max_request_headers_kb` (32 KiB, under Envoy's default of 60 KiB)
/// are refused before any filter runs.
fn oversized_headers_get_431(envoy: &Envoy) {
    let cookie = "a".repeat(40 * 1024);
    let (status, _) = request_with_headers(envoy, "/page", &[("cookie", &cookie)]);
    assert_eq!(status, 431, "40 KiB of headers");
    let (status, _) = request_with_headers(envoy, &challenge("tok-big"), &[("cookie", &cookie)]);
    assert_eq!(status, 431, "40 KiB of headers on a challenge path");
    let cookie = "a".repeat(16 * 1024);
    let (status, _) = request_with_headers(envoy, "/page", &[("cookie", &cookie)]);
    assert_eq!(status, 200, "16 KiB of headers");
}

/// A GET of `path` (host `shop.example`) with `extra` header lines, on a fresh connection:
/// the response's status and headers, names in lower case. (The harness's client sends only
/// `host`.)
fn request_with_headers(
    envoy: &Envoy,
    path: &str,
    extra: &[(&str, &str)],
) -> (u16, Vec<(String, String)>) {
    let exchange = || -> Result<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", envoy.http_port()))?;
        stream.set_read_timeout(Some(Duration::from_secs(20)))?;
        let mut head = format!("GET {path} HTTP/1.1\r\nhost: shop.example\r\n");
        for (name, value) in extra {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("connection: close\r\n\r\n");
        stream.write_all(head.as_bytes())?;
        let mut raw = Vec::new();
        let mut chunk = [0u8; 4096];
        while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => raw.extend_from_slice(&chunk[..n]),
                // Envoy may reset a connection whose request it refused unread.
                Err(_) if !raw.is_empty() => break,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(String::from_utf8_lossy(&raw).into_owned())
    };
    let text = exchange().unwrap_or_else(|e| panic!("GET {path}: {e:#}\n{}", envoy.log()));
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("GET {path}: no status line in {text:?}"));
    let headers = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers)
}

#[test]
fn client_address_is_the_peer_not_x_forwarded_for() -> Result<()> {
    // The edge bootstrap with its normal route showing what Envoy made of the client's
    // address: the address it trusts, and the `x-forwarded-for` an upstream would receive.
    fn show_client(bootstrap: &mut serde_json::Value) {
        let routes = &mut bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"]
            [0]["typed_config"]["route_config"]["virtual_hosts"][0]["routes"];
        let normal = routes
            .as_array_mut()
            .and_then(|routes| routes.last_mut())
            .expect("the HTTP listener has routes");
        normal["response_headers_to_add"] = serde_json::json!([
            {"header": {"key": "x-test-client", "value": "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"}},
            {"header": {"key": "x-test-xff", "value": "%REQ(X-FORWARDED-FOR)%"}},
        ]);
    }
    let backend = ChallengeBackend::start()?;
    let envoy = EnvoyConfig::edge(backend.addr())?
        .http_only()?
        .adjust(show_client)
        .start()?;

    let forged = "203.0.113.7";
    let (status, headers) = request_with_headers(&envoy, "/page", &[("x-forwarded-for", forged)]);
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {name} in {headers:?}"))
    };
    assert_eq!(status, 200, "{headers:?}");
    // The trusted client address is the TCP peer, not the header's last entry.
    assert_eq!(header("x-test-client"), "127.0.0.1");
    // Upstreams get the header with the real hop appended (for a loopback peer Envoy appends
    // its host's address), never as the client sent it.
    let xff = header("x-test-xff");
    let hops: Vec<&str> = xff.split(',').map(str::trim).collect();
    assert_eq!(hops.len(), 2, "x-forwarded-for {xff:?}");
    assert_eq!(hops[0], forged);
    assert!(
        hops[1].parse::<IpAddr>().is_ok() && hops[1] != forged,
        "x-forwarded-for {xff:?}"
    );
    Ok(())
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
    assert_eq!(backend.requests_for("hang.example"), 2, "tried twice");

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
