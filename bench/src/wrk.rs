//! wrk, the HTTP load generator, as the filter benchmark and the instruction counts run it
//! against Envoy's plain-HTTP listener: one run ([`run_wrk`]) and the figures read from its
//! output ([`parse_requests`], [`parse_requests_per_sec`]).

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};

/// One wrk run (one thread) against `path` on 127.0.0.1:`port`; its output. Fails if any
/// answer was not 2xx/3xx or a socket failed.
pub(crate) fn run_wrk(
    port: u16,
    connections: u32,
    path: &str,
    host: &str,
    duration: Duration,
) -> Result<String> {
    let url = format!("http://127.0.0.1:{port}{path}");
    let out = Command::new("wrk")
        .args(["-t1", &format!("-c{connections}")])
        .arg(format!("-d{}s", duration.as_secs().max(1)))
        .args(["-H", &format!("Host: {host}"), &url])
        .output()
        .context("run wrk")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(
        out.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    if text.contains("Non-2xx or 3xx responses") || text.contains("Socket errors") {
        bail!("wrk saw errors against {url}:\n{text}");
    }
    Ok(text)
}

/// The count of the `N requests in T` line of wrk's output.
pub(crate) fn parse_requests(wrk_output: &str) -> Option<u64> {
    wrk_output.lines().find_map(|l| {
        let (count, rest) = l.trim().split_once(' ')?;
        rest.starts_with("requests in")
            .then(|| count.parse().ok())?
    })
}

/// The `Requests/sec:` figure of wrk's output.
pub(crate) fn parse_requests_per_sec(wrk_output: &str) -> Option<f64> {
    wrk_output
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_wrk_output() {
        let out = "Running 5s test @ http://127.0.0.1:1/\n  1 threads and 16 connections\n\
                   Requests/sec:  41234.56\nTransfer/sec:      5.23MB\n";
        assert_eq!(parse_requests_per_sec(out), Some(41234.56));
        assert_eq!(parse_requests_per_sec("nothing"), None);
        let out = "  2 threads and 16 connections\n  51234 requests in 2.00s, 3.1MB read\n";
        assert_eq!(parse_requests(out), Some(51234));
        assert_eq!(parse_requests("Running 2s test"), None);
    }
}
