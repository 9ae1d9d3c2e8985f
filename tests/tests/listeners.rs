//! The backend's HTTP listeners stay available whatever clients do: idle and slow clients
//! are cut off by the configured timeouts, not served forever, and a body without a length
//! cannot make the admin API buffer more than its cap.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use acme_edge_tests::backend::Backend;
use acme_edge_tests::pebble::Pebble;
use acme_edge_tests::ports::free_addr;
use anyhow::{Context, Result, ensure};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Clients that connect and then send nothing, or one header line and no more.
const SLOW_CLIENTS: usize = 1000;
/// The listeners' header and idle timeouts in this test.
const TIMEOUT_SECS: u64 = 8;

fn addr_of(url: &str) -> Result<SocketAddr> {
    let authority = url.trim_start_matches("http://").trim_end_matches('/');
    authority
        .parse()
        .with_context(|| format!("address of {url}"))
}

/// Read until the peer closes (or errs): whether it did within `limit`.
async fn closed_within(conn: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 512];
    let read_all = async {
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(limit, read_all).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_clients_are_cut_off_and_others_still_served() -> Result<()> {
    let pebble = Pebble::builder(free_addr().port()).start().await?;
    let mut backend = Backend::builder().pebble(&pebble);
    for listener in ["admin", "challenge"] {
        backend = backend
            .setting(listener, "idle_timeout_secs", TIMEOUT_SECS as i64)
            .setting(listener, "header_read_timeout_secs", TIMEOUT_SECS as i64);
    }
    let backend = backend.start().await?;
    let admin = addr_of(&backend.admin_url())?;
    let lookup = backend.challenge_addr();

    // Half of them silent, half stuck in the middle of their headers, on both listeners.
    let mut slow = Vec::with_capacity(SLOW_CLIENTS);
    for i in 0..SLOW_CLIENTS {
        let addr = if i % 2 == 0 { admin } else { lookup };
        let mut conn = TcpStream::connect(addr).await?;
        if i % 4 >= 2 {
            conn.write_all(b"GET /healthz HTTP/1.1\r\nhost: t\r\nx-slow: a")
                .await?;
        }
        slow.push(conn);
    }
    let opened = Instant::now();

    // Meanwhile an operator and Envoy are answered (well before the slow ones time out).
    let listed = backend.domains().await?;
    ensure!(listed["domains"].is_array(), "{listed}");
    let path = acme_edge_contract::lookup_path("a.acme-edge.test", "tok");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(TIMEOUT_SECS))
        .build()?;
    let status = client
        .get(format!("http://{lookup}{path}"))
        .send()
        .await?
        .status();
    ensure!(status == 404, "challenge lookup answered {status}");
    let served_after = opened.elapsed();
    println!(
        "with {SLOW_CLIENTS} slow clients open: API and lookup answered within {served_after:?}"
    );
    ensure!(
        served_after < Duration::from_secs(TIMEOUT_SECS),
        "answered only after the slow clients timed out ({served_after:?})"
    );

    // And the slow clients are closed once the timeout passes.
    let deadline = Duration::from_secs(TIMEOUT_SECS * 3);
    let mut still_open = 0;
    for conn in &mut slow {
        if !closed_within(conn, deadline.saturating_sub(opened.elapsed())).await {
            still_open += 1;
        }
    }
    println!(
        "slow clients closed after {:?} ({still_open} still open)",
        opened.elapsed()
    );
    ensure!(still_open == 0, "{still_open} slow clients still open");
    Ok(())
}

/// A 10 MB chunked body (no `Content-Length`) is refused with 413 once it passes the cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_body_over_the_cap_gets_413() -> Result<()> {
    let pebble = Pebble::builder(free_addr().port()).start().await?;
    let backend = Backend::builder().pebble(&pebble).start().await?;
    let mut conn = TcpStream::connect(addr_of(&backend.admin_url())?).await?;
    let head = format!(
        "PUT /v1/domains/big.acme-edge.test HTTP/1.1\r\nhost: t\r\n\
         authorization: Bearer {}\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\n\r\n",
        backend.token()
    );
    conn.write_all(head.as_bytes()).await?;
    let chunk = vec![b' '; 64 * 1024];
    let mut sent = 0usize;
    while sent < 10 * 1024 * 1024 {
        let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
        // The backend stops reading at the cap: a refused write ends the upload.
        if conn.write_all(&framed).await.is_err() {
            break;
        }
        sent += chunk.len();
    }
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut response)).await;
    let response = String::from_utf8_lossy(&response);
    ensure!(
        response.starts_with("HTTP/1.1 413"),
        "after {sent} bytes: {response}"
    );
    ensure!(response.contains("payload_too_large"), "{response}");
    ensure!(
        backend.domain("big.acme-edge.test").await.is_err(),
        "the domain was enabled"
    );
    Ok(())
}
