//! `acme-edge serve --config FILE` runs the service; `acme-edge domains ...` is the operator
//! CLI. Bad configuration exits with 64 (EX_USAGE) after listing every problem; a database
//! migrated by a newer release this one cannot run on, with 65 (EX_DATAERR).

use std::path::PathBuf;
use std::process::ExitCode;

use acme_edge::activation::Inherited;
use acme_edge::config::{Config, LogFormat};
use acme_edge::store::{self, StoreError};
use acme_edge::{cli, listener, service};
use clap::{Parser, Subcommand};

/// sysexits.h EX_SOFTWARE: a component (a listener, the SDS server, the worker) failed while
/// serving; the others were drained. A restart is the remedy: the service manager's job.
const EXIT_COMPONENT_FAILED: u8 = 70;
/// sysexits.h EX_USAGE: the configuration is wrong, restarting will not help.
const EXIT_BAD_CONFIG: u8 = 64;
/// sysexits.h EX_DATAERR: the database was migrated by a newer release past what this one can
/// run on (`store::schema`); restarting will not help: upgrade this binary, or restore the
/// database from the backup taken before the upgrade.
const EXIT_SCHEMA_TOO_NEW: u8 = 65;

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
    /// Check a configuration file as `serve` would, without binding a port or contacting the
    /// CA: exit 0 when it is valid, 64 with every problem listed when it is not. Then say what
    /// the database's schema is to this release (new, current, behind, ahead and compatible,
    /// ahead and incompatible: exit 65), changing nothing.
    CheckConfig {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Manage domains through the admin API.
    Domains(cli::CliArgs),
    /// What the ACME account can sustain before a CA limit bites: renewals a day needed,
    /// orders a day the budget allows, the headroom, the first day at risk.
    Capacity(cli::CapacityArgs),
    /// Print an Envoy bootstrap for one proxy (YAML; `--json` for JSON).
    EnvoyConfig(Box<cli::envoy_config::EnvoyConfigArgs>),
    /// Print the admin API's OpenAPI 3.1 description (JSON), as `GET /v1/openapi.json`
    /// serves it.
    Openapi,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // Before the runtime starts its threads: reading it clears the environment variables.
    let inherited = Inherited::from_env();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("acme-edge: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match args.command {
        Command::Serve { config } => serve(&runtime, &config, inherited),
        Command::CheckConfig { config } => check_config(&runtime, &config),
        Command::EnvoyConfig(args) => match cli::envoy_config::render(*args) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("acme-edge envoy-config: {e}");
                ExitCode::from(e.exit_code())
            }
        },
        Command::Openapi => {
            println!("{}", acme_edge::api::openapi::json());
            ExitCode::SUCCESS
        }
        Command::Domains(cli_args) => runtime.block_on(cli::run(cli_args)).unwrap_or_else(|e| {
            eprintln!("acme-edge: {e:#}");
            ExitCode::FAILURE
        }),
        Command::Capacity(args) => runtime.block_on(cli::capacity(args)).unwrap_or_else(|e| {
            eprintln!("acme-edge: {e:#}");
            ExitCode::FAILURE
        }),
    }
}

fn serve(
    runtime: &tokio::runtime::Runtime,
    path: &std::path::Path,
    inherited: Inherited,
) -> ExitCode {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("acme-edge: {}: {e}", path.display());
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    init_tracing(config.log.format);
    prepare_process();
    // Within the runtime (the handlers need its driver), before anything is bound.
    let served =
        runtime.block_on(async { service::run(config, inherited, shutdown_signal()).await });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "acme-edge failed");
            eprintln!("acme-edge: {e}");
            match e {
                service::ServiceError::Component(_) => ExitCode::from(EXIT_COMPONENT_FAILED),
                service::ServiceError::Store(StoreError::SchemaTooNew { .. }) => {
                    ExitCode::from(EXIT_SCHEMA_TOO_NEW)
                }
                _ => ExitCode::FAILURE,
            }
        }
    }
}

/// Files the service creates (the database and its journal, the admin token) hold secrets:
/// none is readable by anyone but the service's user, whatever umask it was started with.
/// And every listener needs a descriptor per connection: the soft limit (often 1024) is
/// raised to the hard one, as the Go runtime does for every program.
fn prepare_process() {
    #[cfg(unix)]
    {
        use nix::sys::resource::{Resource, getrlimit, setrlimit};
        use nix::sys::stat::{Mode, umask};
        umask(Mode::from_bits_truncate(0o077));
        match getrlimit(Resource::RLIMIT_NOFILE) {
            Ok((soft, hard)) if soft < hard => {
                if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                    tracing::warn!(error = %e, soft, hard, "raising the open-file limit");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "reading the open-file limit"),
        }
    }
}

/// What `serve` checks before it binds anything: the file and the environment, the TLS files
/// it names (read and matched), the admin API's TLS set-up; then the database's schema.
fn check_config(runtime: &tokio::runtime::Runtime, path: &std::path::Path) -> ExitCode {
    let checked = Config::load(path)
        .map_err(|e| e.to_string())
        .and_then(|config| match &config.admin.tls {
            Some(identity) => listener::tls_config(identity)
                .map(|_| config.clone())
                .map_err(|e| format!("admin.tls_cert_file: {e}")),
            None => Ok(config),
        });
    let config = match checked {
        Ok(config) => config,
        Err(problems) => {
            eprintln!("acme-edge: {}: {problems}", path.display());
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    println!("{}: configuration OK", path.display());
    match runtime.block_on(store::inspect(&config.storage)) {
        Ok(state) if state.runs() => {
            println!("schema: {state}");
            ExitCode::SUCCESS
        }
        Ok(state) => {
            eprintln!("acme-edge: schema: {state}");
            ExitCode::from(EXIT_SCHEMA_TOO_NEW)
        }
        Err(e) => {
            // The configuration is fine; the database may simply not be reachable from here.
            println!("schema: not checked: {e}");
            ExitCode::SUCCESS
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// SIGTERM or SIGINT. The handlers are installed when this is called (not when the future is
/// first polled), so a signal arriving while the service binds its listeners is a clean stop
/// too, not the default action's kill.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let handlers = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        )
    };
    async move {
        #[cfg(unix)]
        match handlers {
            (Ok(mut term), Ok(mut interrupt)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = interrupt.recv() => {}
                }
            }
            (Ok(mut one), Err(_)) | (Err(_), Ok(mut one)) => {
                let _ = one.recv().await;
            }
            (Err(_), Err(_)) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutdown signal received");
    }
}
