//! `cargo xtask dist`: what an operator installs, in `dist/`:
//!
//! | file                           | what                                                  |
//! |--------------------------------|-------------------------------------------------------|
//! | `acme-edge`                    | the backend, release, statically linked (no loader)   |
//! | `acme_edge_filter.wasm`        | the filter, release, for Envoy                        |
//! | `acme-edge.example.toml`       | the example configuration                             |
//! | `acme-edge.service`            | the systemd unit                                      |
//! | `acme-edge.socket`             | the challenge listener's socket, held on restarts     |
//! | `envoy-edge.yaml`              | an example Envoy bootstrap, validated by Envoy        |
//! | `console/`                     | the web console, served from beside the binary        |
//! | `openapi.json`                 | the admin API's OpenAPI 3.1 description               |
//! | `Containerfile`, `rootfs/`     | the container image, built from these files           |
//! | `VERSION`                      | the workspace's version and the git commit            |
//! | `SHA256SUMS`                   | `sha256sum -c SHA256SUMS` checks every file above     |
//!
//! The backend is linked statically (`+crt-static`, glibc's static PIE): it runs on any
//! x86_64 Linux, a stock Debian or Ubuntu or a `FROM scratch` image, without a matching
//! glibc. The build checks that the binary has no ELF interpreter and that it runs.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use sha2::{Digest, Sha256};

use crate::shell::Cmd;
use crate::{build, install, paths};

/// The CA roots the container image trusts, taken from the building machine.
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
/// Files the image's root file system gets, relative to the workspace.
const ROOTFS_DIR: &str = "deploy/rootfs";
/// Directories the image needs writable by its user (created empty in `rootfs/`).
const IMAGE_DIRS: [&str; 2] = ["var/lib/acme-edge", "run/acme-edge"];

#[derive(Debug, clap::Args)]
pub struct DistArgs {
    /// The output directory, emptied first (relative to the workspace).
    #[arg(long, default_value = "dist")]
    out: PathBuf,
}

pub fn run(args: DistArgs) -> Result<()> {
    install::run(install::DIST)?;
    let root = paths::workspace_root();
    let out = root.join(&args.out);
    let target = host_target()?;
    let backend = build_static_backend(&target)?;
    let filter = build::build_filter()?;

    fresh_dir(&out)?;
    copy(&backend, &out.join(paths::BACKEND_BIN_FILE), 0o755)?;
    copy(&filter, &out.join(paths::FILTER_WASM_FILE), 0o644)?;
    copy(
        &root.join("backend/acme-edge.example.toml"),
        &out.join("acme-edge.example.toml"),
        0o644,
    )?;
    copy(
        &root.join("deploy/acme-edge.service"),
        &out.join("acme-edge.service"),
        0o644,
    )?;
    copy(
        &root.join("deploy/acme-edge.socket"),
        &out.join("acme-edge.socket"),
        0o644,
    )?;
    copy(
        &root.join("deploy/Containerfile"),
        &out.join("Containerfile"),
        0o644,
    )?;
    image_rootfs(&root, &out)?;

    let binary = out.join(paths::BACKEND_BIN_FILE);
    check_static(&binary)?;
    let version = version_text(&binary, &target)?;
    fs::write(out.join("VERSION"), &version).context("write VERSION")?;

    crate::console::check_wasm_bindgen_cli()?;
    crate::console::build(&binary)?;
    let openapi = Cmd::new(&binary)
        .arg("openapi")
        .probe()
        .context("acme-edge openapi failed")?;
    fs::write(out.join("openapi.json"), openapi).context("write openapi.json")?;

    let bootstrap = out.join("envoy-edge.yaml");
    example_envoy_bootstrap(&binary, &bootstrap)?;
    validate_bootstrap(&bootstrap, &out.join(paths::FILTER_WASM_FILE))?;

    let sums = write_sha256sums(&out)?;
    println!("\nxtask: {} files in {}:", sums, out.display());
    print!("{version}");
    Ok(())
}

/// This machine's Rust target triple (`rustc -vV`).
fn host_target() -> Result<String> {
    let info = Cmd::new("rustc")
        .arg("-vV")
        .probe()
        .context("rustc -vV failed")?;
    let host = info
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .context("no host line in rustc -vV")?;
    ensure!(
        host.ends_with("-linux-gnu"),
        "dist builds on Linux with glibc (a *-linux-gnu host), not {host}"
    );
    Ok(host.to_owned())
}

/// The backend, release, with the C runtime linked in. `--target` keeps build scripts and
/// procedural macros (which run on this machine) out of the static link, and the output in
/// its own directory, so the ordinary release build is not rebuilt.
fn build_static_backend(target: &str) -> Result<PathBuf> {
    Cmd::cargo()
        .args(["build", "--release", "-p", "acme-edge", "--bin"])
        .arg(paths::BACKEND_BIN_FILE)
        .args(["--target", target])
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .run()?;
    let bin = paths::target_dir()
        .join(target)
        .join("release")
        .join(paths::BACKEND_BIN_FILE);
    ensure!(bin.is_file(), "{} not built", bin.display());
    Ok(bin)
}

fn fresh_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("remove {}", dir.display()))?;
    }
    fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))
}

fn copy(from: &Path, to: &Path, mode: u32) -> Result<()> {
    if let Some(dir) = to.parent() {
        fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    fs::copy(from, to).with_context(|| format!("copy {} to {}", from.display(), to.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", to.display()))
}

/// `rootfs/`: the image's `/etc/passwd` and `/etc/group` (its numeric user), the CA roots,
/// and the empty directories its user writes to.
fn image_rootfs(root: &Path, out: &Path) -> Result<()> {
    let rootfs = out.join("rootfs");
    for file in ["etc/passwd", "etc/group"] {
        copy(&root.join(ROOTFS_DIR).join(file), &rootfs.join(file), 0o644)?;
    }
    copy(
        Path::new(CA_BUNDLE),
        &rootfs.join("etc/ssl/certs/ca-certificates.crt"),
        0o644,
    )
    .context("the CA roots (Debian: apt-get install ca-certificates)")?;
    for dir in IMAGE_DIRS {
        let dir = rootfs.join(dir);
        fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    }
    Ok(())
}

/// A binary the kernel runs without a dynamic loader has no `PT_INTERP` program header.
fn check_static(binary: &Path) -> Result<()> {
    let mut header = Vec::new();
    fs::File::open(binary)
        .and_then(|f| f.take(1 << 16).read_to_end(&mut header))
        .with_context(|| format!("read {}", binary.display()))?;
    match elf_interpreter(&header) {
        Some(false) => Ok(()),
        Some(true) => bail!(
            "{} needs a dynamic loader: it would not run on a system with another glibc",
            binary.display()
        ),
        None => bail!(
            "{} is not a 64-bit little-endian ELF file",
            binary.display()
        ),
    }
}

/// Whether a 64-bit little-endian ELF file (its first bytes) asks for an interpreter; `None`
/// when it is not such a file or its program headers are not within `elf`.
fn elf_interpreter(elf: &[u8]) -> Option<bool> {
    const PT_INTERP: u32 = 3;
    if elf.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let u16_at = |at: usize| Some(u16::from_le_bytes(elf.get(at..at + 2)?.try_into().ok()?));
    let phoff = usize::try_from(u64::from_le_bytes(elf.get(0x20..0x28)?.try_into().ok()?)).ok()?;
    let (size, count) = (usize::from(u16_at(0x36)?), usize::from(u16_at(0x38)?));
    let mut interp = false;
    for i in 0..count {
        let at = phoff + i * size;
        let kind = u32::from_le_bytes(elf.get(at..at + 4)?.try_into().ok()?);
        interp |= kind == PT_INTERP;
    }
    Some(interp)
}

/// `VERSION`: the binary's own `--version` (the workspace's version), the commit it was built
/// from and the target.
fn version_text(binary: &Path, target: &str) -> Result<String> {
    let version = Cmd::new(binary)
        .arg("--version")
        .probe()
        .with_context(|| format!("{} --version failed", binary.display()))?;
    let commit = git_commit().unwrap_or_else(|| "unknown (not a git checkout)".into());
    Ok(format!(
        "{}\ncommit {commit}\ntarget {target} (statically linked)\n",
        version.trim()
    ))
}

/// The checked-out commit, marked `-modified` when the work tree differs from it.
fn git_commit() -> Option<String> {
    let root = paths::workspace_root();
    let git = || Cmd::new("git").arg("-C").arg(&root);
    let commit = git().args(["rev-parse", "HEAD"]).probe()?;
    let changed = git()
        .args(["status", "--porcelain", "--untracked-files=no"])
        .probe()
        .is_some_and(|s| !s.trim().is_empty());
    Some(format!(
        "{}{}",
        commit.trim(),
        if changed { "-modified" } else { "" }
    ))
}

/// The example bootstrap, rendered by the built backend's own `acme-edge envoy-config` with
/// its defaults (one host: dual-stack listeners on 80 and 443, SDS over the backend's Unix
/// socket, the filter installed at [`EXAMPLE_FILTER_PATH`]): what an operator gets.
fn example_envoy_bootstrap(binary: &Path, to: &Path) -> Result<()> {
    let text = Cmd::new(binary)
        .args(["envoy-config", "--filter-wasm", EXAMPLE_FILTER_PATH])
        .probe()
        .context("acme-edge envoy-config failed")?;
    fs::write(to, text).with_context(|| format!("write {}", to.display()))
}

/// Where the example bootstrap expects the filter.
const EXAMPLE_FILTER_PATH: &str = "/usr/local/lib/acme-edge/acme_edge_filter.wasm";

/// `envoy --mode validate`: the bootstrap parses and every listener, cluster and filter
/// configuration is accepted. Envoy loads the filter while validating, and the example names
/// where it is installed, not where it is now: the check runs on a copy naming `filter`,
/// otherwise identical.
fn validate_bootstrap(bootstrap: &Path, filter: &Path) -> Result<()> {
    let envoy = paths::envoy().context("Envoy not found: run `cargo xtask install --for dist`")?;
    let text =
        fs::read_to_string(bootstrap).with_context(|| format!("read {}", bootstrap.display()))?;
    let installed = format!("filename: {EXAMPLE_FILTER_PATH}");
    ensure!(
        text.contains(&installed),
        "{} does not name the filter at {EXAMPLE_FILTER_PATH}",
        bootstrap.display()
    );
    let dir = std::env::temp_dir().join(format!("acme-edge-dist-{}", std::process::id()));
    fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let copy = dir.join("envoy-edge.yaml");
    fs::write(
        &copy,
        text.replace(&installed, &format!("filename: {}", filter.display())),
    )
    .with_context(|| format!("write {}", copy.display()))?;
    let validated = Cmd::new(envoy)
        .args(["--mode", "validate", "--log-level", "warn", "-c"])
        .arg(&copy)
        .run()
        .context("the example Envoy bootstrap does not validate");
    let _ = fs::remove_dir_all(&dir);
    validated
}

/// `SHA256SUMS` over every file in `dir` (sorted, paths relative to it), in `sha256sum`'s
/// format; the number of files.
fn write_sha256sums(dir: &Path) -> Result<usize> {
    let mut files = Vec::new();
    list_files(dir, dir, &mut files)?;
    files.sort();
    let mut text = String::new();
    for file in &files {
        let bytes = fs::read(dir.join(file)).with_context(|| format!("read {file}"))?;
        let digest = Sha256::digest(&bytes);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        text.push_str(&format!("{hex}  {file}\n"));
    }
    fs::write(dir.join("SHA256SUMS"), text).context("write SHA256SUMS")?;
    Ok(files.len())
}

fn list_files(base: &Path, dir: &Path, files: &mut Vec<String>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("list {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            list_files(base, &path, files)?;
        } else if let Ok(relative) = path.strip_prefix(base) {
            files.push(relative.display().to_string());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interpreter_is_found_in_a_dynamic_binary() {
        let mut this = Vec::new();
        fs::File::open(std::env::current_exe().expect("exe"))
            .and_then(|f| f.take(1 << 16).read_to_end(&mut this))
            .expect("read");
        // The test binary is an ordinary (dynamic) build.
        assert_eq!(elf_interpreter(&this), Some(true));
        assert_eq!(elf_interpreter(b"#!/bin/sh\n"), None);
    }
}
