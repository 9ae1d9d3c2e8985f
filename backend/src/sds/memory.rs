//! An in-memory [`CertificateSource`], for tests and benchmarks that serve certificates
//! without a store.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::certs::{CertEvent, CertificateSource, ServedCertificate, SourceError};

/// Events a slow stream may fall behind by before it resynchronises.
const EVENT_BUFFER: usize = 1024;

/// Certificates held in a map; [`put`](Self::put) and [`remove`](Self::remove) announce.
pub struct MemorySource {
    certs: RwLock<HashMap<String, ServedCertificate>>,
    events: broadcast::Sender<CertEvent>,
}

impl Default for MemorySource {
    fn default() -> Self {
        MemorySource {
            certs: RwLock::default(),
            events: broadcast::channel(EVENT_BUFFER).0,
        }
    }
}

impl MemorySource {
    pub fn new() -> Self {
        Self::default()
    }

    /// Serve `cert` under `cert.name` (issued or renewed).
    pub fn put(&self, cert: ServedCertificate) {
        let name = cert.name.clone();
        let mut certs = self.certs.write().unwrap_or_else(PoisonError::into_inner);
        certs.insert(name.clone(), cert);
        drop(certs);
        // No receiver (no stream open) is not an error.
        let _ = self.events.send(CertEvent::Updated(name));
    }

    /// Stop serving `name` (disabled).
    pub fn remove(&self, name: &str) {
        let mut certs = self.certs.write().unwrap_or_else(PoisonError::into_inner);
        certs.remove(name);
        drop(certs);
        let _ = self.events.send(CertEvent::Removed(name.to_owned()));
    }

    /// How many streams follow the announcements.
    pub fn followers(&self) -> usize {
        self.events.receiver_count()
    }
}

#[async_trait]
impl CertificateSource for MemorySource {
    async fn certificate(&self, name: &str) -> Result<Option<ServedCertificate>, SourceError> {
        let certs = self.certs.read().unwrap_or_else(PoisonError::into_inner);
        Ok(certs.get(name).cloned())
    }

    fn subscribe(&self) -> broadcast::Receiver<CertEvent> {
        self.events.subscribe()
    }
}
