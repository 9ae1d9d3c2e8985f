//! `GET /metrics`: the Prometheus exposition, behind the bearer token when
//! `admin.metrics_require_token` says so.

use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::ApiState;
use super::error::ApiError;
use super::gauges;
use crate::policy::capacity::Pacing;
use crate::store::{Store, StoreError};

/// The exposition, or 404 when metrics are not enabled in this process.
pub fn route(state: ApiState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let token = state.token.clone();
    let require = state.metrics_require_token;
    warp::path!("metrics")
        .and(warp::get())
        .and(warp::header::optional::<String>("authorization"))
        .then(move |header: Option<String>| {
            let state = state.clone();
            let allowed = !require || token.accepts(header.as_deref());
            async move {
                if !allowed {
                    return ApiError::Unauthorized.into_response();
                }
                let Some(handle) = &state.metrics else {
                    return ApiError::NotFound("metrics are not enabled".into()).into_response();
                };
                match render_metrics(handle, state.store.as_ref(), state.pacing).await {
                    Ok(text) => {
                        warp::reply::with_header(text, "content-type", "text/plain; version=0.0.4")
                            .into_response()
                    }
                    Err(e) => ApiError::from(e).into_response(),
                }
            }
        })
}

/// Render the exposition text. The fleet gauges are kept from the store in the background
/// ([`gauges::keep_fresh`]): a scrape reads memory only.
async fn render_metrics(
    handle: &metrics_exporter_prometheus::PrometheusHandle,
    store: &dyn Store,
    pacing: Pacing,
) -> Result<String, StoreError> {
    gauges::ensure_counted(store, pacing).await?;
    let served = crate::metrics::refresh_expiry_gauge();
    handle.run_upkeep();
    let text = handle.render();
    // Nothing served: no earliest expiry, rather than the last one's stale value.
    Ok(if served {
        text
    } else {
        without_metric(&text, EARLIEST_EXPIRY_METRIC)
    })
}

/// The gauge of the earliest certificate expiry, absent while no certificate is served.
pub(super) const EARLIEST_EXPIRY_METRIC: &str = "acme_edge_earliest_expiry_seconds";

/// `text` (Prometheus exposition) without the samples and comments of metric `name`.
pub(super) fn without_metric(text: &str, name: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let body = line
            .strip_prefix("# HELP ")
            .or_else(|| line.strip_prefix("# TYPE "))
            .unwrap_or(line);
        let is_metric = body
            .strip_prefix(name)
            .is_some_and(|rest| rest.starts_with([' ', '{', '\n']) || rest.is_empty());
        if !is_metric {
            out.push_str(line);
        }
    }
    out
}
