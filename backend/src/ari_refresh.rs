//! Re-checking the CA's renewal windows (ARI, RFC 9773) of issued certificates.
//!
//! The window is first fetched when a certificate is issued (by the worker); a CA may
//! later move it earlier (a revocation incident, a mis-issuance), and Let's Encrypt asks
//! clients to check at least twice a day. Every [`DEFAULT_ARI_CHECK_INTERVAL`](crate::config::acme::DEFAULT_ARI_CHECK_INTERVAL)
//! (`acme.ari_check_interval_secs`) this task walks the issued domains by name, a page at a
//! time, with a bounded number of requests to the CA in flight, and brings a domain's renewal
//! forward when a fresh random point inside the window ([`schedule::ari_renew_at`]) is
//! earlier than the stored one. It never moves a renewal later: a new random draw each round
//! would otherwise let renewals drift back and forth.
//!
//! A CA without ARI (Pebble) ends the round at its first answer. Errors are logged and the
//! walk goes on; the store's guard ([`Store::advance_renewal`]) leaves alone a domain that was
//! renewed or disabled while its window was being fetched.
//!
//! The walk asks the CA through the [`CertificateAuthority`] seam and reads the time from
//! [`Settings::clock`]; its tests run rounds against a fake CA on tokio's paused clock.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::acme::{AcmeError, CertificateAuthority, ari};
use crate::policy::schedule::{self, Clock};
use crate::store::{Store, StoreError};

/// Issued domains read from the store at once: bounds memory however many domains there are.
pub const PAGE_SIZE: usize = 500;
/// ARI requests in flight at once: enough to get through thousands of names in minutes,
/// few enough not to look like a flood to the CA.
pub const MAX_IN_FLIGHT: usize = 8;

/// What the task needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Time between rounds (`acme.ari_check_interval_secs`).
    pub interval: Duration,
    pub page_size: usize,
    pub max_in_flight: usize,
    /// Where `now` comes from: [`Clock::system`] but in tests.
    pub clock: Clock,
}

impl Settings {
    /// Each request to the CA is bounded by the CA client (`acme.request_timeout_secs`).
    pub fn from_config(acme: &crate::config::AcmeConfig) -> Settings {
        Settings {
            interval: acme.ari_check_interval,
            page_size: PAGE_SIZE,
            max_in_flight: MAX_IN_FLIGHT,
            clock: Clock::system(),
        }
    }
}

/// Why a round ended early.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RefreshError {
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("account: {0}")]
    Account(#[from] AcmeError),
}

/// The renewal time to store, given the stored one and a fresh point inside the CA's
/// window: `Some` only when the fresh point is earlier (never later, see the module docs).
pub fn advance_to(stored: Option<OffsetDateTime>, fresh: OffsetDateTime) -> Option<OffsetDateTime> {
    match stored {
        Some(stored) if fresh >= stored => None,
        _ => Some(fresh),
    }
}

/// The first round comes this long after start-up (or one interval, if shorter): soon enough
/// that a backend restarted more often than the interval still checks, late enough that a
/// burst of restarts (or a CA that is down while the backend starts) costs the CA nothing.
pub const FIRST_CHECK_DELAY: Duration = Duration::from_secs(10 * 60);

/// Run a round [`FIRST_CHECK_DELAY`] after start-up, then every `settings.interval`, until
/// `shutdown` is cancelled.
pub async fn run(
    store: Arc<dyn Store>,
    ca: Arc<dyn CertificateAuthority>,
    settings: Settings,
    shutdown: CancellationToken,
) {
    let mut wait = settings.interval.min(FIRST_CHECK_DELAY);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = settings.interval;
        tokio::select! {
            () = shutdown.cancelled() => return,
            outcome = round(&store, &ca, &settings) => match outcome {
                Ok(advanced) => tracing::info!(advanced, "renewal information checked"),
                Err(e) => tracing::warn!(error = %e, "checking renewal information"),
            },
        }
    }
}

/// One walk over the issued domains; returns how many renewals were brought forward.
pub async fn round(
    store: &Arc<dyn Store>,
    ca: &Arc<dyn CertificateAuthority>,
    settings: &Settings,
) -> Result<u64, RefreshError> {
    let mut after: Option<String> = None;
    let mut advanced = 0;
    let mut account_checked = false;
    loop {
        let page = store
            .issued_after(after.as_deref(), settings.page_size.max(1))
            .await?;
        let Some((last, _)) = page.last() else {
            return Ok(advanced);
        };
        after = Some(last.clone());
        // Once a round, and only when there is something to ask: without an account every
        // request would fail the same way.
        if !account_checked {
            ca.ensure_account().await?;
            account_checked = true;
        }
        match check_page(store, ca, settings, page).await {
            PageOutcome::Done(n) => advanced += n,
            PageOutcome::NoAri => {
                tracing::debug!("the CA offers no renewal information");
                return Ok(advanced);
            }
        }
    }
}

enum PageOutcome {
    /// Renewals brought forward in this page.
    Done(u64),
    /// The CA has no ARI: nothing more to ask this round.
    NoAri,
}

/// What one domain's check found.
enum Checked {
    Advanced,
    Kept,
    NoAri,
}

/// Check one page with at most `settings.max_in_flight` requests at once.
async fn check_page(
    store: &Arc<dyn Store>,
    ca: &Arc<dyn CertificateAuthority>,
    settings: &Settings,
    page: Vec<(String, String)>,
) -> PageOutcome {
    let mut checks = JoinSet::new();
    let mut advanced = 0;
    let mut pending = page.into_iter();
    loop {
        while checks.len() < settings.max_in_flight.max(1) {
            let Some((name, version)) = pending.next() else {
                break;
            };
            let (store, ca, clock) = (store.clone(), ca.clone(), settings.clock);
            checks.spawn(async move {
                let outcome = check(store.as_ref(), ca.as_ref(), clock, &name, &version).await;
                (name, outcome)
            });
        }
        let Some(joined) = checks.join_next().await else {
            return PageOutcome::Done(advanced);
        };
        match joined {
            Ok((_, Ok(Checked::Advanced))) => advanced += 1,
            Ok((_, Ok(Checked::Kept))) => {}
            // Dropping the set aborts the checks still running.
            Ok((_, Ok(Checked::NoAri))) => return PageOutcome::NoAri,
            Ok((name, Err(e))) => {
                tracing::warn!(domain = %name, error = %e, "checking renewal information");
            }
            Err(e) => tracing::error!(error = %e, "renewal information check stopped"),
        }
    }
}

/// Fetch the window for `name`'s current certificate and bring its renewal forward if the
/// window now calls for it.
async fn check(
    store: &dyn Store,
    ca: &dyn CertificateAuthority,
    clock: Clock,
    name: &str,
    version: &str,
) -> Result<Checked, RefreshError> {
    let Some(cert) = store.certificate(name).await? else {
        return Ok(Checked::Kept);
    };
    // A certificate renewed since the page was read is checked next round.
    if cert.version != version {
        return Ok(Checked::Kept);
    }
    // Without an identifier there is nothing to ask; the CA's ARI support is not in question.
    if ari::identifier(&cert.chain_pem).is_none() {
        return Ok(Checked::Kept);
    }
    let Some(window) = ca.renewal_window(&cert.chain_pem).await? else {
        return Ok(Checked::NoAri);
    };
    let now = clock.now();
    let fresh = schedule::ari_renew_at(window.start, window.end, now, rand::random::<f64>());
    let stored = store.domain(name).await?.and_then(|d| d.renew_at);
    let Some(renew_at) = advance_to(stored, fresh) else {
        return Ok(Checked::Kept);
    };
    if store.advance_renewal(name, version, renew_at, now).await? {
        tracing::info!(domain = %name, renew_at = %renew_at, "the CA moved the renewal window; renewing earlier");
        return Ok(Checked::Advanced);
    }
    Ok(Checked::Kept)
}

#[cfg(test)]
mod tests {
    //! The rounds run against the fake CA ([`crate::acme::fake`]) and a real SQLite store on
    //! tokio's paused clock.
    use super::*;
    use crate::acme::fake::{Ari, FakeCa};
    use crate::config::acme::DEFAULT_ARI_CHECK_INTERVAL;
    use crate::testing::{self, PausedStore};

    const DAY: time::Duration = time::Duration::DAY;

    struct World {
        _dir: tempfile::TempDir,
        store: Arc<dyn Store>,
        ca: Arc<FakeCa>,
        ca_seam: Arc<dyn CertificateAuthority>,
        settings: Settings,
    }

    /// A store with `domains` issued now, each renewing at its `renew_at`.
    async fn world(domains: &[(&str, OffsetDateTime)]) -> World {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = PausedStore::open(&dir.path().join("t.db")).await;
        let clock = testing::clock();
        let ca = FakeCa::new(store.clone(), clock);
        let now = clock.now();
        for (name, renew_at) in domains {
            let cert = ca.certificate(name, now, Duration::from_secs(90 * 86400));
            testing::issue_directly(store.as_ref(), name, &cert, *renew_at, now).await;
        }
        let settings = Settings {
            interval: DEFAULT_ARI_CHECK_INTERVAL,
            page_size: PAGE_SIZE,
            max_in_flight: MAX_IN_FLIGHT,
            clock,
        };
        World {
            _dir: dir,
            store,
            ca_seam: ca.clone(),
            ca,
            settings,
        }
    }

    impl World {
        async fn round(&self) -> Result<u64, RefreshError> {
            round(&self.store, &self.ca_seam, &self.settings).await
        }

        async fn renew_at(&self, name: &str) -> OffsetDateTime {
            let domain = self.store.domain(name).await.unwrap().unwrap();
            domain.renew_at.unwrap()
        }

        fn asked(&self) -> Vec<String> {
            self.ca.window_calls().into_iter().map(|(n, _)| n).collect()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_earlier_window_brings_the_renewal_forward() {
        let now = testing::START;
        let w = world(&[("a.example", now + DAY * 60)]).await;
        let (start, end) = (now + DAY, now + DAY * 2);
        w.ca.set_ari("a.example", Ari::Window { start, end });

        assert_eq!(w.round().await.unwrap(), 1);
        let at = w.renew_at("a.example").await;
        // Stored to the second.
        assert!(at >= start - time::Duration::SECOND && at <= end, "{at}");
        let due = w.store.next_due().await.unwrap().unwrap();
        assert_eq!(due, at, "due when it renews");
    }

    #[tokio::test(start_paused = true)]
    async fn a_later_window_never_moves_the_renewal() {
        let now = testing::START;
        let stored = now + DAY * 10;
        let w = world(&[("a.example", stored)]).await;
        w.ca.set_ari(
            "a.example",
            Ari::Window {
                start: now + DAY * 30,
                end: now + DAY * 31,
            },
        );
        for _ in 0..3 {
            assert_eq!(w.round().await.unwrap(), 0);
        }
        assert_eq!(w.asked().len(), 3);
        assert_eq!(w.renew_at("a.example").await, stored);
    }

    #[tokio::test(start_paused = true)]
    async fn a_ca_without_ari_ends_the_round_at_its_first_answer() {
        let later = testing::START + DAY * 60;
        let names = [
            "a.example",
            "b.example",
            "c.example",
            "d.example",
            "e.example",
        ];
        let domains: Vec<_> = names.iter().map(|n| (*n, later)).collect();
        let mut w = world(&domains).await;
        w.settings.page_size = 2;
        w.settings.max_in_flight = 1;

        assert_eq!(w.round().await.unwrap(), 0);
        assert_eq!(
            w.asked(),
            ["a.example"],
            "one question, then the round ends"
        );
        for name in names {
            assert_eq!(w.renew_at(name).await, later);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_error_is_logged_and_the_walk_goes_on() {
        let now = testing::START;
        let later = now + DAY * 60;
        let mut w = world(&[
            ("a.example", later),
            ("b.example", later),
            ("c.example", later),
        ])
        .await;
        // One name a page, one request at a time: the error is met mid-walk.
        w.settings.page_size = 1;
        w.settings.max_in_flight = 1;
        let window = Ari::Window {
            start: now + DAY,
            end: now + DAY * 2,
        };
        w.ca.set_ari("a.example", window);
        w.ca.set_ari("b.example", Ari::Error);
        w.ca.set_ari("c.example", window);

        let (_guard, logs) = testing::capture_logs();
        assert_eq!(w.round().await.unwrap(), 2);
        assert_eq!(w.asked(), ["a.example", "b.example", "c.example"]);
        let logged = logs.text();
        assert!(
            logged
                .lines()
                .any(|l| l.contains("WARN") && l.contains("b.example")),
            "{logged}"
        );
        assert!(w.renew_at("a.example").await < later);
        assert_eq!(w.renew_at("b.example").await, later);
        assert!(w.renew_at("c.example").await < later);
    }

    #[tokio::test(start_paused = true)]
    async fn without_an_account_the_round_ends_before_asking() {
        let w = world(&[]).await;
        w.ca.set_account_error(Some("the CA is down"));
        assert_eq!(w.round().await.unwrap(), 0);
        assert_eq!(w.ca.account_calls(), 0, "nothing issued, nothing to ask");

        let w = world(&[("a.example", testing::START + DAY * 60)]).await;
        w.ca.set_account_error(Some("the CA is down"));
        let error = w.round().await.unwrap_err();
        assert!(matches!(error, RefreshError::Account(_)), "{error}");
        assert!(w.asked().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn rounds_come_after_the_first_delay_then_every_interval_until_shutdown() {
        let w = world(&[("a.example", testing::START + DAY * 60)]).await;
        let interval = Duration::from_secs(3600);
        let settings = Settings {
            interval,
            ..w.settings
        };
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(
            w.store.clone(),
            w.ca_seam.clone(),
            settings,
            stop.clone(),
        ));
        let second = Duration::from_secs(1);

        tokio::time::sleep(FIRST_CHECK_DELAY - second).await;
        assert_eq!(w.ca.account_calls(), 0);
        tokio::time::sleep(second * 2).await;
        assert_eq!(w.ca.account_calls(), 1);
        assert_eq!(w.asked(), ["a.example"]);
        tokio::time::sleep(interval).await;
        assert_eq!(w.ca.account_calls(), 2);

        stop.cancel();
        let stopped = tokio::time::timeout(second, task).await;
        assert!(stopped.is_ok(), "the walk stops at the signal");
    }

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000 + secs).unwrap()
    }

    #[test]
    fn an_earlier_point_advances_the_renewal() {
        assert_eq!(advance_to(Some(at(100)), at(50)), Some(at(50)));
    }

    #[test]
    fn a_later_or_equal_point_keeps_it() {
        assert_eq!(advance_to(Some(at(100)), at(150)), None);
        assert_eq!(advance_to(Some(at(100)), at(100)), None);
    }

    #[test]
    fn a_domain_without_renewal_time_takes_the_point() {
        assert_eq!(advance_to(None, at(10)), Some(at(10)));
    }

    #[test]
    fn default_interval_is_twice_a_day() {
        assert_eq!(DEFAULT_ARI_CHECK_INTERVAL, Duration::from_secs(43_200));
        let config = crate::config::Config::parse("[acme]\nterms_agreed = true\n", |_| None);
        assert_eq!(
            config.unwrap().acme.ari_check_interval,
            DEFAULT_ARI_CHECK_INTERVAL
        );
    }
}
