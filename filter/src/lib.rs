//! acme-edge challenge filter: an Envoy proxy-wasm HTTP filter that answers ACME HTTP-01
//! challenge fetches (`GET /.well-known/acme-challenge/{token}`) for every domain, with one
//! lookup to the acme-edge backend, and lets every other request through untouched.
//!
//! # Layout
//!
//! - [`settings`]: the JSON plugin configuration, parsed once; every bad key reported.
//! - [`request`]: request headers -> pass / reject now / look up (host, token).
//! - [`outcome`]: the backend's answer -> serve / respond / pass, by `on_miss` and `on_error`.
//! - [`reply`]: the local replies (200 with the key authorization, 400, 404, 405, 503).
//! - [`cache`]: the process-wide answer cache in proxy-wasm shared data, a bounded slot table.
//! - [`counters`]: the Envoy stats counters (`wasmcustom.acme_edge.*` in `/stats`).
//! - `glue` (wasm32 only): the proxy-wasm contexts; the only module that calls Envoy.
//!
//! Everything but `glue` is plain Rust, built and tested on the host; none of it panics on
//! any input, since a panic traps the VM for every request on that worker.
//!
//! # Responses
//!
//! | request | answer |
//! |---|---|
//! | path outside the prefix, or `enabled: false` | passes untouched |
//! | token not 1-255 base64url characters | 404, no lookup |
//! | `:authority` not a DNS name or IP literal | 400, no lookup |
//! | method other than GET / HEAD | 405, `allow: GET, HEAD`, no lookup |
//! | backend 200 (or cached) | 200, `content-type: text/plain`, `cache-control: no-store`, body = key authorization |
//! | backend 404 | `on_miss`: 404, or pass to the normal routes |
//! | backend error, timeout, unreachable | `on_error`: 503 with `retry-after: 5`, or pass |

//! # Settings
//!
//! JSON in the wasm plugin `configuration`; every key optional, empty means all defaults.
//! An unknown key or a bad value makes the filter refuse the configuration, so Envoy
//! refuses it too, with a log line naming every offending key.
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `cluster` | string | `"acme_backend"` | Envoy cluster of the backend's lookup endpoint |
//! | `timeout_ms` | integer 1..=60000 | `2000` | lookup timeout |
//! | `prefix` | string `/.../` | `"/.well-known/acme-challenge/"` | challenge path prefix (keep equal to the challenge route in `edge.yaml`) |
//! | `on_miss` | `"respond"` / `"pass"` | `"respond"` | backend has no such token: answer 404, or continue to the normal routes |
//! | `on_error` | `"respond"` / `"pass"` | `"respond"` | backend failed or timed out, twice: answer 503 + `retry-after`, or continue |
//! | `enabled` | bool | `true` | `false` makes the filter a no-op |
//! | `cache_ttl_ms` | integer 0..=300000 | `10000` | how long a found answer is reused; 0 turns the cache off |
//!
//! # Stats
//!
//! Counters defined as `acme_edge.<name>`, shown by Envoy's admin `/stats` with Envoy's
//! prefix for wasm-defined metrics: `wasmcustom.acme_edge.handled`,
//! `.served`, `.cache_hits`, `.not_found`, `.invalid`, `.backend_errors`, `.passed`,
//! `.lookup_retries` (see [`counters`]).
//!
//! # A failed lookup is tried twice
//!
//! A lookup that gets neither "found" nor "missing" (no answer, a 5xx, a timeout) is sent
//! once more before `on_error` applies: a connection to the backend broken by its restart
//! fails the first, and the second goes out on a new connection, which waits in the
//! listening socket's backlog when the service manager holds it across the restart
//! (`deploy/acme-edge.socket`). A CA validating at that moment gets its answer late (within
//! two lookup timeouts), not a failure.

// A panic traps Envoy's wasm VM for every request on the worker, so nothing outside tests may
// panic (clippy.toml exempts tests).
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::unreachable,
    clippy::indexing_slicing,
    clippy::string_slice
)]

pub mod cache;
pub mod counters;
pub mod outcome;
pub mod reply;
pub mod request;
pub mod settings;

#[cfg(target_arch = "wasm32")]
mod glue;
