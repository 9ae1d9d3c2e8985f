//! When work is due: renewal of issued certificates and retries after failures.
//!
//! Both are pure functions of the certificate or the failure count, so that a smarter policy
//! (ARI's suggested window, jitter, a renewal budget) replaces [`renew_at`] without touching
//! the worker: the worker only stores the time it returns as the domain's due time.

use std::time::Duration;

use time::OffsetDateTime;

/// Certificates shorter-lived than this renew at half their lifetime instead of a third
/// (Let's Encrypt's guidance for short-lived certificates, e.g. the 6-day profile).
pub const SHORT_LIVED: Duration = Duration::from_secs(10 * 24 * 3600);

/// Retry delays after the 1st, 2nd and 3rd consecutive failure; then [`RETRY_DAILY`].
/// Let's Encrypt's guidance: retry after 1 minute, 10 minutes, 100 minutes, then daily.
pub const RETRY_STEPS: [Duration; 3] = [
    Duration::from_secs(60),
    Duration::from_secs(600),
    Duration::from_secs(6000),
];
/// Retry delay from the 4th consecutive failure on.
pub const RETRY_DAILY: Duration = Duration::from_secs(24 * 3600);

/// When to renew a certificate valid from `not_before` to `not_after`: with a third of its
/// lifetime left (half for short-lived certificates).
pub fn renew_at(not_before: OffsetDateTime, not_after: OffsetDateTime) -> OffsetDateTime {
    let lifetime = not_after - not_before;
    if lifetime <= time::Duration::ZERO {
        return not_before;
    }
    let short = lifetime < time::Duration::try_from(SHORT_LIVED).unwrap_or(time::Duration::MAX);
    let left = if short { lifetime / 2 } else { lifetime / 3 };
    not_after - left
}

/// Delay before the next attempt after `attempts` consecutive failures (1 = first failure).
pub fn backoff(attempts: u32) -> Duration {
    let index = attempts.saturating_sub(1) as usize;
    RETRY_STEPS.get(index).copied().unwrap_or(RETRY_DAILY)
}

/// When to retry: the CA's own hint (Retry-After) when it gave one and it is later than our
/// backoff, otherwise the backoff.
pub fn retry_at(
    now: OffsetDateTime,
    attempts: u32,
    ca_hint: Option<OffsetDateTime>,
) -> OffsetDateTime {
    let ours = now + backoff(attempts);
    match ca_hint {
        Some(hint) if hint > ours => hint,
        _ => ours,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    #[test]
    fn renews_at_two_thirds_of_a_90_day_certificate() {
        let nb = datetime!(2026-01-01 0:00 UTC);
        let na = nb + time::Duration::days(90);
        assert_eq!(renew_at(nb, na), nb + time::Duration::days(60));
    }

    #[test]
    fn short_lived_renews_at_half() {
        let nb = datetime!(2026-01-01 0:00 UTC);
        let na = nb + time::Duration::days(6);
        assert_eq!(renew_at(nb, na), nb + time::Duration::days(3));
    }

    #[test]
    fn inverted_validity_renews_now() {
        let nb = datetime!(2026-01-01 0:00 UTC);
        assert_eq!(renew_at(nb, nb - time::Duration::days(1)), nb);
    }

    #[test]
    fn backoff_follows_the_steps_then_daily() {
        let mins = |n| backoff(n).as_secs() / 60;
        assert_eq!(
            [mins(0), mins(1), mins(2), mins(3), mins(4), mins(100)],
            [1, 1, 10, 100, 1440, 1440]
        );
    }

    #[test]
    fn retry_after_hint_wins_only_when_later() {
        let now = datetime!(2026-01-01 0:00 UTC);
        let later = now + time::Duration::hours(3);
        assert_eq!(retry_at(now, 1, Some(later)), later);
        assert_eq!(
            retry_at(now, 1, Some(now)),
            now + time::Duration::minutes(1)
        );
        assert_eq!(retry_at(now, 2, None), now + time::Duration::minutes(10));
    }

    proptest! {
        #[test]
        fn renewal_is_inside_the_validity(start in 0i64..4_000_000_000, secs in 1i64..(400 * 86400)) {
            let nb = OffsetDateTime::from_unix_timestamp(start).unwrap();
            let na = nb + time::Duration::seconds(secs);
            let r = renew_at(nb, na);
            prop_assert!(r > nb && r < na);
        }

        #[test]
        fn backoff_never_shrinks(n in 0u32..u32::MAX) {
            prop_assert!(backoff(n + 1) >= backoff(n));
        }
    }
}
