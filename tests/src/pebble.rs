//! Pebble (Let's Encrypt's ACME test CA) and `pebble-challtestsrv` as its DNS server.
//!
//! Pebble ships no certificate for its own HTTPS listener, so the fixture makes a small test
//! CA and a leaf for `localhost` / `127.0.0.1` signed by it (rustls refuses a self-signed CA
//! certificate used as a server certificate). ACME clients trust [`Pebble::ca_root_pem`].
//! Certificates that Pebble *issues* chain to a different root, generated afresh on every
//! Pebble start: [`Pebble::issuer_roots_pem`].
//!
//! Pebble's validation authority resolves every name through `pebble-challtestsrv`, which
//! answers 127.0.0.1, and connects to the configured HTTP port: the caller passes the port of
//! Envoy's HTTP listener, so challenges go through Envoy and the filter.
//!
//! Pebble 2.4 can deadlock for good under concurrent requests: an authorization fetch holds
//! the authorization's lock while it waits for the store's read lock, a new order (or an
//! order fetch) holds the store's read lock while it waits for that authorization, and a
//! third request waiting to write to the store keeps the first from getting its read lock.
//! Two requests in flight at once, in all, cannot close that cycle; backends talking to one
//! Pebble keep [`PEBBLE_SAFE_CONCURRENT_REQUESTS`] between them
//! (`acme.max_concurrent_requests`).
//!
//! By default the fault injection Pebble does out of the box is off (no random 0-15 s
//! validation sleep, no 5 % bad-nonce rejections); fault tests turn it back on with
//! [`PebbleBuilder::va_sleep`] and [`PebbleBuilder::nonce_reject_percent`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::ports::free_addr;
use crate::process::{ChildGuard, Signal, Spawn, WorkDir, wait_for_port};
use crate::test_ca::{TestCa, Usage};
use crate::tools;

/// Requests in flight to one Pebble, from all its clients together, that cannot deadlock it
/// (see the module documentation).
pub const PEBBLE_SAFE_CONCURRENT_REQUESTS: u64 = 2;

/// How long Pebble and its DNS server get to open their ports.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// Bound on each request to Pebble's management API.
const MANAGEMENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Options for [`Pebble`]; start it with [`PebbleBuilder::start`].
#[derive(Debug, Clone)]
pub struct PebbleBuilder {
    http_port: u16,
    validity: Option<Duration>,
    va_sleep: bool,
    nonce_reject_percent: u8,
    dir: Option<PathBuf>,
    ipv6_only: bool,
}

impl PebbleBuilder {
    /// Validity of issued certificates (Pebble's default is 5 years). Renewal tests use
    /// short ones.
    pub fn certificate_validity(mut self, validity: Duration) -> Self {
        self.validity = Some(validity);
        self
    }

    /// Keep Pebble's random 0-15 s sleep before each validation.
    pub fn va_sleep(mut self, on: bool) -> Self {
        self.va_sleep = on;
        self
    }

    /// Reject this percentage of valid nonces with `badNonce` (Pebble's own default is 5).
    pub fn nonce_reject_percent(mut self, percent: u8) -> Self {
        self.nonce_reject_percent = percent.min(100);
        self
    }

    /// Every name resolves to `::1` only (an AAAA record and no A record), so Pebble
    /// validates over IPv6, as Let's Encrypt does for a name with an AAAA record.
    pub fn ipv6_only(mut self) -> Self {
        self.ipv6_only = true;
        self
    }

    /// Keep configuration, certificates and logs in `dir` instead of a temporary directory.
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// Generate the listener certificate, write the configuration, start the DNS server and
    /// Pebble, and wait until both listen.
    pub async fn start(self) -> Result<Pebble> {
        let dir = WorkDir::new(self.dir.clone(), "pebble")?;
        let listener_ca = write_listener_certificates(dir.path())?;
        let addrs = Addrs {
            acme: free_addr(),
            management: free_addr(),
            dns: free_addr(),
            dns_management: free_addr(),
            tls: free_addr(),
        };
        let config = dir.path().join("pebble-config.json");
        write_config(&config, &self, &addrs, dir.path())?;

        let mut dns = self.dns_spawn(&addrs, dir.path())?.start()?;
        wait_for(&mut dns, addrs.dns_management).await?;
        let mut pebble = self.pebble_spawn(&config, &addrs, dir.path())?.start()?;
        wait_for(&mut pebble, addrs.acme).await?;
        wait_for(&mut pebble, addrs.management).await?;

        Ok(Pebble {
            pebble,
            dns,
            addrs,
            ca_root_pem: listener_ca,
            ca_root_file: dir.path().join(CA_CERT_FILE),
            dir,
        })
    }

    fn dns_spawn(&self, addrs: &Addrs, dir: &Path) -> Result<Spawn> {
        Ok(Spawn::new("challtestsrv", tools::challtestsrv()?)
            .args(["-dns01", &addrs.dns.to_string()])
            .args(["-management", &addrs.dns_management.to_string()])
            .args(if self.ipv6_only {
                ["-defaultIPv4", "", "-defaultIPv6", "::1"]
            } else {
                ["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""]
            })
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .log_dir(dir.join("logs")))
    }

    fn pebble_spawn(&self, config: &Path, addrs: &Addrs, dir: &Path) -> Result<Spawn> {
        let mut spawn = Spawn::new("pebble", tools::pebble()?)
            .arg("-config")
            .arg(config)
            .args(["-dnsserver", &addrs.dns.to_string()])
            .env(
                "PEBBLE_WFE_NONCEREJECT",
                self.nonce_reject_percent.to_string(),
            )
            .current_dir(dir)
            .log_dir(dir.join("logs"));
        if !self.va_sleep {
            spawn = spawn.env("PEBBLE_VA_NOSLEEP", "1");
        }
        Ok(spawn)
    }
}

#[derive(Debug, Clone, Copy)]
struct Addrs {
    acme: SocketAddr,
    management: SocketAddr,
    dns: SocketAddr,
    dns_management: SocketAddr,
    /// Pebble validates TLS-ALPN-01 here; we never use it, but the setting is required.
    tls: SocketAddr,
}

/// A running Pebble with its DNS server; both are stopped on drop.
#[derive(Debug)]
pub struct Pebble {
    pebble: ChildGuard,
    dns: ChildGuard,
    addrs: Addrs,
    ca_root_pem: String,
    ca_root_file: PathBuf,
    // Last: the directory outlives the processes that use it.
    dir: WorkDir,
}

impl Pebble {
    /// Pebble whose validation authority connects to `http_port` on 127.0.0.1 (Envoy's HTTP
    /// listener) for HTTP-01 challenges.
    pub fn builder(http_port: u16) -> PebbleBuilder {
        PebbleBuilder {
            http_port,
            validity: None,
            va_sleep: false,
            nonce_reject_percent: 0,
            dir: None,
            ipv6_only: false,
        }
    }

    /// The ACME directory URL.
    pub fn directory_url(&self) -> String {
        format!("https://{}/dir", self.addrs.acme)
    }

    /// The test CA that signed Pebble's HTTPS listener certificate: what an ACME client must
    /// trust to talk to Pebble.
    pub fn ca_root_pem(&self) -> &str {
        &self.ca_root_pem
    }

    /// [`ca_root_pem`](Self::ca_root_pem) as a file (for configuration files).
    pub fn ca_root_file(&self) -> &Path {
        &self.ca_root_file
    }

    /// Where configuration, certificates and logs are.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The root that issued certificates chain to (management API `GET /roots/0`). Pebble
    /// generates it on every start, so ask again after [`start`](Self::start).
    pub async fn issuer_roots_pem(&self) -> Result<String> {
        let url = format!("https://{}/roots/0", self.addrs.management);
        let response = self.fetch(&url).await?;
        response.text().await.with_context(|| format!("read {url}"))
    }

    /// Pebble's ACME directory ([`directory_url`](Self::directory_url)).
    pub async fn directory(&self) -> Result<serde_json::Value> {
        let url = self.directory_url();
        let response = self.fetch(&url).await?;
        response
            .json()
            .await
            .with_context(|| format!("{url}: not JSON"))
    }

    /// `GET url` with the [`management_client`](Self::management_client); an error status
    /// is an error.
    async fn fetch(&self, url: &str) -> Result<reqwest::Response> {
        self.management_client()?
            .get(url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?
            .error_for_status()
            .with_context(|| format!("GET {url}"))
    }

    /// An HTTPS client that trusts Pebble's listener.
    pub fn management_client(&self) -> Result<reqwest::Client> {
        let ca = reqwest::Certificate::from_pem(self.ca_root_pem.as_bytes())
            .context("parse the test CA")?;
        reqwest::Client::builder()
            .add_root_certificate(ca)
            .tls_built_in_root_certs(false)
            .timeout(MANAGEMENT_TIMEOUT)
            .build()
            .context("build an HTTPS client")
    }

    /// Make Pebble's DNS answer SERVFAIL for `name`: its validations fail (a name whose DNS is
    /// broken).
    pub async fn fail_dns(&self, name: &str) -> Result<()> {
        self.dns_management("set-servfail", name).await
    }

    /// Undo [`fail_dns`](Self::fail_dns).
    pub async fn restore_dns(&self, name: &str) -> Result<()> {
        self.dns_management("clear-servfail", name).await
    }

    /// `POST /{path}` to `pebble-challtestsrv`'s management API for `name`.
    async fn dns_management(&self, path: &str, name: &str) -> Result<()> {
        let url = format!("http://{}/{path}", self.addrs.dns_management);
        reqwest::Client::new()
            .post(&url)
            .timeout(MANAGEMENT_TIMEOUT)
            .json(&serde_json::json!({ "host": format!("{name}.") }))
            .send()
            .await
            .with_context(|| format!("POST {url}"))?
            .error_for_status()
            .with_context(|| format!("POST {url}"))?;
        Ok(())
    }

    /// Stop Pebble (the DNS server keeps running). Its state (accounts, orders) is lost.
    pub fn stop(&mut self) -> Result<()> {
        self.pebble.stop()
    }

    /// Start Pebble again on the same ports after [`stop`](Self::stop) or a SIGKILL.
    pub async fn start(&mut self) -> Result<()> {
        self.pebble.restart()?;
        wait_for(&mut self.pebble, self.addrs.acme).await?;
        wait_for(&mut self.pebble, self.addrs.management).await
    }

    /// Freeze Pebble (SIGSTOP): it keeps its sockets open but answers nothing, like a CA that
    /// hangs.
    pub fn freeze(&mut self) -> Result<()> {
        self.pebble.kill(Signal::SIGSTOP)
    }

    /// Undo [`freeze`](Self::freeze).
    pub fn thaw(&mut self) -> Result<()> {
        self.pebble.kill(Signal::SIGCONT)
    }

    /// Kill Pebble outright (SIGKILL).
    pub fn kill(&mut self) -> Result<()> {
        self.pebble.kill(Signal::SIGKILL)
    }

    /// Pebble's and the DNS server's logs so far.
    pub fn log(&self) -> String {
        format!("{}{}", self.pebble.log(), self.dns.log())
    }
}

async fn wait_for(child: &mut ChildGuard, addr: SocketAddr) -> Result<()> {
    if let Err(e) = wait_for_port(addr, START_DEADLINE).await {
        child.ensure_running()?;
        return Err(e.context(format!("{} did not start\n{}", child.name(), child.log())));
    }
    Ok(())
}

const CA_CERT_FILE: &str = "test-ca.pem";
const LEAF_CERT_FILE: &str = "listener-cert.pem";
const LEAF_KEY_FILE: &str = "listener-key.pem";

/// Make the test CA and the listener leaf; write them to `dir`; return the CA PEM.
fn write_listener_certificates(dir: &Path) -> Result<String> {
    let (ca_pem, leaf_pem, leaf_key_pem) = listener_certificates()?;
    write(&dir.join(CA_CERT_FILE), &ca_pem)?;
    write(&dir.join(LEAF_CERT_FILE), &leaf_pem)?;
    write(&dir.join(LEAF_KEY_FILE), &leaf_key_pem)?;
    Ok(ca_pem)
}

/// `(ca certificate, leaf certificate, leaf key)`, PEM.
fn listener_certificates() -> Result<(String, String, String)> {
    let ca = TestCa::new("acme-edge test CA")?;
    let leaf = ca.issue_for(&["localhost", "127.0.0.1"], Usage::Server)?;
    Ok((ca.root_pem().to_owned(), leaf.chain_pem, leaf.key_pem))
}

fn write_config(path: &Path, opts: &PebbleBuilder, addrs: &Addrs, dir: &Path) -> Result<()> {
    let mut pebble = serde_json::json!({
        "listenAddress": addrs.acme.to_string(),
        "managementListenAddress": addrs.management.to_string(),
        "certificate": dir.join(LEAF_CERT_FILE),
        "privateKey": dir.join(LEAF_KEY_FILE),
        "httpPort": opts.http_port,
        "tlsPort": addrs.tls.port(),
        "ocspResponderURL": "",
        "externalAccountBindingRequired": false,
    });
    if let (Some(validity), Some(object)) = (opts.validity, pebble.as_object_mut()) {
        object.insert(
            "certificateValidityPeriod".into(),
            validity.as_secs().max(1).into(),
        );
    }
    let config = serde_json::json!({ "pebble": pebble });
    write(path, &serde_json::to_string_pretty(&config)?)
}

/// Pebble's TLS key among them: every file is its owner's alone.
fn write(path: &Path, contents: &str) -> Result<()> {
    crate::tools::write_private(path, contents).with_context(|| format!("write {}", path.display()))
}

/// The order id of each certificate Pebble issued (its "Issued certificate serial S for
/// order ID" lines), in issuance order, with the serial.
pub fn issued_orders(pebble_log: &str) -> Vec<(String, String)> {
    pebble_log
        .lines()
        .filter_map(|line| {
            let rest = &line[line.find("Issued certificate serial ")? + 26..];
            let (serial, order) = rest.split_once(" for order ")?;
            Some((order.trim().to_owned(), serial.trim().to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_has_every_setting() {
        let dir = tempfile::tempdir().unwrap();
        let addrs = Addrs {
            acme: "127.0.0.1:1".parse().unwrap(),
            management: "127.0.0.1:2".parse().unwrap(),
            dns: "127.0.0.1:3".parse().unwrap(),
            dns_management: "127.0.0.1:4".parse().unwrap(),
            tls: "127.0.0.1:5".parse().unwrap(),
        };
        let opts = Pebble::builder(8080).certificate_validity(Duration::from_secs(600));
        let path = dir.path().join("c.json");
        write_config(&path, &opts, &addrs, dir.path()).unwrap();
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let pebble = &config["pebble"];
        assert_eq!(pebble["listenAddress"], "127.0.0.1:1");
        assert_eq!(pebble["managementListenAddress"], "127.0.0.1:2");
        assert_eq!(pebble["httpPort"], 8080);
        assert_eq!(pebble["tlsPort"], 5);
        assert_eq!(pebble["ocspResponderURL"], "");
        assert_eq!(pebble["externalAccountBindingRequired"], false);
        assert_eq!(pebble["certificateValidityPeriod"], 600);
    }

    #[test]
    fn listener_leaf_is_signed_by_the_ca_not_self_signed() {
        let (ca, leaf, key) = listener_certificates().unwrap();
        assert_ne!(ca, leaf);
        assert!(key.contains("PRIVATE KEY"));
    }

    #[tokio::test]
    async fn pebble_serves_its_directory_over_the_test_ca_and_restarts() {
        let mut pebble = Pebble::builder(crate::ports::free_port())
            .start()
            .await
            .unwrap();
        let client = pebble.management_client().unwrap();
        let directory = async |client: &reqwest::Client, url: &str| -> serde_json::Value {
            client.get(url).send().await.unwrap().json().await.unwrap()
        };
        let dir = directory(&client, &pebble.directory_url()).await;
        assert!(
            dir["newOrder"]
                .as_str()
                .unwrap()
                .starts_with("https://127.0.0.1:")
        );
        let root = pebble.issuer_roots_pem().await.unwrap();
        assert!(root.starts_with("-----BEGIN CERTIFICATE-----"), "{root}");

        pebble.freeze().unwrap();
        let frozen = client
            .get(pebble.directory_url())
            .timeout(Duration::from_millis(300))
            .send()
            .await;
        assert!(frozen.is_err(), "a frozen Pebble answered");
        pebble.thaw().unwrap();

        pebble.stop().unwrap();
        assert!(client.get(pebble.directory_url()).send().await.is_err());
        pebble.start().await.unwrap();
        let dir = directory(&client, &pebble.directory_url()).await;
        assert!(dir["newAccount"].is_string());
        assert_ne!(pebble.issuer_roots_pem().await.unwrap(), root);
    }

    #[test]
    fn reads_the_orders_pebble_issued_from_its_log() {
        let log = "Pebble 2026/11/29 22:47:44 Order 6Ww is fully authorized. Processing finalization\n\
                   Pebble 2026/11/29 22:47:44 Issued certificate serial 6661651971b4a4d6 for order 6Ww\n\
                   Pebble 2026/11/29 22:48:04 order 6Ww set INVALID by invalid authz 2Mo\n";
        assert_eq!(
            issued_orders(log),
            vec![("6Ww".to_owned(), "6661651971b4a4d6".to_owned())]
        );
    }
}
