//! The backend's HTTP listeners (the admin API and the challenge lookup), with bounds that
//! hold whatever the client does.
//!
//! warp's own server has none: a client could hold a connection open forever by sending
//! nothing (or one header byte a minute), and open as many as the process has descriptors.
//! Here every connection is bounded three ways ([`Limits`]):
//!
//! - at most `max_connections` at once: the listener stops accepting at the limit, and the
//!   kernel's backlog holds further clients until a connection ends;
//! - a request's headers must arrive within `header_read_timeout` (HTTP/1);
//! - a connection on which nothing is read or written for `idle_timeout` is closed (HTTP/1
//!   and HTTP/2, between requests or in the middle of one).
//!
//! Request bodies are bounded where they are read (the admin API caps them as they stream
//! in, chunked or not); the challenge lookup reads none.
//!
//! On shutdown the listener stops accepting and open connections finish their requests
//! (HTTP/1 keep-alive is turned off, HTTP/2 gets a GOAWAY), within [`DRAIN`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use warp::filters::BoxedFilter;

use crate::config::TlsIdentity;
use warp::reply::Response;

/// How long open connections may finish their requests after shutdown is signalled.
pub const DRAIN: Duration = Duration::from_secs(5);
/// Pause after a failed `accept` (out of descriptors, say) before trying again, so the
/// loop does not spin while the condition lasts.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// The bounds of one listener (`[admin]` and `[challenge]` each configure theirs).
pub use crate::config::ListenerLimits as Limits;

/// A listener's TLS identity could not be used.
#[derive(Debug, thiserror::Error)]
#[error("TLS identity: {0}")]
pub struct TlsError(String);

/// A TLS server configuration for `identity` (HTTP/2 and HTTP/1.1), or an error naming what
/// is wrong with it.
pub fn tls_config(identity: &TlsIdentity) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_slice_iter(identity.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError(e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes())
        .map_err(|e| TlsError(e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsError(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serve `routes` on `listener` within `limits` (over TLS with `tls`) until `shutdown`
/// completes, then drain.
pub async fn serve(
    what: &'static str,
    listener: TcpListener,
    routes: BoxedFilter<(Response,)>,
    limits: Limits,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()>,
) {
    let handler = Handler {
        what,
        routes,
        limits,
        tls: tls.map(TlsAcceptor::from),
    };
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot,
            () = &mut shutdown => break,
        };
        let Ok(slot) = slot else { break };
        let stream = tokio::select! {
            accepted = accept(what, &listener) => accepted,
            () = &mut shutdown => break,
        };
        if let Some(stream) = stream {
            tokio::spawn(handler.clone().run(stream, graceful.watcher(), slot));
        }
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            listener = what,
            "connections still open after the drain period"
        );
    }
}

/// The next connection; `None` after an accept error (logged, then paused on: a full
/// descriptor table does not empty itself at once).
async fn accept(what: &'static str, listener: &TcpListener) -> Option<TcpStream> {
    match listener.accept().await {
        Ok((stream, _)) => Some(stream),
        Err(e) => {
            tracing::warn!(listener = what, error = %e, "accepting a connection");
            tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            None
        }
    }
}

/// How a listener serves each of its connections.
#[derive(Clone)]
struct Handler {
    what: &'static str,
    routes: BoxedFilter<(Response,)>,
    limits: Limits,
    tls: Option<TlsAcceptor>,
}

impl Handler {
    /// Serve one connection until it ends, stays idle for `limits.idle_timeout`, or the
    /// drain ends it; then free its `slot`.
    async fn run(self, stream: TcpStream, watcher: Watcher, slot: OwnedSemaphorePermit) {
        let activity = Activity::new();
        let stream = Tracked {
            inner: stream,
            activity: activity.clone(),
        };
        let (what, idle_timeout) = (self.what, self.limits.idle_timeout);
        tokio::select! {
            served = self.serve(stream, watcher) => {
                if let Err(e) = served {
                    tracing::debug!(listener = what, error = %e, "connection ended");
                }
            }
            () = activity.idle_for(idle_timeout) => {
                tracing::debug!(listener = what, "idle connection closed");
            }
        }
        drop(slot);
    }

    /// HTTP/1 or HTTP/2 on `stream`, after the TLS handshake when there is TLS.
    async fn serve(self, stream: Tracked<TcpStream>, watcher: Watcher) -> Result<(), BoxError> {
        let service = TowerToHyperService::new(warp::service(self.routes));
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_read_timeout);
        builder.http2().timer(TokioTimer::new());
        let Some(acceptor) = self.tls else {
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            return watcher.watch(connection.into_owned()).await;
        };
        // The handshake is part of reading the request's headers.
        let handshake = acceptor.accept(stream);
        let stream = tokio::time::timeout(self.limits.header_read_timeout, handshake).await;
        let Ok(Ok(stream)) = stream else {
            return Ok(());
        };
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        watcher.watch(connection.into_owned()).await
    }
}

/// What a connection ends with when it fails (hyper's error, boxed).
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// When a connection last read or wrote, as milliseconds since it was opened.
#[derive(Clone)]
struct Activity {
    opened: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            opened: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Completes once nothing has been read or written for `idle`.
    async fn idle_for(&self, idle: Duration) {
        loop {
            let last = self.opened + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = last + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline.into()).await;
        }
    }
}

/// A connection's stream that records its activity.
struct Tracked<S> {
    inner: S,
    activity: Activity,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::sync::oneshot;
    use warp::{Filter, Reply};

    use super::*;

    const TEST_LIMITS: Limits = Limits {
        max_connections: 2,
        header_read_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(600),
    };

    async fn start(limits: Limits) -> (SocketAddr, oneshot::Sender<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let routes = warp::any().map(|| "ok".into_response()).boxed();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(serve("test", listener, routes, limits, None, async {
            let _ = stopped.await;
        }));
        (addr, stop)
    }

    /// Reads until the server closes; how long that took.
    async fn closed_after(conn: &mut TcpStream) -> Duration {
        let started = Instant::now();
        let mut buf = [0u8; 256];
        while tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
            .await
            .expect("the server closes the connection")
            .is_ok_and(|n| n > 0)
        {}
        started.elapsed()
    }

    async fn get(addr: SocketAddr) -> String {
        let mut conn = TcpStream::connect(addr).await.unwrap();
        conn.write_all(b"GET / HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut response = String::new();
        conn.read_to_string(&mut response).await.unwrap();
        response
    }

    #[tokio::test]
    async fn a_silent_connection_is_closed_after_the_idle_timeout() {
        let (addr, _stop) = start(TEST_LIMITS).await;
        let mut idle = TcpStream::connect(addr).await.unwrap();
        let waited = closed_after(&mut idle).await;
        assert!(
            waited >= Duration::from_millis(250),
            "closed after {waited:?}"
        );
    }

    #[tokio::test]
    async fn headers_trickled_in_are_cut_off_by_the_header_timeout() {
        let limits = Limits {
            idle_timeout: Duration::from_secs(30),
            ..TEST_LIMITS
        };
        let (addr, _stop) = start(limits).await;
        let mut slow = TcpStream::connect(addr).await.unwrap();
        let started = Instant::now();
        let trickle = async {
            for byte in b"GET / HTTP/1.1\r\nhost: t\r\nx-slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
                if slow.write_all(&[*byte]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), trickle)
            .await
            .unwrap();
        let waited = started.elapsed() + closed_after(&mut slow).await;
        assert!(
            waited < Duration::from_secs(5),
            "a trickling client held the connection for {waited:?}"
        );
    }

    #[tokio::test]
    async fn connections_beyond_the_limit_wait_for_a_free_slot() {
        let (addr, _stop) = start(TEST_LIMITS).await;
        let _a = TcpStream::connect(addr).await.unwrap();
        let _b = TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = Instant::now();
        let response = get(addr).await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "answered after {:?}, while both slots were taken",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn over_tls_only_a_tls_client_is_answered() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["admin.test".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let identity = TlsIdentity {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let routes = warp::any().map(|| "ok".into_response()).boxed();
        let tls = Some(tls_config(&identity).unwrap());
        let (_stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(serve("test", listener, routes, TEST_LIMITS, tls, async {
            let _ = stopped.await;
        }));

        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.der().clone()).unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(client));
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("admin.test").unwrap();
        let mut tls = connector.connect(name, tcp).await.unwrap();
        tls.write_all(b"GET / HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut response = String::new();
        tls.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");

        // Plain HTTP gets no answer: the handshake fails and the connection is closed.
        let mut plain = TcpStream::connect(addr).await.unwrap();
        let _ = plain
            .write_all(b"GET / HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n")
            .await;
        let mut answer = Vec::new();
        let _ = plain.read_to_end(&mut answer).await;
        assert!(
            !answer.starts_with(b"HTTP/"),
            "answered in plain text: {}",
            String::from_utf8_lossy(&answer)
        );
    }

    #[tokio::test]
    async fn requests_are_answered_and_shutdown_closes_the_listener() {
        let (addr, stop) = start(TEST_LIMITS).await;
        assert!(get(addr).await.starts_with("HTTP/1.1 200"));
        stop.send(()).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(TcpStream::connect(addr).await.is_err(), "listener closed");
    }
}
