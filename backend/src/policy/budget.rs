//! The account-wide order budget: at most `acme.order_budget` new orders per
//! `acme.order_budget_window_secs`, counted in the store's order log over a sliding window,
//! so the budget holds across restarts and across replicas sharing one database.
//!
//! Let's Encrypt allows 300 new orders per account per 3 hours; the default, 250 per 3 hours,
//! keeps a margin for orders placed by hand or by a replica racing this one (two replicas
//! checking the budget at the same moment may together overshoot it by at most one batch
//! of `acme.max_in_flight_orders`). Resumed orders are not new and cost nothing.
//!
//! The budget only limits how many domains the worker claims; which ones go first is the
//! claim order (expiry-critical renewals, then by due time), so a bulk enable of thousands
//! of names cannot starve a certificate about to expire.

use std::time::Duration;

use time::OffsetDateTime;

/// New orders allowed per sliding window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderBudget {
    pub orders: u32,
    pub window: Duration,
}

/// The configuration's defaults (`acme.order_budget`, `acme.order_budget_window_secs`).
impl Default for OrderBudget {
    fn default() -> Self {
        OrderBudget {
            orders: crate::config::acme::DEFAULT_ORDER_BUDGET,
            window: crate::config::acme::DEFAULT_ORDER_BUDGET_WINDOW,
        }
    }
}

impl OrderBudget {
    /// Start of the window that ends at `now`.
    pub fn window_start(&self, now: OffsetDateTime) -> OffsetDateTime {
        now - self.window
    }

    /// How many more orders may be placed now, given `placed` in the current window.
    pub fn allowance(&self, placed: u64) -> usize {
        let left = u64::from(self.orders).saturating_sub(placed);
        usize::try_from(left).unwrap_or(usize::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn allowance_is_what_is_left_of_the_window() {
        let b = OrderBudget::default();
        assert_eq!(b.allowance(0), 250);
        assert_eq!(b.allowance(249), 1);
        assert_eq!(b.allowance(250), 0);
        assert_eq!(b.allowance(10_000), 0);
        let now = datetime!(2026-01-01 12:00 UTC);
        assert_eq!(b.window_start(now), datetime!(2026-01-01 9:00 UTC));
    }

    /// A bulk enable of 1,000 names, claimed every minute: never more than the budget in any
    /// 3-hour window, and all placed within 4 windows.
    #[test]
    fn paces_a_bulk_enable_over_sliding_windows() {
        let b = OrderBudget::default();
        let start = datetime!(2026-01-01 0:00 UTC);
        let mut placed: Vec<OffsetDateTime> = Vec::new();
        let mut waiting = 1000usize;
        let mut now = start;
        while waiting > 0 && now < start + time::Duration::days(1) {
            let in_window = placed.iter().filter(|t| **t >= b.window_start(now)).count();
            let take = b.allowance(in_window as u64).min(waiting).min(50);
            placed.extend(std::iter::repeat_n(now, take));
            waiting -= take;
            now += time::Duration::minutes(1);
        }
        assert_eq!(waiting, 0);
        for t in &placed {
            let window = placed
                .iter()
                .filter(|u| **u >= *t && **u < *t + b.window)
                .count();
            assert!(window <= 250, "{window} orders in the window from {t}");
        }
        let last = placed.iter().max().copied().unwrap_or(start);
        assert!(
            last - start <= time::Duration::hours(12),
            "{}",
            last - start
        );
    }
}
