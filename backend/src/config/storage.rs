//! `[storage]`: where the state lives, and how long a worker's claim on a domain lasts.

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::Secret;
use super::problems::{Problems, secs_between};

/// Default `storage.url`: a SQLite file in the working directory, or in the service's state
/// directory when a service manager names one (`STATE_DIRECTORY`, systemd's
/// `StateDirectory=`): under systemd the working directory is `/`.
pub const DEFAULT_STORAGE_URL: &str = "sqlite://acme-edge.db";
/// The database's file name in the state directory.
pub const DEFAULT_DATABASE_FILE: &str = "acme-edge.db";

/// Default `storage.lease_secs`: how long a worker's claim on a domain lasts unless renewed.
/// The worker renews it every third of that while the order runs, so a replica must lose
/// the database for 20 s or more before another takes its domains over; a replica that died
/// mid-order delays its domains by at most 30 s. Orders take seconds, so nothing waits on it
/// in normal operation.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// Range of `storage.lease_secs`: below 2 s the heartbeat is a busy loop; above an hour a
/// dead replica's domains wait too long.
pub const LEASE_RANGE: RangeInclusive<Duration> =
    Duration::from_secs(2)..=Duration::from_secs(3600);

/// `[storage]` as written; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StorageSection {
    /// `sqlite://PATH` (relative paths from the working directory), or
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE` for a fleet of replicas. Default
    /// [`DEFAULT_STORAGE_URL`].
    url: Option<Secret<String>>,
    /// Seconds a worker's lease on a domain lasts unless renewed. Default [`DEFAULT_LEASE`].
    lease_secs: Option<u64>,
}

/// `[storage]`.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageConfig {
    pub url: StorageUrl,
    /// `lease_secs`: how long a worker's lease on a domain lasts unless renewed.
    pub lease: Duration,
}

/// `storage.url`, by engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageUrl {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database: the URL as written, which may carry a password.
    Postgres(Secret<String>),
}

impl StorageUrl {
    fn parse(url: &str) -> Result<StorageUrl, &'static str> {
        if let Some(path) = url.strip_prefix("sqlite://").filter(|p| !p.is_empty()) {
            return Ok(StorageUrl::Sqlite(PathBuf::from(path)));
        }
        let postgres = ["postgres://", "postgresql://"]
            .iter()
            .any(|scheme| url.len() > scheme.len() && url.starts_with(scheme));
        if postgres {
            return Ok(StorageUrl::Postgres(Secret::new(url.to_owned())));
        }
        Err("must be sqlite://PATH or postgres://USER@HOST:PORT/DATABASE")
    }
}

impl StorageConfig {
    /// The SQLite file, when the URL is a SQLite one.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match &self.url {
            StorageUrl::Sqlite(path) => Some(path),
            StorageUrl::Postgres(_) => None,
        }
    }

    /// The PostgreSQL URL, when the URL is a PostgreSQL one.
    pub fn postgres_url(&self) -> Option<&str> {
        match &self.url {
            StorageUrl::Postgres(url) => Some(url.expose()),
            StorageUrl::Sqlite(_) => None,
        }
    }

    /// The section's values, defaults filled in; `None` when one of them is reported.
    /// `state_directory`: the service manager's `STATE_DIRECTORY`, when it sets one (the
    /// first, if it lists several).
    pub(super) fn from_section(
        s: StorageSection,
        state_directory: Option<String>,
        problems: &mut Problems,
    ) -> Option<StorageConfig> {
        let in_state_directory = state_directory
            .as_deref()
            .and_then(|dirs| dirs.split(':').next())
            .filter(|dir| !dir.is_empty())
            .map(|dir| {
                format!(
                    "sqlite://{}",
                    Path::new(dir).join(DEFAULT_DATABASE_FILE).display()
                )
            });
        let url = match (&s.url, &in_state_directory) {
            (Some(url), _) => url.expose().as_str(),
            (None, Some(url)) => url.as_str(),
            (None, None) => DEFAULT_STORAGE_URL,
        };
        let url = problems.check("storage.url", StorageUrl::parse(url));
        let lease = problems.check(
            "storage.lease_secs",
            secs_between(s.lease_secs, DEFAULT_LEASE, &LEASE_RANGE),
        );
        Some(StorageConfig {
            url: url?,
            lease: lease?,
        })
    }
}
