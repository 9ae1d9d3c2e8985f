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
//! - [`service`]: the tonic service, one task per stream.
//! - `memory` (feature `test-support`): an in-memory certificate source.
//!
//! # Securing the SDS listener
//!
//! The listener carries private keys, so it binds to loopback by default, for an Envoy on the
//! same host. Across hosts, run it with mutual TLS: the backend presents a server certificate
//! and accepts only clients whose certificate chains to the fleet's client CA (see
//! [`ServerTls`]); each Envoy presents a client certificate in its `acme_sds` cluster:
//!
//! ```yaml
//! - name: acme_sds
//!   type: STRICT_DNS
//!   typed_extension_protocol_options:
//!     envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
//!       "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
//!       explicit_http_config: { http2_protocol_options: {} }
//!   load_assignment:
//!     cluster_name: acme_sds
//!     endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address:
//!       { address: acme-edge.internal, port_value: 18000 } } } }] }]
//!   transport_socket:
//!     name: envoy.transport_sockets.tls
//!     typed_config:
//!       "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
//!       sni: acme-edge.internal
//!       common_tls_context:
//!         alpn_protocols: [h2]
//!         tls_certificates:   # this Envoy's client certificate (from a file, not from SDS)
//!         - certificate_chain: { filename: /etc/envoy/sds-client.crt }
//!           private_key: { filename: /etc/envoy/sds-client.key }
//!         validation_context: # the CA that signed the backend's server certificate
//!           trusted_ca: { filename: /etc/envoy/sds-ca.crt }
//!           match_typed_subject_alt_names:
//!           - san_type: DNS
//!             matcher: { exact: acme-edge.internal }
//! ```

pub mod delta;
pub mod driver;
#[cfg(any(test, feature = "test-support"))]
pub mod memory;
pub mod names;
pub mod resource;
pub mod service;
pub mod sotw;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::service::secret::v3::secret_discovery_service_server::SecretDiscoveryServiceServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::server::TcpIncoming;

use crate::certs::CertificateSource;
pub use resource::SECRET_TYPE_URL;
pub use service::SdsService;

/// The SDS listener's default address: loopback, for an Envoy on the same host.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 18000);

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
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("SDS server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Serve `source` over SDS on `listen` until `shutdown` completes.
pub async fn serve(
    listen: SocketAddr,
    source: Arc<dyn CertificateSource>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), SdsError> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| SdsError::Bind {
            addr: listen,
            source,
        })?;
    serve_on(listener, source, shutdown).await
}

/// [`serve`] on a listener already bound (e.g. to port 0 in tests).
pub async fn serve_on(
    listener: TcpListener,
    source: Arc<dyn CertificateSource>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), SdsError> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "SDS server listening");
    }
    let (stop, stopping) = watch::channel(false);
    let service = SdsService::new(source, stopping);
    let shutdown = async move {
        shutdown.await;
        tracing::info!("SDS server stopping");
        // Ends every stream, so the graceful shutdown below completes; Envoy keeps the
        // secrets it has and reconnects (to another replica, or to this one restarted).
        let _ = stop.send(true);
    };
    server()
        .add_service(SecretDiscoveryServiceServer::new(service))
        .serve_with_incoming_shutdown(incoming(listener), shutdown)
        .await?;
    Ok(())
}

fn server() -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
}

/// Connections from `listener`, without Nagle's algorithm: a secret is one small write that
/// would otherwise wait for Envoy's delayed ACK (about 40 ms), and a handshake waits for it.
fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

#[cfg(test)]
mod tests;
