//! `[log]`: how the service writes its log (to standard error; levels from `RUST_LOG`).

use serde::Deserialize;

/// The shape of each log line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event (the default: a terminal, `journalctl`).
    #[default]
    Text,
    /// One JSON object per event, for a log pipeline (Loki, Elasticsearch, Cloud Logging).
    Json,
}

/// `[log]` as written; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LogSection {
    /// `text` or `json`. Default [`LogFormat::Text`].
    format: Option<LogFormat>,
}

/// `[log]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogConfig {
    pub format: LogFormat,
}

impl LogConfig {
    pub(super) fn from_section(s: LogSection) -> LogConfig {
        LogConfig {
            format: s.format.unwrap_or_default(),
        }
    }
}
