//! Readiness: what `/readyz` reports. Each component registers a [`Check`] in the shared
//! [`Readiness`] and says when it is ready or why it is not; `/readyz` answers 200 when every
//! check is ready, else 503 with the list of what is not.
//!
//! Adding a check is one [`Readiness::check`] call where the component starts, and
//! [`Check::ready`] / [`Check::not_ready`] calls as its state changes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;

/// The shared registry of checks (cheap to clone).
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    checks: Arc<Mutex<BTreeMap<&'static str, Option<String>>>>,
}

/// One component's state in a [`Readiness`]: not ready (with a reason) until it says so.
#[derive(Debug, Clone)]
pub struct Check {
    name: &'static str,
    readiness: Readiness,
}

/// A check that is not ready, as `/readyz` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotReady {
    pub check: &'static str,
    pub reason: String,
}

impl Readiness {
    pub fn new() -> Readiness {
        Readiness::default()
    }

    /// Register the check `name`, not ready for `reason` until [`Check::ready`].
    pub fn check(&self, name: &'static str, reason: impl Into<String>) -> Check {
        self.set(name, Some(reason.into()));
        Check {
            name,
            readiness: self.clone(),
        }
    }

    /// Every check that is not ready, by name; empty when all are.
    pub fn not_ready(&self) -> Vec<NotReady> {
        let checks = self.checks.lock().unwrap_or_else(PoisonError::into_inner);
        checks
            .iter()
            .filter_map(|(check, reason)| {
                reason.as_ref().map(|reason| NotReady {
                    check,
                    reason: reason.clone(),
                })
            })
            .collect()
    }

    fn set(&self, name: &'static str, reason: Option<String>) {
        let mut checks = self.checks.lock().unwrap_or_else(PoisonError::into_inner);
        checks.insert(name, reason);
    }
}

impl Check {
    pub fn ready(&self) {
        self.readiness.set(self.name, None);
    }

    pub fn not_ready(&self, reason: impl Into<String>) {
        self.readiness.set(self.name, Some(reason.into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_check_is() {
        let readiness = Readiness::new();
        assert!(readiness.not_ready().is_empty());
        let sds = readiness.check("sds", "not serving yet");
        let account = readiness.check("acme_account", "not loaded yet");
        assert_eq!(readiness.not_ready().len(), 2);
        sds.ready();
        assert_eq!(
            readiness.not_ready(),
            [NotReady {
                check: "acme_account",
                reason: "not loaded yet".into()
            }]
        );
        account.ready();
        assert!(readiness.not_ready().is_empty());
        sds.not_ready("stopped");
        assert_eq!(readiness.not_ready()[0].check, "sds");
    }
}
