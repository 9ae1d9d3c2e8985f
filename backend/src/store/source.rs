//! The store as the serving side sees it: the current certificate of a name, and
//! announcements when one is issued, renewed or removed.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::broadcast;

use super::Store;
use crate::certs::{CertEvent, CertificateSource, ServedCertificate, SourceError};

/// Announcements a slow subscriber may fall behind by before it must re-read everything
/// (`RecvError::Lagged`): a burst of renewals is thousands of names at most.
const EVENT_BUFFER: usize = 4096;

/// Certificates from a [`Store`], with change announcements from this process's workers.
#[derive(Clone)]
pub struct StoreSource {
    store: Arc<dyn Store>,
    events: broadcast::Sender<CertEvent>,
    /// Names of domains whose row changed (state, certificate, ...): the admin API's event
    /// stream. Every certificate event is one too.
    domains: broadcast::Sender<String>,
}

impl StoreSource {
    pub fn new(store: Arc<dyn Store>) -> StoreSource {
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let (domains, _) = broadcast::channel(EVENT_BUFFER);
        StoreSource {
            store,
            events,
            domains,
        }
    }

    /// Tell subscribers what changed. Nobody listening is fine.
    pub fn announce(&self, event: CertEvent) {
        let (CertEvent::Updated(name) | CertEvent::Removed(name)) = &event;
        let _ = self.domains.send(name.clone());
        let _ = self.events.send(event);
    }

    /// Tell the domain subscribers that `name`'s row changed, what is served staying the same
    /// (enabled, claimed, failed, due for renewal).
    pub fn announce_domain(&self, name: &str) {
        let _ = self.domains.send(name.to_owned());
    }

    /// Names of changed domains from now on; `RecvError::Lagged` means "anything may have
    /// changed".
    pub fn subscribe_domains(&self) -> broadcast::Receiver<String> {
        self.domains.subscribe()
    }
}

#[async_trait]
impl CertificateSource for StoreSource {
    async fn certificate(&self, name: &str) -> Result<Option<ServedCertificate>, SourceError> {
        let stored = self
            .store
            .certificate(name)
            .await
            .map_err(|e| SourceError(e.to_string()))?;
        Ok(stored.map(|c| ServedCertificate {
            name: name.to_owned(),
            chain_pem: c.chain_pem,
            key_pem: c.key_pem,
            version: c.version,
        }))
    }

    fn subscribe(&self) -> broadcast::Receiver<CertEvent> {
        self.events.subscribe()
    }
}
