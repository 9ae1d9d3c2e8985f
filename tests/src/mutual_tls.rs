//! Certificates for mutual TLS between Envoy and the backend's SDS listener, as a fleet's
//! own CA would hand them out: one CA, a server certificate for the listener's name, and a
//! client certificate for Envoy, written as PEM files.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::envoy::SdsClientTls;

/// The name the SDS listener's certificate carries and Envoy checks.
pub const SDS_SERVER_NAME: &str = "acme-edge.internal";

/// The PEM files, under the directory given to [`MutualTlsFiles::create`].
#[derive(Debug, Clone)]
pub struct MutualTlsFiles {
    pub ca: PathBuf,
    pub server_chain: PathBuf,
    pub server_key: PathBuf,
    pub client_chain: PathBuf,
    pub client_key: PathBuf,
}

impl MutualTlsFiles {
    /// A fresh CA and the two certificates it signs, written into `dir`.
    pub fn create(dir: &Path) -> Result<MutualTlsFiles> {
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "acme-edge fleet CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let files = MutualTlsFiles {
            ca: dir.join("fleet-ca.crt"),
            server_chain: dir.join("sds-server.crt"),
            server_key: dir.join("sds-server.key"),
            client_chain: dir.join("sds-client.crt"),
            client_key: dir.join("sds-client.key"),
        };
        write(&files.ca, &ca.pem())?;
        for (name, usage, chain, key) in [
            (
                SDS_SERVER_NAME,
                ExtendedKeyUsagePurpose::ServerAuth,
                &files.server_chain,
                &files.server_key,
            ),
            (
                "envoy.acme-edge.internal",
                ExtendedKeyUsagePurpose::ClientAuth,
                &files.client_chain,
                &files.client_key,
            ),
        ] {
            let leaf_key = KeyPair::generate()?;
            let mut params = CertificateParams::new(vec![name.to_owned()])?;
            params.distinguished_name.push(DnType::CommonName, name);
            params.extended_key_usages = vec![usage];
            let leaf = params.signed_by(&leaf_key, &issuer)?;
            write(chain, &leaf.pem())?;
            write(key, &leaf_key.serialize_pem())?;
        }
        Ok(files)
    }

    /// Envoy's side: its client certificate, checking the listener against the CA.
    pub fn envoy(&self) -> SdsClientTls {
        SdsClientTls {
            chain_file: self.client_chain.clone(),
            key_file: self.client_key.clone(),
            ca_file: self.ca.clone(),
            server_name: SDS_SERVER_NAME.to_owned(),
        }
    }

    /// The backend's `[sds]` keys: `(key, file)`.
    pub fn backend_settings(&self) -> [(&'static str, String); 3] {
        [
            ("tls_cert_file", self.server_chain.display().to_string()),
            ("tls_key_file", self.server_key.display().to_string()),
            ("client_ca_file", self.ca.display().to_string()),
        ]
    }
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("write {}", path.display()))
}
