//! The file as written: TOML read into one serde struct per section (unknown keys refused,
//! every key optional), with the environment's overrides applied. Every key that does not
//! parse is reported on its own, with serde's message, and every unknown section too.

use serde::de::DeserializeOwned;

use super::acme::AcmeSection;
use super::admin::AdminSection;
use super::ca_limits::CaLimitsSection;
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
    /// `[acme.limits]`, a table inside `[acme]`.
    pub acme_limits: CaLimitsSection,
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
        let acme_limits = match table.get_mut("acme") {
            Some(toml::Value::Table(acme)) => {
                read_section(acme, "limits", "acme.limits", env, problems)
            }
            _ => read_section(
                &mut toml::Table::new(),
                "limits",
                "acme.limits",
                env,
                problems,
            ),
        };
        let file = ConfigFile {
            acme_limits,
            acme: read_section(&mut table, "acme", "acme", env, problems),
            storage: read_section(&mut table, "storage", "storage", env, problems),
            admin: read_section(&mut table, "admin", "admin", env, problems),
            challenge: read_section(&mut table, "challenge", "challenge", env, problems),
            sds: read_section(&mut table, "sds", "sds", env, problems),
            log: read_section(&mut table, "log", "log", env, problems),
        };
        for unknown in table.keys() {
            problems.push(unknown, "unknown section");
        }
        Some(file)
    }
}

/// Take section `key` out of `table` (empty when absent), apply its environment overrides
/// and deserialize it; its keys are reported as `name.key` (`name` is the section's dotted
/// name: `acme.limits` is the table `limits` inside `[acme]`). When that fails, deserialize it key by key (every key is optional) so
/// that each bad key is reported on its own; the good ones are kept, to be checked further.
fn read_section<T: DeserializeOwned + Default>(
    table: &mut toml::Table,
    key: &str,
    name: &str,
    env: Env<'_>,
    problems: &mut Problems,
) -> T {
    let mut section = match table.remove(key) {
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
