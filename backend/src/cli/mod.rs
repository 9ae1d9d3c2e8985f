//! The operator CLI: `acme-edge domains add|list|show|remove|renew|certificate` and
//! `acme-edge capacity`, a client of the admin API. It shares the API's JSON types ([`crate::api::json`]) and never touches the
//! database itself, so it works against any replica from any machine.
//!
//! # Layout
//!
//! - [`client`]: the typed HTTP client of `/v1/`, with its error type.
//! - [`render`]: human output (tables, detail views, relative times); `--json` bypasses it.
//! - [`wait`]: `--wait`, following issuance with a progress indicator.
//!
//! Exit codes (see [`exit`]): 0 success; 1 the API refused the request or issuance failed;
//! 69 the API could not be reached; 75 `--wait` gave up before issuance ended.

pub mod client;
pub mod envoy_config;
pub mod render;
pub mod wait;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use time::OffsetDateTime;

use crate::api::json::{DomainState, KeyType};
use client::{ApiClient, ClientError};

/// Exit codes, from sysexits.h where one fits.
pub mod exit {
    /// The API answered with an error, or issuance ended `failed`.
    pub const FAILED: u8 = 1;
    /// EX_UNAVAILABLE: the admin API could not be reached.
    pub const UNAVAILABLE: u8 = 69;
    /// EX_TEMPFAIL: `--wait` timed out; issuance goes on in the backend.
    pub const TIMED_OUT: u8 = 75;
}

/// `acme-edge domains ...`
#[derive(Debug, clap::Args)]
pub struct CliArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(subcommand)]
    pub command: DomainsCommand,
}

/// Where the admin API is and how to reach it: every command that talks to it takes these.
#[derive(Debug, clap::Args)]
pub struct ApiArgs {
    /// Base URL of the admin API.
    #[arg(
        long,
        env = "ACME_EDGE_API_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub api_url: String,
    /// Bearer token of the admin API.
    #[arg(
        long,
        env = "ACME_EDGE_ADMIN_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub token: Option<String>,
    /// File holding the bearer token (the backend's generated `admin-token` file).
    #[arg(
        long,
        env = "ACME_EDGE_ADMIN_TOKEN_FILE",
        global = true,
        conflicts_with = "token"
    )]
    pub token_file: Option<PathBuf>,
    /// PEM file of the CA that signed the admin API's TLS certificate (`admin.tls_cert_file`),
    /// trusted besides the platform's roots.
    #[arg(long, env = "ACME_EDGE_CA_FILE", global = true)]
    pub cacert: Option<PathBuf>,
    /// Print the API's JSON instead of tables, for scripts.
    #[arg(long, global = true)]
    pub json: bool,
}

impl ApiArgs {
    /// A client of the API, with the token and the CA file read.
    fn client(&self) -> anyhow::Result<ApiClient> {
        let token = match (&self.token, &self.token_file) {
            (Some(token), _) => token.trim().to_owned(),
            (None, Some(path)) => read_token_file(path)?,
            (None, None) => anyhow::bail!(
                "no admin token: pass --token or --token-file, or set ACME_EDGE_ADMIN_TOKEN"
            ),
        };
        let ca_pem = self
            .cacert
            .as_ref()
            .map(|path| {
                std::fs::read(path)
                    .map_err(|e| anyhow::anyhow!("reading the CA file {}: {e}", path.display()))
            })
            .transpose()?;
        Ok(ApiClient::new(&self.api_url, &token, ca_pem.as_deref())?)
    }
}

/// `acme-edge capacity`: what the account can sustain before a limit bites.
#[derive(Debug, clap::Args)]
pub struct CapacityArgs {
    #[command(flatten)]
    pub api: ApiArgs,
}

/// What to do with domains.
#[derive(Debug, clap::Subcommand)]
pub enum DomainsCommand {
    /// Enable domains (starts issuance; enabling an enabled domain changes nothing).
    Add {
        /// Domain names (internationalised names are accepted and shown in punycode).
        #[arg(required = true)]
        names: Vec<String>,
        /// Key type of the certificates: ecdsa-p256, ecdsa-p384, rsa-2048, rsa-3072, rsa-4096.
        #[arg(long, value_parser = parse_key_type)]
        key_type: Option<KeyType>,
        /// Certificate profile the CA is asked for (shortlived, tlsserver, ...), kept across
        /// renewals; acme.profile when absent. Given for an enabled domain: its next order.
        #[arg(long, value_parser = parse_profile)]
        profile: Option<String>,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// List domains (all of them, page after page).
    List {
        /// Only domains in this state: pending, validating, issued, failed, disabled.
        #[arg(long, value_parser = parse_state)]
        state: Option<DomainState>,
        /// Only names containing this text.
        #[arg(long, short = 'q')]
        contains: Option<String>,
    },
    /// Show one domain.
    Show { name: String },
    /// Disable a domain: no renewals, its certificate is no longer served.
    Remove { name: String },
    /// Renew a domain's certificate now.
    Renew {
        name: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Print a domain's certificate chain (PEM; the private key never leaves the backend).
    Certificate { name: String },
}

/// `--wait` and its bound.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct WaitArgs {
    /// Follow issuance until it ends; exit non-zero if it fails.
    #[arg(long)]
    pub wait: bool,
    /// Give up waiting after this many seconds (issuance goes on in the backend).
    #[arg(long, default_value_t = 300, value_name = "SECONDS", requires = "wait")]
    pub timeout: u64,
}

fn parse_key_type(s: &str) -> Result<KeyType, String> {
    KeyType::parse(s).ok_or_else(|| {
        let all: Vec<_> = KeyType::ALL.iter().map(|k| k.as_str()).collect();
        format!("expected one of {}", all.join(", "))
    })
}

fn parse_profile(s: &str) -> Result<String, String> {
    if crate::model::is_profile_name(s) {
        Ok(s.to_owned())
    } else {
        Err(format!("expected {}", crate::model::profile::PROFILE_RULE))
    }
}

fn parse_state(s: &str) -> Result<DomainState, String> {
    DomainState::parse(s).ok_or_else(|| {
        let all: Vec<_> = DomainState::ALL.iter().map(|k| k.as_str()).collect();
        format!("expected one of {}", all.join(", "))
    })
}

/// Run one CLI command; the result is the process's exit code.
pub async fn run(args: CliArgs) -> anyhow::Result<ExitCode> {
    let client = args.api.client()?;
    let json = args.api.json;
    Ok(exit_code(execute(&client, args.command, json).await))
}

/// `acme-edge capacity`.
pub async fn capacity(args: CapacityArgs) -> anyhow::Result<ExitCode> {
    let client = args.api.client()?;
    let shown = async {
        let capacity = client.capacity().await?;
        if args.api.json {
            render::print_json(&capacity);
        } else {
            print!("{}", render::capacity(&capacity, OffsetDateTime::now_utc()));
        }
        Ok(ExitCode::SUCCESS)
    };
    Ok(exit_code(shown.await))
}

/// What the command's outcome exits with; a failure is said on standard error.
fn exit_code(outcome: Result<ExitCode, ClientError>) -> ExitCode {
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(match e {
                ClientError::Unreachable { .. } => exit::UNAVAILABLE,
                _ => exit::FAILED,
            })
        }
    }
}

fn read_token_file(path: &std::path::Path) -> anyhow::Result<String> {
    let token = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("reading the token file {}: {e}", path.display()))?;
    Ok(token.trim().to_owned())
}

async fn execute(
    client: &ApiClient,
    command: DomainsCommand,
    json: bool,
) -> Result<ExitCode, ClientError> {
    match command {
        DomainsCommand::Add {
            names,
            key_type,
            profile,
            wait,
        } => {
            let body = crate::api::json::EnableRequest { key_type, profile };
            let mut enabled = Vec::with_capacity(names.len());
            for name in &names {
                let (domain, created) = client.enable(name, &body).await?;
                if !json && !wait.wait {
                    let verb = if created {
                        "enabled"
                    } else {
                        "already enabled"
                    };
                    println!("{}: {verb} ({})", domain.name, domain.state);
                }
                enabled.push(domain);
            }
            finish(client, enabled, wait, json).await
        }
        DomainsCommand::List { state, contains } => {
            let list = client.list(state, contains.as_deref()).await?;
            if json {
                render::print_json(&list);
            } else {
                let now = time::OffsetDateTime::now_utc();
                // A backend without `/v1/ca` (older) or a failed look: no line.
                if let Ok(ca) = client.ca().await
                    && let Some(line) = render::ca_paused_line(&ca, now)
                {
                    println!("{line}");
                }
                println!("{}", render::domain_table(&list.domains, now));
            }
            Ok(ExitCode::SUCCESS)
        }
        DomainsCommand::Show { name } => {
            let domain = client.get(&name).await?;
            if json {
                render::print_json(&domain);
            } else {
                print!(
                    "{}",
                    render::domain_detail(&domain, time::OffsetDateTime::now_utc())
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        DomainsCommand::Remove { name } => {
            let domain = client.disable(&name).await?;
            if json {
                render::print_json(&domain);
            } else {
                println!("{}: disabled", domain.name);
            }
            Ok(ExitCode::SUCCESS)
        }
        DomainsCommand::Renew { name, wait } => {
            let domain = client.renew(&name).await?;
            if !json && !wait.wait {
                println!("{}: renewal scheduled ({})", domain.name, domain.state);
            }
            finish(client, vec![domain], wait, json).await
        }
        DomainsCommand::Certificate { name } => {
            print!("{}", client.certificate(&name).await?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// After add/renew: follow issuance when asked, else print the JSON answer.
async fn finish(
    client: &ApiClient,
    domains: Vec<crate::api::json::Domain>,
    wait: WaitArgs,
    json: bool,
) -> Result<ExitCode, ClientError> {
    if !wait.wait {
        if json {
            render::print_json(&domains);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let names: Vec<String> = domains.into_iter().map(|d| d.name).collect();
    let outcome = wait::follow(client, &names, Duration::from_secs(wait.timeout), !json).await?;
    if json {
        render::print_json(&outcome.domains);
    }
    Ok(ExitCode::from(outcome.exit_code()))
}
