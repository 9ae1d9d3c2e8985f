//! A model of the CA's limits as Let's Encrypt enforces them: token buckets (a limit of N
//! per window holds N and gets one back every window / N), checked all before any is spent,
//! `rateLimited` with the time until a token is back (its `Retry-After`), and the
//! exemptions: an ARI renewal (inside the certificate's suggested window) from every limit,
//! any other renewal from the new orders per account and the certificates per registered
//! domain when the CA exempts renewals.

use std::collections::HashMap;
use std::time::Duration;

use time::OffsetDateTime;

use crate::config::{CaLimits, Limit};

/// One limit's bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    capacity: f64,
    /// Seconds for one token to come back.
    refill: f64,
    tokens: f64,
    at: OffsetDateTime,
}

impl Bucket {
    fn new(limit: Limit, now: OffsetDateTime) -> Bucket {
        let capacity = f64::from(limit.count);
        Bucket {
            capacity,
            refill: limit.window.as_secs_f64() / capacity.max(1.0),
            tokens: capacity,
            at: now,
        }
    }

    /// Tokens back since the last look.
    fn fill(&mut self, now: OffsetDateTime) {
        let elapsed = (now - self.at).as_seconds_f64().max(0.0);
        self.tokens = (self.tokens + elapsed / self.refill).min(self.capacity);
        self.at = now;
    }

    /// `None` when a token is there; else how long until one is.
    fn wait(&mut self, now: OffsetDateTime) -> Option<Duration> {
        self.fill(now);
        (self.tokens < 1.0).then(|| Duration::from_secs_f64((1.0 - self.tokens) * self.refill))
    }

    fn spend(&mut self) {
        self.tokens -= 1.0;
    }
}

/// What an order is, as the CA sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderKind {
    /// A name without a certificate.
    New,
    /// A renewal; `ari`: it names the certificate it replaces, inside its suggested window.
    Renewal { ari: bool },
}

/// The CA's limits, enforced.
#[derive(Debug)]
pub struct CaModel {
    limits: CaLimits,
    account: Option<Bucket>,
    registered: HashMap<u32, Bucket>,
    exact: HashMap<u32, Bucket>,
}

impl CaModel {
    pub fn new(limits: CaLimits, now: OffsetDateTime) -> CaModel {
        CaModel {
            limits,
            account: limits.new_orders.map(|l| Bucket::new(l, now)),
            registered: HashMap::new(),
            exact: HashMap::new(),
        }
    }

    /// An order for the name `name` (its own exact set) under registered domain
    /// `registered`: accepted (its buckets spent), or `rateLimited` with its `Retry-After`.
    pub fn order(
        &mut self,
        now: OffsetDateTime,
        name: u32,
        registered: u32,
        kind: OrderKind,
    ) -> Result<(), Duration> {
        let exempt_from_all = kind == OrderKind::Renewal { ari: true };
        if exempt_from_all {
            return Ok(());
        }
        let renewal = matches!(kind, OrderKind::Renewal { .. });
        let counts_new = !(renewal && self.limits.renewals_exempt);
        let limits = self.limits;
        let mut buckets: Vec<&mut Bucket> = Vec::with_capacity(3);
        if let Some(exact) = limits.exact_set {
            buckets.push(
                self.exact
                    .entry(name)
                    .or_insert_with(|| Bucket::new(exact, now)),
            );
        }
        if counts_new {
            if let Some(account) = self.account.as_mut() {
                buckets.push(account);
            }
            if let Some(limit) = limits.registered_domain {
                let bucket = (self.registered)
                    .entry(registered)
                    .or_insert_with(|| Bucket::new(limit, now));
                buckets.push(bucket);
            }
        }
        let wait = buckets.iter_mut().filter_map(|b| b.wait(now)).max();
        if let Some(wait) = wait {
            return Err(wait.max(Duration::from_secs(1)));
        }
        buckets.iter_mut().for_each(|b| b.spend());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::config::Preset;

    const T0: OffsetDateTime = datetime!(2027-01-01 0:00 UTC);

    #[test]
    fn the_account_bucket_holds_300_then_gives_one_back_every_36_seconds() {
        let mut ca = CaModel::new(Preset::Letsencrypt.limits(), T0);
        for i in 0..300 {
            assert_eq!(ca.order(T0, i, i, OrderKind::New), Ok(()), "{i}");
        }
        let refused = ca.order(T0, 300, 300, OrderKind::New);
        assert_eq!(refused, Err(Duration::from_secs(36)));
        let later = T0 + time::Duration::seconds(36);
        assert_eq!(ca.order(later, 300, 300, OrderKind::New), Ok(()));
        // Renewals are exempt from it; an ARI renewal from everything.
        assert_eq!(
            ca.order(later, 1, 1, OrderKind::Renewal { ari: false }),
            Ok(())
        );
        assert_eq!(
            ca.order(later, 2, 2, OrderKind::Renewal { ari: true }),
            Ok(())
        );
    }

    #[test]
    fn a_registered_domain_has_50_and_a_name_5_certificates() {
        let mut ca = CaModel::new(Preset::Letsencrypt.limits(), T0);
        for i in 0..50 {
            assert_eq!(ca.order(T0, i, 7, OrderKind::New), Ok(()), "{i}");
        }
        let refill = Duration::from_secs(7 * 86_400 / 50);
        assert_eq!(ca.order(T0, 50, 7, OrderKind::New), Err(refill));
        // The same name renewed without ARI: four more (the fifth certificate of its set).
        for _ in 0..4 {
            assert_eq!(
                ca.order(T0, 0, 7, OrderKind::Renewal { ari: false }),
                Ok(())
            );
        }
        assert!(
            ca.order(T0, 0, 7, OrderKind::Renewal { ari: false })
                .is_err()
        );
        assert_eq!(ca.order(T0, 0, 7, OrderKind::Renewal { ari: true }), Ok(()));
    }
}
