//! `[acme.limits]`: the CA's rate limits, as data. A preset names a CA's published limits;
//! every figure can be overridden (a raised limit granted to the account).
//!
//! The `letsencrypt` figures are Let's Encrypt's rate-limit documentation
//! (<https://letsencrypt.org/docs/rate-limits/>, last modified 2026-08-05), the
//! `letsencrypt-staging` ones its staging environment's
//! (<https://letsencrypt.org/docs/staging-environment/#rate-limits>). Let's Encrypt counts
//! limits with token buckets: a limit of N per window refills one unit every window / N. What
//! is exempt: a renewal coordinated by ARI (an order that names the certificate it replaces,
//! inside its window) from every limit; a renewal for the exact set of names of an earlier
//! certificate from the new orders per account and the certificates per registered domain.

use std::time::Duration;

use serde::Deserialize;

use super::directories::{LETS_ENCRYPT_PRODUCTION, LETS_ENCRYPT_STAGING};
use super::problems::Problems;

/// A limit: at most `count` per `window`, refilling one every `window / count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub count: u32,
    pub window: Duration,
}

impl Limit {
    const fn new(count: u32, window_secs: u64) -> Limit {
        Limit {
            count,
            window: Duration::from_secs(window_secs),
        }
    }

    /// How long one unit takes to come back.
    pub fn refill(&self) -> Duration {
        self.window / self.count.max(1)
    }
}

/// A named set of a CA's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// Let's Encrypt's production limits.
    Letsencrypt,
    /// Let's Encrypt's staging environment's limits.
    LetsencryptStaging,
    /// No limits (a private CA).
    None,
}

impl Preset {
    /// The preset for a directory: Let's Encrypt's for its directories, none otherwise.
    pub fn for_directory(url: &str) -> Preset {
        match url {
            LETS_ENCRYPT_PRODUCTION => Preset::Letsencrypt,
            LETS_ENCRYPT_STAGING => Preset::LetsencryptStaging,
            _ => Preset::None,
        }
    }

    /// The preset's figures.
    pub fn limits(self) -> CaLimits {
        match self {
            Preset::Letsencrypt => CaLimits {
                preset: self,
                // 300 new orders per account per 3 hours, 1 back every 36 s.
                new_orders: Some(Limit::new(300, 3 * 3600)),
                // 50 new certificates per registered domain per 7 days, 1 back every 202 min.
                registered_domain: Some(Limit::new(50, 7 * 86_400)),
                // 5 certificates per exact set of names per 7 days, 1 back every 34 h.
                exact_set: Some(Limit::new(5, 7 * 86_400)),
                // 5 failed authorizations per name per account per hour, 1 back every 12 min.
                authorization_failures: Some(Limit::new(5, 3600)),
                // 1,152 failed authorizations in a row pause the name for the account, until
                // it is unpaused by hand (1 back a day; a success resets it).
                consecutive_authorization_failures: Some(1152),
                renewals_exempt: true,
            },
            Preset::LetsencryptStaging => CaLimits {
                preset: self,
                new_orders: Some(Limit::new(1500, 3 * 3600)),
                // "30000 per second" in the staging page: no limit in practice.
                registered_domain: None,
                exact_set: Some(Limit::new(30_000, 7 * 86_400)),
                authorization_failures: Some(Limit::new(200, 3600)),
                consecutive_authorization_failures: Some(3600),
                renewals_exempt: true,
            },
            Preset::None => CaLimits {
                preset: self,
                new_orders: None,
                registered_domain: None,
                exact_set: None,
                authorization_failures: None,
                consecutive_authorization_failures: None,
                renewals_exempt: true,
            },
        }
    }
}

/// The CA's limits the scheduler keeps under (`None`: no such limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaLimits {
    /// The preset the figures start from.
    pub preset: Preset,
    /// New orders per account.
    pub new_orders: Option<Limit>,
    /// New certificates per registered domain (Public Suffix List), all accounts together.
    pub registered_domain: Option<Limit>,
    /// Certificates per exact set of names.
    pub exact_set: Option<Limit>,
    /// Failed authorizations per name per account.
    pub authorization_failures: Option<Limit>,
    /// Failed authorizations in a row after which the CA pauses the name for the account.
    pub consecutive_authorization_failures: Option<u32>,
    /// A renewal (an order for a name that has a certificate) spends neither the new orders
    /// per account nor the certificates per registered domain.
    pub renewals_exempt: bool,
}

/// `[acme.limits]` as written; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CaLimitsSection {
    /// `letsencrypt`, `letsencrypt-staging` or `none`. Default: the directory's
    /// ([`Preset::for_directory`]).
    preset: Option<Preset>,
    /// New orders per account per `new_orders_window_secs` (0: no limit).
    new_orders: Option<u32>,
    new_orders_window_secs: Option<u64>,
    /// New certificates per registered domain per `registered_domain_window_secs`.
    registered_domain_certificates: Option<u32>,
    registered_domain_window_secs: Option<u64>,
    /// Certificates per exact set of names per `exact_set_window_secs`.
    exact_set_certificates: Option<u32>,
    exact_set_window_secs: Option<u64>,
    /// Failed authorizations per name per `authorization_failures_window_secs`.
    authorization_failures: Option<u32>,
    authorization_failures_window_secs: Option<u64>,
    /// Failed authorizations in a row that pause a name.
    consecutive_authorization_failures: Option<u32>,
    /// Renewals spend neither the new orders nor the registered domain's certificates.
    renewals_exempt: Option<bool>,
}

/// Longest window a limit may have: a year.
const MAX_WINDOW_SECS: u64 = 365 * 86_400;

impl CaLimits {
    /// The section's values over the preset's (the directory's when none is named).
    pub(super) fn from_section(
        s: CaLimitsSection,
        directory_url: &str,
        problems: &mut Problems,
    ) -> Option<CaLimits> {
        let mut limits = s
            .preset
            .unwrap_or_else(|| Preset::for_directory(directory_url))
            .limits();
        let mut ok = true;
        let mut set = |keys: [&str; 2], slot: &mut Option<Limit>, count, secs| match overridden(
            *slot, count, secs,
        ) {
            Ok(limit) => *slot = limit,
            Err((which, e)) => {
                problems.push(&format!("acme.limits.{}", keys[which]), e);
                ok = false;
            }
        };
        set(
            ["new_orders", "new_orders_window_secs"],
            &mut limits.new_orders,
            s.new_orders,
            s.new_orders_window_secs,
        );
        set(
            [
                "registered_domain_certificates",
                "registered_domain_window_secs",
            ],
            &mut limits.registered_domain,
            s.registered_domain_certificates,
            s.registered_domain_window_secs,
        );
        set(
            ["exact_set_certificates", "exact_set_window_secs"],
            &mut limits.exact_set,
            s.exact_set_certificates,
            s.exact_set_window_secs,
        );
        set(
            [
                "authorization_failures",
                "authorization_failures_window_secs",
            ],
            &mut limits.authorization_failures,
            s.authorization_failures,
            s.authorization_failures_window_secs,
        );
        if let Some(n) = s.consecutive_authorization_failures {
            limits.consecutive_authorization_failures = (n > 0).then_some(n);
        }
        if let Some(exempt) = s.renewals_exempt {
            limits.renewals_exempt = exempt;
        }
        ok.then_some(limits)
    }
}

/// A preset's `limit` with a count and a window written over it: a count of 0 removes the
/// limit; a window alone changes the preset's window. An error names the key at fault (0:
/// the count, 1: the window).
fn overridden(
    limit: Option<Limit>,
    count: Option<u32>,
    secs: Option<u64>,
) -> Result<Option<Limit>, (usize, String)> {
    if let Some(secs) = secs
        && !(1..=MAX_WINDOW_SECS).contains(&secs)
    {
        return Err((1, format!("must be between 1 and {MAX_WINDOW_SECS}")));
    }
    match (count, secs, limit) {
        (Some(0), _, _) => Ok(None),
        (Some(count), Some(secs), _) => Ok(Some(Limit::new(count, secs))),
        (Some(count), None, Some(limit)) => Ok(Some(Limit { count, ..limit })),
        (Some(_), None, None) => Err((0, "needs its window (the preset has none)".into())),
        (None, Some(secs), Some(limit)) => Ok(Some(Limit {
            window: Duration::from_secs(secs),
            ..limit
        })),
        (None, Some(_), None) => Err((1, "needs its count (the preset has none)".into())),
        (None, None, limit) => Ok(limit),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lets_encrypt_figures_refill_as_documented() {
        let le = Preset::Letsencrypt.limits();
        let minutes = |d: Duration| d.as_secs() / 60;
        assert_eq!(le.new_orders.unwrap().refill(), Duration::from_secs(36));
        assert_eq!(minutes(le.registered_domain.unwrap().refill()), 201); // "202 minutes"
        assert_eq!(le.exact_set.unwrap().refill().as_secs() / 3600, 33); // "34 hours"
        assert_eq!(minutes(le.authorization_failures.unwrap().refill()), 12);
        assert_eq!(le.consecutive_authorization_failures, Some(1152));
        assert!(le.renewals_exempt);
    }

    #[test]
    fn the_directory_chooses_the_preset() {
        assert_eq!(
            Preset::for_directory(LETS_ENCRYPT_PRODUCTION),
            Preset::Letsencrypt
        );
        assert_eq!(
            Preset::for_directory(LETS_ENCRYPT_STAGING),
            Preset::LetsencryptStaging
        );
        assert_eq!(
            Preset::for_directory("https://ca.internal/dir"),
            Preset::None
        );
    }

    #[test]
    fn a_figure_overrides_the_preset() {
        let le = Some(Limit::new(300, 10_800));
        assert_eq!(
            overridden(le, Some(1000), None),
            Ok(Some(Limit::new(1000, 10_800)))
        );
        assert_eq!(overridden(le, Some(0), None), Ok(None));
        assert_eq!(
            overridden(None, Some(10), Some(60)),
            Ok(Some(Limit::new(10, 60)))
        );
        assert!(overridden(None, Some(10), None).is_err());
        assert!(overridden(le, None, Some(0)).is_err());
    }
}
