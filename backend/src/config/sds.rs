//! `[sds]`: the Secret Discovery Service Envoy fetches certificates from, and its mutual TLS
//! files, read and checked here once so that the service only uses what was loaded.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::problems::Problems;
use super::tls::{key_matches, pem_certificates, pem_private_key};

/// Default `sds.listen`: a Unix domain socket, since the service hands out private keys and
/// the file system can say who may connect (mode 0660, `sds.socket_group`). The directory is
/// the systemd unit's `RuntimeDirectory`. Across hosts, use TCP with mutual TLS.
pub const DEFAULT_SDS_SOCKET: &str = "/run/acme-edge/sds.sock";
/// Default `sds.max_names_per_proxy`: Envoy 1.40 keeps about 46 KiB per certificate name it
/// has served (its TLS context, stats and SDS stream), so 3,000 names keep an Envoy's
/// certificate memory near 135 MiB.
pub const DEFAULT_MAX_NAMES_PER_PROXY: usize = 3_000;
/// Longest Unix socket path (`sun_path` is 108 bytes with its terminating NUL on Linux).
pub const MAX_SOCKET_PATH_LEN: usize = 107;

/// Where the SDS server listens: `unix:/PATH` or `IP:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SdsListen {
    /// A Unix domain socket, for an Envoy on the same host.
    Unix(PathBuf),
    /// TCP: loopback, or mutual TLS (or, for a lab only, `sds.insecure_plaintext`).
    Tcp(SocketAddr),
}

impl SdsListen {
    /// `unix:/PATH` (absolute) or `IP:PORT`.
    pub fn parse(text: &str) -> Result<SdsListen, String> {
        if let Some(path) = text.strip_prefix("unix:") {
            let path = PathBuf::from(path);
            if !path.is_absolute() {
                return Err(format!("{text:?}: the socket path must be absolute"));
            }
            if path.as_os_str().len() > MAX_SOCKET_PATH_LEN {
                return Err(format!(
                    "{text:?}: a socket path may have at most {MAX_SOCKET_PATH_LEN} bytes"
                ));
            }
            return Ok(SdsListen::Unix(path));
        }
        text.parse()
            .map(SdsListen::Tcp)
            .map_err(|_| format!("{text:?} is neither unix:/PATH (a Unix socket) nor IP:PORT"))
    }

    /// The TCP address, for the check that listeners do not share one.
    pub fn tcp(&self) -> Option<SocketAddr> {
        match self {
            SdsListen::Tcp(addr) => Some(*addr),
            SdsListen::Unix(_) => None,
        }
    }
}

impl std::fmt::Display for SdsListen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SdsListen::Unix(path) => write!(f, "unix:{}", path.display()),
            SdsListen::Tcp(addr) => write!(f, "{addr}"),
        }
    }
}

/// The SDS listener's TLS material (PEM): its certificate chain and key, and the CA that
/// signs the client certificates of the Envoys allowed to fetch secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerTls {
    pub cert_pem: String,
    pub key_pem: String,
    pub client_ca_pem: String,
}

impl std::fmt::Debug for ServerTls {
    // Never print the private key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").finish_non_exhaustive()
    }
}

/// `[sds]` as written; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SdsSection {
    /// `unix:/PATH` or `IP:PORT`; default `unix:` [`DEFAULT_SDS_SOCKET`].
    listen: Option<String>,
    /// The group the Unix socket is handed to (a name or a number): the group Envoy runs
    /// as. Default: the service's own group.
    socket_group: Option<String>,
    /// Serve private keys over plain TCP on a non-loopback address. For a lab only: anyone
    /// who can reach the port gets every key.
    insecure_plaintext: Option<bool>,
    /// Mutual TLS (all three or none): the listener's certificate chain (PEM) ...
    tls_cert_file: Option<PathBuf>,
    /// ... its private key (PEM) ...
    tls_key_file: Option<PathBuf>,
    /// ... and the CA (PEM) whose client certificates Envoys must present to get secrets.
    client_ca_file: Option<PathBuf>,
    /// Most certificate names one Envoy holds; beyond it the least recently requested are
    /// removed from it. 0: no bound. Default [`DEFAULT_MAX_NAMES_PER_PROXY`].
    max_names_per_proxy: Option<usize>,
}

impl SdsSection {
    /// The listen address as written, parsed (`None` when it does not parse: reported by
    /// [`SdsConfig::from_section`]).
    pub(super) fn listen(&self) -> Option<SdsListen> {
        match &self.listen {
            None => Some(default_listen()),
            Some(text) => SdsListen::parse(text).ok(),
        }
    }
}

/// `[sds]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdsConfig {
    pub listen: SdsListen,
    /// The Unix socket's group id (`socket_group`); `None`: the service's own group.
    pub socket_group: Option<u32>,
    /// What `tls_cert_file`, `tls_key_file` and `client_ca_file` hold; `None` without them.
    pub tls: Option<ServerTls>,
    /// `insecure_plaintext`: private keys over plain TCP off loopback were allowed.
    pub insecure_plaintext: bool,
    /// Most names one Envoy holds (0: no bound).
    pub max_names_per_proxy: usize,
}

impl SdsConfig {
    /// The section's values, the TLS files read and checked; `None` when one of them is
    /// reported.
    pub(super) fn from_section(s: SdsSection, problems: &mut Problems) -> Option<SdsConfig> {
        let listen = match &s.listen {
            None => Some(default_listen()),
            Some(text) => problems.check("sds.listen", SdsListen::parse(text)),
        };
        let socket_group = s
            .socket_group
            .as_deref()
            .map(|group| problems.check("sds.socket_group", resolve_group(group)));
        let tls = load_tls(&s, problems);
        let insecure_plaintext = s.insecure_plaintext.unwrap_or(false);
        let (listen, tls) = (listen?, tls?);
        let socket_group = match socket_group {
            Some(gid) => Some(gid?),
            None => None,
        };
        check_exposure(
            &listen,
            socket_group,
            tls.is_some(),
            insecure_plaintext,
            problems,
        )?;
        Some(SdsConfig {
            listen,
            socket_group,
            tls,
            insecure_plaintext,
            max_names_per_proxy: s.max_names_per_proxy.unwrap_or(DEFAULT_MAX_NAMES_PER_PROXY),
        })
    }
}

fn default_listen() -> SdsListen {
    SdsListen::Unix(PathBuf::from(DEFAULT_SDS_SOCKET))
}

/// A group name or number, as a group id that exists on this host.
fn resolve_group(group: &str) -> Result<u32, String> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(group) {
        Ok(Some(found)) => Ok(found.gid.as_raw()),
        Ok(None) => Err(format!("no group named {group:?} on this host")),
        Err(e) => Err(format!("looking up group {group:?}: {e}")),
    }
}

/// Who could fetch private keys from this listener: refuse what would let anyone.
fn check_exposure(
    listen: &SdsListen,
    socket_group: Option<u32>,
    mutual_tls: bool,
    insecure_plaintext: bool,
    problems: &mut Problems,
) -> Option<()> {
    match listen {
        SdsListen::Unix(_) if mutual_tls => problems.check(
            "sds.tls_cert_file",
            Err(
                "mutual TLS is for a TCP listener; a Unix socket is guarded by its mode and \
                 group",
            ),
        ),
        SdsListen::Tcp(_) if socket_group.is_some() => problems.check(
            "sds.socket_group",
            Err("applies to a Unix socket (sds.listen = \"unix:/PATH\") only"),
        ),
        SdsListen::Tcp(addr) if !addr.ip().is_loopback() && !mutual_tls && !insecure_plaintext => {
            problems.check(
                "sds.listen",
                Err(format!(
                    "{addr} is not loopback, and the SDS listener hands out every private key: \
                     set sds.tls_cert_file, sds.tls_key_file and sds.client_ca_file (mutual \
                     TLS), or listen on a Unix socket (unix:{DEFAULT_SDS_SOCKET}); \
                     sds.insecure_plaintext = true allows it for a lab only"
                )),
            )
        }
        _ => Some(()),
    }
}

/// The listener's mutual-TLS material, read from the files and checked (the chain and key
/// parse and belong together, the CA parses): `Some(None)` without TLS keys, `None` when a
/// problem is reported, under its key.
fn load_tls(s: &SdsSection, problems: &mut Problems) -> Option<Option<ServerTls>> {
    let files = [
        ("sds.tls_cert_file", &s.tls_cert_file),
        ("sds.tls_key_file", &s.tls_key_file),
        ("sds.client_ca_file", &s.client_ca_file),
    ];
    if files.iter().all(|(_, f)| f.is_none()) {
        return Some(None);
    }
    for (key, file) in &files {
        if file.is_none() {
            problems.push(
                key,
                "is required for mutual TLS: set sds.tls_cert_file, sds.tls_key_file and \
                 sds.client_ca_file together, or none of them",
            );
        }
    }
    let (Some(cert), Some(key), Some(ca)) = (&s.tls_cert_file, &s.tls_key_file, &s.client_ca_file)
    else {
        return None;
    };
    let chain = pem_certificates("sds.tls_cert_file", cert, problems);
    let private_key = pem_private_key("sds.tls_key_file", key, problems);
    let roots = pem_certificates("sds.client_ca_file", ca, problems);
    let ((cert_pem, chain), (key_pem, private_key), (client_ca_pem, _)) =
        (chain?, private_key?, roots?);
    problems.check("sds.tls_key_file", key_matches(chain, private_key))?;
    Some(Some(ServerTls {
        cert_pem,
        key_pem,
        client_ca_pem,
    }))
}
