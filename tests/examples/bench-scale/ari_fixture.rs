//! A local CA front for the ARI walk: Pebble's own directory with a `renewalInfo` URL added,
//! and that URL's answers (RFC 9773), over plain HTTP on 127.0.0.1.
//!
//! Pebble 2.4 offers no renewal information, so a backend pointed at Pebble ends each ARI
//! round at its first answer. Pointed at this fixture instead, it creates its account and
//! would place orders at Pebble (the directory's other URLs are Pebble's), and asks the
//! fixture for every issued certificate's window:
//!
//! - `GET /directory`: Pebble's directory JSON, fetched once, plus `renewalInfo`;
//! - `GET /renewal-info/{certid}`: a window [`WINDOW_AHEAD`] from now, later than any renewal
//!   the bench stores (so the walk brings nothing forward and the worker orders nothing),
//!   with `Retry-After`, after an optional pause that plays a distant CA's latency.
//!
//! It counts the renewal-information requests, the most in flight at once, and when the
//! first and the last arrived. It runs on the caller's tokio runtime until dropped.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use acme_edge_tests::pebble::Pebble;
use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Where the window starts, from now: later than every renewal the bench stores (at most 60
/// days ahead), as a healthy CA's window for a certificate that is not yet due.
pub const WINDOW_AHEAD: time::Duration = time::Duration::days(70);
/// The window's length (Let's Encrypt suggests windows of about two days).
const WINDOW_LENGTH: time::Duration = time::Duration::days(2);
/// `Retry-After` on every answer: Let's Encrypt's six hours.
const RETRY_AFTER_SECS: u64 = 6 * 3600;
const DIRECTORY_PATH: &str = "/directory";
const RENEWAL_INFO_PATH: &str = "/renewal-info";

/// What the fixture saw.
#[derive(Debug, Clone, Copy, Default)]
pub struct Seen {
    /// Renewal-information requests answered or under way.
    pub requests: u64,
    /// The most renewal-information requests in flight at once.
    pub max_in_flight: u64,
    pub first: Option<Instant>,
    pub last: Option<Instant>,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    /// First and last request times.
    times: Mutex<(Option<Instant>, Option<Instant>)>,
}

impl Counters {
    fn arrived(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let now_in_flight = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.max_in_flight
            .fetch_max(now_in_flight, Ordering::Relaxed);
        let now = Instant::now();
        let mut times = self.times.lock().unwrap_or_else(|p| p.into_inner());
        times.0.get_or_insert(now);
        times.1 = Some(now);
    }

    fn answered(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

struct Shared {
    directory: Bytes,
    latency: Duration,
    counters: Counters,
}

/// The fixture; it stops serving when dropped.
pub struct AriFixture {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl AriFixture {
    /// Fetch `pebble`'s directory and serve it, with renewal information answered after
    /// `latency`, on a free loopback port.
    pub async fn start(pebble: &Pebble, latency: Duration) -> Result<AriFixture> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("bind the ARI fixture")?;
        let addr = listener.local_addr()?;
        let directory = with_renewal_info(
            pebble.directory().await?,
            &format!("http://{addr}{RENEWAL_INFO_PATH}"),
        )?;
        let shared = Arc::new(Shared {
            directory: Bytes::from(serde_json::to_vec(&directory)?),
            latency,
            counters: Counters::default(),
        });
        let server = tokio::spawn(serve(listener, Arc::clone(&shared)));
        Ok(AriFixture {
            addr,
            shared,
            server,
        })
    }

    /// The directory URL to configure (`acme.directory_url`, with
    /// `acme.allow_insecure_directory`).
    pub fn directory_url(&self) -> String {
        format!("http://{}{DIRECTORY_PATH}", self.addr)
    }

    pub fn seen(&self) -> Seen {
        let c = &self.shared.counters;
        let (first, last) = *c.times.lock().unwrap_or_else(|p| p.into_inner());
        Seen {
            requests: c.requests.load(Ordering::Relaxed),
            max_in_flight: c.max_in_flight.load(Ordering::Relaxed),
            first,
            last,
        }
    }
}

impl Drop for AriFixture {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// `directory` with its `renewalInfo` URL set to `url`.
fn with_renewal_info(mut directory: serde_json::Value, url: &str) -> Result<serde_json::Value> {
    directory
        .as_object_mut()
        .context("the directory is not a JSON object")?
        .insert("renewalInfo".into(), url.into());
    Ok(directory)
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    // Connections end with the task (aborted on drop) or when the client closes them.
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let service = service_fn(move |req| answer(Arc::clone(&shared), req));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path();
    if path == DIRECTORY_PATH {
        return Ok(reply(StatusCode::OK, shared.directory.clone(), None));
    }
    if !path.starts_with(&format!("{RENEWAL_INFO_PATH}/")) {
        return Ok(reply(StatusCode::NOT_FOUND, Bytes::new(), None));
    }
    shared.counters.arrived();
    if !shared.latency.is_zero() {
        tokio::time::sleep(shared.latency).await;
    }
    let response = match window(OffsetDateTime::now_utc()) {
        Some(body) => reply(StatusCode::OK, body, Some(RETRY_AFTER_SECS)),
        None => reply(StatusCode::INTERNAL_SERVER_ERROR, Bytes::new(), None),
    };
    shared.counters.answered();
    Ok(response)
}

/// The renewal-information document: a window [`WINDOW_AHEAD`] of `now`.
fn window(now: OffsetDateTime) -> Option<Bytes> {
    let start = now + WINDOW_AHEAD;
    let end = start + WINDOW_LENGTH;
    let body = serde_json::json!({
        "suggestedWindow": {
            "start": start.format(&Rfc3339).ok()?,
            "end": end.format(&Rfc3339).ok()?,
        }
    });
    serde_json::to_vec(&body).ok().map(Bytes::from)
}

fn reply(status: StatusCode, body: Bytes, retry_after: Option<u64>) -> Response<Full<Bytes>> {
    let mut builder = Response::builder().status(status);
    if !body.is_empty() {
        builder = builder.header(hyper::header::CONTENT_TYPE, "application/json");
    }
    if let Some(secs) = retry_after {
        builder = builder.header(hyper::header::RETRY_AFTER, secs);
    }
    builder
        .body(Full::new(body))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}
