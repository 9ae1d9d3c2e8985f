//! The operator CLI: `acme-edge domains add|list|show|remove|renew`, a client of the admin
//! API (`crate::api::model` holds the JSON types it exchanges).

use std::process::ExitCode;

/// `acme-edge domains ...`
#[derive(Debug, clap::Args)]
pub struct CliArgs {
    /// Base URL of the admin API.
    #[arg(long, env = "ACME_EDGE_API_URL", default_value = "http://127.0.0.1:8080")]
    pub api_url: String,
    /// Bearer token of the admin API.
    #[arg(long, env = "ACME_EDGE_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    #[command(subcommand)]
    pub command: DomainsCommand,
}

/// What to do with domains.
#[derive(Debug, clap::Subcommand)]
pub enum DomainsCommand {
    /// Enable a domain (starts issuance).
    Add { name: String },
    /// List domains.
    List,
    /// Show one domain.
    Show { name: String },
    /// Disable a domain.
    Remove { name: String },
    /// Force a renewal.
    Renew { name: String },
}

/// Run one CLI command; the exit code is the process's.
pub async fn run(args: CliArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`acme-edge domains {:?}` is not available yet", args.command)
}
