//! PEM files of TLS listeners (`[sds]` and `[admin]`), read and checked once: the chain and
//! the key parse, and the key belongs to the chain's first certificate.

use std::path::{Path, PathBuf};

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::problems::Problems;

/// A listener's certificate chain and private key (PEM), checked to belong together.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsIdentity {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for TlsIdentity {
    // Never print the private key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity").finish_non_exhaustive()
    }
}

/// `cert_key` and `key_key` name the two file keys (`admin.tls_cert_file`, ...): both or
/// neither. `Some(None)` without them, `None` when a problem is reported.
pub(super) fn load_identity(
    (cert_key, cert): (&str, &Option<PathBuf>),
    (key_key, key): (&str, &Option<PathBuf>),
    problems: &mut Problems,
) -> Option<Option<TlsIdentity>> {
    let (cert, key) = match (cert, key) {
        (None, None) => return Some(None),
        (Some(cert), Some(key)) => (cert, key),
        (None, Some(_)) => {
            problems.push(cert_key, format!("is required with {key_key}"));
            return None;
        }
        (Some(_), None) => {
            problems.push(key_key, format!("is required with {cert_key}"));
            return None;
        }
    };
    let chain = pem_certificates(cert_key, cert, problems);
    let private_key = pem_private_key(key_key, key, problems);
    let ((cert_pem, chain), (key_pem, private_key)) = (chain?, private_key?);
    problems.check(key_key, key_matches(chain, private_key))?;
    Some(Some(TlsIdentity { cert_pem, key_pem }))
}

/// The file's text and the certificates in it (at least one).
pub(super) fn pem_certificates(
    key: &str,
    path: &Path,
    problems: &mut Problems,
) -> Option<(String, Vec<CertificateDer<'static>>)> {
    use rustls::pki_types::pem::PemObject;
    let text = read_pem_file(key, path, problems)?;
    let certs = match CertificateDer::pem_slice_iter(text.as_bytes()).collect::<Result<Vec<_>, _>>()
    {
        Ok(certs) if certs.is_empty() => Err(format!("{}: no PEM certificate", path.display())),
        Ok(certs) => Ok(certs),
        Err(e) => Err(format!("{}: {e}", path.display())),
    };
    problems.check(key, certs).map(|certs| (text, certs))
}

/// The file's text and the private key in it.
pub(super) fn pem_private_key(
    key: &str,
    path: &Path,
    problems: &mut Problems,
) -> Option<(String, PrivateKeyDer<'static>)> {
    use rustls::pki_types::pem::PemObject;
    let text = read_pem_file(key, path, problems)?;
    let private_key = PrivateKeyDer::from_pem_slice(text.as_bytes())
        .map_err(|e| format!("{}: no usable PEM private key ({e})", path.display()));
    problems
        .check(key, private_key)
        .map(|private_key| (text, private_key))
}

fn read_pem_file(key: &str, path: &Path, problems: &mut Problems) -> Option<String> {
    problems.check(
        key,
        std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display())),
    )
}

/// The private key is the one the chain's first certificate was issued for.
pub(super) fn key_matches(
    chain: Vec<CertificateDer<'static>>,
    private_key: PrivateKeyDer<'static>,
) -> Result<(), String> {
    let provider = rustls::crypto::ring::default_provider();
    let signing_key = provider
        .key_provider
        .load_private_key(private_key)
        .map_err(|e| format!("unusable private key: {e}"))?;
    rustls::sign::CertifiedKey::new(chain, signing_key)
        .keys_match()
        .map_err(|e| format!("does not belong to the certificate of its listener ({e})"))
}
