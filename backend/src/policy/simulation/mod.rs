//! The issuance policy over long horizons, in memory: domains, a clock that advances a
//! minute at a time, and a model of the CA enforcing its limits ([`ca::CaModel`]). Each
//! minute the policy's parts decide, as the worker does: which renewals are due and when
//! (the ARI window, else [`schedule::renew_at`], jittered), the claim order (renewals
//! first where the CA exempts them, bounded by the orders in flight; new names within the
//! [`OrderBudget`]; by due time), and which new names wait for their registered domain
//! ([`RegisteredDomainGate`]). Orders take [`Scenario::order_time`] each, at most
//! [`Scenario::max_in_flight`] at once, and every one succeeds unless the CA model answers
//! `rateLimited` (then it is tried again after the `Retry-After`).
//!
//! The report says what an operator would ask: `rateLimited` answers, certificates that
//! expired, the least validity left at a renewal, the most orders in a 3-hour window, and
//! the cost of a decision. The worker follows these parts (its tests, `jobs::tests`, prove
//! each rule against a fake CA, the real store and tokio's paused clock); the claim order
//! is the store's SQL, mirrored here.

mod ca;
mod tests;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use time::OffsetDateTime;

use super::budget::OrderBudget;
use super::registered_domain::{RegisteredDomainGate, Turn};
use super::schedule;
use crate::config::CaLimits;
use ca::{CaModel, OrderKind};

/// A simulated minute.
const TICK: Duration = Duration::from_secs(60);
/// The window orders are reported per.
const REPORT_WINDOW: Duration = Duration::from_secs(3 * 3600);

/// What is simulated.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub start: OffsetDateTime,
    pub days: u32,
    /// Domains holding a certificate at the start, issued evenly over the part of their
    /// lifetime before the earliest renewal point (a fleet in its steady state).
    pub issued: Vec<Group>,
    /// Names enabled at the start, without a certificate.
    pub new_names: Vec<Group>,
    /// The CA's limits as the policy knows them and as the CA model enforces them.
    pub limits: CaLimits,
    pub budget: OrderBudget,
    /// The CA offers ARI (a suggested window per certificate, which renewals inside are
    /// exempt from every limit).
    pub ari: bool,
    pub max_in_flight: usize,
    pub order_time: Duration,
    /// How long the ARI walk takes to see a window the CA moved.
    pub ari_check_interval: Duration,
    /// The CA moves the ARI window of this many certificates (the first issued ones) to the
    /// next 24 hours at this time: a mass revocation.
    pub revocation: Option<(OffsetDateTime, usize)>,
}

/// Domains alike.
#[derive(Debug, Clone)]
pub struct Group {
    pub count: usize,
    pub lifetime: Duration,
    /// Registered domains they are spread over (`None`: each its own).
    pub registered_domains: Option<u32>,
}

/// What happened.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub orders: u64,
    pub renewals: u64,
    pub rate_limited: u64,
    /// Certificates that expired before their replacement was issued.
    pub expired: u64,
    /// The first time one did.
    pub first_expiry: Option<OffsetDateTime>,
    /// The least validity a replaced certificate had left when its renewal was issued.
    pub least_validity_left: Option<Duration>,
    /// Renewals issued after the end of the CA's suggested window (with ARI).
    pub after_window: u64,
    /// The most orders (any kind) placed in one 3-hour window.
    pub max_orders_per_3h: usize,
    /// Names handed back to wait for their registered domain.
    pub waits: u64,
    /// Names still without a certificate at the end.
    pub never_issued: u64,
    /// When the last new name got its first certificate.
    pub last_new_issued: Option<OffsetDateTime>,
    /// Decisions the policy took (an order placed, a name made to wait).
    pub decisions: u64,
    pub wall: Duration,
}

impl Report {
    /// Wall time per decision.
    pub fn cost_per_decision(&self) -> Duration {
        let n = u32::try_from(self.decisions.max(1)).unwrap_or(u32::MAX);
        self.wall / n
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let least = self.least_validity_left.map_or("-".into(), |d| {
            format!("{:.1} days", d.as_secs_f64() / 86_400.0)
        });
        write!(
            f,
            "{} orders ({} renewals, {} after the CA's window), {} rateLimited, {} expired, \
             least validity left at renewal {least}, max {} orders per 3 h, {} waits, {} never \
             issued, wall {:.1?} ({:.2?} per decision)",
            self.orders,
            self.renewals,
            self.after_window,
            self.rate_limited,
            self.expired,
            self.max_orders_per_3h,
            self.waits,
            self.never_issued,
            self.wall,
            self.cost_per_decision(),
        )
    }
}

/// One simulated domain.
#[derive(Debug, Clone)]
struct Name {
    registered: u32,
    lifetime: Duration,
    cert: Option<Cert>,
    /// When the policy takes it up next; queue entries with another time are stale.
    due: OffsetDateTime,
}

#[derive(Debug, Clone, Copy)]
struct Cert {
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    /// The CA's suggested renewal window.
    window: (OffsetDateTime, OffsetDateTime),
}

/// The CA's suggested window: the span our own renewal point is jittered over.
fn suggested_window(
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> (OffsetDateTime, OffsetDateTime) {
    (
        schedule::renew_at(not_before, not_after, 1.0),
        schedule::renew_at(not_before, not_after, 0.0),
    )
}

type Queue = BinaryHeap<Reverse<(OffsetDateTime, u32)>>;

/// The simulation's state.
struct World {
    s: Scenario,
    now: OffsetDateTime,
    names: Vec<Name>,
    renewals: Queue,
    new: Queue,
    /// ARI walks' looks at moved windows: (when, name).
    ari_checks: Queue,
    ca: CaModel,
    rng: StdRng,
    /// Orders the budget counts, in its window.
    counted: VecDeque<OffsetDateTime>,
    /// Every order, in the report's window.
    recent: VecDeque<OffsetDateTime>,
    /// New orders per registered domain, in its window.
    by_registered: HashMap<u32, VecDeque<OffsetDateTime>>,
    report: Report,
}

/// Run `s` to its end.
pub fn run(s: Scenario) -> Report {
    let started = Instant::now();
    let mut w = World::new(s);
    let end = w.s.start + time::Duration::days(i64::from(w.s.days));
    let per_tick = (w.s.max_in_flight as f64 * TICK.as_secs_f64()
        / w.s.order_time.as_secs_f64().max(1.0))
    .floor() as usize;
    while w.now < end {
        w.revoke();
        w.see_moved_windows();
        w.tick(per_tick.max(1));
        w.now += TICK;
    }
    w.finish(end);
    w.report.wall = started.elapsed();
    w.report
}

impl World {
    fn new(s: Scenario) -> World {
        let mut w = World {
            now: s.start,
            names: Vec::new(),
            renewals: BinaryHeap::new(),
            new: BinaryHeap::new(),
            ari_checks: BinaryHeap::new(),
            ca: CaModel::new(s.limits, s.start),
            rng: StdRng::seed_from_u64(7),
            counted: VecDeque::new(),
            recent: VecDeque::new(),
            by_registered: HashMap::new(),
            report: Report::default(),
            s,
        };
        let mut registered_next = 0u32;
        for group in w.s.issued.clone() {
            let spread = group.registered_domains;
            for i in 0..group.count {
                // Issued evenly over the part of a lifetime before the earliest renewal point.
                let age = before_renewal(group.lifetime).mul_f64(i as f64 / group.count as f64);
                let not_before = w.s.start - age;
                let cert = w.issue_cert(not_before, group.lifetime);
                let registered = registered_for(&mut registered_next, spread, i);
                let due = w.renewal_point(&cert, not_before);
                w.push_name(registered, group.lifetime, Some(cert), due);
            }
            if let Some(n) = spread {
                registered_next += n;
            }
        }
        for group in w.s.new_names.clone() {
            let spread = group.registered_domains;
            for i in 0..group.count {
                let registered = registered_for(&mut registered_next, spread, i);
                let start = w.s.start;
                w.push_name(registered, group.lifetime, None, start);
            }
            if let Some(n) = spread {
                registered_next += n;
            }
        }
        w
    }

    fn push_name(
        &mut self,
        registered: u32,
        lifetime: Duration,
        cert: Option<Cert>,
        due: OffsetDateTime,
    ) {
        let id = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        let queue = if cert.is_some() {
            &mut self.renewals
        } else {
            &mut self.new
        };
        queue.push(Reverse((due, id)));
        self.names.push(Name {
            registered,
            lifetime,
            cert,
            due,
        });
    }

    fn issue_cert(&self, not_before: OffsetDateTime, lifetime: Duration) -> Cert {
        let not_after = not_before + lifetime;
        Cert {
            not_before,
            not_after,
            window: suggested_window(not_before, not_after),
        }
    }

    /// When the worker renews `cert`, looking at `now`.
    fn renewal_point(&mut self, cert: &Cert, now: OffsetDateTime) -> OffsetDateTime {
        let jitter: f64 = self.rng.random();
        if self.s.ari {
            schedule::ari_renew_at(cert.window.0, cert.window.1, now, jitter)
        } else {
            schedule::renew_at(cert.not_before, cert.not_after, jitter)
        }
    }

    /// The mass revocation, when its time comes: the windows move to the next 24 hours, and
    /// the ARI walk sees each within its interval.
    fn revoke(&mut self) {
        let Some((at, count)) = self.s.revocation else {
            return;
        };
        if at > self.now || at + TICK <= self.now {
            return;
        }
        let window = (self.now, self.now + time::Duration::DAY);
        let interval = self.s.ari_check_interval;
        let certified: Vec<usize> = (0..self.names.len())
            .filter(|i| self.names[*i].cert.is_some())
            .take(count)
            .collect();
        for (k, i) in certified.into_iter().enumerate() {
            if let Some(cert) = self.names[i].cert.as_mut() {
                cert.window = window;
            }
            let seen = self.now + interval.mul_f64(k as f64 / count as f64);
            self.ari_checks.push(Reverse((seen, i as u32)));
        }
    }

    /// The ARI walk reaching certificates whose window moved: renewed inside the new one.
    fn see_moved_windows(&mut self) {
        while let Some(Reverse((at, id))) = self.ari_checks.peek().copied() {
            if at > self.now {
                break;
            }
            self.ari_checks.pop();
            let i = id as usize;
            let Some(cert) = self.names[i].cert else {
                continue;
            };
            let due = self.renewal_point(&cert, self.now);
            if due < self.names[i].due {
                self.names[i].due = due;
                self.renewals.push(Reverse((due, id)));
            }
        }
    }

    /// One minute of the worker: claim what is due in it as far as the limits allow, and
    /// order each at its due time (the worker sleeps until the next due time), or at the
    /// minute's start when it is overdue.
    fn tick(&mut self, slots: usize) {
        let now = self.now;
        prune(&mut self.counted, now - self.s.budget.window);
        prune(&mut self.recent, now - REPORT_WINDOW);
        let exempt = self.s.limits.renewals_exempt;
        let mut allowance = self.s.budget.allowance(self.counted.len() as u64);
        let mut claimed: Vec<(u32, OffsetDateTime)> = Vec::new();
        // Renewals first where they spend no budget; else renewals and new names share it,
        // by due time.
        while claimed.len() < slots {
            let renewal = head(&mut self.renewals, &self.names).filter(|at| *at < now + TICK);
            let new = head(&mut self.new, &self.names).filter(|at| *at < now + TICK);
            let take_renewal = match (renewal, new) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some(r), Some(n)) => exempt || r <= n,
            };
            if !exempt || !take_renewal {
                if allowance == 0 {
                    break;
                }
                allowance -= 1;
            }
            let queue = if take_renewal {
                &mut self.renewals
            } else {
                &mut self.new
            };
            if let Some(Reverse((due, id))) = queue.pop() {
                claimed.push((id, due.max(now)));
            }
        }
        let mut gate = self
            .s
            .limits
            .registered_domain
            .map(|limit| RegisteredDomainGate::new(limit, now));
        for (id, at) in claimed {
            let i = id as usize;
            if self.names[i].cert.is_none()
                && let Some(gate) = gate.as_mut()
            {
                let registered = self.names[i].registered.to_string();
                if !gate.knows(&registered) {
                    let start = gate.window_start();
                    let placed = (self.by_registered.get_mut(&self.names[i].registered))
                        .map(|q| {
                            prune(q, start);
                            q.iter().copied().collect()
                        })
                        .unwrap_or_default();
                    gate.read(&registered, placed, 0);
                }
                if let Turn::WaitUntil(until) = gate.turn(&registered) {
                    self.report.waits += 1;
                    self.report.decisions += 1;
                    self.names[i].due = until;
                    self.new.push(Reverse((until, id)));
                    continue;
                }
            }
            self.order(id, at);
        }
    }

    /// Place `id`'s order with the CA model and record what it gave.
    fn order(&mut self, id: u32, now: OffsetDateTime) {
        let i = id as usize;
        self.report.decisions += 1;
        let (registered, cert) = (self.names[i].registered, self.names[i].cert);
        let kind = match cert {
            None => OrderKind::New,
            Some(c) => OrderKind::Renewal {
                ari: self.s.ari && c.window.0 <= now && now <= c.window.1,
            },
        };
        match self.ca.order(now, id, registered, kind) {
            Ok(()) => {
                // Logged as the store logs orders the CA created.
                self.report.orders += 1;
                self.recent.push_back(now);
                self.report.max_orders_per_3h =
                    self.report.max_orders_per_3h.max(self.recent.len());
                if kind == OrderKind::New || !self.s.limits.renewals_exempt {
                    self.counted.push_back(now);
                }
                if kind == OrderKind::New {
                    (self.by_registered.entry(registered).or_default()).push_back(now);
                }
                self.issued(id, now);
            }
            Err(retry_after) => {
                self.report.rate_limited += 1;
                let due = now + retry_after;
                self.names[i].due = due;
                let queue = if cert.is_some() {
                    &mut self.renewals
                } else {
                    &mut self.new
                };
                queue.push(Reverse((due, id)));
            }
        }
    }

    fn issued(&mut self, id: u32, now: OffsetDateTime) {
        let i = id as usize;
        if let Some(old) = self.names[i].cert {
            self.report.renewals += 1;
            if self.s.ari && now > old.window.1 {
                self.report.after_window += 1;
            }
            let left = old.not_after - now;
            if left.is_negative() {
                self.expired(old.not_after);
            }
            let left = Duration::try_from(left).unwrap_or_default();
            let least = self.report.least_validity_left.get_or_insert(left);
            *least = (*least).min(left);
        } else {
            self.report.last_new_issued = Some(now);
        }
        let cert = self.issue_cert(now, self.names[i].lifetime);
        let due = self.renewal_point(&cert, now);
        self.names[i].cert = Some(cert);
        self.names[i].due = due;
        self.renewals.push(Reverse((due, id)));
    }

    fn expired(&mut self, at: OffsetDateTime) {
        self.report.expired += 1;
        let first = self.report.first_expiry.get_or_insert(at);
        *first = (*first).min(at);
    }

    /// Certificates still unreplaced past their expiry at the end count as expired too.
    fn finish(&mut self, end: OffsetDateTime) {
        let names = std::mem::take(&mut self.names);
        for name in &names {
            match name.cert {
                Some(cert) if cert.not_after < end => self.expired(cert.not_after),
                Some(_) => {}
                None => self.report.never_issued += 1,
            }
        }
        self.names = names;
    }
}

/// How long a certificate of `lifetime` is served before its earliest renewal point.
fn before_renewal(lifetime: Duration) -> Duration {
    let issued = OffsetDateTime::UNIX_EPOCH;
    let point = schedule::renew_at(issued, issued + lifetime, 1.0);
    Duration::try_from(point - issued).unwrap_or_default()
}

/// The registered domain of the `i`-th name of a group spread over `spread` of them.
fn registered_for(next: &mut u32, spread: Option<u32>, i: usize) -> u32 {
    match spread {
        Some(n) => *next + (i as u32 % n.max(1)),
        None => {
            // Each its own: numbered after every spread group's.
            let id = u32::MAX / 2 + *next;
            *next += 1;
            id
        }
    }
}

fn prune(q: &mut VecDeque<OffsetDateTime>, before: OffsetDateTime) {
    while q.front().is_some_and(|t| *t < before) {
        q.pop_front();
    }
}

/// When the earliest live entry is due; stale entries (the name's due time moved since)
/// are dropped on the way.
fn head(q: &mut Queue, names: &[Name]) -> Option<OffsetDateTime> {
    while let Some(Reverse((at, id))) = q.peek().copied() {
        if names[id as usize].due == at {
            return Some(at);
        }
        q.pop();
    }
    None
}
