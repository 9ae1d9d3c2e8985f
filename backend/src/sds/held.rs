//! The names each Envoy holds, and the bound on them (`sds.max_names_per_proxy`).
//!
//! Envoy 1.40's on-demand secret selector never drops a secret by itself: every name it has
//! served keeps a TLS context (about 46 KiB), its stats and one gRPC stream until Envoy
//! restarts. The SDS server sees every subscription, so it keeps, per proxy, the names it
//! has handed out and when each was last requested, and beyond the bound it removes the
//! least recently requested ones in the delta protocol. Envoy then erases the name from its
//! cache and closes its stream; a later handshake for it subscribes again (a cold
//! handshake).
//!
//! "Requested" is what the server can see: a subscription. Handshakes served from Envoy's
//! cache do not reach the server, so a busy name is evicted in its turn too and comes back
//! with its next handshake, as the most recent.
//!
//! A name is never evicted while a handshake may be waiting for it: from its subscription
//! until Envoy acknowledges the response that carried it (Envoy ACKs once the secret is
//! applied, which resumes the paused handshakes), it is *unsettled* and skipped.
//!
//! A proxy is the Envoy node (`cluster/id`) at one peer (its IP address over TCP, its
//! process id over the Unix socket): every connection an Envoy opens counts against the same
//! bound (it opens another past about 1,000 streams on one), and two Envoys that share a
//! node id still get a bound each unless they also share an address. A bound of 0 turns eviction off, for fleets whose
//! Envoys bound their own cache (the selector's `max_secrets` / `cache_idle_timeout` in
//! newer Envoy); a proxy may also set its own bound in its node metadata
//! ([`METADATA_KEY`]), e.g. 0 on an Envoy that bounds itself.
//!
//! What is held is published as metrics as it changes (a scrape reads them from memory):
//! `acme_edge_sds_proxies`, `acme_edge_sds_names_held` (over all proxies),
//! `acme_edge_sds_subscriptions_total` and `acme_edge_sds_evictions_total`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::value::Kind;
use tokio::sync::mpsc;

/// The node metadata key with which an Envoy sets its own bound (a number; 0: none).
pub const METADATA_KEY: &str = "acme_edge.max_names";

/// Where an eviction is delivered: the stream holding the name.
pub type Evictions = mpsc::UnboundedSender<String>;

#[derive(Debug)]
struct Slot {
    tick: u64,
    stream: u64,
    settled: bool,
    evict: Evictions,
}

#[derive(Debug, Default)]
struct Proxy {
    bound: Option<usize>,
    slots: HashMap<String, Slot>,
    /// tick -> name, oldest first.
    order: BTreeMap<u64, String>,
}

#[derive(Debug, Default)]
struct State {
    tick: u64,
    proxies: HashMap<String, Proxy>,
    /// Names held over all proxies.
    names: usize,
    evicted: u64,
    requested: u64,
}

impl State {
    /// The gauges, after a change.
    fn publish(&self) {
        metrics::gauge!(PROXIES).set(self.proxies.len() as f64);
        metrics::gauge!(NAMES_HELD).set(self.names as f64);
    }
}

const PROXIES: &str = "acme_edge_sds_proxies";
const NAMES_HELD: &str = "acme_edge_sds_names_held";
const SUBSCRIPTIONS: &str = "acme_edge_sds_subscriptions_total";
const EVICTIONS: &str = "acme_edge_sds_evictions_total";

/// Every proxy's held names; shared by all streams of one SDS server.
#[derive(Debug)]
pub struct HeldNames {
    max: usize,
    state: Mutex<State>,
}

impl Default for HeldNames {
    fn default() -> Self {
        Self::unbounded()
    }
}

impl HeldNames {
    /// At most `max` names per proxy (0: no bound).
    pub fn new(max: usize) -> Self {
        HeldNames {
            max,
            state: Mutex::default(),
        }
    }

    /// No bound.
    pub fn unbounded() -> Self {
        Self::new(0)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `proxy` was just handed `name` on `stream` (a subscription, or a certificate issued
    /// for a name it had asked about): it is the most recent, unsettled until acknowledged.
    /// Names beyond the bound are evicted.
    pub fn hold(&self, proxy: &ProxyId, name: &str, stream: u64, evict: &Evictions) {
        let mut state = self.state();
        state.tick += 1;
        state.requested += 1;
        metrics::counter!(SUBSCRIPTIONS).increment(1);
        let tick = state.tick;
        let entry = state.proxies.entry(proxy.key.clone()).or_default();
        entry.bound = proxy.bound;
        if let Some(old) = entry.slots.get(name) {
            entry.order.remove(&old.tick);
        }
        entry.order.insert(tick, name.to_owned());
        let slot = Slot {
            tick,
            stream,
            settled: false,
            evict: evict.clone(),
        };
        let added = entry.slots.insert(name.to_owned(), slot).is_none();
        state.names += usize::from(added);
        self.enforce(&mut state, &proxy.key);
        state.publish();
    }

    /// Envoy acknowledged the response carrying `name`: no handshake waits for it any more.
    pub fn settle(&self, proxy: &ProxyId, name: &str, stream: u64) {
        let mut state = self.state();
        let Some(slot) = (state.proxies.get_mut(&proxy.key))
            .and_then(|p| p.slots.get_mut(name))
            .filter(|s| s.stream == stream)
        else {
            return;
        };
        slot.settled = true;
        self.enforce(&mut state, &proxy.key);
        state.publish();
    }

    /// `stream` no longer holds `name` (removed, unsubscribed, or the stream ended).
    pub fn release(&self, proxy: &ProxyId, name: &str, stream: u64) {
        let mut state = self.state();
        let Some(entry) = state.proxies.get_mut(&proxy.key) else {
            return;
        };
        let mut released = false;
        if let Some(slot) = entry.slots.get(name).filter(|s| s.stream == stream) {
            entry.order.remove(&slot.tick);
            entry.slots.remove(name);
            released = true;
        }
        if entry.slots.is_empty() {
            state.proxies.remove(&proxy.key);
        }
        state.names -= usize::from(released);
        state.publish();
    }

    /// Evict the least recently requested settled names of `key` beyond its bound.
    fn enforce(&self, state: &mut State, key: &str) {
        let Some(entry) = state.proxies.get_mut(key) else {
            return;
        };
        let bound = entry.bound.unwrap_or(self.max);
        if bound == 0 || entry.slots.len() <= bound {
            return;
        }
        let mut excess = entry.slots.len() - bound;
        let mut victims = Vec::new();
        for (tick, name) in &entry.order {
            if excess == 0 {
                break;
            }
            if entry.slots.get(name).is_some_and(|s| s.settled) {
                victims.push((*tick, name.clone()));
                excess -= 1;
            }
        }
        for (tick, name) in victims {
            entry.order.remove(&tick);
            if let Some(slot) = entry.slots.remove(&name) {
                tracing::debug!(
                    proxy = key,
                    name,
                    "evicting the least recently requested name"
                );
                // A stream that already ended has released its names; nothing to tell.
                let _ = slot.evict.send(name);
                state.evicted += 1;
                state.names -= 1;
                metrics::counter!(EVICTIONS).increment(1);
            }
        }
    }

    /// How many names `proxy` holds, by the server's account.
    pub fn held_by(&self, proxy: &str) -> usize {
        self.state().proxies.get(proxy).map_or(0, |p| p.slots.len())
    }

    /// Names held over all proxies, and per proxy the most held.
    pub fn counts(&self) -> HeldCounts {
        let state = self.state();
        HeldCounts {
            proxies: state.proxies.len(),
            names: state.names,
            most_by_one_proxy: (state.proxies.values().map(|p| p.slots.len()))
                .max()
                .unwrap_or(0),
            evicted: state.evicted,
            requested: state.requested,
        }
    }

    /// The proxies known, by key.
    pub fn proxies(&self) -> Vec<String> {
        self.state().proxies.keys().cloned().collect()
    }
}

/// What [`HeldNames::counts`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldCounts {
    pub proxies: usize,
    pub names: usize,
    pub most_by_one_proxy: usize,
    /// Evictions since start.
    pub evicted: u64,
    /// Names handed out since start (subscriptions answered with a certificate).
    pub requested: u64,
}

/// One proxy: its key and its own bound from its node metadata, if it set one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyId {
    pub key: String,
    pub bound: Option<usize>,
}

impl ProxyId {
    /// The proxy `node` at `peer` (an IP address, or a process id on the Unix socket).
    pub fn new(node: &Node, peer: &str) -> Self {
        ProxyId {
            key: format!("{}/{}@{peer}", node.cluster, node.id),
            bound: metadata_bound(node),
        }
    }
}

/// The bound `node` sets for itself in its metadata; a value that is not a whole,
/// non-negative number is ignored (with a warning).
fn metadata_bound(node: &Node) -> Option<usize> {
    let value = node.metadata.as_ref()?.fields.get(METADATA_KEY)?;
    match &value.kind {
        Some(Kind::NumberValue(n)) if *n >= 0.0 && n.fract() == 0.0 && *n <= 1e12 => {
            // Checked whole and in range above.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Some(*n as usize)
        }
        _ => {
            tracing::warn!(
                node = %node.id,
                "node metadata {METADATA_KEY} is not a whole number; using sds.max_names_per_proxy"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxy(key: &str) -> ProxyId {
        ProxyId {
            key: key.into(),
            bound: None,
        }
    }

    fn drain(rx: &mut mpsc::UnboundedReceiver<String>) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(name) = rx.try_recv() {
            out.push(name);
        }
        out
    }

    #[test]
    fn evicts_least_recently_requested_settled_names_beyond_the_bound() {
        let held = HeldNames::new(2);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let p = proxy("p");
        for (stream, name) in ["a", "b", "c"].iter().enumerate() {
            held.hold(&p, name, stream as u64, &tx);
        }
        // None settled: a handshake may wait for each, so none goes.
        assert_eq!(drain(&mut rx), Vec::<String>::new());
        assert_eq!(held.held_by("p"), 3);
        held.settle(&p, "b", 1);
        assert_eq!(drain(&mut rx), ["b"]);
        held.settle(&p, "a", 0);
        held.settle(&p, "c", 2);
        assert_eq!(held.held_by("p"), 2);
        // "a" requested again: now "c" is the oldest.
        held.hold(&p, "a", 0, &tx);
        held.settle(&p, "a", 0);
        held.hold(&p, "d", 3, &tx);
        held.settle(&p, "d", 3);
        assert_eq!(drain(&mut rx), ["c"]);
        assert_eq!(held.counts().evicted, 2);
        assert_eq!(held.counts().names, 2);
    }

    #[test]
    fn the_count_of_names_held_follows_holds_releases_and_evictions() {
        let held = HeldNames::new(3);
        let (tx, _rx) = mpsc::unbounded_channel();
        let (p, q) = (proxy("p"), proxy("q"));
        for (stream, name) in ["a", "b", "c", "d"].iter().enumerate() {
            held.hold(&p, name, stream as u64, &tx);
            held.settle(&p, name, stream as u64);
        }
        held.hold(&q, "a", 9, &tx);
        // Held again on the same stream: still one name.
        held.hold(&q, "a", 9, &tx);
        assert_eq!(held.counts().names, 4, "p: 3 (one evicted), q: 1");
        // A release by another stream than the holder's changes nothing.
        held.release(&p, "d", 0);
        assert_eq!(held.counts().names, 4);
        held.release(&p, "d", 3);
        held.release(&q, "a", 9);
        let counts = held.counts();
        assert_eq!((counts.names, counts.proxies), (2, 1));
        assert_eq!(counts.names, held.held_by("p"));
    }

    #[test]
    fn proxies_are_bounded_separately_and_zero_means_no_bound() {
        let held = HeldNames::new(1);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let own = ProxyId {
            key: "own".into(),
            bound: Some(0),
        };
        for (i, name) in ["a", "b", "c"].iter().enumerate() {
            held.hold(&proxy("p1"), name, i as u64, &tx);
            held.settle(&proxy("p1"), name, i as u64);
            held.hold(&proxy("p2"), name, 10 + i as u64, &tx);
            held.settle(&proxy("p2"), name, 10 + i as u64);
            held.hold(&own, name, 20 + i as u64, &tx);
            held.settle(&own, name, 20 + i as u64);
        }
        assert_eq!(drain(&mut rx).len(), 4);
        assert_eq!(held.held_by("own"), 3);
        let unbounded = HeldNames::unbounded();
        for (i, name) in ["a", "b"].iter().enumerate() {
            unbounded.hold(&proxy("p"), name, i as u64, &tx);
            unbounded.settle(&proxy("p"), name, i as u64);
        }
        assert_eq!(unbounded.held_by("p"), 2);
    }

    #[test]
    fn release_by_another_stream_is_ignored() {
        let held = HeldNames::new(5);
        let (tx, _rx) = mpsc::unbounded_channel();
        held.hold(&proxy("p"), "a", 1, &tx);
        held.release(&proxy("p"), "a", 2);
        assert_eq!(held.held_by("p"), 1);
        held.release(&proxy("p"), "a", 1);
        assert_eq!(held.counts().proxies, 0);
    }
}
