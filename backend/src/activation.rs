//! Listening sockets handed over by the service manager (systemd socket activation:
//! `LISTEN_FDS` descriptors from 3, named by `LISTEN_FDNAMES`; `LISTEN_PID` checked when
//! set).
//!
//! A socket the service manager holds stays open while the process restarts: connections
//! wait in its backlog instead of being refused. For the challenge lookup this means that a
//! CA validating while the backend restarts gets its answer a moment late (within the
//! filter's lookup timeout) rather than a failed validation.

use std::net::TcpListener;

use listenfd::ListenFd;

/// The socket names this process takes (`FileDescriptorName=` in the socket unit).
pub const CHALLENGE: &str = "challenge";
pub const ADMIN: &str = "admin";
const KNOWN: [&str; 2] = [CHALLENGE, ADMIN];

#[derive(Debug, thiserror::Error)]
pub enum ActivationError {
    #[error(
        "the service manager passed {passed} socket(s) named {names:?}: acme-edge takes \
         sockets named `challenge` and `admin` (FileDescriptorName= in the socket unit)"
    )]
    Unknown { passed: usize, names: Vec<String> },
    #[error("the socket named {name:?} from the service manager: {source}")]
    Unusable {
        name: &'static str,
        source: std::io::Error,
    },
}

/// The sockets passed to this process, by name.
pub struct Inherited {
    fds: ListenFd,
    names: Vec<String>,
}

impl Inherited {
    /// Read the environment once, before any other thread starts (the variables are
    /// cleared, so that no child process inherits them).
    pub fn from_env() -> Self {
        let names = std::env::var("LISTEN_FDNAMES").unwrap_or_default();
        let fds = ListenFd::from_env();
        let names = if fds.len() == 0 {
            Vec::new()
        } else {
            names.split(':').map(str::to_owned).collect()
        };
        Inherited { fds, names }
    }

    /// No sockets: every listener binds its configured address.
    pub fn none() -> Self {
        Inherited {
            fds: ListenFd::empty(),
            names: Vec::new(),
        }
    }

    /// Every passed socket has a name this process takes, and no name comes twice.
    pub fn check(&self) -> Result<(), ActivationError> {
        check_names(self.fds.len(), &self.names)
    }

    /// The listening TCP socket named `name`, if the service manager passed one.
    pub fn take(&mut self, name: &'static str) -> Result<Option<TcpListener>, ActivationError> {
        let Some(index) = self.names.iter().position(|n| n == name) else {
            return Ok(None);
        };
        let unusable = |source| ActivationError::Unusable { name, source };
        let socket = self.fds.take_tcp_listener(index).map_err(unusable)?;
        if let Some(socket) = &socket {
            socket.set_nonblocking(true).map_err(unusable)?;
        }
        Ok(socket)
    }
}

fn check_names(passed: usize, names: &[String]) -> Result<(), ActivationError> {
    let named = names.len() == passed;
    let known = names.iter().all(|n| KNOWN.contains(&n.as_str()));
    let unique = KNOWN
        .iter()
        .all(|k| names.iter().filter(|n| n == k).count() <= 1);
    if passed == 0 || (named && known && unique) {
        return Ok(());
    }
    Err(ActivationError::Unknown {
        passed,
        names: names.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn nothing_passed_is_fine_and_takes_nothing() {
        let mut none = Inherited::none();
        assert!(none.check().is_ok());
        assert!(none.take(CHALLENGE).unwrap().is_none());
    }

    #[test]
    fn every_passed_socket_needs_a_known_name_once() {
        assert!(check_names(1, &names(&["challenge"])).is_ok());
        assert!(check_names(2, &names(&["admin", "challenge"])).is_ok());
        for bad in [
            check_names(1, &names(&["acme-edge.socket"])),
            check_names(2, &names(&["challenge"])),
            check_names(2, &names(&["challenge", "challenge"])),
            check_names(1, &names(&[""])),
        ] {
            let message = bad.unwrap_err().to_string();
            assert!(message.contains("FileDescriptorName="), "{message}");
        }
    }
}
