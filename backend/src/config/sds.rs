//! `[sds]`: the Secret Discovery Service Envoy fetches certificates from, and its mutual TLS
//! files, read and checked here once so that the service only uses what was loaded.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

use super::Problems;
use crate::sds::ServerTls;

/// Default `sds.listen`: loopback, since the service hands out private keys; across hosts,
/// use mutual TLS.
pub const DEFAULT_SDS_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8082));

/// `[sds]` as written; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SdsSection {
    /// Default [`DEFAULT_SDS_LISTEN`].
    listen: Option<SocketAddr>,
    /// Mutual TLS (all three or none): the listener's certificate chain (PEM) ...
    tls_cert_file: Option<PathBuf>,
    /// ... its private key (PEM) ...
    tls_key_file: Option<PathBuf>,
    /// ... and the CA (PEM) whose client certificates Envoys must present to get secrets.
    client_ca_file: Option<PathBuf>,
}

impl SdsSection {
    pub(super) fn listen(&self) -> SocketAddr {
        self.listen.unwrap_or(DEFAULT_SDS_LISTEN)
    }
}

/// `[sds]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdsConfig {
    pub listen: SocketAddr,
    /// What `tls_cert_file`, `tls_key_file` and `client_ca_file` hold; `None` without them.
    pub tls: Option<ServerTls>,
}

impl SdsConfig {
    /// The section's values, the TLS files read and checked; `None` when one of them is
    /// reported.
    pub(super) fn from_section(s: SdsSection, problems: &mut Problems) -> Option<SdsConfig> {
        let listen = s.listen();
        let tls = load_tls(&s, problems)?;
        Some(SdsConfig { listen, tls })
    }
}

/// The listener's mutual-TLS material, read from the files and checked (the chain and key
/// parse and belong together, the CA parses): `Some(None)` without TLS keys, `None` when a
/// problem is reported, under its key.
fn load_tls(s: &SdsSection, problems: &mut Problems) -> Option<Option<ServerTls>> {
    let files = [
        ("sds.tls_cert_file", &s.tls_cert_file),
        ("sds.tls_key_file", &s.tls_key_file),
        ("sds.client_ca_file", &s.client_ca_file),
    ];
    if files.iter().all(|(_, f)| f.is_none()) {
        return Some(None);
    }
    for (key, file) in &files {
        if file.is_none() {
            problems.push(
                key,
                "is required for mutual TLS: set sds.tls_cert_file, sds.tls_key_file and \
                 sds.client_ca_file together, or none of them",
            );
        }
    }
    let (Some(cert), Some(key), Some(ca)) = (&s.tls_cert_file, &s.tls_key_file, &s.client_ca_file)
    else {
        return None;
    };
    let chain = pem_certificates("sds.tls_cert_file", cert, problems);
    let private_key = pem_private_key("sds.tls_key_file", key, problems);
    let roots = pem_certificates("sds.client_ca_file", ca, problems);
    let ((cert_pem, chain), (key_pem, private_key), (client_ca_pem, _)) =
        (chain?, private_key?, roots?);
    problems.check("sds.tls_key_file", key_matches(chain, private_key))?;
    Some(Some(ServerTls {
        cert_pem,
        key_pem,
        client_ca_pem,
    }))
}

/// The file's text and the certificates in it (at least one).
fn pem_certificates(
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
fn pem_private_key(
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
fn key_matches(
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
        .map_err(|e| format!("does not belong to the certificate in sds.tls_cert_file ({e})"))
}
