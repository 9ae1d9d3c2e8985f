//! `cargo xtask bench <name> [-- OPTIONS]`: install what the benchmarks need, build the
//! filter and the backend, then run the `acme-edge-bench` crate's binary (optimised: the
//! figures are the point).

use anyhow::Result;

use crate::shell::Cmd;
use crate::{build, install};

pub fn run(args: Vec<String>) -> Result<()> {
    install::run(install::BENCH)?;
    let artifacts = build::build()?;
    let bench = Cmd::cargo()
        .args(["run", "--release", "-p", "acme-edge-bench", "--"])
        .args(args);
    artifacts.with_harness_env(bench)?.run()
}
