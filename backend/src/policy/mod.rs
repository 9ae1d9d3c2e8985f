//! The issuance policy, pure: when a certificate renews and a failure is retried
//! ([`schedule`]), how many orders the account may place ([`budget`]). No I/O: the worker
//! (`jobs`) and the ARI walk (`ari_refresh`), above it, execute what it decides, and
//! the store orders due work by the same rules ([`schedule::critical_at`]).
//!
//! # Layout
//!
//! - [`schedule`]: the renewal point (the CA's ARI window, else a share of the lifetime,
//!   jittered), the point past which a renewal is critical, the backoff of failures, the
//!   clock.
//! - [`budget`]: the account-wide order budget over a sliding window.
//! - [`registered_domain`]: the CA's limit on new certificates per registered domain, kept
//!   by making new names wait their turn.
//! - [`capacity`]: what the account can sustain: renewals a day needed, orders a day
//!   allowed, the headroom, the first day at risk.

pub mod budget;
pub mod capacity;
pub mod registered_domain;
pub mod schedule;
#[cfg(test)]
mod simulation;
