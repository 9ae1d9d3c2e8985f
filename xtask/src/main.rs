//! `cargo xtask`: install, build, lint, test, benchmark and demo acme-edge.
//!
//! # Layout
//!
//! - [`install`]: checks the machine and installs what is missing (wasm target, Envoy,
//!   Pebble, wrk), or says what to run.
//! - [`build`]: the wasm filter and the backend binary; [`build::Artifacts`] says where they
//!   are and exports that to the test harness.
//! - [`console`]: the web console's build (wasm32-unknown-unknown + wasm-bindgen).
//! - [`lint`]: `cargo fmt --check` and clippy for the host and the wasm target.
//! - [`test`]: install, lint, build, then the whole suite with bounded parallelism.
//! - [`bench`]: benchmarks, one subcommand each.
//! - [`demo`]: the complete local stack (Pebble, backend, Envoy) issuing a real certificate.
//! - [`fuzz`]: fuzzing the filter's parsers.
//! - [`shell`]: running and echoing the commands the tasks are made of.

mod bench;
mod build;
mod console;
mod demo;
mod fuzz;
mod install;
mod lint;
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
    /// Make this machine able to build, test and demo (wasm target, Envoy, Pebble, wrk).
    Install,
    /// Install, then build the wasm filter and the backend binary.
    Build,
    /// cargo fmt --check, and clippy (host and wasm32-wasip1) with warnings denied.
    Lint,
    /// Install, lint, build, then run every test (unit, doc and end-to-end).
    Test(test::TestArgs),
    /// Run a benchmark.
    #[command(subcommand)]
    Bench(bench::Bench),
    /// Bring up Pebble, the backend and Envoy; issue a certificate; run until Ctrl-C.
    Demo(demo::DemoArgs),
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
        Task::Install => install::run(),
        Task::Build => build::run().map(|_| ()),
        Task::Lint => install::run().and_then(|()| lint::run()),
        Task::Test(args) => return exit_code(test::run(args)),
        Task::Bench(bench) => bench::run(bench),
        Task::Demo(args) => demo::run(args),
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
