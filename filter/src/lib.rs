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

pub mod cache;
pub mod counters;
pub mod outcome;
pub mod reply;
pub mod request;
pub mod settings;

#[cfg(target_arch = "wasm32")]
mod glue;
