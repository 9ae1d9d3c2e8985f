//! The acme-edge Envoy bootstrap, rendered from typed parameters.
//!
//! [`Bootstrap`] holds what differs between proxies (listen addresses, where the backend's
//! challenge and SDS listeners are, the filter's code and settings, the node id, the HTTPS
//! redirect); [`Bootstrap::to_yaml`] and [`Bootstrap::to_json`] render the whole bootstrap,
//! with the edge's hardening settings fixed in [`render`]. `acme-edge envoy-config`, the
//! end-to-end harness and the demo all render through here, so what operators run is what
//! the tests run.
//!
//! # Layout
//!
//! - [`params`]: the parameters and their defaults.
//! - [`render`]: the parameters to Envoy's bootstrap.
//! - [`yaml`]: a JSON value written as block-style YAML.

pub mod params;
pub mod render;
pub mod yaml;

pub use params::{
    Bootstrap, Filter, FilterSource, Https, Listen, RemoteUrl, Sds, SdsClientTls, Sha256, Upstream,
};

/// A parameter that cannot go into a bootstrap.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BootstrapError {
    #[error("{0:?} is not HOST:PORT")]
    BadUpstream(String),
    #[error("the filter settings are not JSON: {0}")]
    BadSettings(String),
    #[error("the filter settings must be a JSON object")]
    SettingsNotObject,
    #[error("filter URL {0:?}: {1}")]
    BadFilterUrl(String, String),
    #[error("{0:?} is not a SHA-256 (64 hex digits)")]
    BadSha256(String),
}

/// The first line of a rendered YAML bootstrap.
pub const YAML_HEADER: &str = "# acme-edge Envoy bootstrap (Envoy 1.40), rendered by `acme-edge envoy-config`;\n# every setting is explained in envoy/README.md.\n";

impl Bootstrap {
    /// Envoy's bootstrap as a JSON value (to adjust before writing it out).
    pub fn to_value(&self) -> serde_json::Value {
        render::bootstrap(self)
    }

    /// The bootstrap as YAML, with a header comment.
    pub fn to_yaml(&self) -> String {
        format!("{YAML_HEADER}{}", yaml::to_yaml(&self.to_value()))
    }

    /// The bootstrap as JSON (Envoy reads a `.json` bootstrap as well).
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(&self.to_value()).unwrap_or_default();
        text.push('\n');
        text
    }
}

#[cfg(test)]
mod tests;
