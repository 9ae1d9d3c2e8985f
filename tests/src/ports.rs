//! Free loopback ports, allocated, never fixed.
//!
//! A port is found by binding `127.0.0.1:0` and letting the kernel choose. Between that
//! moment and the moment a fixture binds it, nothing holds the port, so two allocations must
//! never hand out the same one:
//!
//! - within this process a set remembers every port handed out;
//! - across processes (the test runner may run each test in its own process) every port
//!   handed out is also claimed with an exclusive `flock` on a file named after it in a
//!   shared directory. The kernel drops the lock when this process exits, however it exits,
//!   so a crashed test never leaks a claim.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, OnceLock};

use anyhow::{Context, Result, bail};
use nix::fcntl::{Flock, FlockArg};

/// How many kernel-chosen ports to try before giving up (each try that is already claimed by
/// another process costs one).
const MAX_ATTEMPTS: usize = 1000;

/// Ports handed out by this process, with the cross-process claim that keeps them ours.
#[derive(Default)]
struct Registry {
    taken: HashSet<u16>,
    claims: HashMap<u16, Flock<File>>,
}

fn registry() -> MutexGuard<'static, Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    let lock = REGISTRY.get_or_init(Mutex::default);
    // A panic while holding the lock leaves the registry consistent (inserts are atomic), so
    // a poisoned lock is still usable.
    lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A loopback TCP port that no other fixture of this or any other test process has been
/// given. Panics if none can be found (a test cannot proceed without one).
pub fn free_port() -> u16 {
    match try_free_port() {
        Ok(port) => port,
        Err(e) => panic!("no free loopback port: {e:#}"),
    }
}

/// `127.0.0.1:<free_port()>`.
pub fn free_addr() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()))
}

/// Like [`free_port`], as a `Result`.
fn try_free_port() -> Result<u16> {
    let dir = claims_dir()?;
    let mut registry = registry();
    for _ in 0..MAX_ATTEMPTS {
        let port = kernel_chosen_port()?;
        if registry.taken.contains(&port) {
            continue;
        }
        if let Some(claim) = claim(&dir, port)? {
            registry.taken.insert(port);
            registry.claims.insert(port, claim);
            return Ok(port);
        }
    }
    bail!("{MAX_ATTEMPTS} kernel-chosen ports were all taken already")
}

fn kernel_chosen_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("bind 127.0.0.1:0")?;
    Ok(listener.local_addr().context("local_addr")?.port())
}

/// Claim `port` for this process; `None` when another live process holds it.
fn claim(dir: &std::path::Path, port: u16) -> Result<Option<Flock<File>>> {
    let path = dir.join(format!("{port}.lock"));
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("open {}", path.display()))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(Some(lock)),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, e)) => Err(e).with_context(|| format!("flock {}", path.display())),
    }
}

/// One directory per user, shared by every test process on the machine.
fn claims_dir() -> Result<PathBuf> {
    let uid = nix::unistd::getuid();
    let dir = std::env::temp_dir().join(format!("acme-edge-ports-{uid}"));
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_never_handed_out_twice() {
        let ports: Vec<u16> = (0..200).map(|_| free_port()).collect();
        let unique: HashSet<u16> = ports.iter().copied().collect();
        assert_eq!(unique.len(), ports.len());
    }

    #[test]
    fn a_claimed_port_cannot_be_claimed_again() {
        let port = free_port();
        let dir = claims_dir().unwrap();
        // flock locks belong to the open file description, so a second open in this same
        // process conflicts exactly as another process would.
        assert!(claim(&dir, port).unwrap().is_none());
    }

    #[test]
    fn handed_out_ports_are_bindable() {
        let addr = free_addr();
        TcpListener::bind(addr).unwrap();
    }
}
