//! Where the SDS server listens: a Unix domain socket for an Envoy on the same host (the
//! default), or TCP.
//!
//! The socket hands out every private key, so the file system guards it: it is created with
//! mode 0660 and, when a group is configured, handed to that group (the one Envoy runs as),
//! so only Envoy's user, the service's own user and root can connect. A socket file left by a
//! process that is gone is replaced; one another process still answers on is refused, since
//! taking it over would cut that process's Envoys off.

use std::path::{Path, PathBuf};

use tokio::net::{TcpListener, UnixListener, UnixStream};

/// Mode of the SDS socket: owner and group may connect, nobody else.
pub const SOCKET_MODE: u32 = 0o660;

/// A bound SDS listener.
#[derive(Debug)]
pub enum SdsListener {
    Tcp(TcpListener),
    /// The socket file is removed when the listener is dropped.
    Unix(UnixSocket),
}

impl SdsListener {
    /// Where it listens, for logs: `127.0.0.1:18000` or `unix:/run/acme-edge/sds.sock`.
    pub fn describe(&self) -> String {
        match self {
            SdsListener::Tcp(listener) => listener
                .local_addr()
                .map_or_else(|_| "tcp".to_owned(), |addr| addr.to_string()),
            SdsListener::Unix(socket) => format!("unix:{}", socket.path.display()),
        }
    }
}

/// A listening Unix socket and its file.
#[derive(Debug)]
pub struct UnixSocket {
    pub(super) listener: UnixListener,
    path: PathBuf,
}

impl UnixSocket {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for UnixSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The socket could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SocketError {
    #[error("{path}: another process is serving on this socket")]
    InUse { path: PathBuf },
    #[error("{path} exists and is not a socket; remove it or choose another sds.listen")]
    NotASocket { path: PathBuf },
    #[error("{path}: {what}: {source}")]
    Io {
        path: PathBuf,
        what: &'static str,
        source: std::io::Error,
    },
}

/// Listen on the Unix socket `path` (mode [`SOCKET_MODE`], group `gid` when given).
pub async fn bind_unix(path: &Path, gid: Option<u32>) -> Result<UnixSocket, SocketError> {
    let io = |what: &'static str| {
        move |source| SocketError::Io {
            path: path.to_owned(),
            what,
            source,
        }
    };
    clear_stale(path).await?;
    let listener = UnixListener::bind(path).map_err(io("binding"))?;
    // Owned first (nothing is lost if what follows fails: the file is removed on drop).
    let socket = UnixSocket {
        listener,
        path: path.to_owned(),
    };
    if let Some(gid) = gid {
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(io("handing to the group"))?;
    }
    // After the group: until now the umask kept the socket to its owner.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE))
        .map_err(io("setting its mode"))?;
    Ok(socket)
}

/// Remove a socket file nobody answers on; refuse one that is live or not a socket.
async fn clear_stale(path: &Path) -> Result<(), SocketError> {
    use std::os::unix::fs::FileTypeExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(SocketError::Io {
                path: path.to_owned(),
                what: "reading",
                source,
            });
        }
    };
    if !meta.file_type().is_socket() {
        return Err(SocketError::NotASocket {
            path: path.to_owned(),
        });
    }
    if UnixStream::connect(path).await.is_ok() {
        return Err(SocketError::InUse {
            path: path.to_owned(),
        });
    }
    std::fs::remove_file(path).map_err(|source| SocketError::Io {
        path: path.to_owned(),
        what: "removing the stale socket",
        source,
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use super::*;

    #[tokio::test]
    async fn the_socket_is_for_owner_and_group_only_and_removed_after_use() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sds.sock");
        let gid = nix::unistd::getegid().as_raw();
        let socket = bind_unix(&path, Some(gid)).await.unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, SOCKET_MODE);
        assert_eq!(meta.gid(), gid);
        drop(socket);
        assert!(!path.exists(), "the socket file goes with the listener");
    }

    #[tokio::test]
    async fn a_stale_socket_is_replaced_and_a_live_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sds.sock");
        // A socket file nobody listens on any more (its process was killed).
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let live = bind_unix(&path, None).await.unwrap();
        let refused = bind_unix(&path, None).await.unwrap_err();
        assert!(matches!(refused, SocketError::InUse { .. }), "{refused}");
        drop(live);

        std::fs::write(&path, "not a socket").unwrap();
        let refused = bind_unix(&path, None).await.unwrap_err();
        assert!(
            matches!(refused, SocketError::NotASocket { .. }),
            "{refused}"
        );
    }
}
