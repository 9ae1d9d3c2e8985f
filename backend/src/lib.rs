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
//! - [`policy`]: the issuance policy, pure: when to renew (ARI window, or a share of the
//!   lifetime, with jitter), when to retry (backoff, the CA's Retry-After), the account-wide
//!   order budget over a sliding window.
//! - [`ari_refresh`]: re-checks issued certificates' ARI windows twice a day and brings a
//!   renewal forward when the CA moved the window earlier.
//! - [`jobs`]: the worker that runs due orders with bounded concurrency, within the budget,
//!   resuming orders cut short.
//! - [`challenge`]: the lookup endpoint the Envoy filter calls for HTTP-01 tokens.
//! - [`api`]: the admin REST API (`/v1/`), `/healthz`, `/metrics`; [`api::json`] is its
//!   JSON, shared with the CLI.
//! - [`listener`]: the HTTP listeners' bounds (connections, header and idle timeouts).
//! - [`metrics`]: Prometheus counters and gauges.
//! - [`certs`]: the seam between issuance and serving; [`sds`] serves certificates to Envoy.
//! - [`health`]: readiness checks the components report to (`/readyz`).
//! - [`service`]: everything wired together, with graceful shutdown.
//! - [`cli`]: the operator CLI, a client of the admin API.

//!
//! # The path of a token and of a certificate
//!
//! A newcomer's map: each hop names the module that does it.
//!
//! From an operator's `PUT /v1/domains/{name}` to the answer Envoy gives the CA:
//!
//! 1. [`api`] (`api::domains`) validates the name ([`model::DomainName`]) and calls
//!    `Store::enable_domain`: the domain is `pending`, due now; the API wakes the worker.
//! 2. [`jobs`] claims it (`Store::claim_due`, under a lease) within the order budget
//!    ([`policy::budget`]) and runs the order through the CA client ([`acme`], `acme::order`).
//! 3. `acme::order` logs the order ([`store`], `OrderLog`), writes each HTTP-01 token and its
//!    key authorization with `Store::put_challenge` **before** telling the CA the challenge
//!    is ready: any replica can answer from then on.
//! 4. The CA fetches `http://{name}/.well-known/acme-challenge/{token}` from an Envoy. The
//!    challenge route switches on the wasm filter (`filter/`, `envoy/edge.yaml`), which checks
//!    the token and host and asks the backend `GET /acme-edge/v1/challenge/{host}/{token}`
//!    (the path is defined once, in `acme_edge_contract::lookup`).
//! 5. [`challenge`] answers it from `Store::challenge` (only for the host the token was issued
//!    for); the filter replies to the CA and caches the answer briefly.
//!
//! From finalisation to Envoy's handshake:
//!
//! 1. `acme::order` finalises with a CSR for a key made by `acme::keys` (the key is kept in
//!    the order log first, so a crash cannot lose it), downloads the chain and checks it.
//! 2. [`jobs`] stores it (`Store::record_issued`, under the lease), computes the renewal time
//!    ([`policy::schedule`], or the CA's ARI window), and announces `CertEvent::Updated` on the
//!    store's source (`store::source`, the seam [`certs`]). On PostgreSQL the other replicas
//!    learn of it through `Store::follow_changes` (`LISTEN`/`NOTIFY`).
//! 3. [`sds`] pushes the new secret to every Envoy that holds the name (delta xDS,
//!    `sds::delta`, resources built by `sds::resource`); an Envoy that has not seen the name
//!    subscribes on its first handshake for it (on-demand secret by SNI) and the handshake
//!    resumes when the secret arrives.

pub mod acme;
pub mod activation;
pub mod api;
pub mod ari_refresh;
pub mod certs;
pub mod challenge;
pub mod cli;
pub mod config;
pub mod health;
pub mod jobs;
pub mod listener;
pub mod metrics;
pub mod model;
pub mod policy;
pub mod sds;
pub mod service;
pub mod store;
#[cfg(test)]
mod testing;
