//! Benchmarks that print ratios against a baseline measured in the same run.

pub mod filter;
mod instructions;
pub mod sds;

use anyhow::Result;

/// `cargo xtask bench <name>`.
#[derive(Debug, clap::Subcommand)]
pub enum Bench {
    /// Envoy throughput with the challenge filter against the same Envoy without it, and
    /// challenge answers against a direct response.
    Filter {
        /// Options of the filter benchmark.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Certificates through on-demand SDS: issued or renewed to first handshake, and
    /// handshakes per second against a certificate written into the configuration.
    Sds {
        /// Options of the SDS benchmark (`cargo xtask bench sds -- --help`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// 100,000 domains in SQLite and PostgreSQL: the worker's due-claim, the gauge recount
    /// against a scrape, listing every domain. Runs `tests/examples/bench-scale.rs`.
    Scale,
}

pub fn run(bench: Bench) -> Result<()> {
    match bench {
        Bench::Filter { args } => filter::run(args),
        Bench::Sds { args } => sds::run(args),
        Bench::Scale => crate::shell::Cmd::cargo()
            .args([
                "run",
                "--release",
                "-p",
                "acme-edge-tests",
                "--example",
                "bench-scale",
            ])
            .run(),
    }
}
