//! The admin API (warp): JSON under `/v1/` behind a bearer token, plus `/healthz`, `/readyz`
//! ([`ready`]) and Prometheus `/metrics`.
//!
//! | method and path                     | answer                                        |
//! |-------------------------------------|-----------------------------------------------|
//! | `GET /v1/domains?state=&q=&limit=&after=` | [`model::DomainList`], a page ([`paging`]) |
//! | `GET /v1/domains/{name}`            | [`model::Domain`]                             |
//! | `PUT /v1/domains/{name}`            | enable: 201 when new, 200 when already there  |
//! | `DELETE /v1/domains/{name}`         | disable: the domain, now `disabled`           |
//! | `POST /v1/domains/{name}/renew`     | force renewal: the domain, due now            |
//! | `GET /v1/domains/{name}/certificate`| the chain, PEM (never the key)                |
//! | `GET /v1/domains/{name}/certificate/details` | [`model::CertificateDetails`] |
//! | `GET /v1/domains/{name}/orders`     | [`model::OrderList`] ([`orders`])             |
//! | `GET /v1/account`                   | [`model::AccountInfo`]                        |
//! | `GET /v1/ca`                        | [`model::CaStatus`]: issuance paused or not   |
//! | `GET /v1/events`                    | server-sent events of domain changes ([`events`]) |
//! | `GET /v1/summary`                   | [`model::Summary`]                            |
//! | `GET /v1/openapi.json`              | this table as OpenAPI 3.1 ([`openapi`])       |
//! | `GET /console/`                     | the web console's files ([`console`]), no token |
//!
//! Errors are `{"error": {"code", "message"}}`, mapped in [`error`].
//!
//! # Layout
//!
//! - [`model`]: the JSON types (shared with the CLI).
//! - [`auth`]: the bearer token.
//! - [`error`]: error codes and statuses, in one place.
//! - [`domains`]: the handlers; [`paging`]: the list's query; [`summary`]: the fleet at a glance.
//! - [`ready`]: `/readyz`, from the components' readiness checks.
//! - [`console`]: the web console's files.

pub mod auth;
pub mod ca;
pub mod certificate;
pub mod console;
pub mod domains;
pub mod error;
pub mod events;
pub mod gauges;
pub mod model;
pub mod openapi;
pub mod orders;
pub mod paging;
pub mod ready;
pub mod summary;

use std::convert::Infallible;
use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::Notify;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use self::auth::AdminToken;
use self::error::ApiError;
use self::model::KeyType;
use crate::acme::health::CaHealth;
use crate::store::Store;
use crate::store::source::StoreSource;

/// Largest request body accepted (the enable body is a few bytes).
pub const MAX_BODY_BYTES: u64 = 64 * 1024;

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub store: Arc<dyn Store>,
    pub token: AdminToken,
    /// Woken when a domain becomes due now.
    pub wake: Arc<Notify>,
    pub source: StoreSource,
    pub default_key_type: KeyType,
    pub directory_url: String,
    pub metrics: Option<PrometheusHandle>,
    pub metrics_require_token: bool,
    /// The CA's health, shared with the worker.
    pub ca_health: Arc<CaHealth>,
    /// The web console's files, when installed.
    pub console: Option<console::Assets>,
}

/// All routes, errors recovered into the JSON shape.
pub fn routes(state: ApiState) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let v1 = warp::path("v1").and(authorized(state.token.clone())).and(
        domains::routes(state.clone())
            .or(account(state.clone()))
            .unify()
            .or(ca::routes(state.ca_health.clone()))
            .unify()
            .or(summary::route(state.clone()))
            .unify()
            .or(openapi::route())
            .unify()
            .or(certificate::route(state.clone()))
            .unify()
            .or(events::route(state.clone()))
            .unify()
            .or(orders::route(state.clone()))
            .unify(),
    );
    let healthz = warp::path!("healthz")
        .and(warp::get())
        .map(|| warp::reply::json(&serde_json::json!({"status": "ok"})).into_response());
    let console = console::routes(state.console.clone());
    let all = healthz
        .or(console)
        .unify()
        .or(metrics(state))
        .unify()
        .or(v1)
        .unify()
        .recover(error::recover)
        .unify();
    warp::path::full().and(all).map(with_allow)
}

/// A 405 says which methods the path has (`Allow`, RFC 9110).
fn with_allow(path: warp::path::FullPath, mut response: Response) -> Response {
    if response.status() == warp::http::StatusCode::METHOD_NOT_ALLOWED
        && let Some(allow) = openapi::allowed_methods(path.as_str())
        && let Ok(value) = warp::http::HeaderValue::from_str(&allow)
    {
        response
            .headers_mut()
            .insert(warp::http::header::ALLOW, value);
    }
    response
}

/// Passes only with the right bearer token.
fn authorized(token: AdminToken) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::header::optional::<String>("authorization")
        .and_then(move |header: Option<String>| {
            let ok = token.accepts(header.as_deref());
            async move {
                if ok {
                    Ok(())
                } else {
                    Err(warp::reject::custom(ApiError::Unauthorized))
                }
            }
        })
        .untuple_one()
}

fn metrics(state: ApiState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
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
                match render_metrics(handle, state.store.as_ref()).await {
                    Ok(text) => {
                        warp::reply::with_header(text, "content-type", "text/plain; version=0.0.4")
                            .into_response()
                    }
                    Err(e) => ApiError::from(e).into_response(),
                }
            }
        })
}

fn account(state: ApiState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("account").and(warp::get()).then(move || {
        let state = state.clone();
        async move {
            match state.store.account(&state.directory_url).await {
                Ok(Some(a)) => warp::reply::json(&model::AccountInfo {
                    directory_url: a.directory_url,
                    account_url: a.account_url,
                    created_at: a.created_at,
                })
                .into_response(),
                Ok(None) => {
                    ApiError::NotFound("no ACME account yet (created on first issuance)".into())
                        .into_response()
                }
                Err(e) => ApiError::from(e).into_response(),
            }
        }
    })
}

#[cfg(test)]
mod tests;

/// Render the exposition text. The fleet gauges are kept from the store in the background
/// ([`gauges::keep_fresh`]): a scrape reads memory only.
async fn render_metrics(
    handle: &metrics_exporter_prometheus::PrometheusHandle,
    store: &dyn Store,
) -> Result<String, crate::store::StoreError> {
    gauges::ensure_counted(store).await?;
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
const EARLIEST_EXPIRY_METRIC: &str = "acme_edge_earliest_expiry_seconds";

/// `text` (Prometheus exposition) without the samples and comments of metric `name`.
fn without_metric(text: &str, name: &str) -> String {
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
