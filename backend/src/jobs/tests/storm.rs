//! The renewal storm: thousands of certificates due at the same instant, renewed by the real
//! worker at its defaults (the order budget of 250 orders per 3 hours, 50 orders in flight,
//! 30 s leases, the 60 s retry base), with a real SQLite store and the fake CA. Each case
//! asserts what must hold whatever the machine: no sliding budget window holds more orders
//! than the budget, and every certificate is renewed before it expires. It prints its figures:
//! the most orders in any window, how long (simulated) until all were renewed, the smallest
//! validity left at a renewal, and the wall-clock time of the run.
//!
//! # Why a simulated clock
//!
//! The budget's windows are hours: 10,000 renewals at 250 orders per 3 hours take five days.
//! No CA issues 10,000 certificates in the minutes a test has (Pebble included), and what is
//! measured is the worker's pacing, not the CA. So the worker runs in-process on tokio's
//! paused clock: whenever every task waits, the clock jumps to the next timer, and a database
//! call holds it while it runs ([`crate::testing::PausedStore`]). The worker sleeps, polls,
//! leases and counts its budget exactly as in service; every claim, logged order and stored
//! certificate is a real SQLite transaction on a file; the fake CA answers at once with a
//! real certificate. Simulated times are therefore the worker's schedule (what a CA that
//! answers in seconds would see, to within those seconds per order); the wall-clock time is
//! what the store and the worker's loop cost to get through it.
//!
//! # The storm
//!
//! Certificates issued together renew apart: the renewal point is brought forward by a
//! random share of 5 % of the lifetime ([`crate::policy::schedule::renew_at`]). The storm is what
//! that jitter cannot spread: every certificate due at the same instant, as when all were
//! issued at once and all drew the latest point (a third of the lifetime, 30 days of a
//! 90-day certificate, before expiry), or when a CA's renewal information moved them all to
//! the same window. The setup stores each certificate with its renewal time set to that
//! instant ([`testing::issue_directly`], as the worker stores what it issued), rather than
//! drawing jitter that would spread them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use super::{World, run_for, start};
use crate::acme::fake::{self, Ended, FakeCa};
use crate::config::{self, CaLimits, Preset};
use crate::jobs::Worker;
use crate::policy::budget::OrderBudget;
use crate::policy::schedule::Backoff;
use crate::testing;

/// How many certificates a full storm renews. It takes minutes in a debug build (the store's
/// transactions dominate), so the full storms are `#[ignore]`d, run optimised by
/// `cargo xtask bench scale`; the tests run by default weather a tenth of it, whose budget
/// and expiry properties are the same.
const STORM: usize = 10_000;
/// The storm the default tests weather.
const SMALL_STORM: usize = 1_000;

/// A day as a time span.
fn days(n: i64) -> time::Duration {
    time::Duration::days(n)
}

/// The worker as the service builds it from a configuration that sets nothing.
fn default_worker(w: &World) -> Worker {
    let mut worker = w.worker();
    worker.max_in_flight = config::acme::DEFAULT_MAX_IN_FLIGHT_ORDERS;
    worker.lease = config::storage::DEFAULT_LEASE;
    worker.backoff = Backoff::default();
    worker.budget = OrderBudget::default();
    worker
}

/// Certificates of one kind in a storm: issued together, 90 days long, due together.
struct Group {
    /// Their names are `{prefix}{i}.example`.
    prefix: &'static str,
    count: usize,
    /// Validity left when they become due.
    left: time::Duration,
    /// When they become due, after the storm breaks.
    due_after: time::Duration,
}

/// What one group's renewals came to.
#[derive(Debug)]
struct GroupFigures {
    prefix: &'static str,
    count: usize,
    renewed: usize,
    /// After the storm broke, when the last of them was renewed.
    last_renewed: Option<time::Duration>,
    /// The least validity an old certificate had left when its successor was issued.
    min_left: Option<time::Duration>,
}

/// What a storm came to.
#[derive(Debug)]
struct Figures {
    budget: OrderBudget,
    orders: usize,
    /// The most orders placed in any sliding budget window.
    max_in_window: usize,
    groups: Vec<GroupFigures>,
    /// The earliest expiry among the certificates served once the worker stopped: a
    /// successor's, 90 days after the storm or later, when every certificate was renewed.
    earliest_expiry: Option<OffsetDateTime>,
    storm_at: OffsetDateTime,
    setup: Duration,
    run: Duration,
}

/// Store every group's certificates due at their instant, run the default worker until all
/// are renewed or the last old certificate has expired, and gather the figures. The worker
/// counts every order against the budget, as for a CA that counts renewals against the
/// account: the hard case ([`weather_exempt`] is Let's Encrypt's rule).
async fn weather(groups: &[Group]) -> Figures {
    weather_with(groups, false).await
}

/// [`weather`] with renewals exempt from the budget, as Let's Encrypt counts them
/// (`acme.limits.renewals_exempt`, the default).
async fn weather_exempt(groups: &[Group]) -> Figures {
    weather_with(groups, true).await
}

async fn weather_with(groups: &[Group], renewals_exempt: bool) -> Figures {
    let w = World::new().await;
    let setup = Instant::now();
    // The storm breaks a little after the setup, which takes no simulated time.
    let storm_at = w.clock.now() + time::Duration::minutes(10);
    let mut expires = HashMap::new();
    for group in groups {
        let not_before = storm_at + group.left - time::Duration::try_from(fake::LIFETIME).unwrap();
        let due = storm_at + group.due_after;
        for i in 0..group.count {
            let name = format!("{}{i}.example", group.prefix);
            let cert = w.ca.certificate(&name, not_before, fake::LIFETIME);
            testing::issue_directly(w.store.as_ref(), &name, &cert, due, w.clock.now()).await;
            expires.insert(name, cert.not_after);
        }
    }
    assert!(w.clock.now() < storm_at, "the setup ran into the storm");
    let setup = setup.elapsed();

    let run = Instant::now();
    let worker = Worker {
        limits: CaLimits {
            renewals_exempt,
            ..Preset::None.limits()
        },
        ..default_worker(&w)
    };
    let budget = worker.budget;
    let running = start(worker);
    let total: usize = groups.iter().map(|g| g.count).sum();
    let last_expiry = expires.values().max().copied().unwrap_or(storm_at);
    while renewed(&w.ca) < total && w.clock.now() < last_expiry {
        run_for(Duration::from_secs(3600)).await;
    }
    running.stop().await;
    let run = run.elapsed();

    let calls = w.ca.issues();
    let mut orders: Vec<_> = calls.iter().filter(|c| c.new_order).map(|c| c.at).collect();
    orders.sort();
    Figures {
        budget,
        orders: orders.len(),
        max_in_window: most_in_a_window(&orders, budget.window),
        groups: groups
            .iter()
            .map(|g| group_figures(g, &calls, &expires, storm_at))
            .collect(),
        earliest_expiry: w.store.earliest_expiry().await.unwrap(),
        storm_at,
        setup,
        run,
    }
}

/// Issuance calls that ended with a certificate.
fn renewed(ca: &FakeCa) -> usize {
    ca.issues()
        .iter()
        .filter(|c| c.ended == Ended::Issued)
        .count()
}

/// The most of `sorted` times inside one `window` (a window starting at any time: the
/// fullest one starts at one of the times).
fn most_in_a_window(sorted: &[OffsetDateTime], window: Duration) -> usize {
    let mut end = 0;
    let mut most = 0;
    for (i, start) in sorted.iter().enumerate() {
        while end < sorted.len() && sorted[end] < *start + window {
            end += 1;
        }
        most = most.max(end - i);
    }
    most
}

fn group_figures(
    group: &Group,
    calls: &[fake::IssueCall],
    expires: &HashMap<String, OffsetDateTime>,
    storm_at: OffsetDateTime,
) -> GroupFigures {
    let prefix = group.prefix;
    let ours = calls.iter().filter(|c| {
        c.name
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with(|ch: char| ch.is_ascii_digit()))
    });
    let mut figures = GroupFigures {
        prefix,
        count: group.count,
        renewed: 0,
        last_renewed: None,
        min_left: None,
    };
    for call in ours {
        assert!(
            call.renewal && call.new_order,
            "a renewal, one new order each: {call:?}"
        );
        assert_eq!(call.ended, Ended::Issued, "{call:?}");
        let at = call.ended_at.expect("answered");
        let left = expires[&call.name] - at;
        figures.renewed += 1;
        figures.last_renewed = figures.last_renewed.max(Some(at - storm_at));
        figures.min_left = Some(figures.min_left.map_or(left, |m| m.min(left)));
    }
    figures
}

impl Figures {
    /// The budget held in every window, every certificate was renewed once and before it
    /// expired, and every certificate served is a renewed one.
    fn assert_weathered(&self) {
        assert!(
            self.max_in_window <= self.budget.orders as usize,
            "{} orders in one sliding window of {:?}, over the budget of {}",
            self.max_in_window,
            self.budget.window,
            self.budget.orders
        );
        for g in &self.groups {
            assert_eq!(
                g.renewed, g.count,
                "{}: {} of {} renewed before the last expiry",
                g.prefix, g.renewed, g.count
            );
            let min_left = g.min_left.expect("renewals");
            assert!(
                min_left > time::Duration::ZERO,
                "{}: a certificate was renewed {} after it expired",
                g.prefix,
                -min_left
            );
        }
        let renewed_from = self.storm_at + time::Duration::try_from(fake::LIFETIME).unwrap();
        assert!(
            self.earliest_expiry.is_some_and(|e| e >= renewed_from),
            "an old certificate is still served: earliest expiry {:?}",
            self.earliest_expiry
        );
    }

    fn print(&self, title: &str) {
        let total: usize = self.groups.iter().map(|g| g.count).sum();
        println!("{title}");
        println!(
            "  {total} certificates, {} orders; budget {} per {} h, {} in flight, lease {} s",
            self.orders,
            self.budget.orders,
            self.budget.window.as_secs() / 3600,
            config::acme::DEFAULT_MAX_IN_FLIGHT_ORDERS,
            config::storage::DEFAULT_LEASE.as_secs(),
        );
        println!(
            "  most orders in any sliding {} h window: {} (budget {})",
            self.budget.window.as_secs() / 3600,
            self.max_in_window,
            self.budget.orders
        );
        for g in &self.groups {
            println!(
                "  {}*: {} renewed, the last {} after the storm (simulated); \
                 least validity left at renewal {}",
                g.prefix,
                g.renewed,
                hours(g.last_renewed),
                hours(g.min_left),
            );
        }
        println!(
            "  wall clock: setup {:.1} s, run {:.1} s",
            self.setup.as_secs_f64(),
            self.run.as_secs_f64()
        );
    }
}

/// `105.0 h (4.38 d)`.
fn hours(d: Option<time::Duration>) -> String {
    match d {
        Some(d) => {
            let h = d.as_seconds_f64() / 3600.0;
            format!("{h:.1} h ({:.2} d)", h / 24.0)
        }
        None => "-".to_owned(),
    }
}

/// 10,000 certificates due at once at the latest renewal point, 30 days before expiry: the
/// budget paces them at 250 per window, and all are renewed within five days, with
/// more than 25 days left.
#[tokio::test(start_paused = true)]
#[ignore = "minutes in a debug build: cargo xtask bench scale runs it optimised"]
async fn a_storm_of_10_000_renewals_keeps_the_budget_and_nothing_expires() {
    let figures = weather(&[Group {
        prefix: "d",
        count: STORM,
        left: days(30),
        due_after: time::Duration::ZERO,
    }])
    .await;
    figures.print("renewal storm: 10,000 certificates due at once, 30 days left");
    figures.assert_weathered();
}

/// The same storm landing when the certificates have 7 days left (a CA's renewal information
/// moved them all earlier, or renewals were held up): all are past their critical point, so
/// the claim order has nothing to put first, and they go by due time. At 250 orders per
/// 3 hours 10,000 take 39 windows after the first, about 117 hours: they fit in the 168 left.
#[tokio::test(start_paused = true)]
#[ignore = "minutes in a debug build: cargo xtask bench scale -- --all-storms runs it optimised"]
async fn a_late_storm_of_10_000_renewals_still_fits_before_expiry() {
    let figures = weather(&[Group {
        prefix: "d",
        count: STORM,
        left: days(7),
        due_after: time::Duration::ZERO,
    }])
    .await;
    figures.print("late renewal storm: 10,000 certificates due at once, 7 days left");
    figures.assert_weathered();
}

/// A storm of 10,000 with 30 days left, then, a minute later, 1,000 with 3 days left (past
/// their critical point). Waiting their turn by due time they would expire after 3 days,
/// behind the 117 hours of the others; claimed first, they take the next four windows.
#[tokio::test(start_paused = true)]
#[ignore = "minutes in a debug build: cargo xtask bench scale -- --all-storms runs it optimised"]
async fn critical_renewals_go_first_through_a_storm() {
    let figures = weather(&[
        Group {
            prefix: "calm",
            count: STORM,
            left: days(30),
            due_after: time::Duration::ZERO,
        },
        Group {
            prefix: "critical",
            count: 1_000,
            left: days(3),
            due_after: time::Duration::minutes(1),
        },
    ])
    .await;
    figures.print(
        "renewal storm with critical renewals: 10,000 due with 30 days left, \
         then 1,000 with 3 days left",
    );
    figures.assert_weathered();
    let critical = &figures.groups[1];
    let done = critical.last_renewed.expect("renewed");
    assert!(
        done <= time::Duration::hours(13),
        "critical renewals took {done}"
    );
}

/// Under Let's Encrypt's rule renewals spend no budget: the same 1,000 due at once go at the
/// pace of the orders in flight, not four budget windows.
#[tokio::test(start_paused = true)]
async fn under_lets_encrypts_rule_a_storm_of_1_000_renewals_takes_minutes() {
    let figures = weather_exempt(&[Group {
        prefix: "e",
        count: SMALL_STORM,
        left: days(30),
        due_after: time::Duration::ZERO,
    }])
    .await;
    figures.print("renewal storm, renewals exempt: 1,000 certificates due at once, 30 days left");
    let g = &figures.groups[0];
    assert_eq!(g.renewed, g.count);
    let done = g.last_renewed.expect("renewed");
    assert!(
        done <= time::Duration::minutes(30),
        "all renewed after {done}"
    );
    assert!(
        g.min_left.is_some_and(|left| left > days(29)),
        "{:?}",
        g.min_left
    );
}

/// A tenth of the storm, due at once with 30 days left, with a CA that counts renewals: four
/// windows of 250, never more in any sliding window, all renewed in about 9 hours.
#[tokio::test(start_paused = true)]
async fn a_storm_of_1_000_renewals_keeps_the_budget_and_nothing_expires() {
    let figures = weather(&[Group {
        prefix: "d",
        count: SMALL_STORM,
        left: days(30),
        due_after: time::Duration::ZERO,
    }])
    .await;
    figures.print("renewal storm: 1,000 certificates due at once, 30 days left");
    figures.assert_weathered();
    let done = figures.groups[0].last_renewed.expect("renewed");
    assert!(
        done <= time::Duration::hours(10),
        "all renewed after {done}"
    );
}

/// 1,000 due with 30 days left, then, a minute later, one budget's worth with 3 days left:
/// those go in the next window, ahead of the 750 due before them.
#[tokio::test(start_paused = true)]
async fn critical_renewals_go_first_through_a_small_storm() {
    let budget = OrderBudget::default().orders as usize;
    let figures = weather(&[
        Group {
            prefix: "calm",
            count: SMALL_STORM,
            left: days(30),
            due_after: time::Duration::ZERO,
        },
        Group {
            prefix: "critical",
            count: budget,
            left: days(3),
            due_after: time::Duration::minutes(1),
        },
    ])
    .await;
    figures.print(
        "renewal storm with critical renewals: 1,000 due with 30 days left, \
         then 250 with 3 days left",
    );
    figures.assert_weathered();
    let done = figures.groups[1].last_renewed.expect("renewed");
    assert!(
        done <= time::Duration::hours(4),
        "critical renewals took {done}"
    );
}
