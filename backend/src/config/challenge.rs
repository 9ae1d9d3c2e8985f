//! `[challenge]`: the lookup endpoint the Envoy filter calls for HTTP-01 tokens.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use serde::Deserialize;

/// Default `challenge.listen`: Envoy on the same host reaches it over loopback.
pub const DEFAULT_CHALLENGE_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8081));

/// `[challenge]` as written; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ChallengeSection {
    /// Default [`DEFAULT_CHALLENGE_LISTEN`].
    listen: Option<SocketAddr>,
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
}

impl ChallengeConfig {
    pub(super) fn from_section(s: ChallengeSection) -> ChallengeConfig {
        ChallengeConfig { listen: s.listen() }
    }
}
