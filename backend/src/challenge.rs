//! The challenge lookup endpoint the Envoy filter calls, on its own listener:
//!
//! ```text
//! GET /acme-edge/v1/challenge/{host}/{token}
//! 200 text/plain  key authorization      (token held for that host)
//! 404                                    (anything else)
//! ```
//!
//! With `challenge.filter_wasm_file` set, the same listener serves the filter build Envoys
//! load (`acme-edge envoy-config --filter-url`), read once at start-up:
//!
//! ```text
//! GET /acme-edge/v1/filter.wasm          200 application/wasm   the build
//! GET /acme-edge/v1/filter.wasm.sha256   200 text/plain         its SHA-256, hex
//! ```
//!
//! These paths are outside the challenge prefix: the filter never sees them.
//!
//! The lookup path is defined once, in `acme_edge_contract::lookup`. A token is answered only
//! for the host it was issued for: a DNS name pointed at our proxies by someone else cannot
//! read another domain's key authorization (DNS-rebinding guard).

use std::convert::Infallible;
use std::sync::Arc;

use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::config::challenge::FilterBuild;
use crate::store::Store;

/// Where the filter build is served.
pub const FILTER_WASM_PATH: &str = "/acme-edge/v1/filter.wasm";
/// Where its SHA-256 is served.
pub const FILTER_SHA256_PATH: &str = "/acme-edge/v1/filter.wasm.sha256";

/// The lookup route and the filter build; every other request gets a 404.
pub fn routes(
    store: Arc<dyn Store>,
    filter: Option<FilterBuild>,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let filter = filter.map(Arc::new);
    warp::get()
        .and(warp::path::full())
        .then(move |path: warp::path::FullPath| {
            let store = store.clone();
            let filter = filter.clone();
            async move {
                match (path.as_str(), filter.as_deref()) {
                    (FILTER_WASM_PATH, Some(build)) => warp::reply::with_header(
                        build.bytes.to_vec(),
                        "content-type",
                        "application/wasm",
                    )
                    .into_response(),
                    (FILTER_SHA256_PATH, Some(build)) => warp::reply::with_header(
                        format!("{}\n", build.sha256),
                        "content-type",
                        "text/plain",
                    )
                    .into_response(),
                    (path, _) => lookup(store.as_ref(), path).await,
                }
            }
        })
        .recover(|_| async { Ok::<_, Infallible>(not_found()) })
        .unify()
}

async fn lookup(store: &dyn Store, path: &str) -> Response {
    let Some((host, token)) = acme_edge_contract::parse_lookup_path(path) else {
        return not_found();
    };
    match store.challenge(host, token).await {
        Ok(Some(key_authorization)) => {
            warp::reply::with_header(key_authorization, "content-type", "text/plain")
                .into_response()
        }
        Ok(None) => not_found(),
        Err(e) => {
            tracing::error!(error = %e, "challenge lookup: storage");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

fn not_found() -> Response {
    StatusCode::NOT_FOUND.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;
    use time::OffsetDateTime;

    #[tokio::test]
    async fn answers_only_for_the_right_host() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("db")).await.unwrap());
        store
            .enable_domain(
                "a.example",
                crate::model::KeyType::EcdsaP256,
                OffsetDateTime::now_utc(),
            )
            .await
            .unwrap();
        let now = OffsetDateTime::now_utc();
        let claims = store
            .claim_due(now, 1, "L", now + time::Duration::seconds(30))
            .await
            .unwrap();
        assert_eq!(claims.len(), 1);
        let published = store
            .put_challenge("a.example", "L", "tok-1", "tok-1.thumb", now)
            .await
            .unwrap();
        assert_ne!(published, crate::store::Published::LeaseLost);
        let api = routes(store, None);
        let get = |path: String| warp::test::request().path(&path).reply(&api);

        let ok = get(acme_edge_contract::lookup_path("a.example", "tok-1")).await;
        assert_eq!(ok.status(), 200);
        assert_eq!(ok.body().as_ref(), b"tok-1.thumb");
        assert_eq!(ok.headers()["content-type"], "text/plain");

        for path in [
            acme_edge_contract::lookup_path("b.example", "tok-1"),
            acme_edge_contract::lookup_path("a.example", "tok-2"),
            "/acme-edge/v1/challenge/A.example/tok-1".to_owned(),
            "/acme-edge/v1/challenge/a.example/tok-1/x".to_owned(),
            "/".to_owned(),
        ] {
            assert_eq!(get(path.clone()).await.status(), 404, "{path}");
        }
        let post = warp::test::request()
            .method("POST")
            .path(&acme_edge_contract::lookup_path("a.example", "tok-1"))
            .reply(&api)
            .await;
        assert_eq!(post.status(), 404);
        assert_eq!(get(FILTER_WASM_PATH.to_owned()).await.status(), 404);
    }

    #[tokio::test]
    async fn serves_the_filter_build_and_its_digest() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("db")).await.unwrap());
        let bytes: &[u8] = b"\0asm\x01\0\0\0";
        let build = FilterBuild {
            path: "/f.wasm".into(),
            bytes: bytes::Bytes::from_static(bytes),
            sha256: crate::config::challenge::sha256_hex(bytes),
        };
        let api = routes(store, Some(build.clone()));
        let wasm = warp::test::request()
            .path(FILTER_WASM_PATH)
            .reply(&api)
            .await;
        assert_eq!(wasm.status(), 200);
        assert_eq!(wasm.body().as_ref(), bytes);
        assert_eq!(wasm.headers()["content-type"], "application/wasm");
        let sha = warp::test::request()
            .path(FILTER_SHA256_PATH)
            .reply(&api)
            .await;
        assert_eq!(
            sha.body().as_ref(),
            format!("{}\n", build.sha256).as_bytes()
        );
    }
}
