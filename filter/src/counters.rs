//! The filter's Envoy stats counters.
//!
//! The filter defines them as `acme_edge.<name>`; Envoy prefixes every counter a wasm module
//! defines with `wasmcustom.`, so the admin `/stats` page shows `wasmcustom.acme_edge.handled`
//! and so on. They are process-wide: every worker's VM adds to the same counter.

/// One counter; [`Counter::ALL`] lists them in definition order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// Requests whose path is under the challenge prefix (the filter was enabled).
    Handled,
    /// Answered 200 with a key authorization (from the backend or the cache).
    Served,
    /// Of the served ones, answered from the cache without a backend call.
    CacheHits,
    /// The backend holds no such token for the host (answered 404 or passed on, by `on_miss`).
    NotFound,
    /// Refused before any lookup: bad token (404), bad host (400), bad method (405).
    Invalid,
    /// Backend failures: any status but 200/404, a bad answer, connection failure, timeout.
    BackendErrors,
    /// Challenge requests let through to the normal routes (`on_miss` / `on_error` = `pass`).
    Passed,
    /// Lookups sent a second time after the first failed ([`crate::outcome::LOOKUP_ATTEMPTS`]).
    Retries,
}

impl Counter {
    pub const ALL: [Counter; 8] = [
        Counter::Handled,
        Counter::Served,
        Counter::CacheHits,
        Counter::NotFound,
        Counter::Invalid,
        Counter::BackendErrors,
        Counter::Passed,
        Counter::Retries,
    ];

    /// The name the filter defines (Envoy shows it with a `wasmcustom.` prefix).
    pub fn name(self) -> &'static str {
        match self {
            Counter::Handled => "acme_edge.handled",
            Counter::Served => "acme_edge.served",
            Counter::CacheHits => "acme_edge.cache_hits",
            Counter::NotFound => "acme_edge.not_found",
            Counter::Invalid => "acme_edge.invalid",
            Counter::BackendErrors => "acme_edge.backend_errors",
            Counter::Passed => "acme_edge.passed",
            Counter::Retries => "acme_edge.lookup_retries",
        }
    }

    /// Position in [`Counter::ALL`], for per-context arrays of metric ids.
    pub fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_match_all() {
        for (i, c) in Counter::ALL.iter().enumerate() {
            assert_eq!(c.index(), i);
            assert!(c.name().starts_with("acme_edge."));
        }
    }
}
