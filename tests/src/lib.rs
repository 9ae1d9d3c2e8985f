//! End-to-end test harness for acme-edge: real Envoy, real Pebble, real backend processes.
//!
//! # Layout
//!
//! - [`ports`]: free loopback ports, allocated, never fixed.
//! - [`process`]: child processes that are killed and reaped on drop, readiness polling.
//! - [`tools`]: where the binaries are (Envoy, Pebble, the built filter, the backend).
//! - [`pebble`]: Pebble (the ACME test CA) and `pebble-challtestsrv` as its DNS.
//! - [`envoy`]: Envoy started from the templates in `envoy/`, with ports and paths filled in.
//! - [`fixture`]: a small controllable HTTP server playing the challenge backend.
//! - [`backend`]: the real `acme-edge serve` process with a generated configuration.
//! - [`postgres`]: a PostgreSQL database per test, for backends sharing one store.
//! - [`fleet`]: two replicas (of one release or two) and two Envoys on one PostgreSQL.
//! - [`stack`]: all of the above wired together (used by the tests and by `cargo xtask demo`).
//! - [`test_ca`]: a throwaway CA and the certificates it signs (Pebble's listener, mutual TLS,
//!   certificates served through SDS).
//! - [`mutual_tls`]: the certificate files for mutual TLS between Envoy and the SDS listener.
//! - [`tls`]: TLS clients trusting only a test's roots, and a handshake that returns the leaf
//!   presented.
//! - [`upgrade`]: a database with a history, written by one release and read by the next
//!   (fixtures, restored; rows compared).
//! - [`usage`]: a process's resident memory and CPU time, for the benchmarks.

pub mod backend;
pub mod browser;
pub mod envoy;
pub mod fixture;
pub mod fleet;
pub mod mutual_tls;
pub mod pebble;
pub mod ports;
pub mod postgres;
pub mod process;
pub mod stack;
pub mod test_ca;
pub mod tls;
pub mod tools;
pub mod upgrade;
pub mod usage;
