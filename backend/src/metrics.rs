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
//! - `acme_edge_sds_response_seconds` (histogram): from an SDS request that asks for secrets
//!   (a subscription: an Envoy handshake is paused until the answer arrives) to its response
//!   being handed to the connection. The backend's share of a cold handshake.
//! - `acme_edge_sds_apply_seconds` (histogram): from that response to Envoy's
//!   acknowledgement, which Envoy sends once it has applied the secret (built the TLS
//!   context and resumed the waiting handshakes): the proxy's share, plus the way back.
//! - `acme_edge_sds_streams`: SDS streams open (Envoy opens one per name it holds, one in
//!   all over ADS); `acme_edge_sds_proxies`: Envoys holding names;
//!   `acme_edge_sds_names_held`: names they hold, over all of them (each at most
//!   `sds.max_names_per_proxy`); `acme_edge_sds_subscriptions_total`: names handed out;
//!   `acme_edge_sds_evictions_total`: names removed from an Envoy beyond its bound
//!   (published by the SDS server as they change).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, Ordering};

use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
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
    let error = |e: metrics_exporter_prometheus::BuildError| MetricsError(e.to_string());
    let mut builder = PrometheusBuilder::new();
    for name in [SDS_RESPONSE, SDS_APPLY] {
        builder = builder
            .set_buckets_for_metric(Matcher::Full(name.to_owned()), SDS_BUCKETS)
            .map_err(error)?;
    }
    let handle = builder.install_recorder().map_err(error)?;
    Ok(HANDLE.get_or_init(|| handle).clone())
}

const SDS_RESPONSE: &str = "acme_edge_sds_response_seconds";
const SDS_APPLY: &str = "acme_edge_sds_apply_seconds";

/// Seconds: the backend's answer takes tens of microseconds from memory and about a
/// millisecond from a database; a handshake waits for all of it, and Envoy gives up on a
/// paused handshake after `transport_socket_connect_timeout` (10 s in `edge.yaml`).
const SDS_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.1, 1.0, 10.0,
];

/// The SDS server answered a request for secrets after `elapsed`.
pub fn sds_responded(elapsed: Duration) {
    metrics::histogram!(SDS_RESPONSE).record(elapsed.as_secs_f64());
}

/// Envoy acknowledged a response carrying secrets it had asked for, `elapsed` after it.
pub fn sds_applied(elapsed: Duration) {
    metrics::histogram!(SDS_APPLY).record(elapsed.as_secs_f64());
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

/// Set the capacity gauge: the share of the order budget renewals leave for new names (1:
/// renewals spend none; 0 or below: renewals alone need the whole budget or more).
pub fn set_capacity(headroom_ratio: f64) {
    metrics::gauge!("acme_edge_capacity_headroom_ratio").set(headroom_ratio);
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
