//! `GET /readyz`: 200 `{"status":"ready"}` when the store answers and every registered check
//! ([`crate::health`]: the ACME account, the listeners, ...) is ready; otherwise 503
//! `{"status":"not_ready","not_ready":[{"check","reason"}]}`. Unauthenticated, like
//! `/healthz`: for load balancers and service managers.
//!
//! A CA that is unavailable does not make the replica unready (it still serves challenges and
//! certificates); both answers then carry `"issuance_paused": {"since", "reason"}`.

use std::sync::Arc;
use std::time::Duration;

use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::acme::health::CaHealth;
use crate::health::{NotReady, Readiness};
use crate::store::Store;

/// How long the store gets to answer a readiness probe.
pub const STORE_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub fn routes(
    readiness: Readiness,
    store: Arc<dyn Store>,
    ca_health: Arc<CaHealth>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("readyz").and(warp::get()).then(move || {
        let readiness = readiness.clone();
        let store = store.clone();
        let ca_health = ca_health.clone();
        async move { answer(&readiness, store.as_ref(), &ca_health).await }
    })
}

async fn answer(readiness: &Readiness, store: &dyn Store, ca_health: &CaHealth) -> Response {
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
    let mut body = if not_ready.is_empty() {
        serde_json::json!({"status": "ready"})
    } else {
        serde_json::json!({"status": "not_ready", "not_ready": not_ready})
    };
    if let Some(paused) = issuance_paused(ca_health) {
        body["issuance_paused"] = paused;
    }
    let status = if not_ready.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    warp::reply::with_status(warp::reply::json(&body), status).into_response()
}

/// `{"since", "reason"}` while issuance waits for the CA to answer again.
fn issuance_paused(ca_health: &CaHealth) -> Option<serde_json::Value> {
    let since = ca_health.paused_since()?;
    let since = since
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| since.to_string());
    Some(serde_json::json!({
        "since": since,
        "reason": ca_health.last_problem().unwrap_or_else(|| "the CA is unavailable".into()),
    }))
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
