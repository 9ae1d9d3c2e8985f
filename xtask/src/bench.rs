//! `cargo xtask bench <name> [-- OPTIONS]`: install what the benchmarks need, build the
//! filter and the backend, then run the `acme-edge-bench` crate's binary (optimised: the
//! figures are the point). `scale` runs the harness's `bench-scale` example instead, on the
//! backend built in release mode, then the renewal storms (10,000 certificates due at once
//! under the default order budget, on a simulated clock: the backend's `jobs::tests::storm`,
//! `#[ignore]`d in the default tests because a debug build takes minutes) optimised.
//! `--no-storm` skips the storms, `--storm-only` runs only them.

use anyhow::Result;

use crate::shell::Cmd;
use crate::{build, install};

/// The backend's tests that weather the full renewal storms.
const STORM_TESTS: &str = "jobs::tests::storm::";

pub fn run(args: Vec<String>) -> Result<()> {
    if args.first().map(String::as_str) == Some("scale") {
        return scale(&args[1..]);
    }
    install::run(install::BENCH)?;
    let artifacts = build::build()?;
    let bench = Cmd::cargo()
        .args(["run", "--release", "-p", "acme-edge-bench", "--"])
        .args(args);
    artifacts.with_harness_env(bench)?.run()
}

/// `scale`: the example on 100,000 domains, then the storms; `--no-storm` and
/// `--storm-only` are ours, the other options the example's.
fn scale(args: &[String]) -> Result<()> {
    let has = |flag: &str| args.iter().any(|a| a == flag);
    let (no_storm, storm_only) = (has("--no-storm"), has("--storm-only"));
    let options = args
        .iter()
        .filter(|a| *a != "--no-storm" && *a != "--storm-only");
    if !storm_only {
        install::run(install::BENCH)?;
        let mut artifacts = build::build()?;
        install::run(install::BENCH_SCALE)?;
        // The backend process it starts is measured: the optimised build, as deployed.
        artifacts.backend_bin = build::build_backend_release()?;
        // 100,000 domains through the store's own code, then the backend process on them:
        // the harness's example, which links the backend's library.
        let example = Cmd::cargo()
            .args([
                "run",
                "--release",
                "-p",
                "acme-edge-tests",
                "--example",
                "bench-scale",
                "--",
            ])
            .args(options);
        artifacts.with_harness_env(example)?.run()?;
    }
    if no_storm {
        return Ok(());
    }
    // In-process with a fake CA and a SQLite file: nothing to install or start.
    Cmd::cargo()
        .args([
            "test",
            "--release",
            "-p",
            "acme-edge",
            "--lib",
            STORM_TESTS,
            "--",
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .run()
}
