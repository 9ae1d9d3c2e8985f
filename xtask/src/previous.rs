//! The previous release's backend, which the upgrade tests run beside this build (a rolling
//! upgrade, a database it wrote): built from the release's commit, once, into
//! `target/releases/<version>/` (kept while the commit stays the one named here).
//!
//! The source is the commit's tree (`git archive`), so this needs the repository's history; a
//! shallow clone is told how to get it.
//!
//! `cargo xtask upgrade-fixture` writes the databases that release leaves behind
//! ([`write_fixtures`]), kept in `tests/fixtures/upgrade/<version>/`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};

use crate::shell::Cmd;
use crate::{build, install, paths};

/// The release the upgrade tests start from.
pub const VERSION: &str = "0.2.0";
/// Its commit.
pub const COMMIT: &str = "d84e851b02e5c76fedc4b214ce341d015f347192";

/// The previous release's `acme-edge` binary, built when it is not there yet.
pub fn build() -> Result<PathBuf> {
    let dir = paths::target_dir().join("releases").join(VERSION);
    let bin = dir.join("bin").join(paths::BACKEND_BIN_FILE);
    let stamp = dir.join("COMMIT");
    if bin.is_file() && std::fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == COMMIT) {
        return Ok(bin);
    }
    let src = dir.join("src");
    extract(&src)?;
    // Its own target directory: the same crates at the same places in two workspaces would
    // overwrite each other's builds in one.
    Cmd::cargo()
        .args(["build", "--locked", "-p", "acme-edge", "--bin"])
        .arg(paths::BACKEND_BIN_FILE)
        .arg("--manifest-path")
        .arg(src.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", dir.join("target"))
        // Only the tests run it: no debug information, a faster link.
        .env("CARGO_PROFILE_DEV_DEBUG", "false")
        .run()
        .with_context(|| format!("building acme-edge {VERSION}"))?;
    let built = dir.join("target/debug").join(paths::BACKEND_BIN_FILE);
    ensure!(built.is_file(), "{} not built", built.display());
    std::fs::create_dir_all(bin.parent().unwrap_or(&dir))?;
    std::fs::copy(&built, &bin).with_context(|| format!("copying to {}", bin.display()))?;
    std::fs::write(&stamp, COMMIT)?;
    // The binary is all that is kept: its build would hold gigabytes for nothing.
    std::fs::remove_dir_all(dir.join("target"))
        .with_context(|| format!("removing {}", dir.join("target").display()))?;
    println!("xtask: acme-edge {VERSION} {}", bin.display());
    Ok(bin)
}

/// The release's source tree in `src` (emptied first).
fn extract(src: &Path) -> Result<()> {
    let root = paths::workspace_root();
    let known = Cmd::new("git")
        .arg("-C")
        .arg(&root)
        .args(["cat-file", "-e", &format!("{COMMIT}^{{commit}}")])
        .status()?;
    if !known {
        bail!(
            "commit {COMMIT} (acme-edge {VERSION}) is not in this clone; the upgrade tests \
             build that release from it: fetch the whole history (`git fetch --unshallow`)"
        );
    }
    if src.exists() {
        std::fs::remove_dir_all(src).with_context(|| format!("removing {}", src.display()))?;
    }
    std::fs::create_dir_all(src)?;
    let archive = src.with_extension("tar");
    Cmd::new("git")
        .arg("-C")
        .arg(&root)
        .args(["archive", "--format=tar", "-o"])
        .arg(&archive)
        .arg(COMMIT)
        .run()?;
    Cmd::new("tar")
        .arg("-xf")
        .arg(&archive)
        .arg("-C")
        .arg(src)
        .run()?;
    std::fs::remove_file(&archive)?;
    Ok(())
}

/// Run the previous release's backend through the real stack on each engine and keep the
/// databases it leaves as the upgrade tests' fixtures (the harness's `upgrade-fixture`
/// example).
pub fn write_fixtures() -> Result<()> {
    install::run(install::TEST)?;
    let mut artifacts = build::build()?;
    artifacts.previous_backend_bin = Some(build()?);
    let out = paths::workspace_root()
        .join("tests/fixtures/upgrade")
        .join(VERSION);
    let example = Cmd::cargo()
        .args([
            "run",
            "-p",
            "acme-edge-tests",
            "--example",
            "upgrade-fixture",
            "--",
        ])
        .arg(&out);
    artifacts.with_harness_env(example)?.run()
}
