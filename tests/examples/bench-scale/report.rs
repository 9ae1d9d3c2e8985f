//! Printing figures: percentiles, and a figure beside its target.

use std::time::Duration;

/// The `p` quantile (0.0 to 1.0) of `samples` (sorted in place).
pub fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples.get(index).copied().unwrap_or_default()
}

/// `(target ≤ 64 MiB: met)`: a figure against the most it may be.
pub fn within(value: f64, target: f64, unit: &str) -> String {
    let verdict = if value <= target { "met" } else { "MISSED" };
    format!("(target ≤ {target} {unit}: {verdict})")
}

/// [`within`] for durations, compared in milliseconds.
pub fn within_ms(value: Duration, target_ms: f64) -> String {
    within(value.as_secs_f64() * 1000.0, target_ms, "ms")
}

/// This process's resident memory, MiB.
pub fn own_rss_mib() -> u64 {
    acme_edge_tests::usage::Usage::of(std::process::id())
        .map(|u| u.rss_mib())
        .unwrap_or(0)
}
