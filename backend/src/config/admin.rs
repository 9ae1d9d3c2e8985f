//! `[admin]`: the operator API and its bearer token.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{ListenerLimits, Problems, Secret, StorageConfig, TlsIdentity};

/// Default `admin.listen`: loopback only, the API is for operators on the host.
pub const DEFAULT_ADMIN_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080));
/// Name of the generated admin token file, next to the database, when `admin.token` and
/// `admin.token_file` are both absent.
pub const DEFAULT_TOKEN_FILE_NAME: &str = "admin-token";
/// Shortest admin token accepted: 16 characters leave brute force hopeless over HTTP.
pub const MIN_TOKEN_LEN: usize = 16;
/// Default `admin.metrics_require_token`: off, since Prometheus scrapers usually carry no
/// token.
pub const DEFAULT_METRICS_REQUIRE_TOKEN: bool = false;
/// Default `admin.console_dir`: a directory of this name beside the `acme-edge` binary
/// (where `cargo xtask build` and the distribution put the web console).
pub const DEFAULT_CONSOLE_DIR_NAME: &str = "console";

/// `[admin]` as written; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AdminSection {
    /// Default [`DEFAULT_ADMIN_LISTEN`].
    listen: Option<SocketAddr>,
    /// The bearer token; or `token_file`, not both.
    token: Option<Secret<String>>,
    /// File holding the token; generated (mode 0600) when it does not exist. Default:
    /// [`DEFAULT_TOKEN_FILE_NAME`] next to the database.
    token_file: Option<PathBuf>,
    /// Require the token on `/metrics` too. Default [`DEFAULT_METRICS_REQUIRE_TOKEN`].
    metrics_require_token: Option<bool>,
    /// TLS for the admin API (both or neither): its PEM certificate chain and key.
    tls_cert_file: Option<PathBuf>,
    tls_key_file: Option<PathBuf>,
    /// The web console's files. Default: [`DEFAULT_CONSOLE_DIR_NAME`] beside the binary.
    console_dir: Option<PathBuf>,
    /// The listener's bounds ([`ListenerLimits`]).
    max_connections: Option<usize>,
    header_read_timeout_secs: Option<u64>,
    idle_timeout_secs: Option<u64>,
}

impl AdminSection {
    pub(super) fn listen(&self) -> SocketAddr {
        self.listen.unwrap_or(DEFAULT_ADMIN_LISTEN)
    }
}

/// `[admin]`: the operator API.
#[derive(Debug, Clone, PartialEq)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    /// `token`, or `token_file` (by default next to the SQLite database).
    pub token: TokenSource,
    pub metrics_require_token: bool,
    pub limits: ListenerLimits,
    /// What `tls_cert_file` and `tls_key_file` hold: the API is served over TLS.
    pub tls: Option<TlsIdentity>,
    /// Where the web console's files are read from at start-up.
    pub console_dir: ConsoleDir,
}

/// `admin.console_dir`, or the default beside the binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleDir {
    path: PathBuf,
    configured: bool,
}

impl ConsoleDir {
    /// Set by `admin.console_dir`: the console must be there.
    pub fn configured(path: impl Into<PathBuf>) -> ConsoleDir {
        ConsoleDir {
            path: path.into(),
            configured: true,
        }
    }

    /// The default place: no console there is no error (the binary was built without it).
    pub fn default_at(path: impl Into<PathBuf>) -> ConsoleDir {
        ConsoleDir {
            path: path.into(),
            configured: false,
        }
    }

    /// [`DEFAULT_CONSOLE_DIR_NAME`] beside the running binary.
    fn beside_binary() -> ConsoleDir {
        let dir = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(Path::to_path_buf))
            .unwrap_or_default();
        ConsoleDir::default_at(dir.join(DEFAULT_CONSOLE_DIR_NAME))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn is_configured(&self) -> bool {
        self.configured
    }
}

/// Where the admin API's bearer token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// `admin.token`, at least [`MIN_TOKEN_LEN`] characters.
    Value(Secret<String>),
    /// `admin.token_file`, or [`DEFAULT_TOKEN_FILE_NAME`] next to the SQLite database (in
    /// the working directory with PostgreSQL): read, or generated on first start.
    File(PathBuf),
}

impl AdminConfig {
    /// The section's values, defaults filled in; `None` when one of them is reported, or
    /// when the token file's place depends on a storage section that was.
    pub(super) fn from_section(
        s: AdminSection,
        storage: Option<&StorageConfig>,
        problems: &mut Problems,
    ) -> Option<AdminConfig> {
        let listen = s.listen();
        let token = match (s.token, s.token_file) {
            (Some(token), file) => {
                let mut ok = true;
                if file.is_some() {
                    problems.push(
                        "admin.token",
                        "set admin.token or admin.token_file, not both",
                    );
                    ok = false;
                }
                if token.expose().trim().len() < MIN_TOKEN_LEN {
                    problems.push(
                        "admin.token",
                        format!("must be at least {MIN_TOKEN_LEN} characters"),
                    );
                    ok = false;
                }
                ok.then_some(TokenSource::Value(token))
            }
            (None, Some(file)) => Some(TokenSource::File(file)),
            (None, None) => {
                let dir = storage?
                    .sqlite_path()
                    .and_then(Path::parent)
                    .unwrap_or(Path::new(""));
                Some(TokenSource::File(dir.join(DEFAULT_TOKEN_FILE_NAME)))
            }
        };
        let limits = ListenerLimits::from_keys(
            "admin",
            s.max_connections,
            s.header_read_timeout_secs,
            s.idle_timeout_secs,
            problems,
        );
        let tls = super::tls::load_identity(
            ("admin.tls_cert_file", &s.tls_cert_file),
            ("admin.tls_key_file", &s.tls_key_file),
            problems,
        );
        let console_dir = s
            .console_dir
            .map(ConsoleDir::configured)
            .unwrap_or_else(ConsoleDir::beside_binary);
        Some(AdminConfig {
            listen,
            console_dir,
            limits: limits?,
            tls: tls?,
            token: token?,
            metrics_require_token: s
                .metrics_require_token
                .unwrap_or(DEFAULT_METRICS_REQUIRE_TOKEN),
        })
    }
}
