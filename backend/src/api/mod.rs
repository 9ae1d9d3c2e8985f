//! The admin API (warp): JSON under `/v1/` behind a bearer token, plus `/healthz` and
//! Prometheus `/metrics`.
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
//! - [`console`]: the web console's files.

pub mod auth;
pub mod certificate;
pub mod console;
pub mod domains;
pub mod error;
pub mod events;
pub mod model;
pub mod openapi;
pub mod orders;
pub mod paging;
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
    /// The web console's files, when installed.
    pub console: Option<console::Assets>,
}

/// All routes, errors recovered into the JSON shape.
pub fn routes(state: ApiState) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let v1 = warp::path("v1").and(authorized(state.token.clone())).and(
        domains::routes(state.clone())
            .or(account(state.clone()))
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
    healthz
        .or(console)
        .unify()
        .or(metrics(state))
        .unify()
        .or(v1)
        .unify()
        .recover(error::recover)
        .unify()
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

/// Refresh the fleet gauges from the store (every replica reports the shared database, not its
/// own memory) and render the exposition text.
async fn render_metrics(
    handle: &metrics_exporter_prometheus::PrometheusHandle,
    store: &dyn Store,
) -> Result<String, crate::store::StoreError> {
    let counts = store.count_by_state().await?;
    let earliest_expiry = store.earliest_expiry().await?;
    crate::metrics::set_fleet_gauges(&counts, earliest_expiry);
    handle.run_upkeep();
    Ok(handle.render())
}
