//! The admin API through `warp::test`, against a real SQLite store.

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::Notify;

use super::auth::AdminToken;
use super::json::{Domain, DomainList, DomainState, KeyType};
use super::{ApiState, routes};
use crate::store::source::StoreSource;
use crate::store::{SqliteStore, Store};

const TOKEN: &str = "test-token-0123456789";

struct Api {
    _dir: tempfile::TempDir,
    state: ApiState,
}

async fn api() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("db")).await.unwrap());
    let state = ApiState {
        store: store.clone(),
        token: AdminToken::new(TOKEN),
        wake: Arc::new(Notify::new()),
        source: StoreSource::new(store),
        default_key_type: KeyType::EcdsaP256,
        directory_url: "https://ca.test/dir".into(),
        metrics: crate::metrics::install().ok(),
        metrics_require_token: false,
        ca_health: Arc::new(crate::acme::health::CaHealth::new()),
        console: None,
        pacing: crate::policy::capacity::Pacing {
            budget: crate::policy::budget::OrderBudget::default(),
            renewals_exempt: true,
        },
    };
    Api { _dir: dir, state }
}

impl Api {
    async fn call(&self, method: &str, path: &str, body: &str) -> (u16, Value) {
        self.call_with(method, path, body, Some(&format!("Bearer {TOKEN}")))
            .await
    }

    async fn call_with(
        &self,
        method: &str,
        path: &str,
        body: &str,
        authorization: Option<&str>,
    ) -> (u16, Value) {
        let mut request = warp::test::request().method(method).path(path).body(body);
        if let Some(a) = authorization {
            request = request.header("authorization", a);
        }
        let response = request.reply(&routes(self.state.clone())).await;
        let json = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
        (response.status().as_u16(), json)
    }
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no code>")
}

#[tokio::test]
async fn requires_the_bearer_token() {
    let api = api().await;
    for auth in [
        None,
        Some("Bearer wrong-token-0123456789"),
        Some(TOKEN),
        Some("Basic x"),
    ] {
        for (method, path) in [("GET", "/v1/domains"), ("PUT", "/v1/domains/a.example")] {
            let (status, body) = api.call_with(method, path, "", auth).await;
            assert_eq!(
                (status, code(&body)),
                (401, "unauthorized"),
                "{method} {path} {auth:?}"
            );
        }
    }
    let (status, _) = api.call_with("GET", "/healthz", "", None).await;
    assert_eq!(status, 200);
    let (status, body) = api.call("GET", "/v1/domains", "").await;
    assert_eq!(status, 200);
    assert_eq!(body, serde_json::json!({"domains": [], "next": null}));
}

#[tokio::test]
async fn domains_come_in_pages_by_name() {
    let api = api().await;
    for i in (0..7).rev() {
        let (status, _) = api
            .call("PUT", &format!("/v1/domains/d{i}.example"), "")
            .await;
        assert_eq!(status, 201);
    }
    let mut seen = Vec::new();
    let mut path = "/v1/domains?limit=3".to_owned();
    loop {
        let (status, body) = api.call("GET", &path, "").await;
        assert_eq!(status, 200, "{body}");
        let page: DomainList = serde_json::from_value(body).unwrap();
        assert!(page.domains.len() <= 3);
        seen.extend(page.domains.into_iter().map(|d| d.name));
        match page.next {
            Some(next) => path = format!("/v1/domains?limit=3&after={next}"),
            None => break,
        }
    }
    let want: Vec<String> = (0..7).map(|i| format!("d{i}.example")).collect();
    assert_eq!(seen, want);
    let (_, body) = api.call("GET", "/v1/domains?q=D3&state=pending", "").await;
    assert_eq!(body["domains"][0]["name"], "d3.example");
    assert_eq!(body["domains"].as_array().map(Vec::len), Some(1));
    for bad in [
        "limit=0",
        "limit=1001",
        "q=a%25",
        "q=a_b",
        "state=x",
        "page=2",
    ] {
        let (status, body) = api.call("GET", &format!("/v1/domains?{bad}"), "").await;
        assert_eq!((status, code(&body)), (400, "invalid_query"), "{bad}");
    }
}

#[tokio::test]
async fn summary_counts_every_state_and_thirteen_weeks() {
    let api = api().await;
    for name in ["a.example", "b.example"] {
        api.call("PUT", &format!("/v1/domains/{name}"), "").await;
    }
    api.call("DELETE", "/v1/domains/b.example", "").await;
    let (status, body) = api.call("GET", "/v1/summary", "").await;
    assert_eq!(status, 200, "{body}");
    let summary: super::json::Summary = serde_json::from_value(body.clone()).unwrap();
    assert_eq!(summary.total, 2);
    assert_eq!(
        (
            summary.states.pending,
            summary.states.disabled,
            summary.states.issued
        ),
        (1, 1, 0)
    );
    assert_eq!(summary.expiry_weeks.len(), 13);
    assert_eq!(summary.earliest_expiry, None);
    assert_eq!(body["earliest_expiry"], Value::Null);
    assert!(summary.failures.is_empty());
    let (status, _) = api.call_with("GET", "/v1/summary", "", None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn enable_is_idempotent() {
    let api = api().await;
    let (status, body) = api.call("PUT", "/v1/domains/Www.Example.COM", "").await;
    assert_eq!(status, 201);
    let domain: Domain = serde_json::from_value(body).unwrap();
    assert_eq!(
        (domain.name.as_str(), domain.state),
        ("www.example.com", DomainState::Pending)
    );
    assert_eq!(domain.key_type, KeyType::EcdsaP256);

    let (status, body) = api
        .call(
            "PUT",
            "/v1/domains/www.example.com",
            r#"{"key_type": "rsa-2048"}"#,
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let (status, body) = api
        .call(
            "PUT",
            "/v1/domains/rsa.example",
            r#"{"key_type": "rsa-3072"}"#,
        )
        .await;
    assert_eq!((status, body["key_type"].as_str()), (201, Some("rsa-3072")));
    assert_eq!(
        body["profile"],
        serde_json::Value::Null,
        "the configured default"
    );

    let (status, body) = api
        .call(
            "PUT",
            "/v1/domains/short.example",
            r#"{"profile": "shortlived"}"#,
        )
        .await;
    assert_eq!(
        (status, body["profile"].as_str()),
        (201, Some("shortlived"))
    );
    // Another profile for an enabled domain: kept for its next order.
    let (status, body) = api
        .call(
            "PUT",
            "/v1/domains/short.example",
            r#"{"profile": "tlsserver"}"#,
        )
        .await;
    assert_eq!((status, body["profile"].as_str()), (200, Some("tlsserver")));

    let (_, body) = api.call("GET", "/v1/domains?state=pending", "").await;
    let list: DomainList = serde_json::from_value(body).unwrap();
    let names: Vec<_> = list.domains.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["rsa.example", "short.example", "www.example.com"]);
    let (_, body) = api.call("GET", "/v1/domains?state=issued", "").await;
    assert_eq!(body["domains"], serde_json::json!([]));
}

#[tokio::test]
async fn refuses_bad_input_with_stable_codes() {
    let api = api().await;
    let cases = [
        (
            "PUT",
            "/v1/domains/a.example",
            "{not json",
            400,
            "malformed_json",
        ),
        (
            "PUT",
            "/v1/domains/a.example",
            r#"{"key_type": "dsa"}"#,
            400,
            "malformed_json",
        ),
        (
            "PUT",
            "/v1/domains/a.example",
            r#"{"colour": "red"}"#,
            400,
            "malformed_json",
        ),
        (
            "PUT",
            "/v1/domains/a.example",
            r#"{"profile": "short lived"}"#,
            400,
            "invalid_profile",
        ),
        (
            "PUT",
            "/v1/domains/a.example",
            r#"{"profile": 6}"#,
            400,
            "malformed_json",
        ),
        (
            "PUT",
            "/v1/domains/a.example",
            "[null, null]",
            400,
            "malformed_json",
        ),
        (
            "PUT",
            "/v1/domains/%2A.example.com",
            "",
            400,
            "wildcard_not_supported",
        ),
        (
            "PUT",
            "/v1/domains/*.example.com",
            "",
            400,
            "wildcard_not_supported",
        ),
        ("PUT", "/v1/domains/192.0.2.1", "", 400, "ip_not_supported"),
        ("PUT", "/v1/domains/a_b.example", "", 400, "invalid_domain"),
        ("PUT", "/v1/domains/localhost", "", 400, "invalid_domain"),
        ("PUT", "/v1/domains/%FF.example", "", 400, "invalid_domain"),
        ("GET", "/v1/domains?state=bogus", "", 400, "invalid_query"),
        ("GET", "/v1/domains?colour=red", "", 400, "invalid_query"),
        ("GET", "/v1/domains/nope.example", "", 404, "not_found"),
        ("DELETE", "/v1/domains/nope.example", "", 404, "not_found"),
        (
            "POST",
            "/v1/domains/nope.example/renew",
            "",
            404,
            "not_found",
        ),
        (
            "GET",
            "/v1/domains/nope.example/certificate",
            "",
            404,
            "not_found",
        ),
        ("GET", "/v1/nothing-here", "", 404, "not_found"),
        ("GET", "/v1/account", "", 404, "not_found"),
    ];
    for (method, path, body, status, want) in cases {
        let (got, answer) = api.call(method, path, body).await;
        assert_eq!(
            (got, code(&answer)),
            (status, want),
            "{method} {path} {body}"
        );
        assert!(
            answer["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    // Nothing was created by the refused requests.
    let (_, body) = api.call("GET", "/v1/domains", "").await;
    assert_eq!(body["domains"], serde_json::json!([]));
}

#[tokio::test]
async fn internationalised_names_become_punycode() {
    let api = api().await;
    let (status, body) = api.call("PUT", "/v1/domains/b%C3%BCcher.example", "").await;
    assert_eq!(
        (status, body["name"].as_str()),
        (201, Some("xn--bcher-kva.example"))
    );
    let (status, _) = api
        .call("GET", "/v1/domains/xn--bcher-kva.example", "")
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn disable_renew_and_certificate() {
    let api = api().await;
    api.call("PUT", "/v1/domains/a.example", "").await;
    let (status, body) = api
        .call("GET", "/v1/domains/a.example/certificate", "")
        .await;
    assert_eq!((status, code(&body)), (409, "not_issued"));
    let (status, body) = api.call("POST", "/v1/domains/a.example/renew", "").await;
    assert_eq!((status, body["state"].as_str()), (202, Some("pending")));
    let (status, body) = api.call("DELETE", "/v1/domains/a.example", "").await;
    assert_eq!((status, body["state"].as_str()), (200, Some("disabled")));
    let (status, body) = api.call("POST", "/v1/domains/a.example/renew", "").await;
    assert_eq!((status, code(&body)), (409, "domain_disabled"));
    let (status, _) = api.call("PUT", "/v1/domains/a.example", "").await;
    assert_eq!(status, 201, "re-enabling a disabled domain starts it again");
}

#[tokio::test]
async fn metrics_are_open_and_count_domains() {
    let api = api().await;
    api.call("PUT", "/v1/domains/a.example", "").await;
    let response = warp::test::request()
        .path("/metrics")
        .reply(&routes(api.state.clone()))
        .await;
    assert_eq!(response.status(), 200);
    let text = String::from_utf8_lossy(response.body());
    assert!(
        text.contains("acme_edge_domains{state=\"pending\"}"),
        "{text}"
    );
}

#[tokio::test]
async fn a_body_without_a_length_is_cut_off_at_the_cap() {
    use super::domains::read_capped;
    let chunk = || Ok::<_, warp::Error>(bytes::Bytes::from(vec![b'x'; 16 * 1024]));
    // Four chunks fill the 64 KiB cap exactly; an endless stream is refused, not buffered.
    let exact = futures::stream::iter((0..4).map(|_| chunk()));
    assert_eq!(
        read_capped(exact, super::MAX_BODY_BYTES)
            .await
            .unwrap()
            .len(),
        64 * 1024
    );
    let endless = futures::stream::repeat_with(chunk);
    assert!(matches!(
        read_capped(endless, super::MAX_BODY_BYTES).await,
        Err(super::error::ApiError::PayloadTooLarge)
    ));
}

#[test]
fn the_earliest_expiry_is_left_out_when_nothing_is_served() {
    let text = "# HELP acme_edge_earliest_expiry_seconds Seconds until the first expiry\n\
                # TYPE acme_edge_earliest_expiry_seconds gauge\n\
                acme_edge_earliest_expiry_seconds 5000\n\
                # TYPE acme_edge_earliest_expiry_seconds_other gauge\n\
                acme_edge_earliest_expiry_seconds_other 1\n\
                acme_edge_domains{state=\"issued\"} 0\n";
    let out = super::metrics::without_metric(text, super::metrics::EARLIEST_EXPIRY_METRIC);
    assert_eq!(
        out,
        "# TYPE acme_edge_earliest_expiry_seconds_other gauge\n\
         acme_edge_earliest_expiry_seconds_other 1\n\
         acme_edge_domains{state=\"issued\"} 0\n"
    );
}

// ---- the OpenAPI description against the routes and the bodies they answer

/// `(method, path)` of every route in the table at the top of `api/mod.rs`.
fn documented_routes() -> Vec<(String, String)> {
    include_str!("mod.rs")
        .lines()
        .filter_map(|line| {
            let cell = line.strip_prefix("//! | `")?;
            let (route, _) = cell.split_once('`')?;
            let (method, path) = route.split_once(' ')?;
            let path = path.split('?').next()?.to_owned();
            Some((method.to_lowercase(), path))
        })
        .collect()
}

fn spec() -> Value {
    serde_json::to_value(super::openapi::document()).unwrap()
}

fn spec_routes(spec: &Value) -> Vec<(String, String)> {
    let mut routes = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            routes.push((method.clone(), path.clone()));
        }
    }
    routes
}

#[tokio::test]
async fn every_route_is_described_and_every_description_is_a_route() {
    let spec = spec();
    assert_eq!(spec["openapi"].as_str().map(|v| &v[..3]), Some("3.1"));
    let mut described: Vec<_> = spec_routes(&spec)
        .into_iter()
        .filter(|(_, p)| p.starts_with("/v1/"))
        .collect();
    // The console's files are not part of the API.
    let mut table: Vec<_> = documented_routes()
        .into_iter()
        .filter(|(_, p)| p.starts_with("/v1/"))
        .collect();
    described.sort();
    table.sort();
    assert_eq!(
        described, table,
        "the OpenAPI paths and the route table differ"
    );
    let api = api().await;
    api.call("PUT", "/v1/domains/a.example", "").await;
    for (method, path) in spec_routes(&spec) {
        if path == "/v1/events" {
            // An endless stream: `events_stream_domain_changes` reads it.
            continue;
        }
        let path = path.replace("{name}", "a.example");
        let (status, body) = api.call(&method.to_uppercase(), &path, "").await;
        let unrouted =
            status == 405 || (status == 404 && body["error"]["message"] == "no such resource");
        assert!(
            !unrouted,
            "{method} {path} is described but not served: {status} {body}"
        );
    }
}

/// The schema `name` refers to, `$ref`s followed.
fn resolve<'a>(spec: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => {
            let name = r.rsplit('/').next().unwrap();
            &spec["components"]["schemas"][name]
        }
        None => schema,
    }
}

/// Every object in `value` has exactly the properties its schema names.
fn assert_fields(spec: &Value, schema: &Value, value: &Value, at: &str) {
    let schema = resolve(spec, schema);
    if let Some(alternatives) = schema["oneOf"].as_array() {
        for alt in alternatives {
            let alt = resolve(spec, alt);
            if alt["type"] != "null" && !value.is_null() {
                assert_fields(spec, alt, value, at);
            }
        }
        return;
    }
    match value {
        Value::Object(object) => {
            let Some(properties) = schema["properties"].as_object() else {
                return;
            };
            let mut want: Vec<&String> = properties.keys().collect();
            let mut got: Vec<&String> = object.keys().collect();
            want.sort();
            got.sort();
            // Absent-when-empty fields (`skip_serializing_if`) may be missing, never extra.
            for key in &got {
                assert!(
                    want.contains(key),
                    "{at}.{key} is answered but not described"
                );
            }
            for key in schema["required"].as_array().into_iter().flatten() {
                let key = key.as_str().unwrap();
                assert!(
                    object.contains_key(key),
                    "{at}.{key} is required but not answered"
                );
            }
            for (key, v) in object {
                assert_fields(spec, &properties[key.as_str()], v, &format!("{at}.{key}"));
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                assert_fields(spec, &schema["items"], v, &format!("{at}[{i}]"));
            }
        }
        _ => {}
    }
}

fn described_fields(spec: &Value, name: &str) -> Vec<String> {
    let mut keys: Vec<String> = spec["components"]["schemas"][name]["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("no schema {name}"))
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn answers_have_exactly_the_described_fields() {
    let spec = spec();
    let api = api().await;
    let (_, domain) = api.call("PUT", "/v1/domains/a.example", "").await;
    let (_, list) = api.call("GET", "/v1/domains?limit=1", "").await;
    let (_, summary) = api.call("GET", "/v1/summary", "").await;
    let (_, error) = api.call("GET", "/v1/domains/b.example", "").await;
    let schema = |name: &str| serde_json::json!({"$ref": format!("#/components/schemas/{name}")});
    for (name, value) in [
        ("Domain", &domain),
        ("DomainList", &list),
        ("Summary", &summary),
        ("ErrorResponse", &error),
    ] {
        assert_fields(&spec, &schema(name), value, name);
    }
    // Every field a full answer has is described, and the other way round.
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&domain), described_fields(&spec, "Domain"));
    assert_eq!(keys(&summary), described_fields(&spec, "Summary"));
    assert_eq!(keys(&list), described_fields(&spec, "DomainList"));
    assert_eq!(
        keys(&summary["states"]),
        described_fields(&spec, "StateCounts")
    );
    assert_eq!(
        keys(&summary["expiring"]),
        described_fields(&spec, "ExpiringCounts")
    );
    assert_eq!(
        keys(&summary["expiry_weeks"][0]),
        described_fields(&spec, "ExpiryWeek")
    );
}

#[tokio::test]
async fn the_description_is_served_behind_the_token() {
    let api = api().await;
    let (status, body) = api.call("GET", "/v1/openapi.json", "").await;
    assert_eq!(status, 200);
    assert_eq!(body, spec());
    let (status, _) = api.call_with("GET", "/v1/openapi.json", "", None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn certificate_details_read_the_served_leaf() {
    let api = api().await;
    let (status, body) = api
        .call("GET", "/v1/domains/a.example/certificate/details", "")
        .await;
    assert_eq!((status, code(&body)), (404, "not_found"));
    api.call("PUT", "/v1/domains/a.example", "").await;
    let (status, body) = api
        .call("GET", "/v1/domains/a.example/certificate/details", "")
        .await;
    assert_eq!((status, code(&body)), (409, "not_issued"));

    let rcgen::CertifiedKey { cert, signing_key } = rcgen::generate_simple_self_signed(vec![
        "a.example".to_owned(),
        "www.a.example".to_owned(),
    ])
    .unwrap();
    let now = time::OffsetDateTime::now_utc();
    let store = &api.state.store;
    let claim = store
        .claim_due(
            now + time::Duration::minutes(1),
            1,
            "L",
            now + time::Duration::minutes(5),
        )
        .await
        .unwrap()
        .remove(0);
    let issued = crate::store::IssuedCertificate {
        chain_pem: cert.pem(),
        key_pem: signing_key.serialize_pem(),
        not_before: now,
        not_after: now + time::Duration::days(90),
        version: "v1".into(),
    };
    assert!(
        store
            .record_issued(&claim, &issued, now, now)
            .await
            .unwrap()
    );
    let (status, body) = api
        .call("GET", "/v1/domains/a.example/certificate/details", "")
        .await;
    assert_eq!(status, 200, "{body}");
    let details: super::json::CertificateDetails = serde_json::from_value(body.clone()).unwrap();
    assert_eq!(details.sans, ["a.example", "www.a.example"]);
    assert_eq!(details.key_type, KeyType::EcdsaP256);
    assert!(!details.serial.is_empty() && !details.serial.contains(':'));
    assert!(details.issuer.contains("rcgen"), "{}", details.issuer);
    assert!(details.not_before < details.not_after);
    assert_eq!(body["ari_window"], Value::Null);
    let spec = spec();
    assert_fields(
        &spec,
        &serde_json::json!({"$ref": "#/components/schemas/CertificateDetails"}),
        &body,
        "CertificateDetails",
    );
}

#[tokio::test]
async fn events_stream_domain_changes() {
    let api = api().await;
    let filter = routes(api.state.clone());
    let response = warp::test::request()
        .path("/v1/events")
        .header("authorization", format!("Bearer {TOKEN}"))
        .filter(&filter)
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    api.call("PUT", "/v1/domains/a.example", "").await;
    let event = |change| super::events::event_for(&api.state, change);
    let text = event(Ok("a.example".to_owned())).await.to_string();
    assert!(text.contains("event:domain"), "{text}");
    assert!(text.contains(r#""state":"pending""#), "{text}");
    let text = event(Ok("gone.example".to_owned())).await.to_string();
    assert!(
        text.contains("event:deleted") && text.contains("gone.example"),
        "{text}"
    );
    let lagged = tokio_stream::wrappers::errors::BroadcastStreamRecvError::Lagged(3);
    assert!(
        event(Err(lagged))
            .await
            .to_string()
            .contains("event:resync")
    );
    let (status, _) = api.call_with("GET", "/v1/events", "", None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn orders_show_the_domain_history() {
    let api = api().await;
    let (status, body) = api.call("GET", "/v1/domains/a.example/orders", "").await;
    assert_eq!((status, code(&body)), (404, "not_found"));
    api.call("PUT", "/v1/domains/a.example", "").await;
    let now = time::OffsetDateTime::now_utc();
    let store = &api.state.store;
    store
        .record_order("a.example", "https://ca.test/order/1", now)
        .await
        .unwrap();
    store
        .close_orders("a.example", crate::store::OrderOutcome::Failed, now)
        .await
        .unwrap();
    store
        .record_order("a.example", "https://ca.test/order/2", now)
        .await
        .unwrap();
    let (status, body) = api.call("GET", "/v1/domains/a.example/orders", "").await;
    assert_eq!(status, 200, "{body}");
    let list: super::json::OrderList = serde_json::from_value(body.clone()).unwrap();
    let summary: Vec<(&str, &str, &str)> = list
        .orders
        .iter()
        .map(|o| (o.order_url.as_str(), o.kind.as_str(), o.outcome.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            ("https://ca.test/order/2", "new", "open"),
            ("https://ca.test/order/1", "new", "failed"),
        ]
    );
    assert_fields(
        &spec(),
        &serde_json::json!({"$ref": "#/components/schemas/OrderList"}),
        &body,
        "OrderList",
    );
}

#[tokio::test]
async fn capacity_counts_the_names_waiting_and_the_budget() {
    let api = api().await;
    api.call("PUT", "/v1/domains/a.example", "").await;
    api.call("PUT", "/v1/domains/b.example", "").await;
    let (status, body) = api.call("GET", "/v1/capacity", "").await;
    assert_eq!(status, 200, "{body}");
    let capacity: super::json::Capacity = serde_json::from_value(body).unwrap();
    assert_eq!(capacity.new_names_waiting, 2);
    assert_eq!(capacity.renewals_per_day, 0.0);
    assert!(
        (capacity.budget_per_day - 2000.0).abs() < 1e-6,
        "{capacity:?}"
    );
    assert!(!capacity.renewals_spend_budget);
    assert!((capacity.headroom_ratio - 1.0).abs() < 1e-9);
    assert_eq!(capacity.first_day_at_risk, None);
    let (status, _) = api.call_with("GET", "/v1/capacity", "", None).await;
    assert_eq!(status, 401);
}
