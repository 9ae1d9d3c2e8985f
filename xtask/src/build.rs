//! `cargo xtask build`: the wasm filter, the backend binary and its web console, the two things the end-to-end
//! tests and the demo run.

use std::path::PathBuf;

use acme_edge_tests::tools;
use anyhow::{Context, Result};

use crate::install::{self, WASM_TARGET};
use crate::shell::Cmd;

/// What a build produced, plus the Envoy that runs the filter: everything the harness needs.
#[derive(Debug, Clone)]
pub struct Artifacts {
    pub filter_wasm: PathBuf,
    pub backend_bin: PathBuf,
    pub envoy: PathBuf,
    pub pebble: PathBuf,
    pub challtestsrv: PathBuf,
}

impl Artifacts {
    /// The environment the harness reads (`acme_edge_tests::tools`), so tests find exactly
    /// these files.
    pub fn env(&self) -> Vec<(&'static str, PathBuf)> {
        vec![
            (tools::ENVOY_ENV, self.envoy.clone()),
            (tools::FILTER_WASM_ENV, self.filter_wasm.clone()),
            (tools::BACKEND_BIN_ENV, self.backend_bin.clone()),
            (tools::PEBBLE_ENV, self.pebble.clone()),
            (tools::CHALLTESTSRV_ENV, self.challtestsrv.clone()),
        ]
    }

    /// Export [`env`](Self::env) into this process, for the harness used in-process (demo).
    pub fn export(&self) {
        for (key, value) in self.env() {
            // SAFETY (of the call's contract): the task runner is single-threaded here; no
            // other thread reads the environment while it is written.
            #[allow(unsafe_code)]
            unsafe {
                std::env::set_var(key, value)
            };
        }
    }
}

/// Install, then build.
pub fn run() -> Result<Artifacts> {
    install::run()?;
    build()
}

/// Build only (the machine is known to be ready).
pub fn build() -> Result<Artifacts> {
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
    Cmd::cargo()
        .args(["build", "-p", "acme-edge", "--bin", "acme-edge"])
        .run()?;
    crate::console::check_wasm_bindgen_cli()?;
    let console = crate::console::build()?;
    let artifacts = locate()?;
    println!("xtask: filter  {}", artifacts.filter_wasm.display());
    println!("xtask: console {}", console.display());
    println!("xtask: backend {}", artifacts.backend_bin.display());
    println!("xtask: envoy   {}", artifacts.envoy.display());
    Ok(artifacts)
}

fn locate() -> Result<Artifacts> {
    Ok(Artifacts {
        filter_wasm: tools::filter_wasm()?,
        backend_bin: tools::backend_bin()?,
        envoy: match std::env::var_os(tools::ENVOY_ENV) {
            Some(path) => PathBuf::from(path),
            None => install::envoy_path().context("Envoy not found after install")?,
        },
        pebble: tools::pebble()?,
        challtestsrv: tools::challtestsrv()?,
    })
}
