//! The parameters of one proxy's bootstrap: everything that differs between deployments.
//! Everything else (timeouts, limits, the on-demand certificate selector) is fixed in
//! [`crate::render`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use serde_json::{Map, Value};

use crate::BootstrapError;

/// Default `node.id`: set one per proxy in a fleet.
pub const DEFAULT_NODE_ID: &str = "acme-edge-proxy";
/// Default `node.cluster`.
pub const DEFAULT_NODE_CLUSTER: &str = "acme-edge";
/// Default admin address: loopback only (the admin interface can change and stop Envoy).
pub const DEFAULT_ADMIN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9901);
/// Default listener address: every IPv6 and (through `ipv4_compat`) IPv4 address.
pub const DUAL_STACK: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
/// Default plain-HTTP port (where CAs validate HTTP-01 challenges).
pub const DEFAULT_HTTP_PORT: u16 = 80;
/// Default HTTPS port.
pub const DEFAULT_HTTPS_PORT: u16 = 443;
/// Default backend challenge listener (the backend's default `challenge.listen`).
pub const DEFAULT_CHALLENGE_BACKEND: &str = "127.0.0.1:8081";
/// Default SDS socket (the backend's default `sds.listen`).
pub const DEFAULT_SDS_SOCKET: &str = "/run/acme-edge/sds.sock";
/// Default path of the filter build on each proxy.
pub const DEFAULT_FILTER_WASM: &str = "/usr/local/lib/acme-edge/acme_edge_filter.wasm";
/// Default bound on client connections over all listeners (the overload manager's).
pub const DEFAULT_MAX_CONNECTIONS: u64 = 50_000;

/// One proxy's bootstrap.
#[derive(Debug, Clone, PartialEq)]
pub struct Bootstrap {
    /// `node.id`: the SDS handshake needs it; one per proxy.
    pub node_id: String,
    pub node_cluster: String,
    pub admin: SocketAddr,
    /// The plain-HTTP listener (challenges, redirects).
    pub http: Listen,
    /// The HTTPS listener and where its certificates come from; `None`: plain HTTP only.
    pub https: Option<Https>,
    /// Answer non-challenge plain-HTTP requests with a redirect to HTTPS (runtime key
    /// `acme_edge.https_redirect` can change it while Envoy runs).
    pub https_redirect: bool,
    /// The backend's challenge listener (the filter's lookups).
    pub challenge_backend: Upstream,
    /// The challenge filter; `None`: Envoy without it (the benchmark's baseline).
    pub filter: Option<Filter>,
    /// Client connections over all listeners at once.
    pub max_connections: u64,
}

impl Default for Bootstrap {
    /// The production-shaped default: dual-stack listeners on 80 and 443, the backend on the
    /// same host (challenges on 127.0.0.1:8081, SDS over its Unix socket), the filter from a
    /// local file with all-default settings, no redirect.
    fn default() -> Bootstrap {
        Bootstrap {
            node_id: DEFAULT_NODE_ID.to_owned(),
            node_cluster: DEFAULT_NODE_CLUSTER.to_owned(),
            admin: DEFAULT_ADMIN,
            http: Listen::new(DUAL_STACK, DEFAULT_HTTP_PORT),
            https: Some(Https {
                listen: Listen::new(DUAL_STACK, DEFAULT_HTTPS_PORT),
                sds: Sds::Unix(PathBuf::from(DEFAULT_SDS_SOCKET)),
            }),
            https_redirect: false,
            challenge_backend: Upstream {
                host: "127.0.0.1".to_owned(),
                port: 8081,
            },
            filter: Some(Filter {
                source: FilterSource::Local(PathBuf::from(DEFAULT_FILTER_WASM)),
                settings: Map::new(),
            }),
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// A listener's address. `::` listens on both IPv6 and IPv4 (`ipv4_compat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen {
    pub address: IpAddr,
    pub port: u16,
}

impl Listen {
    pub fn new(address: IpAddr, port: u16) -> Listen {
        Listen { address, port }
    }

    /// Dual stack: the IPv6 wildcard, which takes IPv4 connections too.
    pub fn is_dual_stack(&self) -> bool {
        self.address == DUAL_STACK
    }
}

impl From<SocketAddr> for Listen {
    fn from(addr: SocketAddr) -> Listen {
        Listen::new(addr.ip(), addr.port())
    }
}

/// A host (DNS name or IP literal) and port Envoy connects to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub host: String,
    pub port: u16,
}

impl Upstream {
    /// `HOST:PORT` or `[IPV6]:PORT`.
    pub fn parse(s: &str) -> Result<Upstream, BootstrapError> {
        let bad = || BootstrapError::BadUpstream(s.to_owned());
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return Ok(addr.into());
        }
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        let port = port.parse().map_err(|_| bad())?;
        let name_ok = !host.is_empty()
            && host.len() <= 253
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        if !name_ok {
            return Err(bad());
        }
        Ok(Upstream {
            host: host.to_owned(),
            port,
        })
    }

    /// The host as an IP address, if it is one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

impl From<SocketAddr> for Upstream {
    fn from(addr: SocketAddr) -> Upstream {
        Upstream {
            host: addr.ip().to_string(),
            port: addr.port(),
        }
    }
}

/// The HTTPS listener.
#[derive(Debug, Clone, PartialEq)]
pub struct Https {
    pub listen: Listen,
    pub sds: Sds,
}

/// Where the backend's SDS listener is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sds {
    /// Its Unix socket (`sds.listen = "unix:/PATH"`), on the same host.
    Unix(PathBuf),
    /// A TCP address; across hosts with mutual TLS.
    Tcp {
        upstream: Upstream,
        tls: Option<SdsClientTls>,
    },
}

/// Mutual TLS from Envoy to the SDS listener: Envoy's client certificate, and the CA and
/// name it checks the listener's certificate against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdsClientTls {
    pub chain_file: PathBuf,
    pub key_file: PathBuf,
    pub ca_file: PathBuf,
    /// The name in the listener's certificate (also sent as SNI).
    pub server_name: String,
}

/// The challenge filter: its code and its settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub source: FilterSource,
    /// The filter's JSON settings (see the filter crate); empty for all defaults.
    pub settings: Map<String, Value>,
}

impl Filter {
    /// Settings from JSON text: an object, or empty text for all defaults.
    pub fn parse_settings(json: &str) -> Result<Map<String, Value>, BootstrapError> {
        if json.trim().is_empty() {
            return Ok(Map::new());
        }
        match serde_json::from_str::<Value>(json) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(_) => Err(BootstrapError::SettingsNotObject),
            Err(e) => Err(BootstrapError::BadSettings(e.to_string())),
        }
    }
}

/// Where Envoy gets the filter's code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterSource {
    /// A file on the proxy's host.
    Local(PathBuf),
    /// Fetched over HTTP (from the backend's challenge listener) and accepted only if its
    /// SHA-256 is this one.
    Remote { url: RemoteUrl, sha256: Sha256 },
}

/// An `http://HOST[:PORT]/PATH` URL Envoy fetches the filter from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteUrl {
    pub url: String,
    pub upstream: Upstream,
}

impl RemoteUrl {
    pub fn parse(url: &str) -> Result<RemoteUrl, BootstrapError> {
        let bad = |why: &str| BootstrapError::BadFilterUrl(url.to_owned(), why.to_owned());
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| bad("only http:// (the sha256 is what makes the code trusted)"))?;
        let (authority, path) = rest.split_at(rest.find('/').ok_or_else(|| bad("no path"))?);
        if path.len() < 2 || path.contains(char::is_whitespace) {
            return Err(bad("no path"));
        }
        let with_port = if authority.ends_with(']') || !authority.contains(':') {
            format!("{authority}:80")
        } else {
            authority.to_owned()
        };
        let upstream = Upstream::parse(&with_port).map_err(|_| bad("bad host or port"))?;
        Ok(RemoteUrl {
            url: url.to_owned(),
            upstream,
        })
    }
}

/// A SHA-256 digest, 64 lower-case hex digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sha256(String);

impl Sha256 {
    pub fn parse(hex: &str) -> Result<Sha256, BootstrapError> {
        let hex = hex.trim();
        if hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
            Ok(Sha256(hex.to_ascii_lowercase()))
        } else {
            Err(BootstrapError::BadSha256(hex.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}
