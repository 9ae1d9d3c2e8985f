//! The admin API's bearer token: from the configuration, from a file, or generated on first
//! start into a file next to the database (mode 0600, in a directory of mode 0700).
//!
//! The token is never printed or logged (standard output and error end up in journald or
//! container logs); only its file's path is. A token file that others could read, or that
//! belongs to another user, is refused: whoever can read it can take every certificate.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use warp::{Filter, Rejection};

use super::error::ApiError;
use crate::config::TokenSource;
use crate::config::admin::MIN_TOKEN_LEN;

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
    #[error(
        "the admin token file {path} is readable by group or others (mode {mode:03o}); \
         run chmod 600 on it"
    )]
    Exposed { path: PathBuf, mode: u32 },
    #[error(
        "the admin token file {path} belongs to user {owner}, not to this process's user \
         {user}; chown it"
    )]
    ForeignOwner {
        path: PathBuf,
        owner: u32,
        user: u32,
    },
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
    pub fn resolve(source: &TokenSource) -> Result<AdminToken, TokenError> {
        let path = match source {
            TokenSource::Value(token) => return Ok(AdminToken::new(token.expose())),
            TokenSource::File(path) => path.clone(),
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let token = AdminToken::new(&text);
                if token.0.len() < MIN_TOKEN_LEN {
                    return Err(TokenError::TooShort(path));
                }
                check_private(&path)?;
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

/// Passes only with the right bearer token.
pub fn authorized(token: AdminToken) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::header::optional::<String>("authorization")
        .and_then(move |header: Option<String>| {
            let ok = token.accepts(header.as_deref());
            async move {
                if ok {
                    Ok(())
                } else {
                    Err(warp::reject::custom(ApiError::Unauthorized))
                }
            }
        })
        .untuple_one()
}

fn generate(path: &Path) -> Result<AdminToken, TokenError> {
    let bytes: [u8; GENERATED_TOKEN_BYTES] = rand::random();
    let token = URL_SAFE_NO_PAD.encode(bytes);
    write_private(path, &token).map_err(|source| TokenError::Write {
        path: path.to_owned(),
        source,
    })?;
    // Only the path: the operator reads the token from the file.
    println!(
        "acme-edge: generated an admin token in {} (mode 0600)",
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
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        builder.create(dir)?;
    }
    let mut file = options.open(path)?;
    file.write_all(token.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

/// Refuse a token file others can read or that another user owns.
fn check_private(path: &Path) -> Result<(), TokenError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path).map_err(|source| TokenError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mode = meta.mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(TokenError::Exposed {
                path: path.to_owned(),
                mode,
            });
        }
        let user = nix::unistd::geteuid().as_raw();
        if meta.uid() != user {
            return Err(TokenError::ForeignOwner {
                path: path.to_owned(),
                owner: meta.uid(),
                user,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
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
    use crate::config::Config;

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
        let first = AdminToken::resolve(&config.admin.token).unwrap();
        let path = dir.path().join("admin-token");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let second = AdminToken::resolve(&config.admin.token).unwrap();
        assert_eq!(first.0, second.0, "the stored token is reused");
        assert!(first.0.len() >= 40);
    }

    #[cfg(unix)]
    #[test]
    fn refuses_a_token_file_others_can_read() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let config = config_in(dir.path());
        AdminToken::resolve(&config.admin.token).unwrap();
        let path = dir.path().join("admin-token");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let refused = AdminToken::resolve(&config.admin.token).unwrap_err();
        assert!(
            matches!(refused, TokenError::Exposed { mode: 0o640, .. }),
            "{refused}"
        );
        assert!(refused.to_string().contains("chmod 600"));
    }

    #[cfg(unix)]
    #[test]
    fn refuses_a_token_file_another_user_owns() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_in(dir.path());
        AdminToken::resolve(&config.admin.token).unwrap();
        let path = dir.path().join("admin-token");
        // Only root can hand a file to another user; elsewhere there is nothing to test.
        if std::os::unix::fs::chown(&path, Some(4242), None).is_err() {
            eprintln!("not root: cannot make a file another user owns; skipped");
            return;
        }
        let refused = AdminToken::resolve(&config.admin.token).unwrap_err();
        assert!(
            matches!(refused, TokenError::ForeignOwner { owner: 4242, .. }),
            "{refused}"
        );
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
