//! `acme-edge-bench`: benchmarks that print ratios against a baseline measured in the same
//! run. `cargo xtask bench <name>` installs what they need, builds the filter and runs this
//! binary with the harness's tool paths in its environment.

mod cold;
mod config;
mod filter;
mod held;
mod instructions;
mod probe;
mod sds;
mod served;
mod stored;
mod wrk;

use std::process::ExitCode;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(name = "cargo xtask bench", about = "acme-edge benchmarks")]
enum Bench {
    /// Envoy throughput with the challenge filter against the same Envoy without it, and
    /// challenge answers against a direct response.
    Filter {
        /// Options of the filter benchmark.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// A name's first (cold) handshake against its second (warm), and where the cold one's
    /// time goes: Envoy's SDS stream, the backend's answer, Envoy applying the secret.
    Cold {
        /// Options of the cold handshake benchmark (`cargo xtask bench cold -- --help`).
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
    /// What one Envoy holds at 10,000 distinct names, with and without the bound, and the
    /// backend restarted while Envoy holds them.
    Held {
        /// Options of the benchmark (`cargo xtask bench held -- --help`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The Envoy configuration, side by side: one virtual host per domain against the
    /// constant configuration (size, start-up, memory, one added domain) for 1,000, 10,000
    /// and 100,000 domains.
    Config {
        /// Options of the configuration benchmark (`cargo xtask bench config -- --help`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    let outcome = match Bench::parse() {
        Bench::Cold { args } => cold::run(args),
        Bench::Filter { args } => filter::run(args),
        Bench::Sds { args } => sds::run(args),
        Bench::Config { args } => config::run(args),
        Bench::Held { args } => held::run(args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
