//! The service configuration: one TOML file plus environment overrides, parsed once at
//! start-up into a [`Config`] of typed values. Every problem is reported, not just the first:
//! unknown sections and keys, wrong types, and values that make no sense together.
//!
//! # Layout
//!
//! Two steps, as the data goes:
//!
//! 1. The file as written (`file.rs`): one serde struct per section, unknown keys refused,
//!    every key optional, the environment's overrides ([`env`](mod@env): `ACME_EDGE_<SECTION>_<KEY>`
//!    for every key) applied on top. Each key that does not parse is reported on its own.
//! 2. The typed configuration, one module per section ([`acme`], [`storage`], [`admin`],
//!    [`challenge`], [`sds`], [`log`]): each names its keys' defaults and limits as constants, with
//!    the reasons for their values, and turns its section into typed values: `Duration`s,
//!    paths, checked URLs, files read, secrets in a [`Secret`] that never prints. Each
//!    value that makes no sense is reported under its key.
//!
//! Every problem goes into one list (`problems.rs`: [`ConfigError`], the range checks every
//! section's numbers go through), so that all of them are reported together.
//!
//! The TOML keys keep their units (`retry_base_secs`); the typed fields drop them
//! (`retry_base: Duration`).

pub mod acme;
pub mod admin;
pub mod ca_limits;
pub mod challenge;
mod directories;
pub mod env;
mod file;
pub mod limits;
pub mod log;
mod problems;
pub mod sds;
mod secret;
pub mod storage;
#[cfg(test)]
mod tests;
pub mod tls;

use std::path::Path;

pub use acme::{AcmeConfig, DirectoryUrl, ExternalAccountBinding};
pub use admin::{AdminConfig, ConsoleDir, TokenSource};
pub use ca_limits::{CaLimits, Limit, Preset};
pub use challenge::ChallengeConfig;
pub use limits::ListenerLimits;
pub use log::{LogConfig, LogFormat};
pub use problems::{ConfigError, ConfigProblem};
pub use sds::{SdsConfig, SdsListen, ServerTls};
pub use secret::Secret;
pub use storage::{StorageConfig, StorageUrl};
pub use tls::TlsIdentity;

use file::ConfigFile;
use problems::Problems;

/// The whole configuration, valid as a whole.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub acme: AcmeConfig,
    pub storage: StorageConfig,
    pub admin: AdminConfig,
    pub challenge: ChallengeConfig,
    pub sds: SdsConfig,
    pub log: LogConfig,
}

impl Config {
    /// Read `path`, apply the process environment, validate.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            let mut problems = Problems::default();
            problems.push(&path.display().to_string(), e.to_string());
            problems.into_error()
        })?;
        Config::parse(&text, |name| std::env::var(name).ok())
    }

    /// Parse TOML `text`, with `env` looking up overrides; report every problem.
    pub fn parse(text: &str, env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut problems = Problems::default();
        let Some(file) = ConfigFile::read(text, &env, &mut problems) else {
            return Err(problems.into_error());
        };
        check_listeners(&file, &mut problems);
        let acme = AcmeConfig::from_section(file.acme, file.acme_limits, &mut problems);
        let storage =
            StorageConfig::from_section(file.storage, env("STATE_DIRECTORY"), &mut problems);
        let admin = AdminConfig::from_section(file.admin, storage.as_ref(), &mut problems);
        let challenge = ChallengeConfig::from_section(file.challenge, &mut problems);
        let sds = SdsConfig::from_section(file.sds, &mut problems);
        let log = LogConfig::from_section(file.log);
        // A section is `None` only after reporting why, so no problems means all are here.
        match (acme, storage, admin, challenge, sds) {
            (Some(acme), Some(storage), Some(admin), Some(challenge), Some(sds))
                if problems.0.is_empty() =>
            {
                Ok(Config {
                    acme,
                    storage,
                    admin,
                    challenge,
                    sds,
                    log,
                })
            }
            _ => Err(problems.into_error()),
        }
    }
}

/// The three listeners need three addresses (port 0, any free port, excepted).
fn check_listeners(file: &ConfigFile, problems: &mut Problems) {
    let listeners = [
        ("admin.listen", Some(file.admin.listen())),
        ("challenge.listen", Some(file.challenge.listen())),
        ("sds.listen", file.sds.listen().and_then(|l| l.tcp())),
    ];
    let listeners: Vec<_> = listeners
        .into_iter()
        .filter_map(|(key, addr)| addr.map(|addr| (key, addr)))
        .collect();
    for (i, (key, addr)) in listeners.iter().enumerate() {
        for (other, other_addr) in &listeners[..i] {
            if addr == other_addr && addr.port() != 0 {
                problems.push(key, format!("same address as {other} ({addr})"));
            }
        }
    }
}
