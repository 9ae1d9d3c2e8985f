//! Instructions per request: Envoy run under valgrind's callgrind, which counts the
//! instructions Envoy executes (all threads) instead of timing them. The count for the same
//! binary, configuration and requests repeats to a fraction of a percent whatever else the
//! machine is doing, which throughput on a shared 2-core machine does not.
//!
//! A measurement: warm up, zero the counters (`callgrind_control -z`), send requests with wrk
//! for a while, dump the counters (`callgrind_control -d`), divide the instructions by the
//! requests wrk completed. Envoy's own timers run meanwhile; over thousands of requests they
//! weigh nothing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use acme_edge_tests::envoy::{EnvoyConfig, http};
use acme_edge_tests::tools;
use anyhow::{Context, Result, bail, ensure};

use crate::wrk::{parse_requests, run_wrk};

/// Envoy under callgrind starts in seconds natively, in tens of seconds here.
const READY_LIMIT: Duration = Duration::from_secs(180);
/// How long the counters take to reach the dump file after `callgrind_control -d`.
const DUMP_LIMIT: Duration = Duration::from_secs(30);

/// Whether valgrind can be run here.
pub fn available() -> bool {
    ["valgrind", "callgrind_control"].iter().all(|tool| {
        Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// One Envoy under callgrind; killed on drop.
pub struct CallgrindEnvoy {
    child: Child,
    http_port: u16,
    dir: tempfile::TempDir,
    dumps: usize,
}

impl CallgrindEnvoy {
    /// Start Envoy with `config` (one worker) and wait until it is ready.
    pub fn start(config: &EnvoyConfig) -> Result<CallgrindEnvoy> {
        let dir = tempfile::Builder::new()
            .prefix("acme-edge-callgrind-")
            .tempdir()?;
        let config_file = dir.path().join("envoy.yaml");
        std::fs::write(&config_file, config.rendered()?)?;
        let log = std::fs::File::create(dir.path().join("envoy.log"))?;
        let child = Command::new("valgrind")
            .arg("--tool=callgrind")
            .arg(format!(
                "--callgrind-out-file={}",
                dir.path().join("callgrind.out").display()
            ))
            .arg(tools::envoy()?)
            .arg("-c")
            .arg(&config_file)
            .args(["--concurrency", "1", "--use-dynamic-base-id"])
            .args(["--log-level", "warn"])
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("start valgrind")?;
        let mut envoy = CallgrindEnvoy {
            child,
            http_port: config.http_port(),
            dir,
            dumps: 0,
        };
        envoy.wait_ready(config.admin_port())?;
        Ok(envoy)
    }

    fn wait_ready(&mut self, admin_port: u16) -> Result<()> {
        let started = Instant::now();
        while started.elapsed() < READY_LIMIT {
            if let Some(status) = self.child.try_wait()? {
                bail!("Envoy under valgrind exited ({status}):\n{}", self.log());
            }
            if http(admin_port, "GET", "/ready", "localhost").is_ok_and(|r| r.status == 200) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        bail!(
            "Envoy under valgrind not ready in {READY_LIMIT:?}:\n{}",
            self.log()
        )
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("envoy.log")).unwrap_or_default()
    }

    /// Instructions Envoy executes per request for `path` on `host`, over `duration` of wrk
    /// load after `warmup`.
    pub fn per_request(
        &mut self,
        path: &str,
        host: &str,
        warmup: Duration,
        duration: Duration,
    ) -> Result<f64> {
        wrk(self.http_port, path, host, warmup)?;
        self.control("-z")?;
        let requests = wrk(self.http_port, path, host, duration)?;
        self.control("-d")?;
        self.dumps += 1;
        let instructions = self.read_dump(self.dumps)?;
        ensure!(requests > 0, "wrk completed no request against {path}");
        Ok(instructions as f64 / requests as f64)
    }

    fn control(&self, command: &str) -> Result<()> {
        let status = Command::new("callgrind_control")
            .arg(command)
            .arg(self.child.id().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("run callgrind_control")?;
        ensure!(status.success(), "callgrind_control {command} failed");
        Ok(())
    }

    /// The instruction total of dump number `n` (`callgrind.out.<n>`), once written.
    fn read_dump(&self, n: usize) -> Result<u64> {
        let file = dump_file(self.dir.path(), n);
        let started = Instant::now();
        while started.elapsed() < DUMP_LIMIT {
            if let Ok(text) = std::fs::read_to_string(&file)
                && let Some(total) = parse_summary(&text)
            {
                return Ok(total);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        bail!("no callgrind dump at {}", file.display())
    }
}

impl Drop for CallgrindEnvoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dump_file(dir: &Path, n: usize) -> PathBuf {
    dir.join(format!("callgrind.out.{n}"))
}

/// The `summary:` line of a callgrind dump (instructions, the only event collected).
fn parse_summary(dump: &str) -> Option<u64> {
    dump.lines()
        .find_map(|l| l.strip_prefix("summary:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// wrk with a few connections (valgrind runs Envoy some 50 times slower); requests completed.
fn wrk(port: u16, path: &str, host: &str, duration: Duration) -> Result<u64> {
    let text = run_wrk(port, 4, path, host, duration)?;
    parse_requests(&text).with_context(|| format!("no request count in wrk output:\n{text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_dump_summary() {
        let dump = "version: 1\ncreator: callgrind-3.19.0\nevents: Ir\nsummary: 623885402\n\
                    totals: 626459632\n";
        assert_eq!(parse_summary(dump), Some(623_885_402));
        assert_eq!(parse_summary("events: Ir\n"), None);
    }
}
