//! The issuance worker: one loop that takes due domains from the store (new, retries,
//! renewals) and runs their orders concurrently, at most `acme.max_in_flight_orders` at once
//! and within the account-wide order budget ([`crate::policy::budget`]); the store hands out
//! expiry-critical renewals first.
//!
//! The worker sees the CA through the [`CertificateAuthority`] seam ([`crate::acme::Issuer`]
//! in the service) and reads the time from a [`Clock`], so that its policies (budget,
//! leases, backoff, Retry-After, drain) are tested in-process against a fake CA on tokio's
//! paused clock (`jobs::tests`).
//!
//! An attempt resumes the domain's open order when there is one ([`crate::acme::order`]), so
//! a crash at any point costs no second certificate. Its outcome sets the next due time:
//! the renewal time ([`schedule::renew_at`], or inside the CA's ARI window) or the retry time
//! ([`schedule::Backoff`], or the CA's Retry-After, kept to the second within
//! [`schedule::MIN_RETRY_AFTER`] and the daily step).
//!
//! Work is found in the store, not in memory, so a restart resumes it; the API only wakes the
//! loop early. When work is due but held back (every permit taken, or the budget spent) the
//! loop waits for a job to finish or for [`IDLE_POLL`], not for the due time, which has
//! passed. On shutdown the loop stops taking work and gives in-flight orders a bounded
//! grace period; orders cut short stay `validating` until their lease expires, then any
//! replica (this one after a restart) takes them over.
//!
//! Leases: a claim lasts `storage.lease_secs`; while an order runs, its job renews the lease
//! every third of that (`Job::heartbeat`). When a renewal finds the lease gone (the domain
//! was disabled, or this replica was cut off long enough for another to take the domain
//! over), the order is abandoned: its result would be discarded anyway.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::acme::health::{CaHealth, Probe};
use crate::acme::{CertificateAuthority, Failure};
use crate::certs::CertEvent;
use crate::config::{CaLimits, Config};
use crate::metrics;
use crate::policy::budget::OrderBudget;
use crate::policy::schedule::{self, Backoff, Clock};
use crate::store::OrderOutcome;
use crate::store::{Claim, IssuedCertificate, Store, StoreError, source::StoreSource};

#[cfg(test)]
mod tests;
mod turns;

/// Longest sleep between looks at the store, even when nothing is due: another process (a
/// later replica, an operator editing the database) may have added work without waking us.
/// Also the pause while the order budget is spent: the window slides a little each time.
pub const IDLE_POLL: Duration = Duration::from_secs(30);
/// Orders of a name read to count its recent failed validations: well above any CA's
/// count of them per window.
const FAILURE_HISTORY: usize = 64;
/// Pause after a storage error before looking again.
const STORE_ERROR_PAUSE: Duration = Duration::from_secs(5);

/// What the worker needs.
pub struct Worker {
    pub store: Arc<dyn Store>,
    pub ca: Arc<dyn CertificateAuthority>,
    pub source: StoreSource,
    /// Notified by the API when it made work due now.
    pub wake: Arc<Notify>,
    pub max_in_flight: usize,
    /// How long a claim lasts unless renewed (`storage.lease_secs`).
    pub lease: Duration,
    /// How long in-flight orders may run on after shutdown is signalled.
    pub grace: Duration,
    /// Retry delays after failures (`acme.retry_base_secs`).
    pub backoff: Backoff,
    /// New orders per sliding window, account-wide (`acme.order_budget`).
    pub budget: OrderBudget,
    /// Where `now` comes from: [`Clock::system`] but in tests.
    pub clock: Clock,
    /// The CA's health, shared with the API: while the CA is unavailable no work is claimed
    /// and the CA is probed instead.
    pub health: Arc<CaHealth>,
    /// The CA's limits (`[acme.limits]`). When renewals are exempt (Let's Encrypt's rule)
    /// they spend no order budget, and are claimed before new names, bounded by
    /// `max_in_flight` alone; a name's failed validations stay under the CA's count per
    /// window.
    pub limits: CaLimits,
}

/// What the limits count as placed before the orders are logged: jobs in flight for new
/// names, in all and per registered domain.
#[derive(Debug, Default, Clone)]
struct InFlight {
    new: NewInFlight,
    registered: turns::RegisteredInFlight,
}

/// Jobs in flight that may place a new order (not renewals), counted while they run: what
/// the budget counts as placed before the order is logged.
#[derive(Debug, Default, Clone)]
struct NewInFlight(Arc<AtomicU64>);

impl NewInFlight {
    fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Count one until the guard is dropped (the job ends, or is cut at shutdown).
    fn hold(&self) -> NewInFlightGuard {
        self.0.fetch_add(1, Ordering::Relaxed);
        NewInFlightGuard(self.0.clone())
    }
}

struct NewInFlightGuard(Arc<AtomicU64>);

impl Drop for NewInFlightGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

static LEASES: AtomicU64 = AtomicU64::new(0);

fn new_lease() -> String {
    let n = LEASES.fetch_add(1, Ordering::Relaxed);
    format!("{}-{}-{n}", std::process::id(), rand::random::<u32>())
}

impl Worker {
    /// The worker `config` describes, on the system clock, draining for `grace` at shutdown.
    pub fn from_config(
        config: &Config,
        store: Arc<dyn Store>,
        ca: Arc<dyn CertificateAuthority>,
        source: StoreSource,
        wake: Arc<Notify>,
        health: Arc<CaHealth>,
        grace: Duration,
    ) -> Worker {
        Worker {
            store,
            ca,
            source,
            wake,
            max_in_flight: config.acme.max_in_flight_orders,
            lease: config.storage.lease,
            grace,
            backoff: Backoff {
                base: config.acme.retry_base,
            },
            budget: OrderBudget {
                orders: config.acme.order_budget,
                window: config.acme.order_budget_window,
            },
            clock: Clock::system(),
            health,
            limits: config.acme.limits,
        }
    }

    /// Run until `shutdown` is cancelled, then drain.
    pub async fn run(self, shutdown: CancellationToken) {
        let permits = Arc::new(Semaphore::new(self.max_in_flight));
        let mut jobs = JoinSet::new();
        let in_flight = InFlight::default();
        let mut budget_spent = false;
        while !shutdown.is_cancelled() {
            let started = self
                .start_due(&permits, &mut jobs, &in_flight, &mut budget_spent)
                .await;
            let wait = match started {
                Ok(wait) => wait,
                Err(e) => {
                    tracing::error!(error = %e, "reading due work");
                    STORE_ERROR_PAUSE
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = self.wake.notified() => {}
                Some(_) = jobs.join_next(), if !jobs.is_empty() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
        self.drain(jobs).await;
    }

    /// Claim as much due work as there are free permits and budget, and start it; returns
    /// how long to sleep before looking again.
    async fn start_due(
        &self,
        permits: &Arc<Semaphore>,
        jobs: &mut JoinSet<()>,
        in_flight: &InFlight,
        budget_spent: &mut bool,
    ) -> Result<Duration, StoreError> {
        // Never longer than a lease between looks: another replica's claim made after our
        // last look, whose holder then died, is taken over within two lease durations.
        let idle = IDLE_POLL.min(self.lease);
        let now = self.clock.now();
        match self.health.probe_due(now) {
            Probe::NotNeeded => {}
            // Issuance is paused: each claim would only wait out the same unavailable CA.
            // A finished probe wakes the loop.
            Probe::Running => return Ok(idle),
            Probe::At(at) => return Ok(until(Some(at), now).min(idle)),
            Probe::Now => {
                let probe = CaProbe {
                    ca: self.ca.clone(),
                    health: self.health.clone(),
                    store: self.store.clone(),
                    clock: self.clock,
                };
                jobs.spawn(probe.run());
                return Ok(idle);
            }
        }
        let free = permits.available_permits();
        if free == 0 {
            // A job finishing wakes the loop.
            return Ok(idle);
        }
        let counted = if self.limits.renewals_exempt {
            in_flight.new.count()
        } else {
            u64::try_from(jobs.len()).unwrap_or(u64::MAX)
        };
        let allowed = self.within_budget(free, counted, budget_spent).await?;
        let now = self.clock.now();
        let (lease, lease_until) = (new_lease(), now + self.lease);
        let claims = if self.limits.renewals_exempt {
            (self.store)
                .claim_due_capped(now, free, allowed, &lease, lease_until)
                .await?
        } else if allowed > 0 {
            self.store
                .claim_due(now, allowed, &lease, lease_until)
                .await?
        } else {
            Vec::new()
        };
        let (claims, waited) = match self.limits.registered_domain {
            Some(limit) => {
                let store = self.store.as_ref();
                turns::take_turns(store, limit, &in_flight.registered, claims, now).await?
            }
            None => (claims, 0),
        };
        for claim in &claims {
            self.source.announce_domain(&claim.name);
        }
        for claim in claims {
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                break;
            };
            let counted = (!claim.renewal).then(|| {
                let registered = in_flight.registered.hold(&claim.name);
                (in_flight.new.hold(), registered)
            });
            let job = Job {
                store: self.store.clone(),
                ca: self.ca.clone(),
                source: self.source.clone(),
                lease: self.lease,
                backoff: self.backoff,
                clock: self.clock,
                health: self.health.clone(),
                limits: self.limits,
            };
            jobs.spawn(async move {
                job.run(claim).await;
                drop((permit, counted));
            });
        }
        if waited > 0 {
            // The names that wait took room this look did not use: look again now.
            return Ok(Duration::ZERO);
        }
        let next = self.store.next_due().await?;
        if next.is_some_and(|at| at <= now) {
            // More is due than the permits or the budget let us take (or another replica is
            // taking it): its due time has passed, so sleeping until it would spin. A
            // finishing job, the sliding window or an enable (which wakes the loop) frees
            // room.
            return Ok(idle);
        }
        Ok(until(next, self.clock.now()).min(idle))
    }

    /// How many of `free` permits the order budget lets us use: for new names only when
    /// renewals are exempt, else for every order. Jobs in flight that count (`in_flight`)
    /// may not have logged their order yet: they count as placed, erring on the safe side.
    /// Says so once when the budget runs out, and once when it has room again.
    async fn within_budget(
        &self,
        free: usize,
        in_flight: u64,
        spent: &mut bool,
    ) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let since = self.budget.window_start(now);
        let placed = if self.limits.renewals_exempt {
            self.store.new_orders_since(since).await?
        } else {
            self.store.orders_since(since).await?
        };
        let allowed = self.budget.allowance(placed.saturating_add(in_flight));
        if (allowed == 0) != *spent {
            *spent = allowed == 0;
            if *spent {
                tracing::info!(placed, budget = self.budget.orders, window = ?self.budget.window, "order budget spent; due work waits");
            } else {
                tracing::info!(
                    placed,
                    budget = self.budget.orders,
                    "order budget has room again"
                );
            }
        }
        Ok(free.min(allowed))
    }

    async fn drain(&self, mut jobs: JoinSet<()>) {
        if jobs.is_empty() {
            return;
        }
        tracing::info!(in_flight = jobs.len(), grace = ?self.grace, "letting in-flight orders finish");
        let finished = tokio::time::timeout(self.grace, async {
            while jobs.join_next().await.is_some() {}
        })
        .await;
        if finished.is_err() {
            tracing::warn!(
                cut_short = jobs.len(),
                "grace period over; unfinished orders resume at the next start"
            );
            jobs.shutdown().await;
        }
    }
}

/// How long from `now` until `when` (or [`IDLE_POLL`] when nothing is due).
fn until(when: Option<OffsetDateTime>, now: OffsetDateTime) -> Duration {
    match when {
        Some(at) => {
            let secs = (at - now).as_seconds_f64();
            // Due times have second resolution: wake just after, not spinning before.
            Duration::from_secs_f64(secs.max(0.0)) + Duration::from_millis(50)
        }
        None => IDLE_POLL,
    }
}

/// One look at whether an unavailable CA answers again.
struct CaProbe {
    ca: Arc<dyn CertificateAuthority>,
    health: Arc<CaHealth>,
    store: Arc<dyn Store>,
    clock: Clock,
}

impl CaProbe {
    async fn run(self) {
        let outcome = self.ca.probe().await.map_err(|e| e.to_string());
        let now = self.clock.now();
        if let Err(problem) = &outcome {
            tracing::info!(error = %problem, "the CA is still unavailable");
        }
        if self.health.probe_done(now, outcome) {
            ca_back(self.store.as_ref(), now).await;
        }
    }
}

/// The CA answers again: the domains waiting on it are due now.
async fn ca_back(store: &dyn Store, now: OffsetDateTime) {
    match store.release_waiting_on_ca(now).await {
        Ok(released) => {
            tracing::info!(released, "the CA answers again; issuance resumed")
        }
        Err(e) => tracing::error!(error = %e, "releasing the domains waiting on the CA"),
    }
}

/// One issuance attempt for one claimed domain.
struct Job {
    store: Arc<dyn Store>,
    ca: Arc<dyn CertificateAuthority>,
    source: StoreSource,
    lease: Duration,
    backoff: Backoff,
    clock: Clock,
    health: Arc<CaHealth>,
    limits: CaLimits,
}

impl Job {
    async fn run(self, claim: Claim) {
        if claim.resumed {
            // The stopped worker's tokens stay published: the CA may be validating one, and
            // resuming its order publishes the same tokens again under this lease.
            tracing::info!(domain = %claim.name, "resuming orders interrupted by a stopped worker (its lease expired)");
        }
        tracing::info!(domain = %claim.name, renewal = claim.renewal, attempt = claim.attempts + 1, "ordering");
        // A renewal names the certificate it replaces (ARI), and an open order that already
        // produced the stored certificate is not resumed.
        let current = if claim.renewal {
            self.store.certificate(&claim.name).await.ok().flatten()
        } else {
            None
        };
        let outcome = tokio::select! {
            outcome = self.ca.issue(&claim, current.as_ref()) => outcome,
            () = self.heartbeat(&claim) => {
                tracing::warn!(domain = %claim.name, "lease lost while ordering; order abandoned");
                return;
            }
        };
        let recorded = match outcome {
            Ok(cert) => self.succeeded(&claim, cert).await,
            Err(error) => self.failed(&claim, error).await,
        };
        if let Err(e) = recorded {
            // The domain stays `validating` until the next start releases it.
            tracing::error!(domain = %claim.name, error = %e, "recording the outcome");
        }
    }

    /// Renew the lease every third of its duration; returns only once it is lost. A failed
    /// renewal (database unreachable) is retried at the next beat: the lease holds until it
    /// expires, and after that the next renewal reports it lost.
    async fn heartbeat(&self, claim: &Claim) {
        let beat = self.lease / 3;
        loop {
            tokio::time::sleep(beat).await;
            let until = self.clock.now() + self.lease;
            match self.store.renew_lease(claim, until).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    tracing::warn!(domain = %claim.name, error = %e, "renewing the lease failed")
                }
            }
        }
    }

    async fn succeeded(&self, claim: &Claim, cert: IssuedCertificate) -> Result<(), StoreError> {
        let now = self.clock.now();
        if self.health.answered() {
            ca_back(self.store.as_ref(), now).await;
        }
        let renew_at = self.renew_at(&cert, now).await;
        let stored = self
            .store
            .record_issued(claim, &cert, renew_at, now)
            .await?;
        // Only now is the order done with; a crash before this line resumes it, finds the
        // certificate already stored, and places no second order.
        self.store
            .close_orders(&claim.name, OrderOutcome::Issued, now)
            .await?;
        if stored {
            metrics::issuance_succeeded(claim.renewal);
            tracing::info!(domain = %claim.name, not_after = %cert.not_after, renew_at = %renew_at, "issued");
            self.source.announce(CertEvent::Updated(claim.name.clone()));
        } else {
            tracing::info!(domain = %claim.name, "issued, but the domain changed meanwhile; discarded");
        }
        Ok(())
    }

    /// Inside the CA's ARI window when it offers one, else a share of the lifetime (also
    /// when the CA cannot be asked now); a random point either way, so certificates issued
    /// together renew apart.
    async fn renew_at(&self, cert: &IssuedCertificate, now: OffsetDateTime) -> OffsetDateTime {
        let jitter = rand::random::<f64>();
        let window = match self.ca.renewal_window(&cert.chain_pem).await {
            Ok(window) => window,
            Err(e) => {
                tracing::warn!(error = %e, "fetching renewal information");
                None
            }
        };
        match window {
            Some(w) => schedule::ari_renew_at(w.start, w.end, now, jitter),
            None => schedule::renew_at(cert.not_before, cert.not_after, jitter),
        }
    }

    async fn failed(&self, claim: &Claim, failure: Failure) -> Result<(), StoreError> {
        let Failure { error, retry_after } = failure;
        let now = self.clock.now();
        let class = error.class();
        self.note_ca_health(&error, now).await;
        // Only the domain's own failures climb its ladder (1, 10, 100 base units, then
        // daily); the CA's and ours are retried within minutes (a CA that lost our account
        // included: a new one is registered at the next attempt).
        let retry_at = if error.unpause_link().is_some() {
            // Paused by the CA until someone unpauses it: each order would be refused.
            self.backoff.daily(now)
        } else if class.counts_against_domain() {
            let attempts = claim.attempts.saturating_add(1);
            let retry_at = self.backoff.retry_at(now, attempts, retry_after);
            if error.validation_fix().is_some() {
                self.under_failure_limit(&claim.name, retry_at).await?
            } else {
                retry_at
            }
        } else {
            let in_a_row = self.health.failures_in_a_row();
            self.backoff.ca_retry_at(now, in_a_row, retry_after)
        };
        metrics::issuance_failed(error.reason());
        metrics::issuance_failed_class(class.as_str());
        tracing::warn!(domain = %claim.name, error = %error, class = %class, retry_at = %retry_at, "issuance failed");
        self.store
            .record_failed(claim, &error.to_last_error(), retry_at, now)
            .await?;
        self.source.announce_domain(&claim.name);
        Ok(())
    }

    /// `retry_at`, or later when the CA's limit on failed validations per name
    /// (`acme.limits.authorization_failures`) would be reached by one more: the CA would
    /// refuse the next order for the name (and a long run of failures pauses it).
    async fn under_failure_limit(
        &self,
        name: &str,
        retry_at: OffsetDateTime,
    ) -> Result<OffsetDateTime, StoreError> {
        let Some(limit) = self.limits.authorization_failures else {
            return Ok(retry_at);
        };
        let count = usize::try_from(limit.count).unwrap_or(usize::MAX);
        let history = self.store.order_history(name, FAILURE_HISTORY).await?;
        let failed: Vec<OffsetDateTime> = (history.iter())
            .filter(|o| o.outcome.as_deref() == Some(OrderOutcome::Failed.as_str()))
            .filter_map(|o| o.closed_at)
            .collect();
        Ok(schedule::under_limit(
            retry_at,
            &failed,
            count,
            limit.window,
        ))
    }

    /// What a failure says of the CA: unavailable (counts towards pausing issuance), or it
    /// answered (ends a pause). Our own failures say nothing of it.
    async fn note_ca_health(&self, error: &crate::acme::AcmeError, now: OffsetDateTime) {
        if error.ca_unavailable() {
            if self.health.unavailable(now, &error.to_string()) {
                tracing::warn!(error = %error, "the CA is unavailable; issuance paused until it answers again");
            }
        } else if error.class() != crate::model::FailureClass::Ours && self.health.answered() {
            ca_back(self.store.as_ref(), now).await;
        }
    }
}
