//! The admin API (warp): JSON under `/v1/` behind a bearer token, plus `/healthz`, `/readyz`
//! ([`ready`]) and Prometheus `/metrics`.
//!
//! | method and path                     | answer                                        |
//! |-------------------------------------|-----------------------------------------------|
//! | `GET /v1/domains?state=&q=&limit=&after=` | [`json::DomainList`], a page ([`paging`]) |
//! | `GET /v1/domains/{name}`            | [`json::Domain`]                             |
//! | `PUT /v1/domains/{name}`            | enable: 201 when new, 200 when already there  |
//! | `DELETE /v1/domains/{name}`         | disable: the domain, now `disabled`           |
//! | `POST /v1/domains/{name}/renew`     | force renewal: the domain, due now            |
//! | `GET /v1/domains/{name}/certificate`| the chain, PEM (never the key)                |
//! | `GET /v1/domains/{name}/certificate/details` | [`json::CertificateDetails`] |
//! | `GET /v1/domains/{name}/orders`     | [`json::OrderList`] ([`orders`])             |
//! | `GET /v1/account`                   | [`json::AccountInfo`]                        |
//! | `GET /v1/ca`                        | [`json::CaStatus`]: issuance paused or not   |
//! | `GET /v1/events`                    | server-sent events of domain changes ([`events`]) |
//! | `GET /v1/capacity`                  | [`json::Capacity`]: renewals needed, budget, headroom |
//! | `GET /v1/summary`                   | [`json::Summary`]                            |
//! | `GET /v1/openapi.json`              | this table as OpenAPI 3.1 ([`openapi`])       |
//! | `GET /console/`                     | the web console's files ([`console`]), no token |
//!
//! Errors are `{"error": {"code", "message"}}`, mapped in [`error`].
//!
//! # Layout
//!
//! - `state`: [`ApiState`], what the handlers share.
//! - [`json`]: the JSON bodies (shared with the CLI).
//! - [`auth`]: the bearer token, and the filter that requires it.
//! - [`error`]: error codes and statuses, in one place.
//! - the handlers, a file per resource: [`domains`] ([`paging`]: the list's query),
//!   [`certificate`], [`orders`], [`account`], [`ca`], [`events`], [`capacity`], [`summary`] (the fleet at a
//!   glance), [`openapi`], and `metrics` (`/metrics`, its fleet gauges kept by [`gauges`]).
//! - [`ready`]: `/readyz`, from the components' readiness checks.
//! - [`console`]: the web console's files.

pub mod account;
pub mod auth;
pub mod ca;
pub mod capacity;
pub mod certificate;
pub mod console;
pub mod domains;
pub mod error;
pub mod events;
pub mod gauges;
pub mod json;
mod metrics;
pub mod openapi;
pub mod orders;
pub mod paging;
pub mod ready;
mod state;
pub mod summary;

use std::convert::Infallible;

use warp::reply::Response;
use warp::{Filter, Reply};

pub use state::{ApiState, MAX_BODY_BYTES};

/// All routes, errors recovered into the JSON shape.
pub fn routes(state: ApiState) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let v1 = warp::path("v1")
        .and(auth::authorized(state.token.clone()))
        .and(
            domains::routes(state.clone())
                .or(account::route(state.clone()))
                .unify()
                .or(ca::routes(state.ca_health.clone()))
                .unify()
                .or(summary::route(state.clone()))
                .unify()
                .or(capacity::route(state.clone()))
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
        .or(metrics::route(state))
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

#[cfg(test)]
mod tests;
