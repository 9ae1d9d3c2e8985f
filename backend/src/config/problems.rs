//! What is wrong with a configuration: every problem found, each under its dotted key, and
//! the range checks every section's numbers go through.

use std::fmt::Display;
use std::ops::RangeInclusive;
use std::time::Duration;

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Dotted key (`acme.terms_agreed`), or the file for syntax errors.
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Everything wrong with a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<ConfigProblem>,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "invalid configuration ({} problems):",
            self.problems.len()
        )?;
        for p in &self.problems {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

/// The problems found so far, in the order found.
#[derive(Debug, Default)]
pub(super) struct Problems(pub(super) Vec<ConfigProblem>);

impl Problems {
    pub(super) fn push(&mut self, key: &str, message: impl Into<String>) {
        self.0.push(ConfigProblem {
            key: key.to_owned(),
            message: message.into(),
        });
    }

    /// The value, or `None` with the error reported under `key`.
    pub(super) fn check<T, E: Into<String>>(
        &mut self,
        key: &str,
        value: Result<T, E>,
    ) -> Option<T> {
        value.map_err(|e| self.push(key, e)).ok()
    }

    pub(super) fn into_error(self) -> ConfigError {
        ConfigError { problems: self.0 }
    }
}

/// A key's value (`default` when absent), when `range` holds it.
pub(super) fn between<T: PartialOrd + Display>(
    value: Option<T>,
    default: T,
    range: &RangeInclusive<T>,
) -> Result<T, String> {
    let value = value.unwrap_or(default);
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(format!(
            "must be between {} and {}",
            range.start(),
            range.end()
        ))
    }
}

/// A `*_secs` key's value (`default` when absent), when `range` holds it.
pub(super) fn secs_between(
    secs: Option<u64>,
    default: Duration,
    range: &RangeInclusive<Duration>,
) -> Result<Duration, String> {
    let secs_range = range.start().as_secs()..=range.end().as_secs();
    between(secs, default.as_secs(), &secs_range).map(Duration::from_secs)
}
