//! `cargo xtask bench <name> [-- OPTIONS]`: install what the benchmarks need, build the
//! filter and the backend, then run the `acme-edge-bench` crate's binary (optimised: the
//! figures are the point). The benchmarks that start the backend process (`held`, `cold`)
//! get its release build. `scale` runs the harness's `bench-scale` example instead, on the
//! backend built in release mode, then the renewal storm (10,000 certificates due at once
//! under the default order budget, on a simulated clock: the backend's `jobs::tests::storm`,
//! `#[ignore]`d in the default tests because a debug build takes minutes) optimised.
//! `--no-storm` skips the storm, `--storm-only` runs only it, `--all-storms` runs the late
//! storm and the storm with critical renewals too (about 2 minutes each). Then the policy
//! simulations at full size (100,000 domains over 400 days against Let's Encrypt's limits:
//! the backend's `policy::simulation`, `#[ignore]`d in the default tests for the same
//! reason), unless `--no-policy`.

use anyhow::Result;

use crate::shell::Cmd;
use crate::{build, install};

/// The backend's test that weathers the full renewal storm, and the module of all of them.
const STORM_TEST: &str = "jobs::tests::storm::a_storm_of_10_000";
const STORM_TESTS: &str = "jobs::tests::storm::";
/// The full-size policy simulations.
const POLICY_SIMULATIONS: &str = "policy::simulation::tests::policy_";

pub fn run(args: Vec<String>) -> Result<()> {
    if args.first().map(String::as_str) == Some("scale") {
        return scale(&args[1..]);
    }
    install::run(install::BENCH)?;
    let mut artifacts = build::build()?;
    if matches!(args.first().map(String::as_str), Some("held" | "cold")) {
        // These measure the backend process they start: the optimised build, as deployed.
        artifacts.backend_bin = build::build_backend_release()?;
    }
    let bench = Cmd::cargo()
        .args(["run", "--release", "-p", "acme-edge-bench", "--"])
        .args(args);
    artifacts.with_harness_env(bench)?.run()
}

/// Options of `scale` that are ours; the others are the example's.
const SCALE_FLAGS: [&str; 4] = ["--no-storm", "--storm-only", "--all-storms", "--no-policy"];

/// `scale`: the example on 100,000 domains, then the storm.
fn scale(args: &[String]) -> Result<()> {
    let has = |flag: &str| args.iter().any(|a| a == flag);
    let (no_storm, storm_only) = (has("--no-storm"), has("--storm-only"));
    let storms = if has("--all-storms") {
        STORM_TESTS
    } else {
        STORM_TEST
    };
    let options = args.iter().filter(|a| !SCALE_FLAGS.contains(&a.as_str()));
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
    if !no_storm {
        // In-process with a fake CA and a SQLite file: nothing to install or start.
        ignored_tests(storms)?;
    }
    if has("--no-policy") || storm_only {
        return Ok(());
    }
    // In memory: a model of the CA, no store.
    ignored_tests(POLICY_SIMULATIONS)
}

/// The backend's `#[ignore]`d tests matching `filter`, optimised, one at a time, printing.
fn ignored_tests(filter: &str) -> Result<()> {
    Cmd::cargo()
        .args([
            "test",
            "--release",
            "-p",
            "acme-edge",
            "--lib",
            filter,
            "--",
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .run()
}
