//! The loop every SDS stream runs: read Envoy's requests, follow certificate events, answer.
//!
//! Each protocol variant ([`DeltaStream`](super::delta::DeltaStream),
//! [`SotwStream`](super::sotw::SotwStream)) is a state machine behind [`Protocol`]; this
//! module owns the I/O, so the state machines can be driven directly in unit tests.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::rpc::Status as RpcStatus;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tonic::{Status, Streaming};

use super::resource::SECRET_TYPE_URL;
use crate::certs::CertEvent;

/// Responses a stream may have queued for Envoy before it stops reading events. Envoy reads
/// promptly; the bound only keeps a stuck peer from growing the queue.
pub const REPLY_QUEUE: usize = 16;

/// A state machine answering one stream.
pub trait Protocol: Send + 'static {
    type Request: Send + 'static;
    type Response: Send + 'static;

    /// Envoy sent `request`; the answer, if one is due.
    fn on_request(
        &mut self,
        request: Self::Request,
    ) -> impl Future<Output = Result<Option<Self::Response>, Status>> + Send;

    /// A certificate changed; the push, if this stream cares.
    fn on_event(
        &mut self,
        event: CertEvent,
    ) -> impl Future<Output = Result<Option<Self::Response>, Status>> + Send;

    /// Events were lost: compare everything served with the source.
    fn resync(&mut self) -> impl Future<Output = Result<Option<Self::Response>, Status>> + Send;

    /// The proxy holds too many names: tell it to drop `name` (see [`super::held`]).
    fn on_evict(
        &mut self,
        name: String,
    ) -> impl Future<Output = Result<Option<Self::Response>, Status>> + Send {
        let _ = name;
        async { Ok(None) }
    }
}

/// Who is on the other end of a stream, for logs.
#[derive(Debug, Clone)]
pub struct StreamInfo {
    pub id: u64,
    pub node: String,
    /// The connection's peer (`IP:PORT`, or `pid:N` on a Unix socket); empty if unknown.
    pub peer: String,
}

impl StreamInfo {
    pub fn next(counter: &AtomicU64) -> Self {
        StreamInfo {
            id: counter.fetch_add(1, Ordering::Relaxed),
            node: String::new(),
            peer: String::new(),
        }
    }

    pub fn set_node(&mut self, node: &Node) {
        if self.node.is_empty() {
            self.node = format!("{}/{}", node.cluster, node.id);
        }
    }
}

/// Refuse requests for anything but secrets (an empty type URL continues the stream's type).
pub fn check_type_url(type_url: &str) -> Result<(), Status> {
    match type_url {
        "" | SECRET_TYPE_URL => Ok(()),
        other => Err(Status::invalid_argument(format!(
            "this server only serves {SECRET_TYPE_URL}, not {other:.200}"
        ))),
    }
}

/// Envoy acknowledges every response; a NACK means it refused a secret (e.g. a broken PEM) and
/// keeps serving the previous one, which an operator needs to hear about.
pub fn log_ack(info: &StreamInfo, nonce: &str, error: Option<&RpcStatus>) {
    match (nonce, error) {
        ("", _) => {}
        (nonce, Some(error)) => tracing::warn!(
            stream = info.id,
            node = %info.node,
            nonce,
            code = error.code,
            error = %error.message,
            "Envoy rejected a secret (NACK)"
        ),
        (nonce, None) => tracing::trace!(stream = info.id, nonce, "ACK"),
    }
}

/// Run one stream until Envoy closes it, it fails, the reply channel is dropped, or the
/// server stops (`stopping` is cancelled). Envoy never ends a stream itself, so without the
/// last a graceful shutdown would wait forever.
pub async fn drive<P: Protocol>(
    mut protocol: P,
    mut requests: Streaming<P::Request>,
    mut events: broadcast::Receiver<CertEvent>,
    mut evictions: mpsc::UnboundedReceiver<String>,
    replies: mpsc::Sender<Result<P::Response, Status>>,
    stopping: CancellationToken,
) {
    let mut events_open = true;
    let mut evictions_open = true;
    loop {
        // When the request being answered arrived: Envoy may hold a handshake until then.
        let mut asked = None;
        let outcome = tokio::select! {
            () = stopping.cancelled() => break,
            request = requests.message() => match request {
                Ok(Some(request)) => {
                    asked = Some(Instant::now());
                    protocol.on_request(request).await
                }
                Ok(None) => break,
                Err(status) => {
                    tracing::debug!(%status, "SDS stream ended");
                    break;
                }
            },
            event = events.recv(), if events_open => match event {
                Ok(event) => protocol.on_event(event).await,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::debug!(missed, "certificate events lost; resynchronising");
                    protocol.resync().await
                }
                Err(broadcast::error::RecvError::Closed) => {
                    events_open = false;
                    Ok(None)
                }
            },
            eviction = evictions.recv(), if evictions_open => match eviction {
                Some(name) => protocol.on_evict(name).await,
                None => {
                    evictions_open = false;
                    Ok(None)
                }
            },
            () = replies.closed() => break,
        };
        let reply = match outcome {
            Ok(None) => continue,
            Ok(Some(response)) => Ok(response),
            Err(status) => Err(status),
        };
        let failed = reply.is_err();
        if replies.send(reply).await.is_err() || failed {
            break;
        }
        if let Some(asked) = asked {
            crate::metrics::sds_responded(asked.elapsed());
        }
    }
}
