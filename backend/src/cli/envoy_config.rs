//! `acme-edge envoy-config`: print one proxy's Envoy bootstrap (`acme_edge_envoy_bootstrap`,
//! the renderer the end-to-end tests start Envoy with) from flags and, with `--config`, the
//! backend's own configuration (where its challenge and SDS listeners are, the filter build
//! it serves). Flags win over the file. Bad flags exit 2, a bad configuration file 64.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use acme_edge_envoy_bootstrap::params::{
    DEFAULT_FILTER_WASM, DEFAULT_NODE_CLUSTER, DEFAULT_NODE_ID,
};
use acme_edge_envoy_bootstrap::{
    Bootstrap, Filter, FilterSource, Https, Listen, RemoteUrl, Sds, SdsClientTls, Sha256, Upstream,
};

use crate::config::challenge::{FilterBuild, sha256_hex};
use crate::config::{Config, SdsListen};

/// Exit code of bad flags (as clap's own).
pub const EXIT_BAD_FLAGS: u8 = 2;
/// Exit code of a bad configuration file (as `serve`).
pub const EXIT_BAD_CONFIG: u8 = 64;

/// `acme-edge envoy-config`
#[derive(Debug, clap::Args)]
pub struct EnvoyConfigArgs {
    /// The backend's configuration file: the challenge and SDS listeners' addresses and
    /// `challenge.filter_wasm_file` are taken from it.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Envoy's `node.id`: one per proxy.
    #[arg(long, default_value = DEFAULT_NODE_ID)]
    pub node_id: String,
    #[arg(long, default_value = DEFAULT_NODE_CLUSTER)]
    pub node_cluster: String,
    /// Plain-HTTP listener. `[::]:PORT` (the default) takes IPv6 and IPv4.
    #[arg(long, default_value = "[::]:80", value_name = "IP:PORT")]
    pub http_listen: SocketAddr,
    /// HTTPS listener.
    #[arg(long, default_value = "[::]:443", value_name = "IP:PORT")]
    pub https_listen: SocketAddr,
    /// No HTTPS listener (challenges only).
    #[arg(long, conflicts_with = "https_redirect")]
    pub no_https: bool,
    /// Envoy's admin interface (keep it on loopback).
    #[arg(long, default_value = "127.0.0.1:9901", value_name = "IP:PORT")]
    pub admin_listen: SocketAddr,
    /// The backend's challenge listener [default: challenge.listen, else 127.0.0.1:8081].
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_upstream)]
    pub challenge_backend: Option<Upstream>,
    /// The backend's SDS listener: `unix:/PATH` or `HOST:PORT` [default: sds.listen, else
    /// unix:/run/acme-edge/sds.sock].
    #[arg(long, value_name = "unix:/PATH|HOST:PORT", value_parser = parse_sds)]
    pub sds: Option<Sds>,
    /// Envoy's client certificate chain for mutual TLS to a TCP SDS listener.
    #[arg(long, requires_all = ["sds_client_key", "sds_ca", "sds_server_name"])]
    pub sds_client_cert: Option<PathBuf>,
    /// Its private key (a file Envoy reads; never on the command line).
    #[arg(long, requires = "sds_client_cert")]
    pub sds_client_key: Option<PathBuf>,
    /// The CA of the SDS listener's certificate.
    #[arg(long, requires = "sds_client_cert")]
    pub sds_ca: Option<PathBuf>,
    /// The name in the SDS listener's certificate.
    #[arg(long, requires = "sds_client_cert")]
    pub sds_server_name: Option<String>,
    /// The filter settings, a JSON object (see docs/configuration.md, the filter).
    #[arg(long, default_value = "", value_name = "JSON", value_parser = parse_settings)]
    pub filter_settings: serde_json::Map<String, serde_json::Value>,
    /// The filter build on the proxy's host (the local code source).
    #[arg(long, default_value = DEFAULT_FILTER_WASM, value_name = "PATH")]
    pub filter_wasm: PathBuf,
    /// Fetch the filter from this URL instead (the backend serves its build at
    /// http://CHALLENGE_LISTEN/acme-edge/v1/filter.wasm); Envoy refuses any other digest.
    #[arg(long, value_name = "http://HOST:PORT/PATH", value_parser = parse_url)]
    pub filter_url: Option<RemoteUrl>,
    /// The digest the fetched filter must have [default: the SHA-256 of
    /// --filter-wasm-file, else of challenge.filter_wasm_file].
    #[arg(long, value_name = "HEX", requires = "filter_url", value_parser = parse_sha256)]
    pub filter_sha256: Option<Sha256>,
    /// A filter build to take the digest from (printed on standard error).
    #[arg(
        long,
        value_name = "PATH",
        requires = "filter_url",
        conflicts_with = "filter_sha256"
    )]
    pub filter_wasm_file: Option<PathBuf>,
    /// Redirect plain HTTP to HTTPS (challenge paths excepted).
    #[arg(long)]
    pub https_redirect: bool,
    /// Client connections over all listeners at once.
    #[arg(long, default_value_t = acme_edge_envoy_bootstrap::params::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: u64,
    /// Print JSON instead of YAML.
    #[arg(long)]
    pub json: bool,
}

fn parse_upstream(s: &str) -> Result<Upstream, String> {
    Upstream::parse(s).map_err(|e| e.to_string())
}

fn parse_sds(s: &str) -> Result<Sds, String> {
    match s.strip_prefix("unix:") {
        Some(path) if Path::new(path).is_absolute() => Ok(Sds::Unix(PathBuf::from(path))),
        Some(_) => Err("a Unix socket path must be absolute".to_owned()),
        None => Ok(Sds::Tcp {
            upstream: parse_upstream(s)?,
            tls: None,
        }),
    }
}

fn parse_settings(s: &str) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    Filter::parse_settings(s).map_err(|e| e.to_string())
}

fn parse_url(s: &str) -> Result<RemoteUrl, String> {
    RemoteUrl::parse(s).map_err(|e| e.to_string())
}

fn parse_sha256(s: &str) -> Result<Sha256, String> {
    Sha256::parse(s).map_err(|e| e.to_string())
}

/// Why no bootstrap was printed, and the exit code.
#[derive(Debug, thiserror::Error)]
pub enum EnvoyConfigError {
    #[error("{0}")]
    Flags(String),
    #[error("{0}")]
    Config(String),
}

impl EnvoyConfigError {
    pub fn exit_code(&self) -> u8 {
        match self {
            EnvoyConfigError::Flags(_) => EXIT_BAD_FLAGS,
            EnvoyConfigError::Config(_) => EXIT_BAD_CONFIG,
        }
    }
}

/// The bootstrap text for `args`.
pub fn render(args: EnvoyConfigArgs) -> Result<String, EnvoyConfigError> {
    let config = match &args.config {
        None => None,
        Some(path) => Some(
            Config::load(path)
                .map_err(|e| EnvoyConfigError::Config(format!("{}: {e}", path.display())))?,
        ),
    };
    let bootstrap = bootstrap(&args, config.as_ref())?;
    Ok(if args.json {
        bootstrap.to_json()
    } else {
        bootstrap.to_yaml()
    })
}

fn bootstrap(
    args: &EnvoyConfigArgs,
    config: Option<&Config>,
) -> Result<Bootstrap, EnvoyConfigError> {
    let challenge_backend = match (&args.challenge_backend, config) {
        (Some(upstream), _) => upstream.clone(),
        (None, Some(config)) => Upstream::from(reachable(config.challenge.listen)),
        (None, None) => Bootstrap::default().challenge_backend,
    };
    let https = if args.no_https {
        None
    } else {
        Some(Https {
            listen: Listen::from(args.https_listen),
            sds: with_client_tls(sds(args, config), args)?,
        })
    };
    Ok(Bootstrap {
        node_id: args.node_id.clone(),
        node_cluster: args.node_cluster.clone(),
        admin: args.admin_listen,
        http: Listen::from(args.http_listen),
        https,
        https_redirect: args.https_redirect,
        challenge_backend,
        filter: Some(Filter {
            source: filter_source(args, config)?,
            settings: args.filter_settings.clone(),
        }),
        max_connections: args.max_connections,
    })
}

/// Where the SDS listener is: the flag, else `sds.listen`, else the default socket.
fn sds(args: &EnvoyConfigArgs, config: Option<&Config>) -> Sds {
    match (&args.sds, config) {
        (Some(sds), _) => sds.clone(),
        (None, Some(config)) => match &config.sds.listen {
            SdsListen::Unix(path) => Sds::Unix(path.clone()),
            SdsListen::Tcp(addr) => Sds::Tcp {
                upstream: Upstream::from(reachable(*addr)),
                tls: None,
            },
        },
        (None, None) => Sds::Unix(PathBuf::from(
            acme_edge_envoy_bootstrap::params::DEFAULT_SDS_SOCKET,
        )),
    }
}

fn with_client_tls(sds: Sds, args: &EnvoyConfigArgs) -> Result<Sds, EnvoyConfigError> {
    let (Some(chain), Some(key), Some(ca), Some(name)) = (
        &args.sds_client_cert,
        &args.sds_client_key,
        &args.sds_ca,
        &args.sds_server_name,
    ) else {
        return Ok(sds);
    };
    match sds {
        Sds::Unix(_) => Err(EnvoyConfigError::Flags(
            "--sds-client-cert is for a TCP SDS listener (--sds HOST:PORT)".to_owned(),
        )),
        Sds::Tcp { upstream, .. } => Ok(Sds::Tcp {
            upstream,
            tls: Some(SdsClientTls {
                chain_file: chain.clone(),
                key_file: key.clone(),
                ca_file: ca.clone(),
                server_name: name.clone(),
            }),
        }),
    }
}

fn filter_source(
    args: &EnvoyConfigArgs,
    config: Option<&Config>,
) -> Result<FilterSource, EnvoyConfigError> {
    let Some(url) = &args.filter_url else {
        return Ok(FilterSource::Local(args.filter_wasm.clone()));
    };
    let sha256 = match (
        &args.filter_sha256,
        &args.filter_wasm_file,
        config.and_then(|c| c.challenge.filter.as_ref()),
    ) {
        (Some(sha), _, _) => sha.clone(),
        (None, Some(path), _) => {
            let build = FilterBuild::read(path).map_err(|e| {
                EnvoyConfigError::Flags(format!("--filter-wasm-file {}: {e}", path.display()))
            })?;
            digest(&build.sha256, path)?
        }
        (None, None, Some(build)) => digest(&build.sha256, &build.path)?,
        (None, None, None) => {
            return Err(EnvoyConfigError::Flags(
                "--filter-url needs the filter's digest: --filter-sha256 HEX, --filter-wasm-file PATH, or --config with challenge.filter_wasm_file".to_owned(),
            ));
        }
    };
    Ok(FilterSource::Remote {
        url: url.clone(),
        sha256,
    })
}

/// The digest of a build read here, printed on standard error for the operator to compare
/// with the backend's `/acme-edge/v1/filter.wasm.sha256`.
fn digest(hex: &str, path: &Path) -> Result<Sha256, EnvoyConfigError> {
    eprintln!("filter sha256 {hex} ({})", path.display());
    Sha256::parse(hex).map_err(|e| EnvoyConfigError::Flags(e.to_string()))
}

/// A listener's address as a client on the same host reaches it (a wildcard is loopback).
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    }
}

/// The digest the backend computes for a build, for tests.
pub fn sha256_of(bytes: &[u8]) -> String {
    sha256_hex(bytes)
}
