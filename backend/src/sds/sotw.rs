//! State-of-the-world xDS: `StreamSecrets` and `FetchSecrets`.
//!
//! Answered as far as the protocol allows: every response carries all requested secrets that
//! exist. It cannot say that a name does not exist (absence is not an answer), so an Envoy
//! using it for on-demand secrets waits for an unknown name until its fetch timeout; configure
//! Envoy with `DELTA_GRPC` instead.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::Any;
use tonic::Status;

use super::driver::{Protocol, StreamInfo, check_type_url, log_ack};
use super::names::{Requested, classify};
use super::resource::{SECRET_TYPE_URL, secret_any};
use crate::certs::{CertEvent, CertificateSource};

/// Most names one state-of-the-world request may carry (see
/// [`MAX_NAMES_PER_STREAM`](super::delta::MAX_NAMES_PER_STREAM)).
pub const MAX_NAMES_PER_REQUEST: usize = super::delta::MAX_NAMES_PER_STREAM;

/// The requested secrets that exist, and a version naming exactly that content.
async fn collect(
    source: &dyn CertificateSource,
    names: &[String],
) -> Result<(Vec<Any>, String), Status> {
    if names.len() > MAX_NAMES_PER_REQUEST {
        return Err(Status::resource_exhausted(
            "too many secret names in one request",
        ));
    }
    let mut resources = Vec::new();
    let mut hasher = DefaultHasher::new();
    for name in names {
        let Requested::Domain(key) = classify(name) else {
            continue;
        };
        let cert =
            (source.certificate(&key).await).map_err(|e| Status::unavailable(e.to_string()))?;
        if let Some(cert) = cert {
            (name, &cert.version).hash(&mut hasher);
            resources.push(secret_any(name, &cert));
        }
    }
    Ok((resources, format!("{:016x}", hasher.finish())))
}

/// Answer a one-shot `FetchSecrets`.
pub async fn fetch(
    source: &dyn CertificateSource,
    request: &DiscoveryRequest,
) -> Result<DiscoveryResponse, Status> {
    check_type_url(&request.type_url)?;
    let (resources, version) = collect(source, &request.resource_names).await?;
    Ok(DiscoveryResponse {
        version_info: version.clone(),
        resources,
        type_url: SECRET_TYPE_URL.to_owned(),
        nonce: version,
        ..Default::default()
    })
}

/// One `StreamSecrets` stream's state.
pub struct SotwStream {
    info: StreamInfo,
    source: Arc<dyn CertificateSource>,
    /// The names of the last request answered; `None` before the first.
    names: Option<Vec<String>>,
    nonce: u64,
}

impl SotwStream {
    pub fn new(info: StreamInfo, source: Arc<dyn CertificateSource>) -> Self {
        SotwStream {
            info,
            source,
            names: None,
            nonce: 0,
        }
    }

    async fn respond(&mut self) -> Result<Option<DiscoveryResponse>, Status> {
        let Some(names) = &self.names else {
            return Ok(None);
        };
        let (resources, version) = collect(self.source.as_ref(), names).await?;
        self.nonce += 1;
        Ok(Some(DiscoveryResponse {
            version_info: version,
            resources,
            type_url: SECRET_TYPE_URL.to_owned(),
            nonce: self.nonce.to_string(),
            ..Default::default()
        }))
    }

    fn concerns(&self, key: &str) -> bool {
        let names = self.names.iter().flatten();
        names
            .map(|n| classify(n))
            .any(|r| r == Requested::Domain(key.to_owned()))
    }
}

impl Protocol for SotwStream {
    type Request = DiscoveryRequest;
    type Response = DiscoveryResponse;

    async fn on_request(
        &mut self,
        request: DiscoveryRequest,
    ) -> Result<Option<DiscoveryResponse>, Status> {
        check_type_url(&request.type_url)?;
        if let Some(node) = &request.node {
            self.info.set_node(node);
        }
        log_ack(
            &self.info,
            &request.response_nonce,
            request.error_detail.as_ref(),
        );
        // An ACK or NACK of the names already answered needs no answer: replying would loop.
        let acknowledging = !request.response_nonce.is_empty();
        if acknowledging && self.names.as_ref() == Some(&request.resource_names) {
            return Ok(None);
        }
        self.names = Some(request.resource_names);
        self.respond().await
    }

    async fn on_event(&mut self, event: CertEvent) -> Result<Option<DiscoveryResponse>, Status> {
        let (CertEvent::Updated(key) | CertEvent::Removed(key)) = &event;
        if self.concerns(key) {
            self.respond().await
        } else {
            Ok(None)
        }
    }

    async fn resync(&mut self) -> Result<Option<DiscoveryResponse>, Status> {
        self.respond().await
    }
}
