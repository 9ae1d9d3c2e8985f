//! What an operator and a service manager rely on: `/readyz` says what is not ready, a
//! backend that cannot serve exits non-zero with a log line (so it is restarted), and SIGTERM
//! still ends it cleanly with 0.

use std::process::{Command, Stdio};
use std::time::Duration;

use acme_edge_tests::backend::Backend;
use acme_edge_tests::pebble::Pebble;
use acme_edge_tests::ports::{free_addr, free_port};
use acme_edge_tests::process::eventually;
use acme_edge_tests::tools;
use anyhow::{Context, Result, ensure};
use serde_json::Value;

/// Long enough for the backend's second attempt at the account (15 s after the first).
const ACCOUNT_READY_DEADLINE: Duration = Duration::from_secs(90);

async fn readyz(backend: &Backend) -> Result<(u16, Value)> {
    let response = backend
        .client()
        .get(format!("{}/readyz", backend.admin_url()))
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await?))
}

/// With the CA down the backend starts and serves, but is not ready: `/readyz` is 503 and
/// lists the ACME account (and only that); once the CA is back it loads the account by
/// itself and `/readyz` turns 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_naming_the_account_until_the_ca_answers() -> Result<()> {
    let mut pebble = Pebble::builder(free_port()).start().await?;
    pebble.stop()?;
    let backend = Backend::builder()
        .pebble(&pebble)
        .request_timeout(Duration::from_secs(2))
        .start()
        .await?;

    let (status, body) = readyz(&backend).await?;
    ensure!(status == 503, "CA down: {status} {body}");
    ensure!(body["status"] == "not_ready", "{body}");
    let not_ready = body["not_ready"].as_array().context("a list")?;
    let checks: Vec<&str> = not_ready
        .iter()
        .filter_map(|c| c["check"].as_str())
        .collect();
    ensure!(checks == ["acme_account"], "only the account: {body}");
    ensure!(
        not_ready[0]["reason"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "with a reason: {body}"
    );

    pebble.start().await?;
    eventually(ACCOUNT_READY_DEADLINE, || async {
        match readyz(&backend).await {
            Ok((200, body)) if body["status"] == "ready" => Some(()),
            _ => None,
        }
    })
    .await
    .with_context(|| format!("never ready after the CA came back\n{}", backend.log()))?;
    Ok(())
}

/// A configuration for a backend run directly (to see its exit status).
fn config(dir: &std::path::Path, sds_listen: &str) -> Result<std::path::PathBuf> {
    let text = format!(
        "[acme]\nterms_agreed = true\ndirectory_url = \"https://127.0.0.1:{}/dir\"\n\
         [storage]\nurl = \"sqlite://{}\"\n\
         [admin]\nlisten = \"{}\"\ntoken = \"operations-test-token-0123456789\"\n\
         [challenge]\nlisten = \"{}\"\n[sds]\nlisten = \"{sds_listen}\"\n",
        free_port(),
        dir.join("db.sqlite").display(),
        free_addr(),
        free_addr(),
    );
    let path = dir.join("acme-edge.toml");
    tools::write_private(&path, &text)?;
    Ok(path)
}

/// An SDS socket path that cannot be bound (its directory is a file) ends the process with a
/// non-zero status and a log line naming the SDS socket, before anything is served.
#[test]
fn an_sds_socket_that_cannot_be_bound_exits_non_zero_with_a_log_line() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let not_a_dir = dir.path().join("not-a-directory");
    std::fs::write(&not_a_dir, "")?;
    let config = config(
        dir.path(),
        &format!("unix:{}", not_a_dir.join("sds.sock").display()),
    )?;
    let output = Command::new(tools::backend_bin()?)
        .args(["serve", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .output()?;
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    ensure!(
        !output.status.success(),
        "exit status {}\n{log}",
        output.status
    );
    ensure!(
        log.contains("SDS socket") && log.contains("acme-edge failed"),
        "the log says why\n{log}"
    );
    Ok(())
}

/// SIGTERM drains and exits 0: a stop is not a failure for the service manager.
#[test]
fn sigterm_exits_zero() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let config = config(
        dir.path(),
        &format!("unix:{}", dir.path().join("sds.sock").display()),
    )?;
    let mut child = Command::new(tools::backend_bin()?)
        .args(["serve", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let socket = dir.path().join("sds.sock");
    let up = acme_edge_tests::process::eventually_blocking(Duration::from_secs(30), || {
        socket.exists().then_some(())
    });
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id())?);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)?;
    let status = child.wait()?;
    up?;
    ensure!(status.code() == Some(0), "SIGTERM: {status}");
    Ok(())
}
