//! Re-checking the CA's renewal windows (ARI, RFC 9773) of issued certificates.
//!
//! The window is first fetched when a certificate is issued ([`crate::jobs`]); a CA may
//! later move it earlier (a revocation incident, a mis-issuance), and Let's Encrypt asks
//! clients to check at least twice a day. Every [`ARI_CHECK_INTERVAL`](crate::config::ARI_CHECK_INTERVAL)
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
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::acme::{AcmeError, CertificateAuthority, ari};
use crate::schedule::{self, Clock};
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
            interval: acme.ari_check_interval(),
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
/// `shutdown` turns true.
pub async fn run(
    store: Arc<dyn Store>,
    ca: Arc<dyn CertificateAuthority>,
    settings: Settings,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut wait = settings.interval.min(FIRST_CHECK_DELAY);
    loop {
        tokio::select! {
            _ = stopped(&mut shutdown) => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = settings.interval;
        tokio::select! {
            _ = stopped(&mut shutdown) => return,
            outcome = round(&store, &ca, &settings) => match outcome {
                Ok(advanced) => tracing::info!(advanced, "renewal information checked"),
                Err(e) => tracing::warn!(error = %e, "checking renewal information"),
            },
        }
    }
}

/// Completes once the shutdown flag is set, or its sender is gone.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
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
    use super::*;
    use crate::config::ARI_CHECK_INTERVAL;

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
        assert_eq!(ARI_CHECK_INTERVAL, Duration::from_secs(43_200));
        assert_eq!(
            crate::config::AcmeConfig::default().ari_check_interval(),
            ARI_CHECK_INTERVAL
        );
    }
}
