//! The CA's health as this replica sees it: a circuit breaker shared by every job.
//!
//! - *Available*: jobs run as usual. Each attempt that fails because the CA (or the path to
//!   it) is down ([`AcmeError::ca_unavailable`](super::AcmeError::ca_unavailable): no
//!   answer in time, no connection, an HTTP 5xx) counts; any attempt the CA answered
//!   resets the count.
//! - After [`TRIP_AFTER`] such failures in a row the CA is *unavailable*: issuance is paused.
//!   The worker claims no new work (each claim would only wait out the same timeout) and
//!   instead probes the CA (a cheap read of its directory) after [`PROBE_FIRST`], then at
//!   doubling intervals up to [`PROBE_MAX`].
//! - A probe (or any attempt) that gets an answer makes it *available* again, and the worker
//!   makes every domain that was waiting on the CA due at once
//!   ([`Store::release_waiting_on_ca`](crate::store::Store::release_waiting_on_ca)), within
//!   `acme.max_in_flight_orders` and the order budget as always.
//!
//! The state is per replica (each replica probes the CA itself); [`CaHealth::snapshot`] is
//! what the admin API's `GET /v1/ca`, the CLI and `/readyz` show.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use crate::metrics;

/// Failures in a row, each the CA's unavailability, that pause issuance.
pub const TRIP_AFTER: u32 = 3;
/// First probe after issuance paused.
pub const PROBE_FIRST: Duration = Duration::from_secs(2);
/// Longest interval between probes while the CA stays unavailable.
pub const PROBE_MAX: Duration = Duration::from_secs(30);

/// What operators see of the CA's health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    /// `available` or `unavailable` (issuance paused).
    pub state: &'static str,
    /// Since when it is unavailable.
    #[serde(with = "time::serde::rfc3339::option")]
    pub since: Option<OffsetDateTime>,
    /// The last failure that counted towards (or kept) the pause.
    pub last_problem: Option<String>,
}

/// When the worker should probe the CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// The CA is available: no probe, work as usual.
    NotNeeded,
    /// A probe is due now; it has been marked as running ([`CaHealth::probe_done`] ends it).
    Now,
    /// The next probe is due then.
    At(OffsetDateTime),
    /// A probe is running.
    Running,
}

#[derive(Debug, Default)]
struct State {
    in_a_row: u32,
    since: Option<OffsetDateTime>,
    last_problem: Option<String>,
    failed_probes: u32,
    next_probe: Option<OffsetDateTime>,
    probing: bool,
}

/// The circuit breaker (see the module docs).
#[derive(Debug, Default)]
pub struct CaHealth {
    state: Mutex<State>,
}

impl CaHealth {
    pub fn new() -> CaHealth {
        metrics::set_ca_available(None);
        CaHealth::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Since when issuance is paused because the CA is unavailable; `None` while it is not.
    pub fn paused_since(&self) -> Option<OffsetDateTime> {
        self.lock().since
    }

    /// The last problem that counted against the CA, if any since it was last available.
    pub fn last_problem(&self) -> Option<String> {
        self.lock().last_problem.clone()
    }

    pub fn snapshot(&self) -> Snapshot {
        let state = self.lock();
        Snapshot {
            state: if state.since.is_some() {
                "unavailable"
            } else {
                "available"
            },
            since: state.since,
            last_problem: state.last_problem.clone(),
        }
    }

    /// How many failures in a row were the CA's unavailability (0 after any answer).
    pub fn failures_in_a_row(&self) -> u32 {
        self.lock().in_a_row
    }

    /// The CA answered (an attempt got anywhere, or a probe succeeded). Returns `true` when
    /// this ends a pause: the caller releases the domains waiting on the CA.
    pub fn answered(&self) -> bool {
        let mut state = self.lock();
        let was_paused = state.since.is_some();
        *state = State {
            probing: state.probing,
            ..State::default()
        };
        if was_paused {
            metrics::set_ca_available(None);
        }
        was_paused
    }

    /// An attempt failed because the CA is unavailable. Returns `true` when this pauses
    /// issuance.
    pub fn unavailable(&self, now: OffsetDateTime, problem: &str) -> bool {
        let mut state = self.lock();
        state.in_a_row = state.in_a_row.saturating_add(1);
        state.last_problem = Some(problem.to_owned());
        if state.since.is_some() || state.in_a_row < TRIP_AFTER {
            return false;
        }
        state.since = Some(now);
        state.failed_probes = 0;
        state.next_probe = Some(now + PROBE_FIRST);
        metrics::set_ca_available(Some(now));
        true
    }

    /// Whether to probe now; `Probe::Now` marks the probe as running.
    pub fn probe_due(&self, now: OffsetDateTime) -> Probe {
        let mut state = self.lock();
        if state.since.is_none() {
            return Probe::NotNeeded;
        }
        if state.probing {
            return Probe::Running;
        }
        match state.next_probe {
            Some(at) if at > now => Probe::At(at),
            _ => {
                state.probing = true;
                Probe::Now
            }
        }
    }

    /// A probe ended: `Ok` (the CA answered; returns `true` when that ends the pause, as
    /// [`CaHealth::answered`]) or with the problem it met (the next probe waits longer).
    pub fn probe_done(&self, now: OffsetDateTime, outcome: Result<(), String>) -> bool {
        {
            let mut state = self.lock();
            state.probing = false;
            if let Err(problem) = outcome {
                state.failed_probes = state.failed_probes.saturating_add(1);
                state.last_problem = Some(problem);
                state.next_probe = Some(now + probe_interval(state.failed_probes));
                return false;
            }
        }
        self.answered()
    }
}

/// The wait before the next probe after `failed` failed probes: [`PROBE_FIRST`] doubled
/// each time, at most [`PROBE_MAX`].
pub fn probe_interval(failed: u32) -> Duration {
    let doubled = PROBE_FIRST.saturating_mul(1u32 << failed.min(16));
    doubled.min(PROBE_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-01-01 0:00 UTC);

    #[test]
    fn trips_after_failures_in_a_row_and_an_answer_resets() {
        let health = CaHealth::new();
        assert!(!health.unavailable(T0, "timeout"));
        assert!(!health.unavailable(T0, "timeout"));
        assert!(!health.answered(), "was not paused");
        assert!(!health.unavailable(T0, "timeout"));
        assert!(!health.unavailable(T0, "timeout"));
        assert_eq!(health.paused_since(), None);
        assert!(health.unavailable(T0, "the CA did not answer"));
        assert_eq!(health.paused_since(), Some(T0));
        let snap = health.snapshot();
        assert_eq!(snap.state, "unavailable");
        assert_eq!(snap.last_problem.as_deref(), Some("the CA did not answer"));
        assert!(!health.unavailable(T0, "again"), "already paused");
        assert!(health.answered(), "ends the pause");
        assert_eq!(health.snapshot().state, "available");
        assert_eq!(health.last_problem(), None);
    }

    #[test]
    fn probes_back_off_up_to_the_maximum() {
        let health = CaHealth::new();
        assert_eq!(health.probe_due(T0), Probe::NotNeeded);
        for _ in 0..TRIP_AFTER {
            health.unavailable(T0, "down");
        }
        assert_eq!(health.probe_due(T0), Probe::At(T0 + PROBE_FIRST));
        let t1 = T0 + PROBE_FIRST;
        assert_eq!(health.probe_due(t1), Probe::Now);
        assert_eq!(health.probe_due(t1), Probe::Running);
        assert!(!health.probe_done(t1, Err("still down".into())));
        assert_eq!(health.probe_due(t1), Probe::At(t1 + PROBE_FIRST * 2));
        assert_eq!(probe_interval(10), PROBE_MAX);
        let t2 = t1 + PROBE_FIRST * 2;
        assert_eq!(health.probe_due(t2), Probe::Now);
        assert!(health.probe_done(t2, Ok(())));
        assert_eq!(health.probe_due(t2), Probe::NotNeeded);
    }
}
