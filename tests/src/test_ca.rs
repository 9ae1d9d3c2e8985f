//! A throwaway certificate authority for tests and benchmarks: a root, optionally an
//! intermediate under it, and the leaves it signs, all made in memory with rcgen.
//!
//! Leaves carry their names as subject alternative names (an IP address becomes an IP SAN)
//! and the first as common name, a serial number counted up from 1 per CA (so a later leaf
//! is recognisably newer), `digitalSignature` and one extended key usage: server or client
//! authentication. Their chain holds the intermediate when there is one, never the root:
//! a client trusts the root ([`TestCa::client`], [`TestCa::root_pem`]).

use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SerialNumber,
};
use rustls::pki_types::CertificateDer;
use tokio_rustls::TlsConnector;

use crate::tls;

/// What a leaf certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// A TLS server's certificate.
    Server,
    /// A TLS client's certificate (mutual TLS).
    Client,
}

/// A root certificate authority, or a root and the intermediate that signs for it.
pub struct TestCa {
    root_der: CertificateDer<'static>,
    root_pem: String,
    /// Signs the leaves: the root, or the intermediate.
    signer: CertifiedIssuer<'static, KeyPair>,
    /// PEM appended to every leaf's chain: the intermediate's, or nothing.
    chain_tail: String,
    serial: AtomicU64,
}

/// A certificate the CA signed, with its key.
#[derive(Debug, Clone)]
pub struct Leaf {
    /// The first of its names (also its common name).
    pub name: String,
    /// The leaf, then the intermediate when the CA has one (PEM).
    pub chain_pem: String,
    /// The leaf's private key (PKCS#8 PEM).
    pub key_pem: String,
    /// The leaf alone (DER), as a server presents it first.
    pub der: Vec<u8>,
    /// Its serial number: 1 for the CA's first leaf, then counting up.
    pub serial: u64,
}

impl TestCa {
    /// A root named `common_name` that signs the leaves itself.
    pub fn new(common_name: &str) -> Result<TestCa> {
        let root = CertifiedIssuer::self_signed(ca_params(common_name)?, KeyPair::generate()?)?;
        Ok(TestCa {
            root_der: root.der().clone(),
            root_pem: root.pem(),
            signer: root,
            chain_tail: String::new(),
            serial: AtomicU64::new(1),
        })
    }

    /// A root named `common_name` and an intermediate under it that signs the leaves, as a
    /// public CA's chains are built.
    pub fn with_intermediate(common_name: &str) -> Result<TestCa> {
        let root = CertifiedIssuer::self_signed(
            ca_params(&format!("{common_name} root"))?,
            KeyPair::generate()?,
        )?;
        let intermediate = CertifiedIssuer::signed_by(
            ca_params(&format!("{common_name} intermediate"))?,
            KeyPair::generate()?,
            &root,
        )?;
        Ok(TestCa {
            root_der: root.der().clone(),
            root_pem: root.pem(),
            chain_tail: intermediate.pem(),
            signer: intermediate,
            serial: AtomicU64::new(1),
        })
    }

    /// The root certificate (PEM): what a peer of a leaf's holder trusts.
    pub fn root_pem(&self) -> &str {
        &self.root_pem
    }

    /// A TLS client (no client certificate) trusting this CA's root only.
    pub fn client(&self) -> Result<TlsConnector> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.root_der.clone())?;
        tls::client(roots)
    }

    /// A server certificate for `name`.
    pub fn issue(&self, name: &str) -> Result<Leaf> {
        self.issue_for(&[name], Usage::Server)
    }

    /// A certificate for `names` (at least one; DNS names or IP addresses) used as `usage`.
    pub fn issue_for(&self, names: &[&str], usage: Usage) -> Result<Leaf> {
        let first = names.first().context("a certificate needs a name")?;
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
        params.distinguished_name.push(DnType::CommonName, *first);
        params.serial_number = Some(SerialNumber::from(serial));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![match usage {
            Usage::Server => ExtendedKeyUsagePurpose::ServerAuth,
            Usage::Client => ExtendedKeyUsagePurpose::ClientAuth,
        }];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate()?;
        let leaf = params.signed_by(&key, &self.signer)?;
        Ok(Leaf {
            name: (*first).to_owned(),
            chain_pem: format!("{}{}", leaf.pem(), self.chain_tail),
            key_pem: key.serialize_pem(),
            der: leaf.der().to_vec(),
            serial,
        })
    }
}

impl Leaf {
    /// Its serial number as text: the version a certificate source gives it (SDS), new with
    /// every leaf.
    pub fn version(&self) -> String {
        self.serial.to_string()
    }
}

/// The backend's `acme_edge::certs::ServedCertificate` for a [`Leaf`](crate::test_ca::Leaf)
/// (`&Leaf`): its first name, its chain and key, and its
/// [`version`](crate::test_ca::Leaf::version). For the tests and benchmarks that serve leaves
/// through the SDS server's in-memory source.
///
/// A macro, expanded where `acme_edge` is a dependency: the harness itself does not depend
/// on the backend, whose own tests use the harness.
#[macro_export]
macro_rules! served_certificate {
    ($leaf:expr) => {{
        let leaf: &$crate::test_ca::Leaf = $leaf;
        ::acme_edge::certs::ServedCertificate {
            name: leaf.name.clone(),
            chain_pem: leaf.chain_pem.clone(),
            key_pem: leaf.key_pem.clone(),
            version: leaf.version(),
        }
    }};
}

fn ca_params(common_name: &str) -> Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::pem_certificates;

    #[test]
    fn chains_carry_the_intermediate_and_serials_count_up() {
        let ca = TestCa::with_intermediate("acme-edge test").unwrap();
        let first = ca.issue("a.example").unwrap();
        let second = ca
            .issue_for(&["b.example", "127.0.0.1"], Usage::Client)
            .unwrap();
        assert_eq!((first.serial, second.serial), (1, 2));
        let chain = pem_certificates(&first.chain_pem).unwrap();
        assert_eq!(chain.len(), 2);
        assert_eq!(chain[0].as_ref(), first.der.as_slice());
        assert!(!first.chain_pem.contains(ca.root_pem()));
        assert!(first.key_pem.contains("PRIVATE KEY"));

        let direct = TestCa::new("acme-edge test CA").unwrap();
        let leaf = direct.issue("c.example").unwrap();
        assert_eq!(pem_certificates(&leaf.chain_pem).unwrap().len(), 1);
        assert!(direct.issue_for(&[], Usage::Server).is_err());
    }
}
