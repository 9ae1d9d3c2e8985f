//! acme-edge backend: automatic HTTPS for a fleet of Envoy proxies. It orders certificates
//! from an ACME CA (HTTP-01, answered through one generic Envoy filter), keeps them in a
//! database, renews them, and serves them to Envoy over SDS.
//!
//! # Layout
//!
//! The modules follow the data, from configuration to served certificate:
//!
//! - [`model`]: the core domain model every layer speaks: domain names (IDN, wildcards and
//!   IPs refused with a reason), states, key types, the last error.
//! - [`config`]: the TOML file and environment overrides, validated once at start-up.
//! - [`store`]: durable state behind the [`store::Store`] trait; SQLite by default.
//! - [`acme`]: the CA as the worker and the ARI walk see it ([`acme::CertificateAuthority`]),
//!   and its ACME implementation: the account and orders (instant-acme), certificate keys.
//! - [`schedule`]: when to renew (ARI window, or a share of the lifetime, with jitter) and
//!   when to retry (backoff, the CA's Retry-After).
//! - [`budget`]: the account-wide order budget over a sliding window.
//! - [`ari_refresh`]: re-checks issued certificates' ARI windows twice a day and brings a
//!   renewal forward when the CA moved the window earlier.
//! - [`jobs`]: the worker that runs due orders with bounded concurrency, within the budget,
//!   resuming orders cut short.
//! - [`challenge`]: the lookup endpoint the Envoy filter calls for HTTP-01 tokens.
//! - [`api`]: the admin REST API (`/v1/`), `/healthz`, `/metrics`; [`api::model`] is its
//!   JSON, shared with the CLI.
//! - [`metrics`]: Prometheus counters and gauges.
//! - [`certs`]: the seam between issuance and serving; [`sds`] serves certificates to Envoy.
//! - [`service`]: everything wired together, with graceful shutdown.
//! - [`cli`]: the operator CLI, a client of the admin API.

pub mod acme;
pub mod api;
pub mod ari_refresh;
pub mod budget;
pub mod certs;
pub mod challenge;
pub mod cli;
pub mod config;
pub mod jobs;
pub mod metrics;
pub mod model;
pub mod schedule;
pub mod sds;
pub mod service;
pub mod store;
#[cfg(test)]
mod testing;
