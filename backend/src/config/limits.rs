//! The bounds of an HTTP listener (`[admin]` and `[challenge]` each have their own):
//! connections at once, and how long a client may take.

use std::ops::RangeInclusive;
use std::time::Duration;

use super::problems::{Problems, between, secs_between};

/// Default `max_connections`: far more than a fleet of Envoys or a team of operators opens,
/// within the open-file limit a stock system allows (the service raises its soft limit to
/// the hard one at start-up).
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Range of `max_connections`.
pub const MAX_CONNECTIONS_RANGE: RangeInclusive<usize> = 1..=1_000_000;
/// Default `header_read_timeout_secs`: a real client sends its headers in milliseconds; a
/// slow one trickling them in (slowloris) holds a connection for at most this long.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Range of `header_read_timeout_secs`.
pub const HEADER_READ_TIMEOUT_RANGE: RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(300);
/// Default `idle_timeout_secs`: a connection with no traffic for this long is closed. Above
/// Envoy's 60 s pool idle timeout for the challenge lookup (`envoy/edge.yaml`), so Envoy closes
/// its idle connections first and never sends a lookup on one being closed here.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Range of `idle_timeout_secs`.
pub const IDLE_TIMEOUT_RANGE: RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(86_400);

/// The bounds of one HTTP listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerLimits {
    /// Connections open at once; beyond, clients wait in the kernel's backlog.
    pub max_connections: usize,
    /// Time allowed for a request's headers to arrive.
    pub header_read_timeout: Duration,
    /// A connection without any traffic for this long is closed.
    pub idle_timeout: Duration,
}

impl Default for ListenerLimits {
    fn default() -> ListenerLimits {
        ListenerLimits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

impl ListenerLimits {
    /// The three keys of `section` as written; `None` when one is reported.
    pub(super) fn from_keys(
        section: &str,
        max_connections: Option<usize>,
        header_read_timeout_secs: Option<u64>,
        idle_timeout_secs: Option<u64>,
        problems: &mut Problems,
    ) -> Option<ListenerLimits> {
        let max_connections = problems.check(
            &format!("{section}.max_connections"),
            between(
                max_connections,
                DEFAULT_MAX_CONNECTIONS,
                &MAX_CONNECTIONS_RANGE,
            ),
        );
        let header_read_timeout = problems.check(
            &format!("{section}.header_read_timeout_secs"),
            secs_between(
                header_read_timeout_secs,
                DEFAULT_HEADER_READ_TIMEOUT,
                &HEADER_READ_TIMEOUT_RANGE,
            ),
        );
        let idle_timeout = problems.check(
            &format!("{section}.idle_timeout_secs"),
            secs_between(idle_timeout_secs, DEFAULT_IDLE_TIMEOUT, &IDLE_TIMEOUT_RANGE),
        );
        Some(ListenerLimits {
            max_connections: max_connections?,
            header_read_timeout: header_read_timeout?,
            idle_timeout: idle_timeout?,
        })
    }
}
