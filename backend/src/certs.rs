//! The certificates the backend serves, as seen by whoever serves them (the SDS server).
//!
//! The issuance side writes certificates to the store and announces changes here; the serving
//! side reads the current certificate of a name and follows the announcements. Keeping this
//! seam narrow lets the SDS server be tested with any source, and lets a fleet deployment feed
//! the announcements from the database (another replica issued) as well as from this process.

use async_trait::async_trait;
use tokio::sync::broadcast;

/// The certificate currently served for one name (secret name = domain name).
#[derive(Clone, PartialEq, Eq)]
pub struct ServedCertificate {
    /// The domain, in normal form (lower case, punycode).
    pub name: String,
    /// Leaf first, then intermediates, PEM.
    pub chain_pem: String,
    /// The leaf's private key, PEM (PKCS#8).
    pub key_pem: String,
    /// Changes whenever the certificate changes (e.g. the leaf's serial number): the SDS
    /// resource version.
    pub version: String,
}

impl std::fmt::Debug for ServedCertificate {
    // Never print the private key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServedCertificate")
            .field("name", &self.name)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// A change to what is served for a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertEvent {
    /// Issued or renewed: read the new certificate with [`CertificateSource::certificate`].
    Updated(String),
    /// Disabled or deleted: the name is no longer served.
    Removed(String),
}

/// Error reading a certificate from storage.
#[derive(Debug, thiserror::Error)]
#[error("certificate source: {0}")]
pub struct SourceError(pub String);

/// Where served certificates come from.
#[async_trait]
pub trait CertificateSource: Send + Sync + 'static {
    /// The certificate to serve for `name` (already normalised), or `None` when the name is
    /// not managed, disabled, or not issued yet.
    async fn certificate(&self, name: &str) -> Result<Option<ServedCertificate>, SourceError>;

    /// Announcements of changes from now on. A lagging receiver must treat
    /// `RecvError::Lagged` as "anything may have changed" and re-read what it serves.
    fn subscribe(&self) -> broadcast::Receiver<CertEvent>;
}
