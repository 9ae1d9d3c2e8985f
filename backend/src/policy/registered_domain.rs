//! The CA's limit on new certificates per registered domain (Let's Encrypt: 50 per 7 days,
//! all accounts together), kept before the CA refuses: a new name whose registered domain
//! has had its share waits, with the time its turn comes, instead of being ordered and
//! answered `rateLimited`.
//!
//! The count is the registered domain's new orders over a sliding window, read from the
//! store's order log (so every replica sharing the database sees the same), except orders
//! the CA declared invalid or that were abandoned: those gave no certificate. A sliding
//! window of `count` is stricter than the CA's bucket of `count` refilled over the window,
//! so what it lets through the CA takes. Renewals are not counted and never wait: the CA
//! exempts them.

use std::collections::HashMap;

use time::OffsetDateTime;

use crate::config::Limit;

/// The reason a name waits for its registered domain (`last_error.reason`).
pub const REASON: &str = "rate_limit_registered_domain";

/// What the gate decides for one new name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// Order it now.
    Go,
    /// Its registered domain has had its share: order it at this time.
    WaitUntil(OffsetDateTime),
}

/// The per-registered-domain limit applied to one batch of claims, taken at `now`: it
/// remembers what it let through and what it made wait, so that several names of one
/// registered domain in the batch share what is left, and those that wait are given
/// successive turns rather than one time at which they would all be due together.
#[derive(Debug)]
pub struct RegisteredDomainGate {
    limit: Limit,
    now: OffsetDateTime,
    /// Per registered domain: orders already counted in the window (oldest first), and how
    /// many this batch let through and made wait.
    seen: HashMap<String, Tally>,
}

#[derive(Debug, Default)]
struct Tally {
    placed: Vec<OffsetDateTime>,
    granted: usize,
    waiting: usize,
}

impl RegisteredDomainGate {
    pub fn new(limit: Limit, now: OffsetDateTime) -> RegisteredDomainGate {
        RegisteredDomainGate {
            limit,
            now,
            seen: HashMap::new(),
        }
    }

    /// Start of the window that ends now: the orders to read for a registered domain.
    pub fn window_start(&self) -> OffsetDateTime {
        self.now - self.limit.window
    }

    /// Whether `registered_domain`'s orders have been read into this gate.
    pub fn knows(&self, registered_domain: &str) -> bool {
        self.seen.contains_key(registered_domain)
    }

    /// The registered domain's orders inside the window (any order), and its new names in
    /// flight whose orders are not logged yet (counted as placed now).
    pub fn read(
        &mut self,
        registered_domain: &str,
        mut placed: Vec<OffsetDateTime>,
        in_flight: usize,
    ) {
        placed.sort_unstable();
        self.seen.insert(
            registered_domain.to_owned(),
            Tally {
                placed,
                granted: in_flight,
                ..Tally::default()
            },
        );
    }

    /// The turn of one more new name under `registered_domain` (read first; one never read
    /// counts as having no orders).
    pub fn turn(&mut self, registered_domain: &str) -> Turn {
        let (limit, now) = (self.limit, self.now);
        let tally = self.seen.entry(registered_domain.to_owned()).or_default();
        let count = usize::try_from(limit.count).unwrap_or(usize::MAX);
        let used = tally.placed.len() + tally.granted;
        // Once one name waits, `used` has reached the count: the rest wait too.
        if used < count {
            tally.granted += 1;
            return Turn::Go;
        }
        // This name needs `k` of the counted orders to have left the window: the oldest go
        // first, and those granted in this batch leave a whole window from now. An order
        // placed at `t` is counted by windows starting at `t` or before: it has left one
        // second after `t + window` (times are whole seconds in the log).
        let k = (used + tally.waiting + 1).saturating_sub(count).max(1);
        tally.waiting += 1;
        let placed_at = tally.placed.get(k - 1).copied().unwrap_or(now);
        Turn::WaitUntil(placed_at.max(now - limit.window) + limit.window + time::Duration::SECOND)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use time::macros::datetime;

    use super::*;

    const NOW: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);
    const WEEK: Duration = Duration::from_secs(7 * 86_400);

    fn gate(count: u32) -> RegisteredDomainGate {
        RegisteredDomainGate::new(
            Limit {
                count,
                window: WEEK,
            },
            NOW,
        )
    }

    fn hours_ago(h: i64) -> OffsetDateTime {
        NOW - time::Duration::hours(h)
    }

    #[test]
    fn names_go_until_the_share_is_used_then_wait_for_the_oldest_order_to_leave() {
        let mut g = gate(3);
        g.read("example.com", vec![hours_ago(10), hours_ago(50)], 0);
        assert_eq!(g.turn("example.com"), Turn::Go);
        let week = time::Duration::days(7) + time::Duration::SECOND;
        // Three counted: the next waits for the oldest (50 h ago) to leave the window,
        // the one after for the second oldest, then for the one granted now.
        assert_eq!(g.turn("example.com"), Turn::WaitUntil(hours_ago(50) + week));
        assert_eq!(g.turn("example.com"), Turn::WaitUntil(hours_ago(10) + week));
        assert_eq!(g.turn("example.com"), Turn::WaitUntil(NOW + week));
    }

    #[test]
    fn registered_domains_are_counted_apart() {
        let mut g = gate(1);
        g.read("example.com", vec![hours_ago(1)], 0);
        assert!(matches!(g.turn("example.com"), Turn::WaitUntil(_)));
        assert_eq!(g.turn("example.org"), Turn::Go);
        assert!(matches!(g.turn("example.org"), Turn::WaitUntil(_)));
        assert!(g.knows("example.com") && g.knows("example.org"));
        assert!(!g.knows("example.net"));
    }

    #[test]
    fn names_in_flight_count_as_placed_now() {
        let mut g = gate(2);
        g.read("example.com", vec![hours_ago(5)], 1);
        assert_eq!(
            g.turn("example.com"),
            Turn::WaitUntil(hours_ago(5) + time::Duration::days(7) + time::Duration::SECOND)
        );
    }

    /// 300 names of one registered domain enabled at once, looked at every hour: never
    /// more than 50 in any 7 days, and each is ordered within a week of its turn.
    #[test]
    fn three_hundred_names_go_fifty_a_week() {
        let limit = Limit {
            count: 50,
            window: WEEK,
        };
        let mut placed: Vec<OffsetDateTime> = Vec::new();
        let mut due: Vec<OffsetDateTime> = vec![NOW; 300];
        let mut now = NOW;
        while !due.is_empty() && now < NOW + time::Duration::days(60) {
            let mut g = RegisteredDomainGate::new(limit, now);
            let start = g.window_start();
            g.read(
                "example.com",
                placed.iter().copied().filter(|t| *t >= start).collect(),
                0,
            );
            let mut later = Vec::new();
            for at in due.drain(..) {
                if at > now {
                    later.push(at);
                    continue;
                }
                match g.turn("example.com") {
                    Turn::Go => placed.push(now),
                    Turn::WaitUntil(t) => later.push(t),
                }
            }
            due = later;
            now += time::Duration::hours(1);
        }
        assert!(due.is_empty(), "{} left", due.len());
        assert_eq!(placed.len(), 300);
        for t in &placed {
            let inside = placed
                .iter()
                .filter(|u| **u >= *t && **u < *t + WEEK)
                .count();
            assert!(inside <= 50, "{inside} in the week from {t}");
        }
        let last = placed.iter().max().copied().unwrap_or(NOW);
        assert!(last - NOW <= time::Duration::days(36), "{}", last - NOW);
    }
}
