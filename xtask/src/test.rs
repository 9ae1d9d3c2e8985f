//! `cargo xtask test`: install, lint, build (and the previous release's backend, for the
//! upgrade tests: [`previous`]), then the whole suite: every crate's unit tests, doc tests
//! and the end-to-end tests in `tests/`.
//!
//! The end-to-end tests each start Envoy, Pebble and backends, and this machine has two
//! cores, so at most two tests run at once; with `cargo nextest` (used when installed: one
//! process per test, one summary for the whole workspace) the end-to-end tests run one at a
//! time next to the unit tests (`.config/nextest.toml`), else `cargo test`. The runner's
//! own summary is the last thing printed; the exit status is non-zero if the lint, the doc
//! tests or any test failed.

use std::process::ExitCode;

use anyhow::Result;

use crate::build::{self, Artifacts};
use crate::shell::Cmd;
use crate::{install, lint, previous};

/// Tests running at once: the e2e tests are whole process stacks on a 2-core machine.
pub const TEST_THREADS: usize = 2;

/// Which test runner to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Runner {
    /// nextest when installed, else cargo test.
    Auto,
    Nextest,
    Cargo,
}

#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Skip `cargo xtask lint`.
    #[arg(long)]
    skip_lint: bool,
    #[arg(long, value_enum, default_value_t = Runner::Auto)]
    runner: Runner,
    /// Passed to the test runner (e.g. a test name filter).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    runner_args: Vec<String>,
}

pub fn run(args: TestArgs) -> Result<ExitCode> {
    install::run(install::TEST)?;
    let lint_ok = args.skip_lint || lint_passes();
    let mut artifacts = build::build()?;
    artifacts.previous_backend_bin = Some(previous::build()?);
    let tests_ok = run_tests(&args, &artifacts)?;
    Ok(if lint_ok && tests_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn lint_passes() -> bool {
    match lint::run() {
        Ok(()) => true,
        Err(e) => {
            // Said now: the last line of the run belongs to the test runner.
            eprintln!(
                "xtask: {e:#}\nxtask: running the tests anyway; the exit status will be non-zero"
            );
            false
        }
    }
}

fn run_tests(args: &TestArgs, artifacts: &Artifacts) -> Result<bool> {
    let nextest = match args.runner {
        Runner::Auto => Cmd::cargo()
            .args(["nextest", "--version"])
            .probe()
            .is_some(),
        Runner::Nextest => true,
        Runner::Cargo => false,
    };
    if nextest {
        // nextest does not run doc tests.
        let docs_ok = with_env(
            Cmd::cargo().args(["test", "--workspace", "--doc"]),
            artifacts,
        )?
        .status()?;
        let tests_ok = with_env(nextest_cmd(args), artifacts)?.status()?;
        Ok(docs_ok && tests_ok)
    } else {
        with_env(cargo_test_cmd(args), artifacts)?.status()
    }
}

fn nextest_cmd(args: &TestArgs) -> Cmd {
    Cmd::cargo()
        .args(["nextest", "run", "--workspace", "--no-fail-fast"])
        .arg(format!("--test-threads={TEST_THREADS}"))
        .args(&args.runner_args)
}

fn cargo_test_cmd(args: &TestArgs) -> Cmd {
    Cmd::cargo()
        .args(["test", "--workspace", "--no-fail-fast"])
        .args(&args.runner_args)
        .arg("--")
        .arg(format!("--test-threads={TEST_THREADS}"))
}

fn with_env(cmd: Cmd, artifacts: &Artifacts) -> Result<Cmd> {
    artifacts.with_harness_env(cmd)
}
