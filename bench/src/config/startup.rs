//! Envoy started on a configuration file and timed until it is ready.

use std::path::Path;
use std::time::{Duration, Instant};

use acme_edge_tests::envoy::http;
use acme_edge_tests::process::{ChildGuard, Spawn};
use acme_edge_tests::tools;
use anyhow::{Context, Result};

use super::POLL;

/// How a start-up went.
#[derive(Debug, Clone, PartialEq)]
pub enum Start {
    /// The admin `/ready` answered `LIVE` this long after the process started; its resident
    /// memory then.
    Live {
        after: Duration,
        rss_kib: u64,
    },
    TimedOut(Duration),
    /// Envoy exited; the last line it logged.
    Exited(String),
}

/// Start Envoy on `config` with one worker and time it until its admin `/ready` says `LIVE`
/// (Envoy says so once its listeners are initialised, their routes loaded). The process is
/// returned whatever happened, so it is stopped when dropped.
pub fn start_envoy(
    config: &Path,
    admin_port: u16,
    timeout: Duration,
) -> Result<(ChildGuard, Start)> {
    let dir = config.parent().context("the bootstrap has no directory")?;
    let began = Instant::now();
    let mut envoy = Spawn::new("envoy", tools::envoy()?)
        .arg("-c")
        .arg(config)
        .args(["--concurrency", "1", "--use-dynamic-base-id"])
        .args(["--log-level", "warn"])
        .log_dir(dir.join("logs"))
        .start()?;
    let start = loop {
        if envoy.ensure_running().is_err() {
            break Start::Exited(last_line(&envoy.log()));
        }
        if is_live(admin_port) {
            let pid = envoy.id().context("Envoy has no process id")?;
            break Start::Live {
                after: began.elapsed(),
                rss_kib: vm_rss_kib(pid)?,
            };
        }
        if began.elapsed() > timeout {
            break Start::TimedOut(timeout);
        }
        std::thread::sleep(POLL);
    };
    Ok((envoy, start))
}

/// Whether the admin `/ready` answers `LIVE`. While Envoy loads a large configuration its main
/// thread answers nothing: the request waits, and is answered as soon as the thread is free.
fn is_live(admin_port: u16) -> bool {
    http(admin_port, "GET", "/ready", "127.0.0.1")
        .is_ok_and(|r| r.status == 200 && r.text().trim() == "LIVE")
}

/// `VmRSS` of `/proc/<pid>/status`, in KiB.
fn vm_rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_vm_rss(&status).context("no VmRSS in /proc/<pid>/status")
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let value = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    value.trim().strip_suffix("kB")?.trim().parse().ok()
}

fn last_line(log: &str) -> String {
    log.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vm_rss() {
        let status = "Name:\tenvoy\nVmPeak:\t  900 kB\nVmRSS:\t  155648 kB\nThreads:\t9\n";
        assert_eq!(parse_vm_rss(status), Some(155_648));
        assert_eq!(parse_vm_rss("Name:\tenvoy\n"), None);
    }

    #[test]
    fn the_last_line_said() {
        assert_eq!(last_line("a\nbad config\n\n"), "bad config");
        assert_eq!(last_line(""), "");
    }
}
