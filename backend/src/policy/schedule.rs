//! When work is due: renewal of issued certificates and retries after failures.
//!
//! Everything here is a pure function of explicit inputs (the certificate's validity, the
//! failure count, `now`, and a random fraction the caller draws), so that the policy is
//! tested without clocks or a CA; the worker only stores the times it returns. `now` itself
//! comes from a [`Clock`]: the system's, or in tests one that follows tokio's paused time.
//!
//! # Renewal
//!
//! - With ACME Renewal Information (RFC 9773) the CA's suggested window wins: a uniformly
//!   random time inside it ([`ari_renew_at`]), or now when the window has passed.
//! - Otherwise a third of the lifetime before expiry (half for certificates shorter than
//!   [`SHORT_LIVED`]), brought forward by a random part of [`JITTER_FRACTION`] of the lifetime
//!   ([`renew_at`]) so that certificates issued together do not renew together. Renewal is
//!   never later than the un-jittered point.
//! - A renewal is *critical* ([`critical_at`]) once half of the remaining time after the
//!   renewal point is gone: such renewals are claimed before any other due work.
//!
//! # Retries
//!
//! [`Backoff`]: Let's Encrypt's guidance of 1 minute, 10 minutes, 100 minutes, then daily,
//! all scaled by one base (`acme.retry_base_secs`, 60 by default, shortened by tests). A
//! `Retry-After` from the CA is honoured exactly ([`Backoff::retry_at`]), within two bounds:
//! at least [`MIN_RETRY_AFTER`] (a `Retry-After: 0` would otherwise have the worker ask again
//! at once, in a loop) and at most the daily step (a CA asking for a week, or a broken header,
//! must not park a domain beyond our own longest wait). Retry times are rounded up to the
//! second, the store's resolution, so a retry is never earlier than asked. The first three
//! failures fall inside 11 minutes and the fourth a day later, so a name that keeps failing
//! validation costs at most 3 failed validations per hour, under Let's Encrypt's limit of 5.

use std::time::Duration;

use time::OffsetDateTime;

/// Certificates shorter-lived than this renew at half their lifetime instead of a third
/// (Let's Encrypt's guidance for short-lived certificates, e.g. the 6-day profile).
pub const SHORT_LIVED: Duration = Duration::from_secs(10 * 24 * 3600);

/// Renewal is brought forward by a random share of this fraction of the lifetime: 4.5 days
/// for a 90-day certificate, 7 hours for a 6-day one. Enough to spread a bulk enable of
/// thousands of names over days, small next to the third of the lifetime still left.
pub const JITTER_FRACTION: f64 = 0.05;

/// Multiples of the base for the 1st, 2nd and 3rd consecutive failure; then
/// [`DAILY_MULTIPLE`]. With the 60 s default: 1 min, 10 min, 100 min, then daily.
pub const RETRY_MULTIPLES: [u32; 3] = [1, 10, 100];
/// Multiple of the base from the 4th consecutive failure on (1440 minutes: a day).
pub const DAILY_MULTIPLE: u32 = 1440;

/// A failure that was not the domain's (the CA's, or ours) is retried after the base times
/// the number of such failures in a row at the CA, at most this many (10 minutes with the
/// 60 s default): minutes, never the daily step, and not counted as the domain's attempt.
pub const CA_RETRY_MAX_MULTIPLE: u32 = 10;

/// The shortest wait a CA's `Retry-After` may impose: `0`, or a date already past, would make
/// the domain due again at once and the worker would ask the CA again in a tight loop.
pub const MIN_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Where the worker and the ARI walk read the current time.
///
/// The system clock in the service. Tests use `Clock::following_tokio`, which moves with
/// tokio's clock: with `tokio::time::pause` a day of retries and leases runs in milliseconds,
/// and the times the worker stores agree with the sleeps it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Clock {
    /// The time at a reading of tokio's clock; `None`: the system clock.
    #[cfg(test)]
    tokio: Option<(OffsetDateTime, tokio::time::Instant)>,
}

impl Clock {
    /// The system's wall clock.
    pub const fn system() -> Clock {
        Clock {
            #[cfg(test)]
            tokio: None,
        }
    }

    /// A clock that reads `at` now and then moves with tokio's (pausable) clock.
    #[cfg(test)]
    pub fn following_tokio(at: OffsetDateTime) -> Clock {
        Clock {
            tokio: Some((at, tokio::time::Instant::now())),
        }
    }

    pub fn now(&self) -> OffsetDateTime {
        #[cfg(test)]
        if let Some((at, origin)) = self.tokio {
            return at + origin.elapsed();
        }
        OffsetDateTime::now_utc()
    }
}

/// When to renew a certificate valid from `not_before` to `not_after` without ARI: a third
/// of its lifetime before expiry (half for short-lived certificates), brought forward by
/// `jitter` (0.0..=1.0, drawn at random by the caller) times [`JITTER_FRACTION`] of it.
pub fn renew_at(
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    jitter: f64,
) -> OffsetDateTime {
    let lifetime = not_after - not_before;
    if lifetime <= time::Duration::ZERO {
        return not_before;
    }
    let left = if is_short_lived(lifetime) {
        lifetime / 2
    } else {
        lifetime / 3
    };
    let early = lifetime * (JITTER_FRACTION * jitter.clamp(0.0, 1.0));
    not_after - left - early
}

fn is_short_lived(lifetime: time::Duration) -> bool {
    lifetime < time::Duration::try_from(SHORT_LIVED).unwrap_or(time::Duration::MAX)
}

/// When to renew inside the CA's suggested window (`start`..`end`): at `jitter` (0.0..=1.0)
/// of the way through what is left of it at `now`; `now` once the window has started and
/// `jitter` falls before now, or the window is over (RFC 9773 §4.2: renew at once).
pub fn ari_renew_at(
    start: OffsetDateTime,
    end: OffsetDateTime,
    now: OffsetDateTime,
    jitter: f64,
) -> OffsetDateTime {
    let from = start.max(now);
    if end <= from {
        return now;
    }
    from + (end - from) * jitter.clamp(0.0, 1.0)
}

/// From when a renewal is late enough to go before other work: half-way between the
/// un-jittered renewal point and expiry.
pub fn critical_at(not_before: OffsetDateTime, not_after: OffsetDateTime) -> OffsetDateTime {
    let point = renew_at(not_before, not_after, 0.0);
    point + (not_after - point) / 2
}

/// `at`, or the first moment after it when fewer than `count` of the times `past` (newest
/// first, or in any order) fall in the `window` ending then: one more event then keeps
/// within a limit of `count` per `window`.
pub fn under_limit(
    at: OffsetDateTime,
    past: &[OffsetDateTime],
    count: usize,
    window: Duration,
) -> OffsetDateTime {
    let Some(nth) = count.checked_sub(1) else {
        return at;
    };
    let mut newest_first = past.to_vec();
    newest_first.sort_by(|a, b| b.cmp(a));
    match newest_first.get(nth) {
        // The count-th newest must have left the window.
        Some(oldest_counted) => up_to_second(at.max(*oldest_counted + window)),
        None => at,
    }
}

/// Retry delays after consecutive failures, as multiples of one base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
}

/// The configuration's default (`acme.retry_base_secs`).
impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: crate::config::acme::DEFAULT_RETRY_BASE,
        }
    }
}

impl Backoff {
    /// Delay before the next attempt after `attempts` consecutive failures (1 = first).
    pub fn delay(&self, attempts: u32) -> Duration {
        let index = attempts.saturating_sub(1) as usize;
        let multiple = RETRY_MULTIPLES
            .get(index)
            .copied()
            .unwrap_or(DAILY_MULTIPLE);
        self.base.saturating_mul(multiple)
    }

    /// The longest delay: the daily step.
    pub fn longest(&self) -> Duration {
        self.base.saturating_mul(DAILY_MULTIPLE)
    }

    /// The daily step from `now`: what waits for an operator (a name the CA paused).
    pub fn daily(&self, now: OffsetDateTime) -> OffsetDateTime {
        up_to_second(now + self.longest())
    }

    /// When to retry: exactly when the CA asked (`Retry-After`, or a `rateLimited` problem's
    /// hint) when it did, but no sooner than [`MIN_RETRY_AFTER`] and no later than the daily
    /// step from `now`; otherwise after our backoff. Rounded up to the second.
    pub fn retry_at(
        &self,
        now: OffsetDateTime,
        attempts: u32,
        ca_hint: Option<OffsetDateTime>,
    ) -> OffsetDateTime {
        let at = match ca_hint {
            // Not `clamp`: with a base under a second the ceiling is below the floor.
            Some(hint) => hint.min(now + self.longest()).max(now + MIN_RETRY_AFTER),
            None => now + self.delay(attempts),
        };
        up_to_second(at)
    }
}

impl Backoff {
    /// Delay after a failure that was not the domain's, the `in_a_row`th such at the CA
    /// (0 counts as 1): the base times that, at most [`CA_RETRY_MAX_MULTIPLE`] times it.
    pub fn ca_delay(&self, in_a_row: u32) -> Duration {
        self.base
            .saturating_mul(in_a_row.clamp(1, CA_RETRY_MAX_MULTIPLE))
    }

    /// When to retry after a failure that was not the domain's: the CA's `Retry-After`
    /// when it gave one (bounded as in [`Backoff::retry_at`]), else after [`Backoff::ca_delay`].
    pub fn ca_retry_at(
        &self,
        now: OffsetDateTime,
        in_a_row: u32,
        ca_hint: Option<OffsetDateTime>,
    ) -> OffsetDateTime {
        match ca_hint {
            Some(_) => self.retry_at(now, 1, ca_hint),
            None => up_to_second(now + self.ca_delay(in_a_row)),
        }
    }
}

/// `at`, or the next whole second when it has a fraction: the store keeps due times in whole
/// seconds (truncating), and a retry must not come before the time asked.
fn up_to_second(at: OffsetDateTime) -> OffsetDateTime {
    let fraction = time::Duration::nanoseconds(i64::from(at.nanosecond()));
    if fraction.is_zero() {
        at
    } else {
        at - fraction + time::Duration::SECOND
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_more_event_keeps_under_the_limit() {
        let t0 = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let hour = Duration::from_secs(3600);
        let mins = |m: i64| t0 + time::Duration::minutes(m);
        // Four in the last hour, a limit of five: one more may go now.
        let four = [mins(-50), mins(-40), mins(-30), mins(-1)];
        assert_eq!(under_limit(t0, &four, 5, hour), t0);
        // Five: the next waits until the oldest of them leaves the window.
        let five = [mins(-50), mins(-40), mins(-30), mins(-20), mins(-1)];
        assert_eq!(under_limit(t0, &five, 5, hour), mins(10));
        // A later time already past that stays.
        assert_eq!(under_limit(mins(30), &five, 5, hour), mins(30));
        assert_eq!(under_limit(t0, &five, 0, hour), t0);
    }
    use proptest::prelude::*;
    use time::macros::datetime;

    const NB: OffsetDateTime = datetime!(2026-01-01 0:00 UTC);

    fn days(n: i64) -> time::Duration {
        time::Duration::days(n)
    }

    #[test]
    fn lifetimes_come_from_the_certificate() {
        // 90, 64 and 45 days renew with a third left; 6 days with half left.
        for (life, left) in [(90, 30.0), (64, 64.0 / 3.0), (45, 15.0), (6, 3.0)] {
            let at = renew_at(NB, NB + days(life), 0.0);
            let left_days = (NB + days(life) - at).as_seconds_f64() / 86400.0;
            assert!((left_days - left).abs() < 1e-6, "{life}-day: {left_days}");
        }
    }

    #[test]
    fn jitter_only_brings_renewal_forward_within_its_fraction() {
        let na = NB + days(90);
        assert_eq!(
            renew_at(NB, na, 1.0),
            NB + days(60) - days(90) * JITTER_FRACTION
        );
        assert_eq!(renew_at(NB, na, 7.0), renew_at(NB, na, 1.0), "clamped");
        assert_eq!(renew_at(NB, na, -1.0), NB + days(60));
    }

    #[test]
    fn jitter_spreads_a_batch_issued_together() {
        use rand::Rng;
        let mut rng = rand::rng();
        let na = NB + days(90);
        let mut times: Vec<i64> = (0..1000)
            .map(|_| renew_at(NB, na, rng.random::<f64>()).unix_timestamp())
            .collect();
        times.sort_unstable();
        times.dedup();
        assert!(
            times.len() > 990,
            "1000 renewals at {} distinct times",
            times.len()
        );
        let spread = times.last().unwrap() - times.first().unwrap();
        assert!(
            spread > 4 * 86400,
            "spread {spread} s over the 4.5-day jitter range"
        );
    }

    #[test]
    fn ari_window_is_followed() {
        let start = NB + days(60);
        let end = NB + days(62);
        let now = NB + days(10);
        assert_eq!(ari_renew_at(start, end, now, 0.0), start);
        assert_eq!(ari_renew_at(start, end, now, 1.0), end);
        assert_eq!(ari_renew_at(start, end, now, 0.5), NB + days(61));
        // Inside the window: only what is left of it.
        let inside = NB + days(61);
        assert_eq!(ari_renew_at(start, end, inside, 0.0), inside);
        assert_eq!(ari_renew_at(start, end, inside, 1.0), end);
        // Past the window (e.g. the CA moved it forward for a revocation): now.
        let late = NB + days(70);
        assert_eq!(ari_renew_at(start, end, late, 0.7), late);
        // A window that ends before it starts: now.
        assert_eq!(ari_renew_at(end, start, now, 0.3), now);
    }

    #[test]
    fn critical_is_half_way_from_renewal_to_expiry() {
        assert_eq!(critical_at(NB, NB + days(90)), NB + days(75));
        assert_eq!(
            critical_at(NB, NB + days(6)),
            NB + days(4) + time::Duration::hours(12)
        );
    }

    #[test]
    fn backoff_follows_the_steps_then_daily() {
        let b = Backoff::default();
        let mins = |n| b.delay(n).as_secs() / 60;
        assert_eq!(
            [mins(0), mins(1), mins(2), mins(3), mins(4), mins(100)],
            [1, 1, 10, 100, 1440, 1440]
        );
        let fast = Backoff {
            base: Duration::from_secs(1),
        };
        assert_eq!(
            (1..=5).map(|n| fast.delay(n).as_secs()).collect::<Vec<_>>(),
            [1, 10, 100, 1440, 1440]
        );
    }

    #[test]
    fn retry_after_is_honoured_exactly() {
        let b = Backoff::default();
        let now = datetime!(2026-01-01 0:00 UTC);
        let later = now + time::Duration::hours(3);
        assert_eq!(b.retry_at(now, 1, Some(later)), later);
        let soon = now + time::Duration::seconds(5);
        assert_eq!(
            b.retry_at(now, 3, Some(soon)),
            soon,
            "sooner than our backoff too"
        );
        assert_eq!(b.retry_at(now, 2, None), now + time::Duration::minutes(10));
    }

    #[test]
    fn retry_after_is_at_least_a_second_and_at_most_the_daily_step() {
        let b = Backoff::default();
        let now = datetime!(2026-01-01 0:00 UTC);
        let second = now + time::Duration::SECOND;
        assert_eq!(b.retry_at(now, 1, Some(now)), second, "Retry-After: 0");
        assert_eq!(
            b.retry_at(now, 1, Some(now - days(1))),
            second,
            "a past date"
        );
        assert_eq!(b.retry_at(now, 1, Some(now + days(7))), now + days(1));
        let fast = Backoff {
            base: Duration::from_secs(1),
        };
        assert_eq!(
            fast.retry_at(now, 1, Some(now + days(1))),
            now + time::Duration::seconds(1440),
            "the daily step of the configured base"
        );
        let zero = Backoff {
            base: Duration::ZERO,
        };
        assert_eq!(zero.retry_at(now, 1, Some(now + days(1))), second);
    }

    #[test]
    fn retry_times_round_up_to_the_second() {
        let b = Backoff::default();
        let now = datetime!(2026-01-01 0:00:00.25 UTC);
        let hint = now + time::Duration::minutes(5);
        assert_eq!(
            b.retry_at(now, 1, Some(hint)),
            datetime!(2026-01-01 0:05:01 UTC)
        );
        assert_eq!(b.retry_at(now, 1, None), datetime!(2026-01-01 0:01:01 UTC));
    }

    #[test]
    fn repeated_validation_failures_stay_under_five_an_hour() {
        let b = Backoff::default();
        let mut at = NB;
        let mut attempts_in_first_hour = 0;
        for n in 1..=10 {
            if at < NB + time::Duration::hours(1) {
                attempts_in_first_hour += 1;
            }
            at = b.retry_at(at, n, None);
        }
        assert_eq!(attempts_in_first_hour, 3);
    }

    #[test]
    fn failures_not_the_domains_wait_minutes_never_a_day() {
        let b = Backoff::default();
        let now = datetime!(2026-01-01 0:00 UTC);
        let mins = |n| b.ca_delay(n).as_secs() / 60;
        assert_eq!(
            [mins(0), mins(1), mins(3), mins(10), mins(500)],
            [1, 1, 3, 10, 10]
        );
        assert_eq!(
            b.ca_retry_at(now, 1000, None),
            now + time::Duration::minutes(10)
        );
        let asked = now + time::Duration::hours(2);
        assert_eq!(
            b.ca_retry_at(now, 1, Some(asked)),
            asked,
            "Retry-After wins"
        );
    }

    proptest! {
        #[test]
        fn renewal_is_inside_the_validity(
            start in 0i64..4_000_000_000,
            secs in 1i64..(400 * 86400),
            jitter in 0.0f64..=1.0,
        ) {
            let nb = OffsetDateTime::from_unix_timestamp(start).unwrap();
            let na = nb + time::Duration::seconds(secs);
            let r = renew_at(nb, na, jitter);
            prop_assert!(r >= nb && r < na);
            prop_assert!(r <= renew_at(nb, na, 0.0));
            prop_assert!(critical_at(nb, na) >= renew_at(nb, na, 0.0));
            prop_assert!(critical_at(nb, na) <= na);
        }

        #[test]
        fn ari_pick_is_inside_the_window_or_now(
            start in 0i64..1_000_000, len in 0i64..1_000_000, now in 0i64..3_000_000,
            jitter in 0.0f64..=1.0,
        ) {
            let t = |s| OffsetDateTime::from_unix_timestamp(s).unwrap();
            let r = ari_renew_at(t(start), t(start + len), t(now), jitter);
            prop_assert!(r >= t(now));
            prop_assert!(r == t(now) || (r >= t(start) && r <= t(start + len)));
        }

        #[test]
        fn backoff_never_shrinks(n in 0u32..u32::MAX, base in 1u64..3600) {
            let b = Backoff { base: Duration::from_secs(base) };
            prop_assert!(b.delay(n + 1) >= b.delay(n));
        }
    }
}
