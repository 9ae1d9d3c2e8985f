//! The worker's side of the per-registered-domain limit
//! ([`crate::policy::registered_domain`]): of a batch of claims, the new names whose
//! registered domain has had its share are handed back to the store to wait their turn
//! (`pending`, due at the time their turn comes, the reason in `last_error`); the others run.
//!
//! New names in flight whose order is not logged yet count as placed, as for the account's
//! budget.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use time::OffsetDateTime;

use crate::config::Limit;
use crate::model::{FailureClass, LastError, registered_domain};
use crate::policy::registered_domain::{REASON, RegisteredDomainGate, Turn};
use crate::store::{Claim, Store, StoreError};

/// New names in flight per registered domain, counted while their jobs run.
#[derive(Debug, Default, Clone)]
pub(super) struct RegisteredInFlight(Arc<Mutex<HashMap<String, usize>>>);

impl RegisteredInFlight {
    fn count(&self, registered_domain: &str) -> usize {
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(registered_domain).copied().unwrap_or(0)
    }

    /// Count `name`'s registered domain until the guard is dropped.
    pub(super) fn hold(&self, name: &str) -> RegisteredGuard {
        let key = registered_domain(name).to_owned();
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        *map.entry(key.clone()).or_insert(0) += 1;
        RegisteredGuard {
            map: self.0.clone(),
            key,
        }
    }
}

pub(super) struct RegisteredGuard {
    map: Arc<Mutex<HashMap<String, usize>>>,
    key: String,
}

impl Drop for RegisteredGuard {
    fn drop(&mut self) {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = map.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.key);
            }
        }
    }
}

/// The claims that may run now; the others were handed back to wait (how many, second).
/// A claim that counts (a new name, not an order taken over) is gated; renewals never are.
pub(super) async fn take_turns(
    store: &dyn Store,
    limit: Limit,
    in_flight: &RegisteredInFlight,
    claims: Vec<Claim>,
    now: OffsetDateTime,
) -> Result<(Vec<Claim>, usize), StoreError> {
    let mut gate = RegisteredDomainGate::new(limit, now);
    let mut run = Vec::with_capacity(claims.len());
    let mut waited = 0;
    for claim in claims {
        if claim.renewal || claim.resumed {
            run.push(claim);
            continue;
        }
        let domain = registered_domain(&claim.name);
        if !gate.knows(domain) {
            let placed = store
                .registered_domain_orders(domain, gate.window_start())
                .await?;
            gate.read(domain, placed, in_flight.count(domain));
        }
        match gate.turn(domain) {
            Turn::Go => run.push(claim),
            Turn::WaitUntil(until) => {
                let reason = waiting(domain, limit, until);
                tracing::info!(domain = %claim.name, registered_domain = domain, until = %until, "registered domain at the CA's limit; the name waits its turn");
                store.wait_turn(&claim, &reason, until, now).await?;
                waited += 1;
            }
        }
    }
    Ok((run, waited))
}

/// Why a name waits: shown by the API, CLI and console as its last error.
fn waiting(domain: &str, limit: Limit, until: OffsetDateTime) -> LastError {
    let days = limit.window.as_secs_f64() / 86_400.0;
    let until = until
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| until.to_string());
    LastError {
        reason: REASON.to_owned(),
        message: format!(
            "{domain} has had the CA's {count} new certificates per {days} days; \
             this name is ordered at {until} when its turn comes",
            count = limit.count,
        ),
        problem: None,
        class: FailureClass::Ca,
    }
}
