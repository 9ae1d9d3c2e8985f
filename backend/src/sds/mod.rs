//! Envoy's Secret Discovery Service (SDS) over gRPC: every issued certificate, by name.
//!
//! Envoy's HTTPS listener uses the on-demand secret selector with the SNI mapper: during a
//! handshake it asks this server for the secret named after the client's SNI, pauses the
//! handshake until the answer arrives, and fails it when the answer is "no such secret". The
//! secret named after a managed domain holds that domain's current chain and private key;
//! when a certificate is issued or renewed, every subscribed Envoy gets the new version at
//! once, and when a domain is disabled the secret is removed. No per-domain Envoy
//! configuration exists.
//!
//! Envoy must use `DELTA_GRPC`: only the incremental protocol can say that a name does not
//! exist, which makes a handshake for an unknown SNI fail at once instead of hanging.
//! State-of-the-world (`StreamSecrets`, `FetchSecrets`) is answered as far as it can be.
//!
//! # Layout
//!
//! - [`names`]: a requested secret name (a client's SNI, as Envoy passes it) -> the
//!   certificate source's key (lower case, no trailing dot), or "cannot exist".
//! - [`resource`]: a [`ServedCertificate`](crate::certs::ServedCertificate) as an Envoy
//!   `Secret` with inline PEM, packed into `Any`.
//! - [`delta`]: the incremental protocol's per-stream state machine (subscribe, unsubscribe,
//!   wildcard, ACK/NACK, push on [`CertEvent`](crate::certs::CertEvent)).
//! - [`sotw`]: the state-of-the-world stream and one-shot fetch.
//! - [`driver`]: the I/O loop shared by both: Envoy's requests, certificate events, replies.
//! - [`held`]: the names each Envoy holds, bounded (`sds.max_names_per_proxy`) by evicting
//!   the least recently requested.
//! - [`service`]: the tonic service, one task per stream.
//! - [`socket`]: the Unix domain socket it listens on by default (mode 0660, Envoy's group).
//! - `memory` (feature `test-support`): an in-memory certificate source.
//!
//! # Securing the SDS listener
//!
//! The listener hands out private keys, so it binds to loopback by default (`sds.listen` in
//! the backend's configuration), for an Envoy on the same host. Across hosts, run it with
//! mutual TLS ([`serve_tls_on`] with a [`ServerTls`]): the backend presents a server
//! certificate, and only Envoys presenting a client certificate from the fleet's client CA
//! get secrets. Each Envoy's `acme_sds` cluster then carries an `UpstreamTlsContext`:
//!
//! ```yaml
//! transport_socket:
//!   name: envoy.transport_sockets.tls
//!   typed_config:
//!     "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
//!     sni: acme-edge.internal
//!     common_tls_context:
//!       alpn_protocols: [h2]
//!       tls_certificates:     # this Envoy's client certificate (a file, not SDS)
//!       - certificate_chain: { filename: /etc/envoy/sds-client.crt }
//!         private_key: { filename: /etc/envoy/sds-client.key }
//!       validation_context:   # the CA of the backend's server certificate
//!         trusted_ca: { filename: /etc/envoy/sds-ca.crt }
//!         match_typed_subject_alt_names:
//!         - san_type: DNS
//!           matcher: { exact: acme-edge.internal }
//! ```
//!
//! (`envoy/README.md` has the whole cluster; `tests/tests/sds.rs` runs exactly this.)

pub mod delta;
pub mod driver;
pub mod held;
#[cfg(any(test, feature = "test-support"))]
pub mod memory;
pub mod names;
pub mod resource;
pub mod service;
pub mod socket;
pub mod sotw;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::AggregatedDiscoveryServiceServer;
use envoy_types::pb::envoy::service::secret::v3::secret_discovery_service_server::SecretDiscoveryServiceServer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::{ServerTlsConfig, TcpIncoming};
use tonic::transport::{Certificate, Identity};

use crate::certs::CertificateSource;
pub use crate::config::ServerTls;
pub use held::HeldNames;
pub use resource::SECRET_TYPE_URL;
pub use service::SdsService;

/// Envoy's non-ADS on-demand selector opens one HTTP/2 stream per secret name; hyper's
/// default of 200 concurrent streams per connection would make the 201st name wait.
const MAX_CONCURRENT_STREAMS: u32 = 1 << 20;

/// An Envoy that vanished without closing its connection is noticed within this interval
/// plus the timeout, so its streams stop being followed.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the SDS server could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SdsError {
    #[error("SDS server TLS configuration: {0}")]
    Tls(tonic::transport::Error),
    #[error("SDS server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Serve `source` over SDS on `listener` (bound by the caller: to port 0 in tests) until
/// `shutdown` completes.
pub async fn serve_on(
    listener: TcpListener,
    source: Arc<dyn CertificateSource>,
    held: Arc<HeldNames>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), SdsError> {
    log_listening(&listener);
    run(server(), incoming(listener), source, held, shutdown).await
}

/// [`serve_on`] with mutual TLS: only Envoys presenting a certificate from
/// `tls.client_ca_pem` get secrets.
pub async fn serve_tls_on(
    listener: TcpListener,
    source: Arc<dyn CertificateSource>,
    held: Arc<HeldNames>,
    tls: &ServerTls,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), SdsError> {
    let config = ServerTlsConfig::new()
        .identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem))
        .client_ca_root(Certificate::from_pem(&tls.client_ca_pem));
    let server = server().tls_config(config).map_err(SdsError::Tls)?;
    log_listening(&listener);
    run(server, incoming(listener), source, held, shutdown).await
}

async fn run<I, IO, IE>(
    mut server: tonic::transport::Server,
    incoming: I,
    source: Arc<dyn CertificateSource>,
    held: Arc<HeldNames>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), SdsError>
where
    I: tokio_stream::Stream<Item = Result<IO, IE>>,
    IO: tokio::io::AsyncRead
        + tokio::io::AsyncWrite
        + tonic::transport::server::Connected
        + Unpin
        + Send
        + 'static,
    IE: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stopping = CancellationToken::new();
    let service = Arc::new(SdsService::new(source, held, stopping.clone()));
    let shutdown = async move {
        shutdown.await;
        tracing::info!("SDS server stopping");
        stopping.cancel();
    };
    server
        .add_service(SecretDiscoveryServiceServer::from_arc(service.clone()))
        .add_service(AggregatedDiscoveryServiceServer::from_arc(service))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    Ok(())
}

fn server() -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
}

/// Serve on a Unix domain socket ([`socket::bind_unix`]) until `shutdown` completes; the
/// socket file is removed when the server stops.
pub async fn serve_unix_on(
    socket: socket::UnixSocket,
    source: Arc<dyn CertificateSource>,
    held: Arc<HeldNames>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), SdsError> {
    tracing::info!(path = %socket.path().display(), "SDS server listening");
    let accepting = async_accept(&socket.listener);
    run(server(), accepting, source, held, shutdown).await
}

/// Connections accepted on a Unix socket, as the stream tonic serves.
fn async_accept(
    listener: &tokio::net::UnixListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::UnixStream>> + '_ {
    futures::stream::unfold(listener, |listener| async move {
        Some((listener.accept().await.map(|(stream, _)| stream), listener))
    })
}

fn log_listening(listener: &TcpListener) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "SDS server listening");
    }
}

/// Connections from `listener`, without Nagle's algorithm: a secret is one small write that
/// would otherwise wait for Envoy's delayed ACK (about 40 ms), and a handshake waits for it.
fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

#[cfg(test)]
mod tests;
