//! The gRPC service: one task per stream, each driving a protocol state machine.
//!
//! Served under two gRPC services: the Secret Discovery Service, and the Aggregated
//! Discovery Service (ADS) for secrets only. Without ADS, Envoy's on-demand selector opens one
//! stream per name, and the first request of each carries Envoy's whole node description
//! (about 60 KB with Envoy 1.40's list of extensions), built, sent and read on every cold
//! handshake; with ADS every name is a request on one stream that already has the node.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::AggregatedDiscoveryService;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::envoy::service::secret::v3::secret_discovery_service_server::SecretDiscoveryService;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

use super::delta::DeltaStream;
use super::driver::{Protocol, REPLY_QUEUE, StreamInfo, drive};
use super::held::{Evictions, HeldNames};
use super::sotw::{SotwStream, fetch};
use crate::certs::CertificateSource;

/// Serves one [`CertificateSource`] to any number of Envoy streams.
pub struct SdsService {
    source: Arc<dyn CertificateSource>,
    held: Arc<HeldNames>,
    streams: AtomicU64,
    stopping: CancellationToken,
}

type Replies<T> = Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;

impl SdsService {
    /// Streams end when `stopping` is cancelled; `held` keeps each proxy's names bounded.
    pub fn new(
        source: Arc<dyn CertificateSource>,
        held: Arc<HeldNames>,
        stopping: CancellationToken,
    ) -> Self {
        SdsService {
            source,
            held,
            streams: AtomicU64::new(0),
            stopping,
        }
    }

    fn start<P: Protocol>(
        &self,
        protocol: impl FnOnce(StreamInfo, Arc<dyn CertificateSource>, Evictions) -> P,
        peer: String,
        requests: Streaming<P::Request>,
    ) -> Replies<P::Response> {
        // Subscribe before the first lookup, so no change between the two is missed.
        let events = self.source.subscribe();
        let mut info = StreamInfo::next(&self.streams);
        info.peer = peer;
        tracing::debug!(stream = info.id, peer = %info.peer, "SDS stream opened");
        let (tx, rx) = mpsc::channel(REPLY_QUEUE);
        let (evict, evictions) = mpsc::unbounded_channel();
        let protocol = protocol(info, self.source.clone(), evict);
        let stopping = self.stopping.clone();
        let open = OpenStream::count();
        tokio::spawn(async move {
            drive(protocol, requests, events, evictions, tx, stopping).await;
            drop(open);
        });
        Box::pin(ReceiverStream::new(rx))
    }
}

/// One stream counted in `acme_edge_sds_streams` while it is driven.
struct OpenStream;

const STREAMS: &str = "acme_edge_sds_streams";

impl OpenStream {
    fn count() -> OpenStream {
        metrics::gauge!(STREAMS).increment(1.0);
        OpenStream
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        metrics::gauge!(STREAMS).decrement(1.0);
    }
}

/// Who is on the other end of `request`'s connection: its IP address over TCP, or on a Unix
/// socket the peer's process id. Not the TCP port: an Envoy opens more connections as its
/// per-name streams fill one (about 1,000 streams each), and all of them are one proxy,
/// held to one bound.
fn peer<T>(request: &Request<T>) -> String {
    if let Some(addr) = request.remote_addr() {
        return addr.ip().to_string();
    }
    let unix = request
        .extensions()
        .get::<tonic::transport::server::UdsConnectInfo>();
    match unix.and_then(|info| info.peer_cred).and_then(|c| c.pid()) {
        Some(pid) => format!("pid:{pid}"),
        None => String::new(),
    }
}

#[tonic::async_trait]
impl SecretDiscoveryService for SdsService {
    type DeltaSecretsStream = Replies<DeltaDiscoveryResponse>;
    type StreamSecretsStream = Replies<DiscoveryResponse>;

    async fn delta_secrets(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaSecretsStream>, Status> {
        let held = self.held.clone();
        let protocol = move |info, source, evict| DeltaStream::bounded(info, source, held, evict);
        let peer = peer(&request);
        Ok(Response::new(self.start(
            protocol,
            peer,
            request.into_inner(),
        )))
    }

    async fn stream_secrets(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamSecretsStream>, Status> {
        let protocol = |info, source, _| SotwStream::new(info, source);
        let peer = peer(&request);
        Ok(Response::new(self.start(
            protocol,
            peer,
            request.into_inner(),
        )))
    }

    async fn fetch_secrets(
        &self,
        request: Request<DiscoveryRequest>,
    ) -> Result<Response<DiscoveryResponse>, Status> {
        fetch(self.source.as_ref(), request.get_ref())
            .await
            .map(Response::new)
    }
}

/// ADS, for secrets: the same streams as above (any other resource type is refused).
#[tonic::async_trait]
impl AggregatedDiscoveryService for SdsService {
    type StreamAggregatedResourcesStream = Replies<DiscoveryResponse>;
    type DeltaAggregatedResourcesStream = Replies<DeltaDiscoveryResponse>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        SecretDiscoveryService::stream_secrets(self, request).await
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        SecretDiscoveryService::delta_secrets(self, request).await
    }
}
