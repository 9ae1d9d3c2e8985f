//! The admin API's bearer token: from the configuration, from a file, or generated on first
//! start into a file next to the database (mode 0600) and printed once.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::config::{Config, MIN_TOKEN_LEN};

/// Random bytes in a generated token: 256 bits.
const GENERATED_TOKEN_BYTES: usize = 32;

/// The token could not be read or created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    #[error("reading the admin token file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing the admin token file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the admin token in {0} is shorter than {MIN_TOKEN_LEN} characters")]
    TooShort(PathBuf),
}

/// The bearer token operators must present.
#[derive(Clone)]
pub struct AdminToken(Arc<str>);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

impl AdminToken {
    pub fn new(token: &str) -> AdminToken {
        AdminToken(Arc::from(token.trim()))
    }

    /// The configured token, or the token file's, or a new one written to the token file.
    pub fn resolve(config: &Config) -> Result<AdminToken, TokenError> {
        if let Some(token) = &config.admin.token {
            return Ok(AdminToken::new(token));
        }
        let path = config.token_file();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let token = AdminToken::new(&text);
                if token.0.len() < MIN_TOKEN_LEN {
                    return Err(TokenError::TooShort(path));
                }
                warn_if_readable_by_others(&path);
                Ok(token)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => generate(&path),
            Err(source) => Err(TokenError::Read { path, source }),
        }
    }

    /// Does an `Authorization` header value carry this token?
    pub fn accepts(&self, authorization: Option<&str>) -> bool {
        let Some(presented) = authorization.and_then(|h| h.strip_prefix("Bearer ")) else {
            return false;
        };
        constant_time_eq(presented.trim().as_bytes(), self.0.as_bytes())
    }
}

fn generate(path: &Path) -> Result<AdminToken, TokenError> {
    let bytes: [u8; GENERATED_TOKEN_BYTES] = rand::random();
    let token = URL_SAFE_NO_PAD.encode(bytes);
    write_private(path, &token).map_err(|source| TokenError::Write {
        path: path.to_owned(),
        source,
    })?;
    // Printed once, on creation, so the operator can pick it up; afterwards only the file
    // holds it.
    println!(
        "acme-edge: generated admin token (saved in {}): {token}",
        path.display()
    );
    tracing::info!(file = %path.display(), "generated the admin API token");
    Ok(AdminToken::new(&token))
}

fn write_private(path: &Path, token: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = options.open(path)?;
    file.write_all(token.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(file = %path.display(), "admin token file is readable by group or others; chmod 600 it");
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_in(dir: &Path) -> Config {
        let text = format!(
            "[acme]\nterms_agreed = true\n[storage]\nurl = \"sqlite://{}/db.sqlite\"\n",
            dir.display()
        );
        Config::parse(&text, |_| None).unwrap()
    }

    #[test]
    fn generates_once_with_private_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_in(dir.path());
        let first = AdminToken::resolve(&config).unwrap();
        let path = dir.path().join("admin-token");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let second = AdminToken::resolve(&config).unwrap();
        assert_eq!(first.0, second.0, "the stored token is reused");
        assert!(first.0.len() >= 40);
    }

    #[test]
    fn checks_the_header() {
        let t = AdminToken::new("0123456789abcdef");
        assert!(t.accepts(Some("Bearer 0123456789abcdef")));
        assert!(!t.accepts(Some("Bearer 0123456789abcdeF")));
        assert!(!t.accepts(Some("Basic 0123456789abcdef")));
        assert!(!t.accepts(Some("Bearer ")));
        assert!(!t.accepts(None));
    }
}
