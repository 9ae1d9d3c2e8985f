//! `cargo xtask bench <name> [-- OPTIONS]`: install what the benchmarks need, build the
//! filter and the backend, then run the `acme-edge-bench` crate's binary (optimised: the
//! figures are the point). `scale` runs the harness's `bench-scale` example instead. The
//! benchmarks that start the backend process (`scale`, `held`, `cold`) get the backend built
//! in release mode.

use anyhow::Result;

use crate::shell::Cmd;
use crate::{build, install};

pub fn run(args: Vec<String>) -> Result<()> {
    install::run(install::BENCH)?;
    let mut artifacts = build::build()?;
    let name = args.first().map(String::as_str);
    if matches!(name, Some("scale" | "held" | "cold")) {
        // These measure the backend process they start: the optimised build, as deployed.
        artifacts.backend_bin = build::build_backend_release()?;
    }
    let bench = if name == Some("scale") {
        install::run(install::BENCH_SCALE)?;
        // 100,000 domains through the store's own code, then the backend process on them:
        // the harness's example, which links the backend's library.
        Cmd::cargo()
            .args([
                "run",
                "--release",
                "-p",
                "acme-edge-tests",
                "--example",
                "bench-scale",
                "--",
            ])
            .args(&args[1..])
    } else {
        Cmd::cargo()
            .args(["run", "--release", "-p", "acme-edge-bench", "--"])
            .args(args)
    };
    artifacts.with_harness_env(bench)?.run()
}
