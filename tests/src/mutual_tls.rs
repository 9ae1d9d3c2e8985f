//! Certificates for mutual TLS between Envoy and the backend's SDS listener, as a fleet's
//! own CA would hand them out: one CA, a server certificate for the listener's name, and a
//! client certificate for Envoy, written as PEM files.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::envoy::SdsClientTls;
use crate::test_ca::{TestCa, Usage};

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
        let ca = TestCa::new("acme-edge fleet CA")?;
        let files = MutualTlsFiles {
            ca: dir.join("fleet-ca.crt"),
            server_chain: dir.join("sds-server.crt"),
            server_key: dir.join("sds-server.key"),
            client_chain: dir.join("sds-client.crt"),
            client_key: dir.join("sds-client.key"),
        };
        write(&files.ca, ca.root_pem())?;
        for (name, usage, chain, key) in [
            (
                SDS_SERVER_NAME,
                Usage::Server,
                &files.server_chain,
                &files.server_key,
            ),
            (
                "envoy.acme-edge.internal",
                Usage::Client,
                &files.client_chain,
                &files.client_key,
            ),
        ] {
            let leaf = ca.issue_for(&[name], usage)?;
            write(chain, &leaf.chain_pem)?;
            write(key, &leaf.key_pem)?;
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

/// Keys among them: every file is its owner's alone.
fn write(path: &Path, text: &str) -> Result<()> {
    crate::tools::write_private(path, text).with_context(|| format!("write {}", path.display()))
}
