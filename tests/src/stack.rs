//! The whole product on one machine: Pebble (the CA) + the backend + Envoy with the filter,
//! wired together. Used by the end-to-end tests and by `cargo xtask demo`.
//!
//! The wiring is circular on paper (Pebble must know Envoy's HTTP port to validate through
//! it, the backend must know Pebble, Envoy must know the backend), so every address is
//! allocated first; Pebble, then the backend, then Envoy start (Envoy may fetch the filter
//! from the backend).
//!
//! Fields drop in order: Envoy, then the backend, then Pebble.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::backend::{Backend, BackendBuilder};
use crate::envoy::{Envoy, EnvoyConfig, SdsEndpoint};
use crate::pebble::{Pebble, PebbleBuilder};
use crate::ports::{free_addr, free_port};

/// Bound on one HTTPS request through Envoy (the first handshake for a name waits for SDS).
const HTTPS_TIMEOUT: Duration = Duration::from_secs(20);

type Customize<T> = Box<dyn FnOnce(T) -> T + Send>;

/// Options for [`Stack`]; start it with [`StackBuilder::start`].
#[derive(Default)]
pub struct StackBuilder {
    dir: Option<PathBuf>,
    pebble: Option<Customize<PebbleBuilder>>,
    backend: Option<Customize<BackendBuilder>>,
    envoy: Option<Customize<EnvoyConfig>>,
    sds_over_tcp: bool,
    ca_frozen: bool,
}

impl StackBuilder {
    /// Freeze Pebble before the backend starts (thaw it with `stack.pebble.thaw()`): the
    /// backend starts and reads its database, and nothing it asks of the CA moves.
    pub fn ca_frozen_at_start(mut self) -> Self {
        self.ca_frozen = true;
        self
    }

    /// Serve SDS on a loopback TCP port instead of the backend's default Unix socket (for
    /// mutual TLS, which is for TCP).
    pub fn sds_over_tcp(mut self) -> Self {
        self.sds_over_tcp = true;
        self
    }

    /// Keep Pebble's and the backend's files under `dir` (`dir/pebble`, `dir/backend`)
    /// instead of temporary directories.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// Adjust Pebble's options (validity, fault injection).
    pub fn pebble(
        mut self,
        f: impl FnOnce(PebbleBuilder) -> PebbleBuilder + Send + 'static,
    ) -> Self {
        self.pebble = Some(Box::new(f));
        self
    }

    /// Adjust the backend's options (its CA is set to this stack's Pebble afterwards).
    pub fn backend(
        mut self,
        f: impl FnOnce(BackendBuilder) -> BackendBuilder + Send + 'static,
    ) -> Self {
        self.backend = Some(Box::new(f));
        self
    }

    /// Adjust Envoy's configuration (filter settings, workers).
    pub fn envoy(mut self, f: impl FnOnce(EnvoyConfig) -> EnvoyConfig + Send + 'static) -> Self {
        self.envoy = Some(Box::new(f));
        self
    }

    /// Start Envoy, Pebble and the backend, each ready when this returns.
    pub async fn start(self) -> Result<Stack> {
        let challenge_addr = free_addr();
        // SDS over the backend's default: a Unix socket, in a directory of the stack's own
        // (short, for the socket path's length limit).
        let sds_dir = tempfile::Builder::new()
            .prefix("acme-edge-sds")
            .tempdir()
            .context("a directory for the SDS socket")?;
        let sds = if self.sds_over_tcp {
            SdsEndpoint::Tcp(free_addr())
        } else {
            SdsEndpoint::Unix(sds_dir.path().join("sds.sock"))
        };
        let https_port = free_port();

        let mut envoy_config = edge_config(challenge_addr, sds.clone(), https_port)?;
        if let Some(f) = self.envoy {
            envoy_config = f(envoy_config);
        }

        let mut pebble = Pebble::builder(envoy_config.http_port());
        if let Some(dir) = &self.dir {
            pebble = pebble.dir(dir.join("pebble"));
        }
        if let Some(f) = self.pebble {
            pebble = f(pebble);
        }
        let mut pebble = pebble.start().await?;
        if self.ca_frozen {
            pebble.freeze()?;
        }

        let mut backend = Backend::builder();
        if let Some(dir) = &self.dir {
            backend = backend.dir(dir.join("backend"));
        }
        if let Some(f) = self.backend {
            backend = f(backend);
        }
        let backend = backend
            .pebble(&pebble)
            .challenge_addr(challenge_addr)
            .sds(sds)
            .start()
            .await?;

        // Envoy last: it may fetch the filter from the backend's challenge listener.
        // Its start-up polls synchronously; keep it off the async workers.
        let envoy = tokio::task::spawn_blocking(move || envoy_config.start())
            .await
            .context("envoy start-up panicked")??;

        Ok(Stack {
            envoy,
            https_port,
            backend,
            pebble,
            _sds_dir: sds_dir,
        })
    }
}

/// The Envoy configuration a stack starts with (before [`StackBuilder::envoy`] adjusts it):
/// The edge bootstrap with its challenge cluster at `challenge_addr`, its SDS cluster at
/// `sds` and its HTTPS listener on `https_port`. Nothing in it depends on the domains
/// served, which tests check by rendering it again.
pub fn edge_config(
    challenge_addr: SocketAddr,
    sds: impl Into<SdsEndpoint>,
    https_port: u16,
) -> Result<EnvoyConfig> {
    Ok(EnvoyConfig::edge(challenge_addr)?
        .sds(sds)
        .with_https_port(https_port))
}

/// A running stack.
pub struct Stack {
    pub envoy: Envoy,
    /// Envoy's HTTPS listener (certificates by SNI from the backend's SDS).
    pub https_port: u16,
    pub backend: Backend,
    pub pebble: Pebble,
    /// Holds the backend's SDS socket; removed with the stack.
    _sds_dir: tempfile::TempDir,
}

impl Stack {
    pub fn builder() -> StackBuilder {
        StackBuilder::default()
    }

    /// All defaults, temporary directories.
    pub async fn start() -> Result<Stack> {
        Stack::builder().start().await
    }

    /// Enable `name` and wait until its certificate is issued (Pebble validating through
    /// Envoy and the filter); the domain's JSON.
    pub async fn issue(&self, name: &str, deadline: Duration) -> Result<serde_json::Value> {
        self.backend.enable(name).await?;
        self.backend
            .wait_for_state(name, "issued", deadline)
            .await
            .with_context(|| {
                format!(
                    "envoy log:\n{}\npebble log:\n{}",
                    self.envoy.log(),
                    self.pebble.log()
                )
            })
    }

    /// An HTTPS client that sends every request for `name` to Envoy's HTTPS listener and
    /// trusts only the root Pebble issues from: a successful request proves Envoy serves a
    /// valid certificate for `name`.
    pub async fn https_client(&self, name: &str) -> Result<reqwest::Client> {
        let root = self.pebble.issuer_roots_pem().await?;
        let root = reqwest::Certificate::from_pem(root.as_bytes()).context("Pebble's root")?;
        reqwest::Client::builder()
            .add_root_certificate(root)
            .tls_built_in_root_certs(false)
            .resolve(
                name,
                SocketAddr::from((Ipv4Addr::LOCALHOST, self.https_port)),
            )
            .timeout(HTTPS_TIMEOUT)
            .build()
            .context("build an HTTPS client")
    }

    /// `https://name:<https port>/`, for [`https_client`](Self::https_client).
    pub fn https_url(&self, name: &str) -> String {
        format!("https://{name}:{}/", self.https_port)
    }

    /// Every component's log, for failure messages.
    pub fn logs(&self) -> String {
        format!(
            "{}\n{}\n{}",
            self.envoy.log(),
            self.backend.log(),
            self.pebble.log()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The harness itself works end to end: Pebble validates through Envoy and the filter,
    /// and the backend ends up holding a certificate chain.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stack_issues_a_certificate() {
        let stack = Stack::start().await.unwrap();
        let domain = stack
            .issue("stack.acme-edge.test", Duration::from_secs(120))
            .await
            .unwrap();
        assert_eq!(domain["state"], "issued");
        let chain = stack
            .backend
            .certificate_pem("stack.acme-edge.test")
            .await
            .unwrap();
        assert!(
            chain.matches("-----BEGIN CERTIFICATE-----").count() >= 2,
            "{chain}"
        );
        let client = stack.https_client("stack.acme-edge.test").await.unwrap();
        let response = client
            .get(stack.https_url("stack.acme-edge.test"))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{response:?}");
    }
}
