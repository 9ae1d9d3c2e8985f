//! TLS clients for the tests: rustls (ring) trusting only the roots a test names.

use std::sync::Arc;

use anyhow::{Context, Result};
use rustls::pki_types::CertificateDer;
use tokio_rustls::TlsConnector;

/// Every certificate in a PEM text, DER-encoded.
pub fn pem_certificates(pem: &str) -> Result<Vec<CertificateDer<'static>>> {
    use rustls::pki_types::pem::PemObject;
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes()).collect::<Result<Vec<_>, _>>();
    certs.context("malformed PEM")
}

/// A TLS client (no client certificate) trusting `roots` only.
pub fn client(roots: rustls::RootCertStore) -> Result<TlsConnector> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// A TLS client trusting only the certificates in `pem`.
pub fn client_trusting(pem: &str) -> Result<TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    for root in pem_certificates(pem)? {
        roots.add(root)?;
    }
    client(roots)
}
