//! The HTTP client the ACME client talks to the CA through: hyper and rustls as in
//! instant-acme's own client, plus two things it lacks:
//!
//! - a bound on the requests in flight to the CA (`acme.max_concurrent_requests`), shared by
//!   every job of the process: a burst of enabled domains queues here instead of opening a
//!   request per order at once. A request holds its slot until its body is read, so the CA
//!   has finished with it when the next one goes out;
//! - the CA's `Retry-After` on an error answer (rate limits, maintenance). It is noted for
//!   the job whose request got it, so the retry is scheduled no earlier than the CA asked.
//!   The note lives in a task-local slot: each job runs its order inside
//!   [`noting_retry_after`], and requests made from that task write to that job's slot only;
//! - a problem document for "not found" answers that carry none (Pebble answers an order it
//!   does not know, after a restart, with a bare 404): the ACME client then reports the CA's
//!   word, "gone", instead of a body it could not parse.

use std::cell::Cell;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::RETRY_AFTER;
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::sync::Semaphore;

use super::AcmeError;

/// The longest Retry-After honoured: a CA (or a proxy in front of it) asking for more than a
/// week is more likely wrong than serious, and the daily retry takes over.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);

tokio::task_local! {
    static RETRY_AFTER_NOTE: Cell<Option<SystemTime>>;
}

/// Run `job`, returning its output and the latest `Retry-After` the CA sent it on an error.
pub async fn noting_retry_after<F: Future>(job: F) -> (F::Output, Option<SystemTime>) {
    let slot = Cell::new(None);
    RETRY_AFTER_NOTE
        .scope(slot, async {
            let output = job.await;
            let note = RETRY_AFTER_NOTE.try_with(Cell::get).ok().flatten();
            (output, note)
        })
        .await
}

/// The client: the platform's roots, or only `ca_root_file` (test CAs such as Pebble); every
/// request takes one of `slots` for its duration.
pub fn client(
    ca_root_file: Option<&Path>,
    slots: Arc<Semaphore>,
) -> Result<Box<dyn HttpClient>, AcmeError> {
    let builder = match ca_root_file {
        None => HttpsConnectorBuilder::new()
            .try_with_platform_verifier()
            .map_err(|e| AcmeError::Account(format!("platform TLS roots: {e}")))?,
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(path)
                .map_err(|e| AcmeError::Account(format!("{}: {e}", path.display())))?
            {
                let cert =
                    cert.map_err(|e| AcmeError::Account(format!("{}: {e}", path.display())))?;
                roots
                    .add(cert)
                    .map_err(|e| AcmeError::Account(format!("{}: {e}", path.display())))?;
            }
            HttpsConnectorBuilder::new().with_tls_config(
                rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .map_err(|e| AcmeError::Account(format!("TLS: {e}")))?
                .with_root_certificates(roots)
                .with_no_client_auth(),
            )
        }
    };
    let connector = builder
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .build();
    let hyper = HyperClient::builder(TokioExecutor::new()).build(connector);
    Ok(Box::new(CaClient { hyper, slots }))
}

type Hyper = HyperClient<hyper_rustls::HttpsConnector<HttpConnector>, BodyWrapper<Bytes>>;

struct CaClient {
    hyper: Hyper,
    slots: Arc<Semaphore>,
}

impl HttpClient for CaClient {
    fn request(
        &self,
        req: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let hyper = self.hyper.clone();
        let slots = self.slots.clone();
        Box::pin(async move {
            let response = {
                let waiting = crate::metrics::Occupancy::ca_request_waiting();
                let _slot = slots
                    .acquire_owned()
                    .await
                    .map_err(|e| instant_acme::Error::Other(Box::new(e)))?;
                drop(waiting);
                let _in_flight = crate::metrics::Occupancy::ca_request();
                let mut response = HttpClient::request(&hyper, req).await?;
                let body = response
                    .body
                    .into_bytes()
                    .await
                    .map_err(instant_acme::Error::Other)?;
                let body = match gone_without_problem(&response.parts, &body) {
                    Some(problem) => {
                        response.parts.headers.insert(
                            http::header::CONTENT_TYPE,
                            http::HeaderValue::from_static("application/problem+json"),
                        );
                        problem
                    }
                    None => body,
                };
                BytesResponse {
                    parts: response.parts,
                    body: Box::new(body),
                }
            };
            let status = response.parts.status;
            if (status.is_client_error() || status.is_server_error())
                && let Some(at) = response
                    .parts
                    .headers
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, SystemTime::now()))
            {
                // Outside a job (no slot) there is nobody to tell.
                let _ = RETRY_AFTER_NOTE.try_with(|slot| slot.set(Some(at)));
            }
            Ok(response)
        })
    }
}

/// For a 404 or 410 answer without a body, the RFC 7807 document it should have had.
fn gone_without_problem(parts: &http::response::Parts, body: &Bytes) -> Option<Bytes> {
    let status = parts.status;
    if !matches!(status.as_u16(), 404 | 410) || !body.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    let problem = serde_json::json!({
        "type": "about:blank",
        "status": status.as_u16(),
        "detail": format!("HTTP {status} with no problem document: the CA does not know it"),
    });
    Some(Bytes::from(problem.to_string()))
}

/// `Retry-After: <seconds>` or `Retry-After: <HTTP-date>` (RFC 9110 section 10.2.3).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<SystemTime> {
    let value = value.trim();
    let at = match value.parse::<u64>() {
        Ok(secs) => now + Duration::from_secs(secs),
        Err(_) => {
            let date =
                time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822)
                    .ok()?;
            SystemTime::from(date)
        }
    };
    let limit = now + MAX_RETRY_AFTER;
    Some(at.min(limit))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[test]
    fn reads_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_000);
        assert_eq!(
            parse_retry_after("120", now),
            Some(now + Duration::from_secs(120))
        );
        let date = parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now);
        assert_eq!(
            date,
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480))
        );
        assert_eq!(
            parse_retry_after("99999999", now),
            Some(now + MAX_RETRY_AFTER)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    /// A plain-HTTP fixture that answers every request after `delay`, recording the most
    /// requests it had open at once.
    async fn counting_server(delay: Duration) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (open, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let seen = peak.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (open, peak) = (open.clone(), peak.clone());
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let now = open.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(delay).await;
                    open.fetch_sub(1, Ordering::SeqCst);
                    let _ = stream
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                        )
                        .await;
                });
            }
        });
        (addr, seen)
    }

    #[tokio::test]
    async fn requests_in_flight_are_bounded_by_the_slots() {
        let (addr, peak) = counting_server(Duration::from_millis(50)).await;
        let http = client(None, Arc::new(Semaphore::new(2))).unwrap();
        let requests = (0..6).map(|_| {
            let req = http::Request::get(format!("http://{addr}/"))
                .body(BodyWrapper::from(Vec::new()))
                .unwrap();
            http.request(req)
        });
        for response in futures::future::join_all(requests).await {
            let mut response = response.unwrap();
            assert_eq!(response.parts.status, 200);
            assert_eq!(response.body.into_bytes().await.unwrap(), "ok");
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn notes_are_per_job() {
        let (out, note) = noting_retry_after(async {
            let _ = RETRY_AFTER_NOTE.try_with(|s| s.set(Some(SystemTime::UNIX_EPOCH)));
            7
        })
        .await;
        assert_eq!((out, note), (7, Some(SystemTime::UNIX_EPOCH)));
        let (_, other) = noting_retry_after(async {}).await;
        assert_eq!(other, None);
    }
}
