//! The gRPC service: one task per stream, each driving a protocol state machine.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::envoy::service::secret::v3::secret_discovery_service_server::SecretDiscoveryService;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::delta::DeltaStream;
use super::driver::{Protocol, REPLY_QUEUE, StreamInfo, drive};
use super::sotw::{SotwStream, fetch};
use crate::certs::CertificateSource;

/// Serves one [`CertificateSource`] to any number of Envoy streams.
pub struct SdsService {
    source: Arc<dyn CertificateSource>,
    streams: AtomicU64,
    stopping: watch::Receiver<bool>,
}

type Replies<T> = Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;

impl SdsService {
    /// Streams end when `stopping` turns true.
    pub fn new(source: Arc<dyn CertificateSource>, stopping: watch::Receiver<bool>) -> Self {
        SdsService {
            source,
            streams: AtomicU64::new(0),
            stopping,
        }
    }

    fn start<P: Protocol>(
        &self,
        protocol: impl FnOnce(StreamInfo, Arc<dyn CertificateSource>) -> P,
        requests: Streaming<P::Request>,
    ) -> Replies<P::Response> {
        // Subscribe before the first lookup, so no change between the two is missed.
        let events = self.source.subscribe();
        let info = StreamInfo::next(&self.streams);
        tracing::debug!(stream = info.id, "SDS stream opened");
        let (tx, rx) = mpsc::channel(REPLY_QUEUE);
        let protocol = protocol(info, self.source.clone());
        tokio::spawn(drive(protocol, requests, events, tx, self.stopping.clone()));
        Box::pin(ReceiverStream::new(rx))
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
        Ok(Response::new(
            self.start(DeltaStream::new, request.into_inner()),
        ))
    }

    async fn stream_secrets(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamSecretsStream>, Status> {
        Ok(Response::new(
            self.start(SotwStream::new, request.into_inner()),
        ))
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
