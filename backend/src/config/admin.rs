//! `[admin]`: the operator API and its bearer token.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::problems::Problems;
use super::{ListenerLimits, Secret, StorageConfig, TlsIdentity};

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
/// (where `cargo xtask build` and the distribution put the web console), else
/// [`INSTALLED_CONSOLE_DIR`].
pub const DEFAULT_CONSOLE_DIR_NAME: &str = "console";
/// Default `admin.console_dir` when there is no console beside the binary: this directory
/// under the binary's installation prefix (the parent of its directory), as programs find
/// their data under `share/` beside `bin/`. `/usr/local/bin/acme-edge` looks in
/// `/usr/local/share/acme-edge/console`, where the container image and the install steps put
/// it.
pub const INSTALLED_CONSOLE_DIR: &str = "share/acme-edge/console";

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
    /// The web console's files. Default: [`DEFAULT_CONSOLE_DIR_NAME`] beside the binary, else
    /// [`INSTALLED_CONSOLE_DIR`] under its prefix.
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

/// `admin.console_dir`, or the default found from the binary's place.
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

    /// The default for the running binary ([`ConsoleDir::default_for`]).
    fn default_for_this_binary() -> ConsoleDir {
        let exe = std::env::current_exe().unwrap_or_default();
        ConsoleDir::default_for(&exe)
    }

    /// The default for the binary at `exe`: [`DEFAULT_CONSOLE_DIR_NAME`] beside it, else
    /// [`INSTALLED_CONSOLE_DIR`] under its prefix when a console is there (a page to serve:
    /// `index.html`), else the first, where finding none is no error.
    pub fn default_for(exe: &Path) -> ConsoleDir {
        let bin_dir = exe.parent().unwrap_or(Path::new(""));
        let beside = bin_dir.join(DEFAULT_CONSOLE_DIR_NAME);
        let installed = bin_dir
            .parent()
            .map(|prefix| prefix.join(INSTALLED_CONSOLE_DIR));
        let chosen = match installed {
            Some(dir) if !has_console(&beside) && has_console(&dir) => dir,
            _ => beside,
        };
        ConsoleDir::default_at(chosen)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn is_configured(&self) -> bool {
        self.configured
    }
}

/// Whether `dir` holds a console's page.
fn has_console(dir: &Path) -> bool {
    dir.join(CONSOLE_PAGE).is_file()
}

/// The file that makes a directory a console (the backend serves it at `/console/`).
const CONSOLE_PAGE: &str = "index.html";

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
            .unwrap_or_else(ConsoleDir::default_for_this_binary);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `prefix/bin/acme-edge`, with consoles at the given places under `prefix`.
    fn installed(consoles: &[&str]) -> (tempfile::TempDir, PathBuf) {
        let prefix = tempfile::tempdir().unwrap();
        for dir in consoles {
            let dir = prefix.path().join(dir);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(CONSOLE_PAGE), "<!doctype html>").unwrap();
        }
        let exe = prefix.path().join("bin/acme-edge");
        (prefix, exe)
    }

    #[test]
    fn the_default_console_is_beside_the_binary_else_under_its_prefix() {
        let (prefix, exe) = installed(&["bin/console", "share/acme-edge/console"]);
        let beside = prefix.path().join("bin/console");
        assert_eq!(
            ConsoleDir::default_for(&exe),
            ConsoleDir::default_at(&beside)
        );

        let (prefix, exe) = installed(&["share/acme-edge/console"]);
        let under_prefix = prefix.path().join("share/acme-edge/console");
        assert_eq!(
            ConsoleDir::default_for(&exe),
            ConsoleDir::default_at(under_prefix)
        );

        let (prefix, exe) = installed(&[]);
        let beside = prefix.path().join("bin/console");
        let found = ConsoleDir::default_for(&exe);
        assert_eq!(found, ConsoleDir::default_at(beside));
        assert!(!found.is_configured(), "no console by default is no error");
    }
}
