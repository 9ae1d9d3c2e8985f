//! The worker's policies, in-process: a fake CA ([`crate::acme::fake`]) scripted per domain,
//! a real SQLite store on a temporary file, and tokio's paused clock, so that hours of
//! retries, leases and budget windows run in milliseconds. Each test asserts what can be
//! observed: the store's state, the calls the CA saw, and when.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::Worker;
use crate::acme::fake::{self, Ari, Ended, FakeCa, Gate, Step};
use crate::acme::health::{self, CaHealth};
use crate::certs::{CertEvent, CertificateSource};
use crate::config::{CaLimits, Preset};
use crate::model::{DomainState, FailureClass, KeyType};
use crate::policy::budget::OrderBudget;
use crate::policy::schedule::{self, Backoff, Clock};
use crate::store::{Store, source::StoreSource};
use crate::testing::{self, PausedStore, START};

mod registered;
mod storm;

const LEASE: Duration = Duration::from_secs(60);
const GRACE: Duration = Duration::from_secs(20);

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn mins(n: u64) -> Duration {
    Duration::from_secs(n * 60)
}

/// Time since [`START`] as a std duration (the tests never look before it).
fn since_start(at: OffsetDateTime) -> Duration {
    Duration::try_from(at - START).expect("after the start")
}

/// A database, a clock and a fake CA; what one backend process has.
struct World {
    _dir: tempfile::TempDir,
    path: PathBuf,
    db: Arc<PausedStore>,
    store: Arc<dyn Store>,
    ca: Arc<FakeCa>,
    clock: Clock,
    health: Arc<CaHealth>,
}

impl World {
    /// `name`'s next order runs until the returned gate opens, then issues.
    fn issued_once_open(&self, name: &str) -> Gate {
        let gate = Gate::default();
        self.ca.script(
            name,
            [Step::Wait(
                gate.clone(),
                Box::new(Step::Issue(fake::LIFETIME)),
            )],
        );
        gate
    }

    async fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("acme-edge.db");
        let db = PausedStore::open(&path).await;
        let store: Arc<dyn Store> = db.clone();
        let clock = testing::clock();
        let ca = FakeCa::new(store.clone(), clock);
        World {
            _dir: dir,
            path,
            db,
            store,
            ca,
            clock,
            health: Arc::new(CaHealth::new()),
        }
    }

    /// The same database after a restart: a new store, the leases of the stopped process
    /// released (as the service does at start-up), a new CA client.
    async fn restart(self) -> World {
        let World {
            _dir,
            path,
            db,
            store,
            ca,
            clock,
            health: _,
        } = self;
        // The database is this process's alone until every handle on it is gone.
        drop((db, store, ca));
        let db = PausedStore::open(&path).await;
        let store: Arc<dyn Store> = db.clone();
        store.release_in_flight(clock.now()).await.unwrap();
        let ca = FakeCa::new(store.clone(), clock);
        World {
            _dir,
            path,
            db,
            store,
            ca,
            clock,
            health: Arc::new(CaHealth::new()),
        }
    }

    async fn enable(&self, names: &[&str]) {
        for name in names {
            self.store
                .enable_domain(name, KeyType::EcdsaP256, self.clock.now())
                .await
                .unwrap();
        }
    }

    async fn state(&self, name: &str) -> DomainState {
        self.store.domain(name).await.unwrap().unwrap().state
    }

    /// A worker with room to spare; tests narrow what they test.
    /// [`World::worker`] with a retry backoff of `base`.
    fn worker_backing_off(&self, base: Duration) -> Worker {
        Worker {
            backoff: Backoff { base },
            ..self.worker()
        }
    }

    fn worker(&self) -> Worker {
        Worker {
            store: self.store.clone(),
            ca: self.ca.clone(),
            source: StoreSource::new(self.store.clone()),
            wake: Arc::new(Notify::new()),
            max_in_flight: 10,
            lease: LEASE,
            grace: GRACE,
            backoff: Backoff::default(),
            budget: OrderBudget {
                orders: 100,
                window: Duration::from_secs(3 * 3600),
            },
            clock: self.clock,
            health: self.health.clone(),
            // The budget's own tests count every order, as for a CA that counts renewals
            // against the account; the exemption has tests of its own.
            limits: CaLimits {
                renewals_exempt: false,
                ..Preset::None.limits()
            },
        }
    }
}

/// A worker running in the background.
struct Running {
    stop: CancellationToken,
    wake: Arc<Notify>,
    task: JoinHandle<()>,
}

fn start(worker: Worker) -> Running {
    let stop = CancellationToken::new();
    let wake = worker.wake.clone();
    let task = tokio::spawn(worker.run(stop.clone()));
    Running { stop, wake, task }
}

impl Running {
    /// Signal shutdown and wait for the worker to return; how long that took.
    async fn stop(self) -> Duration {
        let asked = tokio::time::Instant::now();
        self.stop.cancel();
        self.task.await.unwrap();
        asked.elapsed()
    }
}

async fn run_for(d: Duration) {
    tokio::time::sleep(d).await;
}

/// At most `limit` new orders in any `window` (a sliding window, every start point).
fn assert_within_budget(orders: &[OffsetDateTime], limit: usize, window: Duration) {
    for start in orders {
        let inside = orders
            .iter()
            .filter(|t| **t >= *start && **t < *start + window)
            .count();
        assert!(
            inside <= limit,
            "{inside} orders in the window from {start}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn the_order_budget_is_a_sliding_window() {
    let w = World::new().await;
    let mut worker = w.worker();
    worker.budget = OrderBudget {
        orders: 2,
        window: Duration::from_secs(3600),
    };
    let running = start(worker);

    w.enable(&["a.example"]).await;
    running.wake.notify_one();
    run_for(mins(30)).await;
    w.enable(&["b.example"]).await;
    running.wake.notify_one();
    run_for(mins(1)).await;
    w.enable(&["c.example", "d.example"]).await;
    running.wake.notify_one();
    run_for(mins(180)).await;
    running.stop().await;

    let calls = w.ca.issues();
    let at = |name: &str| since_start(w.ca.issues_for(name)[0].at);
    assert_eq!(calls.len(), 4, "{calls:?}");
    assert!(
        calls
            .iter()
            .all(|c| c.new_order && c.ended == Ended::Issued)
    );
    assert!(at("b.example") >= mins(30) && at("b.example") < mins(31));
    // The window slides: c goes when a's order leaves it, d only when b's does (a fixed
    // hourly window would have let both go at the hour).
    let (c, d) = {
        let (x, y) = (at("c.example"), at("d.example"));
        (x.min(y), x.max(y))
    };
    assert!(c >= mins(60) && c <= mins(61), "{c:?}");
    assert!(d >= mins(90) && d <= mins(91), "{d:?}");
    let orders: Vec<_> = calls.iter().map(|c| c.at).collect();
    assert_within_budget(&orders, 2, mins(60));
    for name in ["a.example", "b.example", "c.example", "d.example"] {
        assert_eq!(w.state(name).await, DomainState::Issued, "{name}");
    }
}

/// Store calls while the worker waits `d` with due work held back: a look every
/// [`IDLE_POLL`](super::IDLE_POLL) at most, not a spin on a due time that has passed.
async fn calls_while_held_back(w: &World, d: Duration) -> u64 {
    let before = w.db.calls();
    run_for(d).await;
    let calls = w.db.calls() - before;
    let looks = d.as_secs() / super::IDLE_POLL.as_secs() + 1;
    assert!(
        calls <= 4 * looks,
        "{calls} store calls in {d:?} with nothing to start"
    );
    calls
}

#[tokio::test(start_paused = true)]
async fn a_spent_budget_leaves_due_work_waiting_without_spinning() {
    let w = World::new().await;
    w.enable(&["a.example", "b.example"]).await;
    let mut worker = w.worker();
    worker.budget = OrderBudget {
        orders: 1,
        window: Duration::from_secs(3600),
    };
    let running = start(worker);
    run_for(secs(1)).await;
    assert_eq!(w.ca.issues().len(), 1);
    calls_while_held_back(&w, mins(50)).await;
    assert_eq!(w.ca.issues().len(), 1);
    // The budget has room again an hour after the first order; the worker sees it at its
    // next look.
    run_for(mins(10) + super::IDLE_POLL).await;
    running.stop().await;
    let calls = w.ca.issues();
    assert_eq!(calls.len(), 2);
    assert!(since_start(calls[1].at) >= mins(60));
}

#[tokio::test(start_paused = true)]
async fn the_order_budget_holds_across_a_restart() {
    let budget = OrderBudget {
        orders: 2,
        window: Duration::from_secs(3600),
    };
    let names = ["a.example", "b.example", "c.example"];
    let w = World::new().await;
    w.enable(&names).await;
    let mut worker = w.worker();
    worker.budget = budget;
    let running = start(worker);
    run_for(mins(10)).await;
    running.stop().await;
    assert_eq!(w.ca.issues().len(), 2, "the budget allows two");
    let first = w.ca.issues();

    // A new process on the same database: the log of orders placed is in the store.
    let w = w.restart().await;
    let mut worker = w.worker();
    worker.budget = budget;
    let running = start(worker);
    run_for(mins(45)).await;
    assert!(w.ca.issues().is_empty(), "{:?}", w.ca.issues());
    run_for(mins(10)).await;
    running.stop().await;

    let second = w.ca.issues();
    assert_eq!(second.len(), 1, "{second:?}");
    assert!(second[0].new_order);
    let at = since_start(second[0].at);
    assert!(at >= mins(60) && at <= mins(61), "{at:?}");
    let mut all: Vec<_> = first.iter().chain(&second).map(|c| c.at).collect();
    all.sort();
    assert_within_budget(&all, 2, mins(60));
    for name in names {
        assert_eq!(w.state(name).await, DomainState::Issued, "{name}");
    }
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured_exactly() {
    let w = World::new().await;
    // A CA time with a fraction of a second, as `now + Retry-After` has.
    run_for(Duration::from_millis(1500)).await;
    w.ca.script(
        "a.example",
        [Step::Fail {
            error: fake::problem("rateLimited", 429),
            retry_after: Some(Duration::from_secs(2 * 3600)),
        }],
    );
    w.enable(&["a.example"]).await;
    let running = start(w.worker());
    run_for(mins(119)).await;

    let calls = w.ca.issues_for("a.example");
    assert_eq!(calls.len(), 1, "{calls:?}");
    let Ended::Failed(Some(asked)) = calls[0].ended else {
        panic!("{calls:?}");
    };
    let domain = w.store.domain("a.example").await.unwrap().unwrap();
    assert_eq!(domain.state, DomainState::Failed);
    let error = domain.last_error.unwrap();
    assert_eq!(error.reason, "rate_limited");
    assert_eq!(
        error.problem.unwrap()["type"],
        "urn:ietf:params:acme:error:rateLimited"
    );
    // The CA's time, to the second the store keeps, rounded up: not our 1-minute backoff.
    let retry_at = domain.retry_at.unwrap();
    assert!(
        retry_at >= asked && retry_at - asked < time::Duration::SECOND,
        "{retry_at} for {asked}"
    );

    run_for(mins(2)).await;
    running.stop().await;
    let calls = w.ca.issues_for("a.example");
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(
        calls[1].at >= asked,
        "retried at {} before {asked}",
        calls[1].at
    );
    assert!(calls[1].at - asked < time::Duration::seconds(2));
    assert_eq!(w.state("a.example").await, DomainState::Issued);
}

#[tokio::test(start_paused = true)]
async fn retry_after_zero_waits_a_second() {
    let w = World::new().await;
    let zero = (0..20).map(|_| Step::Fail {
        error: fake::problem("rateLimited", 429),
        retry_after: Some(Duration::ZERO),
    });
    w.ca.script("a.example", zero);
    w.enable(&["a.example"]).await;
    let running = start(w.worker());
    run_for(secs(5)).await;
    running.stop().await;

    let calls = w.ca.issues_for("a.example");
    assert!(
        (2..=6).contains(&calls.len()),
        "{} attempts in 5 s",
        calls.len()
    );
    for pair in calls.windows(2) {
        assert!(
            pair[1].at - pair[0].at >= time::Duration::SECOND,
            "{} then {}",
            pair[0].at,
            pair[1].at
        );
    }
}

/// The times between consecutive attempts.
fn gaps(calls: &[fake::IssueCall]) -> Vec<Duration> {
    calls
        .windows(2)
        .map(|p| Duration::try_from(p[1].at - p[0].at).unwrap())
        .collect()
}

/// Each gap is its step, late by at most the rounding to the second and the wake-up margin.
fn assert_steps(gaps: &[Duration], steps: &[Duration]) {
    assert_eq!(gaps.len(), steps.len(), "{gaps:?}");
    for (gap, step) in gaps.iter().zip(steps) {
        assert!(
            gap >= step && *gap < *step + secs(2),
            "gap {gap:?} for step {step:?} in {gaps:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn failures_back_off_1_10_100_base_units_then_daily() {
    let w = World::new().await;
    let failures = (0..5).map(|_| Step::fail(fake::validation_failed("connection")));
    w.ca.script("a.example", failures);
    w.enable(&["a.example"]).await;
    // A short base, as the end-to-end tests use: 1 s, 10 s, 100 s, then 1440 s.
    let base = secs(1);
    let running = start(w.worker_backing_off(base));

    run_for(secs(60)).await;
    let domain = w.store.domain("a.example").await.unwrap().unwrap();
    assert_eq!(domain.attempts, 3);
    assert_eq!(domain.last_error.unwrap().reason, "validation_failed");

    run_for(secs(2 * 1440 + 200)).await;
    running.stop().await;
    let calls = w.ca.issues_for("a.example");
    assert_steps(
        &gaps(&calls),
        &[base, base * 10, base * 100, base * 1440, base * 1440],
    );
    // Each invalid order was closed: every attempt placed a new one.
    assert!(calls.iter().all(|c| c.new_order), "{calls:?}");
    let domain = w.store.domain("a.example").await.unwrap().unwrap();
    assert_eq!(domain.state, DomainState::Issued);
    assert_eq!(domain.attempts, 0);
}

/// Failed validations of `a.example` in its first three hours with a 1 s retry base, under
/// `limits`.
async fn failed_validations_under(limits: CaLimits) -> Vec<OffsetDateTime> {
    let w = World::new().await;
    let failures = (0..20).map(|_| Step::fail(fake::validation_failed("connection")));
    w.ca.script("a.example", failures);
    w.enable(&["a.example"]).await;
    let worker = Worker {
        limits,
        ..w.worker_backing_off(secs(1))
    };
    let running = start(worker);
    run_for(mins(180)).await;
    running.stop().await;
    (w.ca.issues_for("a.example").iter())
        .filter_map(|c| c.ended_at)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn failed_validations_of_a_name_stay_under_the_cas_limit() {
    let hourly = |count| crate::config::Limit {
        count,
        window: Duration::from_secs(3600),
    };
    // Without the limit, a short retry base fails a name 5 times within two minutes.
    let unlimited = failed_validations_under(Preset::None.limits()).await;
    assert!(
        unlimited.len() >= 6 && unlimited[5] - unlimited[0] < time::Duration::hours(1),
        "{unlimited:?}"
    );
    let limited = failed_validations_under(CaLimits {
        authorization_failures: Some(hourly(5)),
        ..Preset::None.limits()
    })
    .await;
    assert!(limited.len() >= 6, "it keeps trying: {limited:?}");
    assert_within_budget(&limited, 5, mins(60));
}

#[tokio::test(start_paused = true)]
async fn a_name_the_ca_paused_is_tried_again_daily_with_the_link_shown() {
    let w = World::new().await;
    let link = "https://portal.letsencrypt.org/sfe/v1/unpause?jwt=a.b.c";
    let mut paused = fake::problem("rateLimited", 429);
    if let crate::acme::AcmeError::Problem { problem, .. } = &mut paused {
        problem.detail = Some(format!(
            "Your account is temporarily prevented from requesting certificates for \
             a.example and possibly others. Please visit: {link}"
        ));
    }
    w.ca.script("a.example", [Step::fail(paused)]);
    w.enable(&["a.example"]).await;
    let running = start(w.worker());
    run_for(mins(10)).await;
    let domain = w.store.domain("a.example").await.unwrap().unwrap();
    let last = domain.last_error.expect("the pause is shown");
    assert_eq!(last.reason, "ca_paused");
    assert_eq!(last.class, FailureClass::Domain);
    assert!(last.message.contains(link), "{}", last.message);
    assert_eq!(w.ca.issues_for("a.example").len(), 1, "not hammered");
    run_for(Duration::from_secs(86_400)).await;
    running.stop().await;
    let calls = w.ca.issues_for("a.example");
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_steps(&gaps(&calls), &[Duration::from_secs(86_400)]);
    assert_eq!(w.state("a.example").await, DomainState::Issued);
}

#[tokio::test(start_paused = true)]
async fn a_lost_account_is_retried_after_the_first_step() {
    let w = World::new().await;
    let lost = (0..3).map(|_| Step::fail(fake::problem("accountDoesNotExist", 400)));
    w.ca.script("a.example", lost);
    w.enable(&["a.example"]).await;
    let running = start(w.worker());
    run_for(mins(10)).await;
    running.stop().await;

    let base = Backoff::default().base;
    assert_steps(&gaps(&w.ca.issues_for("a.example")), &[base, base, base]);
    assert_eq!(w.state("a.example").await, DomainState::Issued);
}

#[tokio::test(start_paused = true)]
async fn the_lease_is_renewed_while_an_order_runs() {
    let w = World::new().await;
    let gate = w.issued_once_open("a.example");
    w.enable(&["a.example"]).await;
    let running = start(w.worker());

    for _ in 0..10 {
        run_for(LEASE).await;
        // The lease is always ahead: renewed every third of it.
        let now = w.clock.now();
        let expires = w.store.next_due().await.unwrap().unwrap();
        assert!(
            expires > now + LEASE / 2 && expires <= now + LEASE,
            "lease expires at {expires}, now {now}"
        );
    }
    // Ten leases on, nobody took the domain over (the worker itself would, as a stale
    // claim, were the lease not renewed).
    let calls = w.ca.issues();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].ended, Ended::Running);
    assert_eq!(w.state("a.example").await, DomainState::Validating);

    gate.open();
    run_for(secs(1)).await;
    running.stop().await;
    assert_eq!(w.ca.issues()[0].ended, Ended::Issued);
    assert_eq!(w.state("a.example").await, DomainState::Issued);
    assert!(w.store.certificate("a.example").await.unwrap().is_some());
}

#[tokio::test(start_paused = true)]
async fn a_domain_disabled_mid_order_is_abandoned() {
    let w = World::new().await;
    w.ca.script("a.example", [Step::Hang]);
    w.enable(&["a.example"]).await;
    let running = start(w.worker());
    run_for(secs(5)).await;
    let disabled_at = w.clock.now();
    w.store
        .disable_domain("a.example", disabled_at)
        .await
        .unwrap();
    run_for(mins(5)).await;
    running.stop().await;

    let calls = w.ca.issues();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].ended, Ended::Cancelled, "the order was abandoned");
    // At the next heartbeat, a third of the lease.
    let abandoned = since_start(calls[0].ended_at.unwrap());
    assert!(
        abandoned <= since_start(disabled_at) + LEASE / 3,
        "{abandoned:?}"
    );
    assert_eq!(w.state("a.example").await, DomainState::Disabled);
    assert!(w.store.certificate("a.example").await.unwrap().is_none());
}

#[tokio::test(start_paused = true)]
async fn a_certificate_for_a_lease_lost_meanwhile_is_discarded() {
    let w = World::new().await;
    let gate = w.issued_once_open("a.example");
    w.enable(&["a.example"]).await;
    let worker = w.worker();
    let mut events = worker.source.subscribe();
    let running = start(worker);
    run_for(secs(5)).await;
    // Disabled, and the CA answers before the next heartbeat notices.
    w.store
        .disable_domain("a.example", w.clock.now())
        .await
        .unwrap();
    gate.open();
    run_for(secs(1)).await;
    running.stop().await;

    assert_eq!(w.ca.issues()[0].ended, Ended::Issued);
    assert_eq!(w.state("a.example").await, DomainState::Disabled);
    assert!(w.store.certificate("a.example").await.unwrap().is_none());
    assert!(
        events.try_recv().is_err(),
        "nothing announced to the SDS side"
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_lets_in_flight_orders_finish_within_the_grace_period() {
    let w = World::new().await;
    let gate = w.issued_once_open("a.example");
    w.enable(&["a.example"]).await;
    let running = start(w.worker());
    run_for(secs(1)).await;

    let stop = tokio::spawn(running.stop());
    run_for(secs(1)).await;
    // Work that comes due now waits for the next start.
    w.enable(&["b.example"]).await;
    run_for(secs(4)).await;
    gate.open();
    let took = stop.await.unwrap();

    assert!(took >= secs(5) && took < GRACE, "{took:?}");
    assert_eq!(w.state("a.example").await, DomainState::Issued);
    assert!(w.ca.issues_for("b.example").is_empty());
    assert_eq!(w.state("b.example").await, DomainState::Pending);
}

#[tokio::test(start_paused = true)]
async fn shutdown_cuts_orders_after_the_grace_period_and_they_stay_claimable() {
    let w = World::new().await;
    w.ca.script("a.example", [Step::Hang]);
    w.enable(&["a.example"]).await;
    let running = start(w.worker());
    run_for(secs(1)).await;
    let took = running.stop().await;

    assert!(
        took >= GRACE && took < GRACE + secs(1),
        "in-flight orders get the grace period, no more: {took:?}"
    );
    let cut = w.ca.issues();
    assert_eq!(cut.len(), 1);
    assert_eq!(cut[0].ended, Ended::Cancelled);
    assert!(cut[0].new_order);
    assert_eq!(w.state("a.example").await, DomainState::Validating);

    // Another worker on the database takes it over once the lease expires, and resumes the
    // order instead of placing a second one.
    let cut_at = w.clock.now();
    let running = start(w.worker());
    run_for(LEASE + secs(5)).await;
    running.stop().await;
    let calls = w.ca.issues();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(!calls[1].new_order, "the open order is resumed");
    assert!(calls[1].at - cut_at <= time::Duration::try_from(LEASE).unwrap());
    assert_eq!(w.state("a.example").await, DomainState::Issued);
}

/// `names` issued 60 days ago as 90-day certificates, due for renewal in a minute.
async fn due_for_renewal(w: &World, names: &[&str]) {
    let now = w.clock.now();
    for name in names {
        let old = w.ca.certificate(
            name,
            now - time::Duration::days(60),
            Duration::from_secs(90 * 86400),
        );
        let renew_at = now + time::Duration::minutes(1);
        testing::issue_directly(w.store.as_ref(), name, &old, renew_at, now).await;
    }
}

#[tokio::test(start_paused = true)]
async fn renewals_spend_no_budget_when_the_ca_exempts_them() {
    let w = World::new().await;
    let renewals = [
        "r1.example",
        "r2.example",
        "r3.example",
        "r4.example",
        "r5.example",
    ];
    due_for_renewal(&w, &renewals).await;
    w.enable(&["n1.example", "n2.example", "n3.example"]).await;
    let worker = Worker {
        budget: OrderBudget {
            orders: 2,
            window: Duration::from_secs(3600),
        },
        limits: CaLimits {
            renewals_exempt: true,
            ..Preset::None.limits()
        },
        ..w.worker()
    };
    let running = start(worker);
    run_for(mins(2)).await;
    let first_minute = w.ca.issues();
    run_for(mins(100)).await;
    running.stop().await;

    // Every renewal as it comes due (five orders, over a budget of two), two new names at
    // once.
    let renewed: Vec<_> = first_minute.iter().filter(|c| c.renewal).collect();
    assert_eq!(renewed.len(), renewals.len(), "{first_minute:?}");
    let new_in_first_minute = first_minute.iter().filter(|c| !c.renewal).count();
    assert_eq!(new_in_first_minute, 2, "{first_minute:?}");
    // New names keep to the budget; the third waits for the window to slide.
    let new: Vec<_> = (w.ca.issues().iter())
        .filter(|c| !c.renewal && c.new_order)
        .map(|c| c.at)
        .collect();
    assert_eq!(new.len(), 3);
    assert_within_budget(&new, 2, mins(60));
    for name in renewals
        .iter()
        .chain(&["n1.example", "n2.example", "n3.example"])
    {
        assert_eq!(w.state(name).await, DomainState::Issued, "{name}");
    }
}

#[tokio::test(start_paused = true)]
async fn with_renewals_exempt_renewals_go_before_new_names() {
    let w = World::new().await;
    due_for_renewal(&w, &["r1.example", "r2.example"]).await;
    // New names due earlier than the renewals.
    w.enable(&["n1.example", "n2.example"]).await;
    run_for(mins(5)).await;
    let worker = Worker {
        max_in_flight: 2,
        limits: CaLimits {
            renewals_exempt: true,
            ..Preset::None.limits()
        },
        ..w.worker()
    };
    let running = start(worker);
    run_for(mins(10)).await;
    running.stop().await;

    let calls = w.ca.issues();
    let order: Vec<&str> = calls.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(calls.len(), 4, "{calls:?}");
    assert!(
        calls[..2].iter().all(|c| c.renewal),
        "the two permits go to the renewals first: {order:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn expiry_critical_renewals_are_claimed_first() {
    let w = World::new().await;
    let now = w.clock.now();
    // A 6-day certificate with a day left: past its critical point (4.5 days).
    let old = w.ca.certificate(
        "critical.example",
        now - time::Duration::days(5),
        Duration::from_secs(6 * 86400),
    );
    let renew_at = now - time::Duration::minutes(1);
    testing::issue_directly(w.store.as_ref(), "critical.example", &old, renew_at, now).await;
    // New names due earlier than the renewal.
    for name in ["new1.example", "new2.example", "new3.example"] {
        w.store
            .enable_domain(name, KeyType::EcdsaP256, now - time::Duration::minutes(10))
            .await
            .unwrap();
    }
    let mut worker = w.worker();
    worker.budget = OrderBudget {
        orders: 1,
        window: Duration::from_secs(3600),
    };
    let running = start(worker);
    run_for(mins(10)).await;
    running.stop().await;

    let calls = w.ca.issues();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].name, "critical.example");
    assert!(calls[0].renewal);
    let renewed = w
        .store
        .certificate("critical.example")
        .await
        .unwrap()
        .unwrap();
    assert_ne!(renewed.version, old.version);
}

#[tokio::test(start_paused = true)]
async fn no_more_orders_run_at_once_than_allowed() {
    let w = World::new().await;
    let names = [
        "a.example",
        "b.example",
        "c.example",
        "d.example",
        "e.example",
    ];
    for name in names {
        w.ca.script(name, [Step::Hang]);
    }
    w.enable(&names).await;
    let mut worker = w.worker();
    worker.max_in_flight = 2;
    let running = start(worker);
    run_for(secs(1)).await;
    calls_while_held_back(&w, mins(10)).await;
    assert_eq!(w.ca.issues().len(), 2, "{:?}", w.ca.issues());
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn renewal_is_inside_the_cas_window_or_at_a_share_of_the_lifetime() {
    let w = World::new().await;
    let now = w.clock.now();
    let (start_, end) = (
        now + time::Duration::days(20),
        now + time::Duration::days(21),
    );
    w.ca.set_ari("ari.example", Ari::Window { start: start_, end });
    w.ca.set_ari("broken.example", Ari::Error);
    let names = ["ari.example", "plain.example", "broken.example"];
    w.enable(&names).await;
    let running = start(w.worker());
    run_for(secs(10)).await;
    running.stop().await;

    let renew = |d: crate::model::Domain| d.renew_at.unwrap();
    let ari = w.store.domain("ari.example").await.unwrap().unwrap();
    let at = renew(ari);
    assert!(at >= start_ - time::Duration::SECOND && at <= end, "{at}");
    for name in ["plain.example", "broken.example"] {
        let d = w.store.domain(name).await.unwrap().unwrap();
        let (nb, na) = (d.not_before.unwrap(), d.not_after.unwrap());
        let at = renew(d);
        // Stored to the second.
        let earliest = schedule::renew_at(nb, na, 1.0) - time::Duration::SECOND;
        assert!(
            at >= earliest && at <= schedule::renew_at(nb, na, 0.0),
            "{name}: {at}"
        );
    }
    let mut asked: Vec<_> = w.ca.window_calls().into_iter().map(|(n, _)| n).collect();
    asked.sort();
    assert_eq!(asked, ["ari.example", "broken.example", "plain.example"]);
}

#[tokio::test]
async fn the_worker_stops_at_once_when_shutdown_came_before_it_started() {
    let w = World::new().await;
    let shutdown = CancellationToken::new();
    shutdown.cancel();
    let ran = tokio::time::timeout(secs(10), w.worker().run(shutdown)).await;
    assert!(ran.is_ok(), "the worker kept looping");
}

#[tokio::test(start_paused = true)]
async fn announces_what_it_issued() {
    let w = World::new().await;
    w.enable(&["a.example"]).await;
    let worker = w.worker();
    let mut events = worker.source.subscribe();
    let running = start(worker);
    run_for(secs(5)).await;
    running.stop().await;
    assert_eq!(
        events.try_recv().unwrap(),
        CertEvent::Updated("a.example".into())
    );
}

#[tokio::test(start_paused = true)]
async fn the_cas_failures_retry_within_minutes_and_are_not_the_domains_attempts() {
    let w = World::new().await;
    let ca_side = [
        Step::fail(fake::timeout()),
        Step::fail(fake::problem("serverInternal", 500)),
        Step::fail(fake::problem("badNonce", 400)),
    ];
    w.ca.script("a.example", ca_side);
    w.enable(&["a.example"]).await;
    let running = start(w.worker());
    // After two failures, before the third attempt: nothing counted against the domain.
    run_for(secs(90)).await;
    let domain = w.store.domain("a.example").await.unwrap().unwrap();
    assert_eq!(domain.state, DomainState::Failed);
    assert_eq!(domain.attempts, 0, "the CA's failures are not the domain's");
    let last = domain.last_error.unwrap();
    assert_eq!(last.class, FailureClass::Ca);
    assert_eq!(last.reason, "ca_error");
    run_for(mins(30)).await;
    running.stop().await;

    let calls = w.ca.issues_for("a.example");
    assert_eq!(calls.len(), 4, "{calls:?}");
    // Minutes each (the base times the CA's failures in a row), never the 10 and 100 steps
    // of a domain's ladder.
    assert!(gaps(&calls).iter().all(|g| *g <= mins(4)), "{calls:?}");
    assert_eq!(w.state("a.example").await, DomainState::Issued);
}

#[tokio::test(start_paused = true)]
async fn a_domain_caused_failure_still_reaches_the_daily_step_between_ca_outages() {
    let w = World::new().await;
    let steps = [
        Step::fail(fake::validation_failed("dns")),
        Step::fail(fake::timeout()),
        Step::fail(fake::validation_failed("caa")),
        Step::fail(fake::problem("rateLimited", 429)),
        Step::fail(fake::validation_failed("connection")),
        Step::fail(fake::validation_failed("incorrectResponse")),
    ];
    w.ca.script("a.example", steps);
    w.enable(&["a.example"]).await;
    let base = secs(1);
    let running = start(w.worker_backing_off(base));
    run_for(secs(300)).await;
    let domain = w.store.domain("a.example").await.unwrap().unwrap();
    assert_eq!(domain.attempts, 4, "four validation failures: {domain:?}");
    let last = domain.last_error.unwrap();
    assert_eq!(
        (last.class, last.reason.as_str()),
        (FailureClass::Domain, "validation_failed")
    );
    let waits = domain.retry_at.unwrap() - domain.updated_at;
    assert!(
        (1440..=1441).contains(&waits.whole_seconds()),
        "the daily step: {waits}"
    );
    running.stop().await;
    let calls = w.ca.issues_for("a.example");
    // 1 (dns), 1×1 (timeout), 10 (caa: the second of the domain's), 1 (rate limit), 100.
    assert_eq!(calls.len(), 6, "{calls:?}");
    let g = gaps(&calls);
    assert!(g[0] >= base && g[0] < base * 3, "{g:?}");
    assert!(g[2] >= base * 10 && g[2] < base * 12, "{g:?}");
    assert!(g[4] >= base * 100 && g[4] < base * 102, "{g:?}");
}

/// The CA is down: probes fail, and each name's next attempt times out.
fn down_for(w: &World, names: &[&str]) {
    w.ca.set_down(true);
    for name in names {
        w.ca.script(name, [Step::fail(fake::timeout())]);
    }
}

#[tokio::test(start_paused = true)]
async fn a_ca_outage_pauses_issuance_and_its_return_releases_the_waiting_domains_at_once() {
    let w = World::new().await;
    let names: Vec<String> = (0..6).map(|i| format!("d{i}.example")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    down_for(&w, &names);
    w.enable(&names).await;
    // A long base: the domains' own retry times are hours away, so only the release can
    // bring them back soon.
    let running = start(w.worker_backing_off(mins(60)));

    run_for(mins(10)).await;
    let since = w.health.paused_since().expect("issuance paused");
    assert!(
        since - START < time::Duration::SECOND,
        "paused at the first failures"
    );
    assert_eq!(w.health.snapshot().state, "unavailable");
    assert_eq!(
        w.ca.issues().len(),
        names.len(),
        "no attempt while paused: each would only time out"
    );
    let probes = w.ca.probes();
    assert!(probes.len() >= 3, "the CA is probed: {probes:?}");
    for name in &names {
        let d = w.store.domain(name).await.unwrap().unwrap();
        assert_eq!(d.attempts, 0, "{name}");
        assert!(
            d.retry_at.unwrap() - START >= time::Duration::hours(1),
            "{d:?}"
        );
    }

    w.ca.set_down(false);
    let back = w.clock.now();
    run_for(health::PROBE_MAX + secs(5)).await;
    running.stop().await;
    assert_eq!(w.health.paused_since(), None);
    for name in &names {
        assert_eq!(w.state(name).await, DomainState::Issued, "{name}");
        let second = &w.ca.issues_for(name)[1];
        assert!(
            second.at - back <= time::Duration::seconds(31),
            "{name} released at the probe, not at its retry time: {second:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn the_release_is_bounded_by_max_in_flight_and_the_budget() {
    let w = World::new().await;
    let names: Vec<String> = (0..6).map(|i| format!("d{i}.example")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    down_for(&w, &names);
    w.enable(&names).await;
    for name in &names {
        // Each released attempt hangs: what is in flight at once is what was started.
        w.ca.script(name, [Step::Hang]);
    }
    let mut worker = w.worker();
    worker.backoff = Backoff { base: mins(60) };
    worker.max_in_flight = 6;
    worker.budget = OrderBudget {
        orders: 9,
        window: Duration::from_secs(3 * 3600),
    };
    let running = start(worker);
    run_for(mins(5)).await;
    w.ca.set_down(false);
    run_for(mins(1)).await;
    running.stop().await;
    // 6 first attempts placed orders; the budget of 9 leaves room for 3 more.
    let second: Vec<_> = w.ca.issues().into_iter().skip(names.len()).collect();
    assert_eq!(second.len(), 3, "{second:?}");
}

#[tokio::test(start_paused = true)]
async fn a_domains_profile_is_asked_for_at_issuance_and_at_every_renewal() {
    let w = World::new().await;
    let day = Duration::from_secs(86_400);
    for name in ["a.example", "b.example"] {
        w.ca.script(name, (0..4).map(|_| Step::Issue(day)));
    }
    let now = w.clock.now();
    (w.store)
        .enable_domain_as("a.example", KeyType::EcdsaP256, Some("shortlived"), now)
        .await
        .unwrap();
    w.enable(&["b.example"]).await;
    let running = start(w.worker());
    // One-day certificates renew at half their lifetime: two renewals each in a day and a half.
    run_for(day + day / 2).await;
    running.stop().await;
    let a = w.ca.issues_for("a.example");
    assert!(a.len() >= 3 && a.iter().any(|c| c.renewal), "{a:?}");
    assert!(
        a.iter().all(|c| c.profile.as_deref() == Some("shortlived")),
        "{a:?}"
    );
    let b = w.ca.issues_for("b.example");
    assert!(
        b.len() >= 3 && b.iter().all(|c| c.profile.is_none()),
        "{b:?}"
    );
}
