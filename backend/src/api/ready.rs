//! `GET /readyz`: 200 `{"status":"ready"}` when the store answers and every registered check
//! ([`crate::health`]: the ACME account, the listeners, ...) is ready; otherwise 503
//! `{"status":"not_ready","not_ready":[{"check","reason"}]}`. Unauthenticated, like
//! `/healthz`: for load balancers and service managers.

use std::sync::Arc;
use std::time::Duration;

use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::health::{NotReady, Readiness};
use crate::store::Store;

/// How long the store gets to answer a readiness probe.
pub const STORE_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub fn routes(
    readiness: Readiness,
    store: Arc<dyn Store>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("readyz").and(warp::get()).then(move || {
        let readiness = readiness.clone();
        let store = store.clone();
        async move { answer(&readiness, store.as_ref()).await }
    })
}

async fn answer(readiness: &Readiness, store: &dyn Store) -> Response {
    let mut not_ready = readiness.not_ready();
    if let Some(reason) = store_unreachable(store).await {
        not_ready.insert(
            0,
            NotReady {
                check: "store",
                reason,
            },
        );
    }
    if not_ready.is_empty() {
        return warp::reply::json(&serde_json::json!({"status": "ready"})).into_response();
    }
    warp::reply::with_status(
        warp::reply::json(&serde_json::json!({"status": "not_ready", "not_ready": not_ready})),
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .into_response()
}

/// Why the store cannot be used now, if it cannot.
async fn store_unreachable(store: &dyn Store) -> Option<String> {
    match tokio::time::timeout(STORE_PROBE_TIMEOUT, store.count_by_state()).await {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(format!("the database does not answer: {e}")),
        Err(_) => Some(format!(
            "the database did not answer within {STORE_PROBE_TIMEOUT:?}"
        )),
    }
}
