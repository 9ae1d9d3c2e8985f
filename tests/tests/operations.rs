//! What an operator and a service manager rely on: `/readyz` says what is not ready, a
//! backend that cannot serve exits non-zero with a log line (so it is restarted), and SIGTERM
//! still ends it cleanly with 0; a socket passed by the service manager is taken by name.

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

/// `acme-edge serve` started with `socket` passed as the service manager's socket `name`
/// (descriptor 3, `LISTEN_FDS`, `LISTEN_FDNAMES`), output captured.
fn serve_with_socket(
    config: &std::path::Path,
    name: &str,
    socket: &std::net::TcpListener,
) -> Result<std::process::Child> {
    use command_fds::{CommandFdExt, FdMapping};
    let mut command = Command::new(tools::backend_bin()?);
    command
        .args(["serve", "--config"])
        .arg(config)
        .env("LISTEN_FDS", "1")
        .env("LISTEN_FDNAMES", name)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .fd_mappings(vec![FdMapping {
            parent_fd: std::os::fd::OwnedFd::from(socket.try_clone()?),
            child_fd: 3,
        }])?;
    Ok(command.spawn()?)
}

/// The status line of a plain HTTP/1.1 GET, or `None` when nothing answers.
fn status_line(addr: std::net::SocketAddr, path: &str) -> Option<String> {
    use std::io::{BufRead, BufReader, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).ok()?;
    Some(line)
}

/// Socket activation: the socket named `challenge` serves the challenge lookups and the
/// configured `challenge.listen` is not bound; a socket with a name acme-edge does not take
/// stops the start-up with the reason.
#[test]
fn a_passed_challenge_socket_is_served_and_an_unknown_one_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let config = config(
        dir.path(),
        &format!("unix:{}", dir.path().join("sds.sock").display()),
    )?;
    let socket = std::net::TcpListener::bind("127.0.0.1:0")?;
    let passed = socket.local_addr()?;

    let child = serve_with_socket(&config, "challenge", &socket)?;
    let answered = acme_edge_tests::process::eventually_blocking(Duration::from_secs(30), || {
        status_line(passed, "/acme-edge/v1/challenge/a.example/token")
            .filter(|line| line.contains(" 404 "))
            .map(|_| ())
    });
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id())?);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)?;
    let output = child.wait_with_output()?;
    let log = String::from_utf8_lossy(&output.stderr).into_owned()
        + &String::from_utf8_lossy(&output.stdout);
    answered.with_context(|| format!("no lookup answered on the passed socket\n{log}"))?;
    ensure!(
        log.contains("using the socket passed by the service manager"),
        "the log says which socket serves\n{log}"
    );

    let child = serve_with_socket(&config, "acme-edge.socket", &socket)?;
    let output = child.wait_with_output()?;
    let log = String::from_utf8_lossy(&output.stderr).into_owned();
    ensure!(
        !output.status.success() && log.contains("FileDescriptorName="),
        "an unknown socket name: exit status {}\n{log}",
        output.status
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
