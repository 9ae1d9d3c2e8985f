//! What an account can sustain, before a limit bites: from the certificates' lifetimes, the
//! renewals a day needs; from the order budget, the orders a day allows; the headroom; and,
//! when renewals spend the budget and outgrow it, the first day a certificate would expire.
//! The forecast is checked against the policy simulated over months
//! (`policy::simulation`): the day it gives is within days of the first expiry there.
//!
//! Pure arithmetic over a summary of the store (how many certificates of each lifetime, how
//! many names wait for their first one), so the API, the CLI and the metric say the same.

use std::time::Duration;

use time::OffsetDateTime;

use super::budget::OrderBudget;
use super::schedule;

/// A day.
const DAY_SECS: f64 = 86_400.0;

/// What the account's orders are paced by: the budget, and whether renewals spend it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacing {
    pub budget: OrderBudget,
    /// Renewals spend no budget (`acme.limits.renewals_exempt`).
    pub renewals_exempt: bool,
}

impl Pacing {
    pub fn from_config(acme: &crate::config::AcmeConfig) -> Pacing {
        Pacing {
            budget: OrderBudget {
                orders: acme.order_budget,
                window: acme.order_budget_window,
            },
            renewals_exempt: acme.limits.renewals_exempt,
        }
    }
}

/// Certificates of one lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    pub lifetime: Duration,
    pub certificates: u64,
}

/// What the capacity is computed from.
#[derive(Debug, Clone, PartialEq)]
pub struct Load {
    /// Served certificates by lifetime.
    pub lifetimes: Vec<Lifetimes>,
    /// Names waiting for their first certificate (each a new order).
    pub new_names: u64,
    pub pacing: Pacing,
}

/// The renewals one lifetime needs.
#[derive(Debug, Clone, PartialEq)]
pub struct LifetimeLoad {
    pub lifetime: Duration,
    pub certificates: u64,
    /// Renewals a day, at the earliest renewal point (the most jitter).
    pub renewals_per_day: f64,
    /// Validity left at the renewal point: how long a renewal may wait before expiry.
    pub slack: Duration,
}

/// What the account can sustain.
#[derive(Debug, Clone, PartialEq)]
pub struct Capacity {
    pub renewals_per_day: f64,
    /// Orders a day the budget allows.
    pub budget_per_day: f64,
    pub renewals_spend_budget: bool,
    /// Of the budget, what renewals leave for new names, a day (negative: renewals alone need
    /// more than the budget).
    pub left_for_new_per_day: f64,
    /// `left_for_new_per_day` as a share of the budget: 1 when renewals spend nothing, 0 or
    /// below when they take it all.
    pub headroom_ratio: f64,
    pub new_names: u64,
    /// Days until the names waiting now are ordered, at what the budget leaves; `None` when
    /// it leaves nothing.
    pub days_to_order_new_names: Option<f64>,
    /// When renewals spend the budget and need more than it allows even renewing each
    /// certificate at its expiry: the day the first certificate expires unrenewed (the
    /// backlog of the first round of renewals outlasting the validity left at the renewal
    /// point of the shortest lifetime).
    pub first_day_at_risk: Option<OffsetDateTime>,
    pub by_lifetime: Vec<LifetimeLoad>,
}

/// The capacity of `load` as of `now`.
pub fn capacity(load: &Load, now: OffsetDateTime) -> Capacity {
    let by_lifetime: Vec<LifetimeLoad> = (load.lifetimes.iter())
        .filter(|l| l.certificates > 0 && !l.lifetime.is_zero())
        .map(lifetime_load)
        .collect();
    let renewals_per_day: f64 = by_lifetime.iter().map(|l| l.renewals_per_day).sum();
    let budget = load.pacing.budget;
    let budget_per_day = f64::from(budget.orders) * DAY_SECS / budget.window.as_secs_f64().max(1.0);
    let renewals_spend_budget = !load.pacing.renewals_exempt;
    let spent = if renewals_spend_budget {
        renewals_per_day
    } else {
        0.0
    };
    let left_for_new_per_day = budget_per_day - spent;
    let headroom_ratio = if budget_per_day > 0.0 {
        left_for_new_per_day / budget_per_day
    } else {
        0.0
    };
    let days_to_order_new_names =
        (left_for_new_per_day > 0.0).then(|| load.new_names as f64 / left_for_new_per_day);
    // Renewals that spend the budget may slip later than planned, into the validity left at
    // the renewal point; certificates expire only when even renewing each at its expiry
    // needs more than the budget.
    let at_expiry_per_day: f64 = (by_lifetime.iter())
        .map(|l| l.certificates as f64 * DAY_SECS / l.lifetime.as_secs_f64())
        .sum();
    let first_day_at_risk = if renewals_spend_budget && at_expiry_per_day > budget_per_day {
        // In the first round of renewals the backlog grows by the excess every day, so a
        // renewal due on day `t` waits `t * excess / budget` days. The first that waits
        // longer than the slack at its renewal point is due on day `slack * budget / excess`
        // and expires `slack` later (within the round, as more renew than the budget
        // serves over a lifetime).
        let slack = (by_lifetime.iter().map(|l| l.slack))
            .min()
            .unwrap_or_default();
        let excess = renewals_per_day - budget_per_day;
        let days = slack.as_secs_f64() / DAY_SECS * renewals_per_day / excess.max(f64::EPSILON);
        Some(now + Duration::from_secs_f64(days * DAY_SECS))
    } else {
        None
    };
    Capacity {
        renewals_per_day,
        budget_per_day,
        renewals_spend_budget,
        left_for_new_per_day,
        headroom_ratio,
        new_names: load.new_names,
        days_to_order_new_names,
        first_day_at_risk,
        by_lifetime,
    }
}

/// A lifetime's certificates renew once per renewal interval, counted from issuance to the
/// earliest renewal point the schedule gives them (the most jitter: the most renewals a
/// day); a renewal may wait the validity left at the latest point (no jitter: the least).
fn lifetime_load(l: &Lifetimes) -> LifetimeLoad {
    let issued = OffsetDateTime::UNIX_EPOCH;
    let expires = issued + l.lifetime;
    let earliest = schedule::renew_at(issued, expires, 1.0);
    let latest = schedule::renew_at(issued, expires, 0.0);
    let interval = (earliest - issued).as_seconds_f64().max(1.0);
    LifetimeLoad {
        lifetime: l.lifetime,
        certificates: l.certificates,
        renewals_per_day: l.certificates as f64 * DAY_SECS / interval,
        slack: Duration::try_from(expires - latest).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn days(n: u64) -> Duration {
        Duration::from_secs(n * 86_400)
    }

    fn load(lifetimes: &[(u64, u64)], renewals_exempt: bool) -> Load {
        Load {
            lifetimes: (lifetimes.iter())
                .map(|&(d, n)| Lifetimes {
                    lifetime: days(d),
                    certificates: n,
                })
                .collect(),
            new_names: 1000,
            pacing: Pacing {
                budget: OrderBudget::default(),
                renewals_exempt,
            },
        }
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    #[test]
    fn exempt_renewals_leave_the_whole_budget_to_new_names() {
        let c = capacity(&load(&[(45, 100_000)], true), now());
        // 45 days renew every 45 - 15 - 2.25 = 27.75 days: 3,604 a day.
        assert!((c.renewals_per_day - 3603.6).abs() < 1.0, "{c:?}");
        assert!((c.budget_per_day - 2000.0).abs() < 1e-6);
        assert!((c.headroom_ratio - 1.0).abs() < 1e-9);
        assert_eq!(c.first_day_at_risk, None);
        assert!((c.days_to_order_new_names.unwrap() - 0.5).abs() < 1e-9);
    }

    #[test]
    fn renewals_that_outgrow_the_budget_give_the_day_at_risk() {
        let c = capacity(&load(&[(45, 100_000)], false), now());
        assert!(c.headroom_ratio < -0.8, "{c:?}");
        assert_eq!(c.days_to_order_new_names, None);
        // 15 days of slack, the backlog growing 1,604 a day against 2,000 a day served: the
        // renewal due on day 18.7 waits past it, and expires 15 days later.
        let at_risk = c.first_day_at_risk.expect("at risk") - now();
        assert!(
            (at_risk.as_seconds_f64() / 86_400.0 - 33.7).abs() < 0.1,
            "{at_risk}"
        );
    }

    #[test]
    fn renewals_that_slip_but_fit_a_lifetime_put_nothing_at_risk() {
        // 80,000 on 45 days: 2,883 renewals a day at the planned points, but 1,778 a day
        // renew each at its expiry: the renewals run late, nothing expires.
        let c = capacity(&load(&[(45, 80_000)], false), now());
        assert!(c.headroom_ratio < 0.0, "{c:?}");
        assert_eq!(c.first_day_at_risk, None);
    }

    #[test]
    fn a_budget_that_suffices_has_headroom_and_no_risk() {
        // 20,000 on 90 days: 20,000 / 55.5 = 360 renewals a day of 2,000.
        let c = capacity(&load(&[(90, 20_000)], false), now());
        assert!((c.headroom_ratio - 0.82).abs() < 0.01, "{c:?}");
        assert_eq!(c.first_day_at_risk, None);
        // Short certificates renew at half their lifetime: 6 days every 2.7.
        let c = capacity(&load(&[(6, 1000)], true), now());
        assert!((c.renewals_per_day - 370.4).abs() < 1.0, "{c:?}");
        assert_eq!(c.by_lifetime[0].slack, days(3));
    }
}
