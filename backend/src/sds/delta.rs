//! Incremental ("delta") xDS streams: what Envoy's on-demand secret selector speaks.
//!
//! Delta matters here because it is the only variant in which the server can say "no such
//! secret" (`removed_resources`): Envoy then fails the paused handshake at once, where a
//! state-of-the-world server could only stay silent and leave the handshake hanging.
//!
//! Per stream we keep every name Envoy subscribed to, spelled as Envoy spelled it, and what
//! Envoy was last told about it (a version, "removed", or nothing yet). Requests, certificate
//! events and resyncs all end in the same comparison: send what differs from what Envoy has.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse,
};
use tonic::Status;

use super::driver::{Protocol, StreamInfo, check_type_url, log_ack};
use super::held::{Evictions, HeldNames, ProxyId};
use super::names::{Requested, WILDCARD, classify};
use super::resource::{SECRET_TYPE_URL, delta_resource};
use crate::certs::{CertEvent, CertificateSource, ServedCertificate};

/// Most names one stream may track. Envoy's non-ADS on-demand selector opens one stream per
/// name, so real streams hold one; the bound only stops a misbehaving client from growing the
/// server's memory. Twice the design target of 100,000 domains per Envoy.
pub const MAX_NAMES_PER_STREAM: usize = 200_000;

/// Responses awaiting Envoy's acknowledgement that a stream times (for
/// `acme_edge_sds_apply_seconds`); Envoy acknowledges each in turn, so more means a peer that
/// does not, and the oldest are dropped.
const TIMED_RESPONSES: usize = 64;

/// What Envoy was last told about a name.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Told {
    Nothing,
    Version(String),
    Removed,
}

#[derive(Debug)]
struct Entry {
    /// The certificate source's key; `None` for a name no certificate can exist for.
    key: Option<String>,
    told: Told,
    /// Subscribed by name (not only seen through the wildcard).
    explicit: bool,
}

/// One delta stream's state.
pub struct DeltaStream {
    info: StreamInfo,
    source: Arc<dyn CertificateSource>,
    wildcard: bool,
    names: HashMap<String, Entry>,
    /// key -> the names (as Envoy spelled them) that resolve to it.
    by_key: HashMap<String, HashSet<String>>,
    first_request: bool,
    nonce: u64,
    /// The per-proxy account of held names, and where its evictions reach this stream.
    held: Arc<HeldNames>,
    evictions: Evictions,
    proxy: Option<ProxyId>,
    /// Names Envoy holds a version of (by this stream), and the nonce of the response that
    /// carried each one not yet acknowledged.
    holding: HashSet<String>,
    unsettled: HashMap<String, u64>,
    /// nonce -> when the response carrying secrets Envoy had asked for was produced.
    awaiting_ack: BTreeMap<u64, Instant>,
}

/// The resources and removals one response will carry.
#[derive(Default)]
struct Reply {
    response: DeltaDiscoveryResponse,
}

impl Reply {
    fn offer(&mut self, name: &str, told: &mut Told, cert: Option<&ServedCertificate>) {
        match cert {
            Some(cert) if *told != Told::Version(cert.version.clone()) => {
                self.response.resources.push(delta_resource(name, cert));
                *told = Told::Version(cert.version.clone());
            }
            None if *told != Told::Removed => {
                self.response.removed_resources.push(name.to_owned());
                *told = Told::Removed;
            }
            _ => {}
        }
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Resources and removals offered so far.
    fn len(&self) -> usize {
        self.response.resources.len() + self.response.removed_resources.len()
    }
}

impl DeltaStream {
    /// A stream whose names no bound applies to.
    pub fn new(info: StreamInfo, source: Arc<dyn CertificateSource>) -> Self {
        let (evictions, _) = tokio::sync::mpsc::unbounded_channel();
        Self::bounded(info, source, Arc::new(HeldNames::unbounded()), evictions)
    }

    /// A stream accounted in `held`; evictions of its names arrive through `evictions`.
    pub fn bounded(
        info: StreamInfo,
        source: Arc<dyn CertificateSource>,
        held: Arc<HeldNames>,
        evictions: Evictions,
    ) -> Self {
        DeltaStream {
            info,
            source,
            wildcard: false,
            names: HashMap::new(),
            by_key: HashMap::new(),
            first_request: true,
            nonce: 0,
            held,
            evictions,
            proxy: None,
            holding: HashSet::new(),
            unsettled: HashMap::new(),
            awaiting_ack: BTreeMap::new(),
        }
    }

    fn proxy(&mut self) -> &ProxyId {
        let peer = &self.info.peer;
        self.proxy
            .get_or_insert_with(|| ProxyId::new(&Default::default(), peer))
    }

    /// Keep the account of held names true to `response` (about to be sent); `requested`:
    /// its resources answer a subscription, so they count as just requested.
    fn account(&mut self, response: &DeltaDiscoveryResponse, requested: bool) {
        let (id, nonce) = (self.info.id, self.nonce);
        let proxy = self.proxy().clone();
        for resource in &response.resources {
            let name = &resource.name;
            if requested || !self.holding.contains(name) {
                self.held.hold(&proxy, name, id, &self.evictions);
            }
            self.holding.insert(name.clone());
            self.unsettled.insert(name.clone(), nonce);
        }
        for name in &response.removed_resources {
            self.let_go(name);
        }
    }

    /// Envoy no longer holds `name` through this stream.
    fn let_go(&mut self, name: &str) {
        if self.holding.remove(name) {
            let proxy = self.proxy().clone();
            self.held.release(&proxy, name, self.info.id);
        }
        self.unsettled.remove(name);
    }

    /// Envoy acknowledged (or refused) every response up to `nonce`: the handshakes that
    /// waited for those names have been resumed.
    fn settle(&mut self, nonce: &str) {
        let Ok(nonce) = nonce.parse::<u64>() else {
            return;
        };
        self.time_ack(nonce);
        let done: Vec<String> = (self.unsettled.iter())
            .filter(|(_, sent)| **sent <= nonce)
            .map(|(name, _)| name.clone())
            .collect();
        let proxy = self.proxy().clone();
        for name in done {
            self.unsettled.remove(&name);
            self.held.settle(&proxy, &name, self.info.id);
        }
    }

    /// Record how long Envoy took to acknowledge the timed responses up to `nonce`.
    fn time_ack(&mut self, nonce: u64) {
        let later = self.awaiting_ack.split_off(&(nonce.saturating_add(1)));
        for sent in std::mem::replace(&mut self.awaiting_ack, later).into_values() {
            crate::metrics::sds_applied(sent.elapsed());
        }
    }

    async fn lookup(&self, key: Option<&str>) -> Result<Option<ServedCertificate>, Status> {
        match key {
            None => Ok(None),
            Some(key) => self.source.certificate(key).await.map_err(|e| {
                tracing::warn!(stream = self.info.id, error = %e, "certificate lookup failed");
                Status::unavailable(e.to_string())
            }),
        }
    }

    fn insert(&mut self, name: &str, key: Option<String>, told: Told, explicit: bool) {
        if let Some(key) = &key {
            self.by_key
                .entry(key.clone())
                .or_default()
                .insert(name.to_owned());
        }
        self.names.insert(
            name.to_owned(),
            Entry {
                key,
                told,
                explicit,
            },
        );
    }

    fn remove(&mut self, name: &str) {
        let Some(Entry { key: Some(key), .. }) = self.names.remove(name) else {
            return;
        };
        if let Some(set) = self.by_key.get_mut(&key) {
            set.remove(name);
            if set.is_empty() {
                self.by_key.remove(&key);
            }
        }
    }

    /// Offer the current state of `name` (already tracked) to `reply`.
    async fn refresh(&mut self, name: &str, reply: &mut Reply) -> Result<(), Status> {
        let Some(key) = self.names.get(name).map(|e| e.key.clone()) else {
            return Ok(());
        };
        let cert = self.lookup(key.as_deref()).await?;
        if let Some(entry) = self.names.get_mut(name) {
            reply.offer(name, &mut entry.told, cert.as_ref());
        }
        Ok(())
    }

    fn unsubscribe(&mut self, names: &[String]) {
        for name in names {
            if name == WILDCARD {
                self.wildcard = false;
                let implicit: Vec<String> = (self.names.iter())
                    .filter(|(_, e)| !e.explicit)
                    .map(|(n, _)| n.clone())
                    .collect();
                for n in &implicit {
                    self.remove(n);
                    self.let_go(n);
                }
            } else {
                self.remove(name);
                self.let_go(name);
            }
        }
    }

    async fn subscribe(
        &mut self,
        names: Vec<String>,
        initial: &HashMap<String, String>,
        reply: &mut Reply,
    ) -> Result<(), Status> {
        for name in names {
            let key = match classify(&name) {
                Requested::Wildcard => {
                    // The source cannot list its names: the wildcard only follows changes.
                    self.wildcard = true;
                    continue;
                }
                Requested::Domain(key) => Some(key),
                Requested::Invalid => None,
            };
            // A repeated subscription asks for the resource again; on reconnect Envoy tells
            // which versions it already holds, and those need not be sent again.
            let told = initial
                .get(&name)
                .cloned()
                .map_or(Told::Nothing, Told::Version);
            if !self.names.contains_key(&name) && self.names.len() >= MAX_NAMES_PER_STREAM {
                tracing::warn!(stream = self.info.id, "too many names on one stream");
                reply.offer(&name, &mut Told::Nothing, None);
                continue;
            }
            let kept = matches!(told, Told::Version(_));
            self.remove(&name);
            self.insert(&name, key, told, true);
            let offered = reply.len();
            self.refresh(&name, reply).await?;
            if kept && reply.len() == offered {
                self.account_kept(&name);
            }
        }
        Ok(())
    }

    /// Envoy reconnected holding `name` at the version served: nothing is sent, but Envoy
    /// holds it, so it counts against the bound (else every backend restart would let an
    /// Envoy keep a bound's worth of names beyond it). Settled at once: no handshake waits
    /// for a secret Envoy already has.
    fn account_kept(&mut self, name: &str) {
        if self.holding.insert(name.to_owned()) {
            let (proxy, id) = (self.proxy().clone(), self.info.id);
            self.held.hold(&proxy, name, id, &self.evictions);
            self.held.settle(&proxy, name, id);
        }
    }

    /// The response for `reply`, if it says anything; `requested`: it answers a request.
    fn finish(&mut self, reply: Reply, requested: bool) -> Option<DeltaDiscoveryResponse> {
        if reply.is_empty() {
            return None;
        }
        self.nonce += 1;
        let mut response = reply.response;
        response.type_url = SECRET_TYPE_URL.to_owned();
        response.nonce = self.nonce.to_string();
        self.account(&response, requested);
        if requested && !response.resources.is_empty() {
            self.awaiting_ack.insert(self.nonce, Instant::now());
            if self.awaiting_ack.len() > TIMED_RESPONSES {
                self.awaiting_ack.pop_first();
            }
        }
        Some(response)
    }

    /// The names an event about `key` concerns; through the wildcard, `key` itself when
    /// `adopt` (a removal of a name Envoy never had needs no message).
    fn names_for(&mut self, key: &str, adopt: bool) -> Vec<String> {
        if adopt && self.wildcard && !self.names.contains_key(key) {
            self.insert(key, Some(key.to_owned()), Told::Nothing, false);
        }
        self.by_key
            .get(key)
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default()
    }
}

impl Protocol for DeltaStream {
    type Request = DeltaDiscoveryRequest;
    type Response = DeltaDiscoveryResponse;

    async fn on_request(
        &mut self,
        request: DeltaDiscoveryRequest,
    ) -> Result<Option<DeltaDiscoveryResponse>, Status> {
        check_type_url(&request.type_url)?;
        if let Some(node) = &request.node {
            self.info.set_node(node);
            if self.proxy.is_none() {
                self.proxy = Some(ProxyId::new(node, &self.info.peer));
            }
        }
        log_ack(
            &self.info,
            &request.response_nonce,
            request.error_detail.as_ref(),
        );
        self.settle(&request.response_nonce);
        let first = std::mem::replace(&mut self.first_request, false);
        // A first request subscribing to nothing is the legacy spelling of the wildcard.
        if first && request.resource_names_subscribe.is_empty() {
            self.wildcard = true;
        }
        self.unsubscribe(&request.resource_names_unsubscribe);
        let mut reply = Reply::default();
        let initial = if first {
            request.initial_resource_versions
        } else {
            HashMap::new()
        };
        self.subscribe(request.resource_names_subscribe, &initial, &mut reply)
            .await?;
        Ok(self.finish(reply, true))
    }

    async fn on_event(
        &mut self,
        event: CertEvent,
    ) -> Result<Option<DeltaDiscoveryResponse>, Status> {
        let mut reply = Reply::default();
        match event {
            CertEvent::Updated(key) => {
                for name in self.names_for(&key, true) {
                    self.refresh(&name, &mut reply).await?;
                }
            }
            CertEvent::Removed(key) => {
                for name in self.names_for(&key, false) {
                    if let Some(entry) = self.names.get_mut(&name) {
                        reply.offer(&name, &mut entry.told, None);
                    }
                }
            }
        }
        Ok(self.finish(reply, false))
    }

    async fn resync(&mut self) -> Result<Option<DeltaDiscoveryResponse>, Status> {
        let mut reply = Reply::default();
        let names: Vec<String> = self.names.keys().cloned().collect();
        for name in names {
            self.refresh(&name, &mut reply).await?;
        }
        Ok(self.finish(reply, false))
    }

    async fn on_evict(&mut self, name: String) -> Result<Option<DeltaDiscoveryResponse>, Status> {
        if !self.holding.contains(&name) {
            return Ok(None);
        }
        // Forgotten here too: a renewal must not hand the name back to Envoy unasked.
        self.remove(&name);
        let mut reply = Reply::default();
        reply.response.removed_resources.push(name);
        Ok(self.finish(reply, false))
    }
}

impl Drop for DeltaStream {
    fn drop(&mut self) {
        let proxy = self.proxy().clone();
        for name in std::mem::take(&mut self.holding) {
            self.held.release(&proxy, &name, self.info.id);
        }
    }
}
