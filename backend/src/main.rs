//! `acme-edge serve --config FILE` runs the service; `acme-edge domains ...` is the operator
//! CLI. Bad configuration exits with 64 (EX_USAGE) after listing every problem.

use std::path::PathBuf;
use std::process::ExitCode;

use acme_edge::{cli, config::Config, service};
use clap::{Parser, Subcommand};

/// sysexits.h EX_USAGE: the configuration is wrong, restarting will not help.
const EXIT_BAD_CONFIG: u8 = 64;

#[derive(Debug, Parser)]
#[command(
    name = "acme-edge",
    version,
    about = "Automatic HTTPS for a fleet of Envoy proxies"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service.
    Serve {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Manage domains through the admin API.
    Domains(cli::CliArgs),
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("acme-edge: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match args.command {
        Command::Serve { config } => serve(&runtime, &config),
        Command::Domains(cli_args) => runtime.block_on(cli::run(cli_args)).unwrap_or_else(|e| {
            eprintln!("acme-edge: {e:#}");
            ExitCode::FAILURE
        }),
    }
}

fn serve(runtime: &tokio::runtime::Runtime, path: &std::path::Path) -> ExitCode {
    init_tracing();
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("acme-edge: {}: {e}", path.display());
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    match runtime.block_on(service::run(config, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "acme-edge failed");
            eprintln!("acme-edge: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// SIGTERM or SIGINT.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutdown signal received");
}
