//! `[challenge]`: the lookup endpoint the Envoy filter calls for HTTP-01 tokens.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ListenerLimits;
use super::problems::Problems;

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
    /// The filter build to serve to Envoys (`FilterBuild`); none by default.
    filter_wasm_file: Option<PathBuf>,
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
    /// `filter_wasm_file`: the filter build Envoys fetch (`envoy-config --filter-url`).
    pub filter: Option<FilterBuild>,
}

/// Largest `challenge.filter_wasm_file` read (the release build is about 200 KiB).
pub const MAX_FILTER_WASM_BYTES: u64 = 16 * 1024 * 1024;

/// The filter build the backend serves: read once at start-up, with its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterBuild {
    pub path: PathBuf,
    pub bytes: bytes::Bytes,
    /// Lower-case hex, as Envoy's remote code source wants it.
    pub sha256: String,
}

impl FilterBuild {
    /// Read `path`: a wasm module (`\0asm` magic), at most [`MAX_FILTER_WASM_BYTES`].
    pub fn read(path: &Path) -> Result<FilterBuild, String> {
        let size = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
        if size > MAX_FILTER_WASM_BYTES {
            return Err(format!(
                "{size} bytes, more than {MAX_FILTER_WASM_BYTES}: not the filter"
            ));
        }
        let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
        if !bytes.starts_with(b"\0asm") {
            return Err("not a WebAssembly module".to_owned());
        }
        Ok(FilterBuild {
            path: path.to_owned(),
            sha256: sha256_hex(&bytes),
            bytes: bytes.into(),
        })
    }
}

/// SHA-256 of `bytes` in lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
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
        let filter = match &s.filter_wasm_file {
            None => None,
            Some(path) => Some(problems.check(
                "challenge.filter_wasm_file",
                FilterBuild::read(path).map_err(|e| format!("{}: {e}", path.display())),
            )?),
        };
        Some(ChallengeConfig {
            listen: s.listen(),
            limits,
            filter,
        })
    }
}
