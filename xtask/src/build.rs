//! `cargo xtask build`: the wasm filter, the backend binary and the web console, what the
//! end-to-end tests and the demo run.

use std::path::PathBuf;

use anyhow::{Context, Result, ensure};

use crate::install::{self, WASM_TARGET};
use crate::paths;
use crate::shell::Cmd;

/// What a build produced.
#[derive(Debug, Clone)]
pub struct Artifacts {
    pub filter_wasm: PathBuf,
    pub backend_bin: PathBuf,
    /// The web console, beside the backend binary (where it looks by default).
    pub console_dir: PathBuf,
    /// The previous release's backend, when a task built it (the tests: `previous`).
    pub previous_backend_bin: Option<PathBuf>,
}

impl Artifacts {
    /// The environment the harness reads (`acme_edge_tests::tools`), so tests, the demo and
    /// the benchmarks find exactly these files and this machine's tools.
    pub fn harness_env(&self) -> Result<Vec<(&'static str, PathBuf)>> {
        let envoy = paths::envoy().context("Envoy not found: run `cargo xtask install`")?;
        let previous =
            (self.previous_backend_bin.clone()).map(|bin| (paths::PREVIOUS_BACKEND_BIN_ENV, bin));
        Ok([
            (paths::ENVOY_ENV, envoy),
            (paths::FILTER_WASM_ENV, self.filter_wasm.clone()),
            (paths::BACKEND_BIN_ENV, self.backend_bin.clone()),
            (paths::PEBBLE_ENV, PathBuf::from(paths::PEBBLE_BIN)),
            (
                paths::CHALLTESTSRV_ENV,
                PathBuf::from(paths::CHALLTESTSRV_BIN),
            ),
        ]
        .into_iter()
        .chain(previous)
        .collect())
    }

    /// `cmd` with [`harness_env`](Self::harness_env) set.
    pub fn with_harness_env(&self, mut cmd: Cmd) -> Result<Cmd> {
        for (key, value) in self.harness_env()? {
            cmd = cmd.env(key, value);
        }
        Ok(cmd)
    }
}

/// Install what building needs, then build.
pub fn run() -> Result<Artifacts> {
    install::run(install::BUILD)?;
    let artifacts = build()?;
    println!("xtask: filter  {}", artifacts.filter_wasm.display());
    println!("xtask: backend {}", artifacts.backend_bin.display());
    println!("xtask: console {}", artifacts.console_dir.display());
    Ok(artifacts)
}

/// Build only (the machine is known to be ready): the filter (release, as Envoy loads it),
/// the backend (debug, as the tests run it) and the web console beside it.
pub fn build() -> Result<Artifacts> {
    let filter_wasm = build_filter()?;
    Cmd::cargo()
        .args(["build", "-p", "acme-edge", "--bin", paths::BACKEND_BIN_FILE])
        .run()?;
    let backend_bin = paths::target_dir()
        .join("debug")
        .join(paths::BACKEND_BIN_FILE);
    ensure!(backend_bin.is_file(), "{} not built", backend_bin.display());
    crate::console::check_wasm_bindgen_cli()?;
    let console_dir = crate::console::build(&backend_bin)?;
    Ok(Artifacts {
        filter_wasm,
        backend_bin,
        console_dir,
        previous_backend_bin: None,
    })
}

/// The backend optimised, as it is deployed: what the scale benchmark measures.
pub fn build_backend_release() -> Result<PathBuf> {
    Cmd::cargo()
        .args([
            "build",
            "--release",
            "-p",
            "acme-edge",
            "--bin",
            paths::BACKEND_BIN_FILE,
        ])
        .run()?;
    let bin = paths::target_dir()
        .join("release")
        .join(paths::BACKEND_BIN_FILE);
    ensure!(bin.is_file(), "{} not built", bin.display());
    Ok(bin)
}

/// The filter for wasm32-wasip1, release: the `.wasm` Envoy loads.
pub fn build_filter() -> Result<PathBuf> {
    Cmd::cargo()
        .args([
            "build",
            "-p",
            "acme-edge-filter",
            "--target",
            WASM_TARGET,
            "--release",
        ])
        .run()?;
    let wasm = paths::target_dir()
        .join(WASM_TARGET)
        .join("release")
        .join(paths::FILTER_WASM_FILE);
    ensure!(wasm.is_file(), "{} not built", wasm.display());
    Ok(wasm)
}
