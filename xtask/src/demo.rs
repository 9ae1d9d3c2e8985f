//! `cargo xtask demo`: install what the demo needs (the wasm target, Envoy, Pebble), build the
//! filter and the backend, then run the harness's `acme-edge-demo` binary (tests/src/bin/),
//! which brings the stack up and issues a certificate. Every build step is cargo's own, with
//! its progress on the terminal.

use anyhow::Result;

use crate::shell::Cmd;
use crate::{build, install};

/// `args` are the demo's own options (`--domain NAME`, `--once`).
pub fn run(args: Vec<String>) -> Result<()> {
    install::run(install::DEMO)?;
    let artifacts = build::build()?;
    let demo = Cmd::cargo()
        .args([
            "run",
            "-p",
            "acme-edge-tests",
            "--bin",
            "acme-edge-demo",
            "--",
        ])
        .args(args);
    artifacts.with_harness_env(demo)?.run()
}
