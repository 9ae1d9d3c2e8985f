//! The fleet gauges (domains per state, earliest expiry, the capacity's headroom), recomputed
//! from the store in the background so that a scrape reads memory only.
//!
//! Every replica reads the shared database, so its gauges tell the fleet's truth, not its
//! own. A recount follows each certificate change (issued, renewed, removed: at most one
//! per [`SETTLE`]) and otherwise comes every [`EVERY`], or less often on a store where a
//! recount is slow: never more than 1 % of the time is spent recounting.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::broadcast;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::certs::CertEvent;
use crate::policy::capacity::Pacing;
use crate::store::{Store, StoreError};

/// Longest between two recounts on a store that counts quickly.
pub const EVERY: Duration = Duration::from_secs(15);
/// Changes arriving together (a renewal storm) make one recount.
pub const SETTLE: Duration = Duration::from_secs(1);
/// A recount may take at most this share of the time between two.
const MAX_DUTY: u32 = 100;

/// Whether the gauges were counted at least once in this process.
static COUNTED: AtomicBool = AtomicBool::new(false);

/// Recount the gauges now (the capacity's too, under `pacing`).
pub async fn recount(store: &dyn Store, pacing: Pacing) -> Result<Duration, StoreError> {
    let started = Instant::now();
    let counts = store.count_by_state().await?;
    let earliest = store.earliest_expiry().await?;
    crate::metrics::set_fleet_gauges(&counts, earliest);
    let capacity = super::capacity::compute(store, pacing, OffsetDateTime::now_utc()).await?;
    crate::metrics::set_capacity(capacity.headroom_ratio);
    COUNTED.store(true, Ordering::Relaxed);
    Ok(started.elapsed())
}

/// Count the gauges if nothing has yet (a scrape before the background task's first count).
pub async fn ensure_counted(store: &dyn Store, pacing: Pacing) -> Result<(), StoreError> {
    if !COUNTED.load(Ordering::Relaxed) {
        recount(store, pacing).await?;
    }
    Ok(())
}

/// Keep the gauges fresh until `stop` is cancelled.
pub async fn keep_fresh(
    store: Arc<dyn Store>,
    pacing: Pacing,
    mut changes: broadcast::Receiver<CertEvent>,
    stop: CancellationToken,
) {
    let mut changes_open = true;
    loop {
        let took = match recount(store.as_ref(), pacing).await {
            Ok(took) => took,
            Err(e) => {
                tracing::warn!(error = %e, "recounting the fleet gauges failed");
                Duration::ZERO
            }
        };
        let next = Instant::now() + EVERY.max(took * MAX_DUTY);
        // Wait for the next tick or a change, whichever comes first.
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep_until(next) => continue,
            change = changes.recv(), if changes_open => {
                if matches!(change, Err(broadcast::error::RecvError::Closed)) {
                    changes_open = false;
                }
            }
        }
        // Let a burst of changes arrive, then recount once (not sooner than the duty allows).
        let settle = SETTLE.max(took * MAX_DUTY / 10);
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(settle) => {}
        }
        changes = changes.resubscribe();
    }
}
