//! Prometheus metrics: issuance outcomes (counters, recorded as they happen) and the state of
//! the fleet (gauges, recomputed from the store in the background, at once after a
//! certificate changes and at least every minute, so every replica reports the shared
//! database; a scrape reads memory only).
//!
//! - `acme_edge_issuance_success_total{kind="new"|"renewal"}`
//! - `acme_edge_issuance_failure_total{reason}` (reasons as in `last_error.reason`)
//! - `acme_edge_issuance_failure_class_total{class="domain"|"ca"|"ours"}`: failed attempts
//!   by whose failure they were (only `domain` ones climb a domain's retry ladder)
//! - `acme_edge_ca_available`: 1 while the CA answers, 0 while issuance is paused because it
//!   does not; `acme_edge_ca_unavailable_since_seconds`: since when (Unix time; 0 when
//!   available)
//! - `acme_edge_domains{state}`
//! - `acme_edge_earliest_expiry_seconds`: seconds until the earliest served certificate
//!   expires (absent when none is served).
//! - `acme_edge_ca_requests_in_flight`, `acme_edge_ca_requests_waiting`: requests to the CA
//!   under way, and waiting for one of the `acme.max_concurrent_requests` slots.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, Ordering};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use time::OffsetDateTime;

use crate::model::DomainState;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The earliest served certificate's expiry (Unix seconds), as last read from the store;
/// [`NO_EXPIRY`] when none is served.
static EARLIEST_EXPIRY: AtomicI64 = AtomicI64::new(NO_EXPIRY);
const NO_EXPIRY: i64 = i64::MIN;

/// Metrics could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("metrics recorder: {0}")]
pub struct MetricsError(String);

/// Install the process-wide recorder (once; later calls return the same handle).
pub fn install() -> Result<PrometheusHandle, MetricsError> {
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| MetricsError(e.to_string()))?;
    Ok(HANDLE.get_or_init(|| handle).clone())
}

pub fn issuance_succeeded(renewal: bool) {
    let kind = if renewal { "renewal" } else { "new" };
    metrics::counter!("acme_edge_issuance_success_total", "kind" => kind).increment(1);
}

pub fn issuance_failed(reason: &'static str) {
    metrics::counter!("acme_edge_issuance_failure_total", "reason" => reason).increment(1);
}

/// A failed attempt, by whose failure it was (`FailureClass::as_str`).
pub fn issuance_failed_class(class: &'static str) {
    metrics::counter!("acme_edge_issuance_failure_class_total", "class" => class).increment(1);
}

/// The CA's health: available (`None`), or unavailable since then.
pub fn set_ca_available(unavailable_since: Option<OffsetDateTime>) {
    let available = if unavailable_since.is_some() {
        0.0
    } else {
        1.0
    };
    metrics::gauge!("acme_edge_ca_available").set(available);
    let since = unavailable_since.map_or(0.0, |t| t.unix_timestamp() as f64);
    metrics::gauge!("acme_edge_ca_unavailable_since_seconds").set(since);
}

/// Counts itself in a gauge for as long as it lives: dropped (a request done, or abandoned
/// by a timeout), it counts itself out.
pub struct Occupancy(metrics::Gauge);

impl Occupancy {
    fn enter(gauge: metrics::Gauge) -> Occupancy {
        gauge.increment(1.0);
        Occupancy(gauge)
    }

    /// A request to the CA under way.
    pub fn ca_request() -> Occupancy {
        Occupancy::enter(metrics::gauge!("acme_edge_ca_requests_in_flight"))
    }

    /// A request to the CA waiting for a slot.
    pub fn ca_request_waiting() -> Occupancy {
        Occupancy::enter(metrics::gauge!("acme_edge_ca_requests_waiting"))
    }
}

impl Drop for Occupancy {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// Set the fleet gauges: domains per state, and seconds until the earliest served
/// certificate expires (`None`: nothing is served). The expiry is kept, so that
/// [`refresh_expiry_gauge`] can count down to it at each scrape.
pub fn set_fleet_gauges(counts: &[(DomainState, u64)], earliest_expiry: Option<OffsetDateTime>) {
    let unix = earliest_expiry.map_or(NO_EXPIRY, OffsetDateTime::unix_timestamp);
    EARLIEST_EXPIRY.store(unix, Ordering::Relaxed);
    for state in DomainState::ALL {
        let n = counts
            .iter()
            .find(|(s, _)| *s == state)
            .map_or(0, |(_, n)| *n);
        metrics::gauge!("acme_edge_domains", "state" => state.as_str()).set(n as f64);
    }
    if let Some(expiry) = earliest_expiry {
        let secs = (expiry - OffsetDateTime::now_utc()).as_seconds_f64();
        metrics::gauge!("acme_edge_earliest_expiry_seconds").set(secs);
    }
}

/// Seconds until the earliest expiry last read from the store, as of now: memory only.
/// `false` when no certificate is served (the gauge then has no meaningful value).
pub fn refresh_expiry_gauge() -> bool {
    let unix = EARLIEST_EXPIRY.load(Ordering::Relaxed);
    if unix == NO_EXPIRY {
        return false;
    }
    let secs = unix - OffsetDateTime::now_utc().unix_timestamp();
    #[allow(clippy::cast_precision_loss)] // seconds until an expiry: far below 2^52
    metrics::gauge!("acme_edge_earliest_expiry_seconds").set(secs as f64);
    true
}
