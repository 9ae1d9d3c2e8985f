//! `[challenge]`: the lookup endpoint the Envoy filter calls for HTTP-01 tokens.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use serde::Deserialize;

use super::{ListenerLimits, Problems};

/// Default `challenge.listen`: Envoy on the same host reaches it over loopback.
pub const DEFAULT_CHALLENGE_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8081));

/// `[challenge]` as written; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ChallengeSection {
    /// Default [`DEFAULT_CHALLENGE_LISTEN`].
    listen: Option<SocketAddr>,
    /// The listener's bounds ([`ListenerLimits`]).
    max_connections: Option<usize>,
    header_read_timeout_secs: Option<u64>,
    idle_timeout_secs: Option<u64>,
}

impl ChallengeSection {
    pub(super) fn listen(&self) -> SocketAddr {
        self.listen.unwrap_or(DEFAULT_CHALLENGE_LISTEN)
    }
}

/// `[challenge]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeConfig {
    pub listen: SocketAddr,
    pub limits: ListenerLimits,
}

impl ChallengeConfig {
    pub(super) fn from_section(
        s: ChallengeSection,
        problems: &mut Problems,
    ) -> Option<ChallengeConfig> {
        let limits = ListenerLimits::from_keys(
            "challenge",
            s.max_connections,
            s.header_read_timeout_secs,
            s.idle_timeout_secs,
            problems,
        )?;
        Some(ChallengeConfig {
            listen: s.listen(),
            limits,
        })
    }
}
