//! The file as written: TOML read into one serde struct per section (unknown keys refused,
//! every key optional), with the environment's overrides applied. Every key that does not
//! parse is reported on its own, with serde's message, and every unknown section too.

use serde::de::DeserializeOwned;

use super::acme::AcmeSection;
use super::admin::AdminSection;
use super::challenge::ChallengeSection;
use super::env::{self, Env, single};
use super::log::LogSection;
use super::problems::Problems;
use super::sds::SdsSection;
use super::storage::StorageSection;

/// The whole file, section by section.
#[derive(Debug, Default)]
pub(super) struct ConfigFile {
    pub acme: AcmeSection,
    pub storage: StorageSection,
    pub admin: AdminSection,
    pub challenge: ChallengeSection,
    pub sds: SdsSection,
    pub log: LogSection,
}

impl ConfigFile {
    /// Read TOML `text`, overridden by `env`; `None` when it is not TOML at all.
    pub fn read(text: &str, env: Env<'_>, problems: &mut Problems) -> Option<ConfigFile> {
        let mut table = match text.parse::<toml::Table>() {
            Ok(table) => table,
            Err(e) => {
                problems.push("<toml>", e.message());
                return None;
            }
        };
        let file = ConfigFile {
            acme: read_section(&mut table, "acme", env, problems),
            storage: read_section(&mut table, "storage", env, problems),
            admin: read_section(&mut table, "admin", env, problems),
            challenge: read_section(&mut table, "challenge", env, problems),
            sds: read_section(&mut table, "sds", env, problems),
            log: read_section(&mut table, "log", env, problems),
        };
        for unknown in table.keys() {
            problems.push(unknown, "unknown section");
        }
        Some(file)
    }
}

/// Take section `name` out of `table` (empty when absent), apply its environment overrides
/// and deserialize it. When that fails, deserialize it key by key (every key is optional) so
/// that each bad key is reported on its own; the good ones are kept, to be checked further.
fn read_section<T: DeserializeOwned + Default>(
    table: &mut toml::Table,
    name: &str,
    env: Env<'_>,
    problems: &mut Problems,
) -> T {
    let mut section = match table.remove(name) {
        None => toml::Table::new(),
        Some(toml::Value::Table(section)) => section,
        Some(_) => {
            problems.push(name, "must be a table ([section])");
            return T::default();
        }
    };
    env::apply::<T>(name, &mut section, env);
    if let Ok(parsed) = T::deserialize(toml::Value::Table(section.clone())) {
        return parsed;
    }
    let mut good = toml::Table::new();
    for (key, value) in section {
        match T::deserialize(single(&key, value.clone())) {
            Ok(_) => {
                good.insert(key, value);
            }
            Err(e) => problems.push(&format!("{name}.{key}"), e.message().trim()),
        }
    }
    T::deserialize(toml::Value::Table(good)).unwrap_or_default()
}
