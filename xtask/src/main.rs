//! `cargo xtask`: install, build, lint, test, benchmark, demo and package acme-edge.
//!
//! The task runner only dispatches: it links neither the backend nor the test harness, so it
//! compiles in seconds on a fresh machine. Tasks that need the harness run its binaries with
//! `cargo run` (the demo: `acme-edge-tests`' `acme-edge-demo`; the benchmarks: the
//! `acme-edge-bench` crate), and cargo's own progress shows while they compile.
//!
//! # Layout
//!
//! - [`install`]: checks the machine and installs what a task needs (its list of tools), or
//!   says what to run.
//! - [`build`]: the wasm filter and the backend binary; [`build::Artifacts`] says where they
//!   are and passes that to the test harness.
//! - [`console`]: the web console's build (wasm32-unknown-unknown + wasm-bindgen).
//! - [`lint`]: `cargo fmt --check`, clippy for the host and the wasm targets, and
//!   [`migrations`]: the schema's migrations are expand-only.
//! - [`test`]: install, lint, build, then the whole suite with bounded parallelism.
//! - [`bench`]: benchmarks, one subcommand each.
//! - [`demo`]: the complete local stack (Pebble, backend, Envoy) issuing a real certificate.
//! - [`dist`]: the release artifacts in `dist/`.
//! - [`fuzz`]: fuzzing the filter's parsers.
//! - [`previous`]: the previous release's backend, built from its commit for the upgrade
//!   tests.
//! - [`paths`]: the workspace, the target directory, the tools.
//! - [`shell`]: running and echoing the commands the tasks are made of.

mod bench;
mod build;
mod console;
mod demo;
mod dist;
mod fuzz;
mod install;
mod lint;
mod migrations;
mod paths;
mod previous;
mod shell;
mod test;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "acme-edge task runner")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Make this machine able to run a task (default: the whole test suite, which needs
    /// everything: wasm target, Envoy, Pebble, wrk, podman, PostgreSQL, ...).
    Install {
        /// Install only what this task needs.
        #[arg(long = "for", value_enum, default_value_t = install::For::Test)]
        task: install::For,
    },
    /// Install, then build the wasm filter and the backend binary.
    Build,
    /// cargo fmt --check, clippy (host and the wasm targets) with warnings denied, and the
    /// migration lint (expand-only).
    Lint,
    /// Install, lint, build, then run every test (unit, doc and end-to-end).
    Test(test::TestArgs),
    /// Run a benchmark (`cargo xtask bench filter|sds|cold|config|scale [-- OPTIONS]`).
    Bench {
        /// The benchmark and its options.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        args: Vec<String>,
    },
    /// Bring up Pebble, the backend and Envoy; issue a certificate; run until Ctrl-C.
    Demo {
        /// Options of the demo: `--domain NAME`, `--once` (`cargo xtask demo -- --help`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Release builds and deployment files in dist/, with SHA256SUMS.
    Dist(dist::DistArgs),
    /// Write the databases the previous release leaves behind (SQLite and PostgreSQL), kept in
    /// tests/fixtures/upgrade/ for the upgrade tests.
    UpgradeFixture,
    /// Fuzz the filter's parsers (needs the nightly toolchain).
    Fuzz {
        /// Options of the fuzz task.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.task {
        Task::Install { task } => install::run(task.tools()),
        Task::Build => build::run().map(|_| ()),
        Task::Lint => install::run(install::BUILD).and_then(|()| lint::run()),
        Task::Test(args) => return exit_code(test::run(args)),
        Task::Bench { args } => bench::run(args),
        Task::Demo { args } => demo::run(args),
        Task::Dist(args) => dist::run(args),
        Task::UpgradeFixture => previous::write_fixtures(),
        Task::Fuzz { args } => fuzz::run(args),
    };
    exit_code(outcome.map(|()| ExitCode::SUCCESS))
}

fn exit_code(outcome: anyhow::Result<ExitCode>) -> ExitCode {
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
