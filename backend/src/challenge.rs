//! The challenge lookup endpoint the Envoy filter calls, on its own listener:
//!
//! ```text
//! GET /acme-edge/v1/challenge/{host}/{token}
//! 200 text/plain  key authorization      (token held for that host)
//! 404                                    (anything else)
//! ```
//!
//! The path is defined once, in `acme_edge_contract::lookup`. A token is answered only
//! for the host it was issued for: a DNS name pointed at our proxies by someone else cannot
//! read another domain's key authorization (DNS-rebinding guard).

use std::convert::Infallible;
use std::sync::Arc;

use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::store::Store;

/// The lookup route; every other request gets a 404.
pub fn routes(
    store: Arc<dyn Store>,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    warp::get()
        .and(warp::path::full())
        .then(move |path: warp::path::FullPath| {
            let store = store.clone();
            async move { lookup(store.as_ref(), path.as_str()).await }
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
        assert!(published);
        let api = routes(store);
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
    }
}
