//! The admin API through `warp::test`, against a real SQLite store.

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::Notify;

use super::auth::AdminToken;
use super::model::{Domain, DomainList, DomainState, KeyType};
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
        console: None,
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
    assert_eq!(body, serde_json::json!({"domains": []}));
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

    let (_, body) = api.call("GET", "/v1/domains?state=pending", "").await;
    let list: DomainList = serde_json::from_value(body).unwrap();
    let names: Vec<_> = list.domains.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["rsa.example", "www.example.com"]);
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
