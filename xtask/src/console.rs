//! The web console: its build (wasm32-unknown-unknown, then `wasm-bindgen --target web`) and
//! the tools it needs, installed by `cargo xtask install`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::paths;
use crate::shell::Cmd;

/// The console's Rust target.
pub const CONSOLE_TARGET: &str = "wasm32-unknown-unknown";
const CONSOLE_PACKAGE: &str = "acme-edge-console";
/// The file cargo builds (`acme-edge-console`'s cdylib).
const CONSOLE_WASM: &str = "acme_edge_console.wasm";
/// The names the backend serves (`acme_edge::api::console`): `console.js`, `console_bg.wasm`.
const OUT_NAME: &str = "console";
/// The hand-written files: the page, its loader, its style.
const STATIC_FILES: [&str; 3] = ["index.html", "boot.js", "console.css"];

/// The `wasm-bindgen` crate's version in Cargo.lock: the CLI must be exactly this one.
pub fn wasm_bindgen_version() -> Result<String> {
    let lock_path = paths::workspace_root().join("Cargo.lock");
    let lock = std::fs::read_to_string(&lock_path)
        .with_context(|| format!("read {}", lock_path.display()))?;
    locked_version(&lock, "wasm-bindgen")
        .with_context(|| format!("no wasm-bindgen package in {}", lock_path.display()))
}

/// A package's version in a Cargo.lock's text.
fn locked_version(lock: &str, package: &str) -> Option<String> {
    let wanted = format!("name = \"{package}\"");
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == wanted {
            let version = lines.next()?.trim().strip_prefix("version = \"")?;
            return Some(version.trim_end_matches('"').to_owned());
        }
    }
    None
}

/// Where the console goes for `backend_bin`: `console/` beside it, where the backend looks by
/// default (`admin.console_dir`).
pub fn out_dir(backend_bin: &Path) -> Result<PathBuf> {
    let dir = backend_bin
        .parent()
        .context("the backend binary has no directory")?;
    Ok(dir.join(OUT_NAME))
}

/// Build the console into [`out_dir`] of `backend_bin`.
pub fn build(backend_bin: &Path) -> Result<PathBuf> {
    Cmd::cargo()
        .args([
            "build",
            "-p",
            CONSOLE_PACKAGE,
            "--target",
            CONSOLE_TARGET,
            "--release",
        ])
        .run()?;
    let wasm = paths::target_dir()
        .join(CONSOLE_TARGET)
        .join("release")
        .join(CONSOLE_WASM);
    let out = out_dir(backend_bin)?;
    std::fs::create_dir_all(&out).with_context(|| format!("create {}", out.display()))?;
    Cmd::new("wasm-bindgen")
        .args(["--target", "web", "--no-typescript", "--out-name", OUT_NAME])
        .arg("--out-dir")
        .arg(&out)
        .arg(&wasm)
        .run()?;
    copy_static(&out)?;
    Ok(out)
}

fn copy_static(out: &Path) -> Result<()> {
    let from = paths::workspace_root().join("console").join("static");
    for name in STATIC_FILES {
        std::fs::copy(from.join(name), out.join(name))
            .with_context(|| format!("copy {name} into {}", out.display()))?;
    }
    Ok(())
}

/// Is `wasm-bindgen` on the PATH the version Cargo.lock asks for?
pub fn wasm_bindgen_cli_matches(version: &str) -> bool {
    Cmd::new("wasm-bindgen")
        .arg("--version")
        .probe()
        .is_some_and(|out| out.split_whitespace().nth(1) == Some(version))
}

/// Fail early, with the command to run, when the CLI is missing or another version.
pub fn check_wasm_bindgen_cli() -> Result<()> {
    let version = wasm_bindgen_version()?;
    if !wasm_bindgen_cli_matches(&version) {
        bail!(
            "wasm-bindgen {version} is needed to build the console: run cargo xtask install \
             (or cargo install wasm-bindgen-cli --version {version})"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_locked_version_is_read() {
        let lock = "[[package]]\nname = \"wasm-bindgen-futures\"\nversion = \"0.4.1\"\n\n\
                    [[package]]\nname = \"wasm-bindgen\"\nversion = \"0.2.130\"\n";
        assert_eq!(
            locked_version(lock, "wasm-bindgen").as_deref(),
            Some("0.2.130")
        );
        assert_eq!(locked_version(lock, "web-sys"), None);
    }

    #[test]
    fn this_workspace_locks_wasm_bindgen() {
        assert!(wasm_bindgen_version().is_ok());
    }
}
