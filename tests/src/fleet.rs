//! A fleet: two backend replicas and two Envoys sharing one PostgreSQL database, with the
//! real Pebble validating through Envoy B only (its `httpPort` can name one Envoy).
//!
//! Envoy A asks backend A for challenge answers and certificates, Envoy B asks backend B.
//! Replica A may run another binary than B (a rolling upgrade: the previous release beside
//! this build).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::backend::Backend;
use crate::envoy::{Envoy, EnvoyConfig};
use crate::pebble::{PEBBLE_SAFE_CONCURRENT_REQUESTS, Pebble};
use crate::ports::{free_addr, free_port};
use crate::postgres::TempDatabase;
use crate::process::eventually;

/// One issuance through Pebble and Envoy, generously bounded for a noisy 2-core machine.
pub const ISSUE_DEADLINE: Duration = Duration::from_secs(120);
/// Bound on one HTTPS request through Envoy (a first handshake waits for SDS).
const HTTPS_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a certificate change may take to reach the other replica's Envoy before the
/// test fails; the measured figure is printed (the target is about a second).
pub const PUSH_DEADLINE: Duration = Duration::from_secs(20);
/// Leases in these tests: short, so a killed replica's work is taken over quickly.
pub const TEST_LEASE_SECS: i64 = 3;

/// Two replicas, two Envoys, one database, one CA. Drops Envoys first, the database last.
pub struct Fleet {
    pub envoy_a: Envoy,
    pub envoy_b: Envoy,
    pub https_a: u16,
    pub https_b: u16,
    pub backend_a: Backend,
    pub backend_b: Backend,
    pub pebble: Pebble,
    pub db: TempDatabase,
}

/// Options of [`Fleet::start`].
#[derive(Clone)]
pub struct FleetOptions {
    pub max_in_flight_orders: u64,
    /// Pebble's random 0-15 s validation delay: keeps orders in flight a while.
    pub va_sleep: bool,
    /// The binary replica A runs (this build's when `None`).
    pub binary_a: Option<PathBuf>,
}

impl Default for FleetOptions {
    fn default() -> Self {
        FleetOptions {
            max_in_flight_orders: 10,
            va_sleep: false,
            binary_a: None,
        }
    }
}

impl Fleet {
    pub async fn start(options: FleetOptions) -> Result<Fleet> {
        let db = TempDatabase::create().await?;
        let (challenge_a, sds_a, https_a) = (free_addr(), free_addr(), free_port());
        let (challenge_b, sds_b, https_b) = (free_addr(), free_addr(), free_port());
        let envoy_a = start_envoy(challenge_a, sds_a, https_a).await?;
        let envoy_b = start_envoy(challenge_b, sds_b, https_b).await?;
        let pebble = Pebble::builder(envoy_b.http_port())
            .va_sleep(options.va_sleep)
            .start()
            .await?;
        let url = db.url()?;
        let replica = |challenge: SocketAddr, sds: SocketAddr| {
            Backend::builder()
                .pebble(&pebble)
                .storage_url(url.clone())
                .setting("storage", "lease_secs", TEST_LEASE_SECS)
                .max_in_flight_orders(options.max_in_flight_orders)
                // The two replicas share one Pebble: half its safe request count each.
                .max_concurrent_requests(PEBBLE_SAFE_CONCURRENT_REQUESTS / 2)
                .challenge_addr(challenge)
                .sds_addr(sds)
        };
        let mut a = replica(challenge_a, sds_a);
        if let Some(binary) = &options.binary_a {
            a = a.binary(binary);
        }
        let backend_a = a.start().await?;
        let backend_b = replica(challenge_b, sds_b).start().await?;
        Ok(Fleet {
            envoy_a,
            envoy_b,
            https_a,
            https_b,
            backend_a,
            backend_b,
            pebble,
            db,
        })
    }

    /// The leaf certificate (DER) Envoy on `https_port` presents for `name`, verified against
    /// Pebble's root for that name; `None` while the handshake fails.
    pub async fn served_leaf(&self, https_port: u16, name: &str) -> Result<Option<Vec<u8>>> {
        let root = self.pebble.issuer_roots_pem().await?;
        let root = reqwest::Certificate::from_pem(root.as_bytes()).context("Pebble's root")?;
        let client = reqwest::Client::builder()
            .add_root_certificate(root)
            .tls_built_in_root_certs(false)
            .tls_info(true)
            // Every probe a new connection, so a new handshake.
            .pool_max_idle_per_host(0)
            .resolve(name, SocketAddr::from((Ipv4Addr::LOCALHOST, https_port)))
            .timeout(HTTPS_TIMEOUT)
            .build()
            .context("build an HTTPS client")?;
        let Ok(response) = client
            .get(format!("https://{name}:{https_port}/"))
            .send()
            .await
        else {
            return Ok(None);
        };
        Ok(response
            .extensions()
            .get::<reqwest::tls::TlsInfo>()
            .and_then(|info| info.peer_certificate())
            .map(<[u8]>::to_vec))
    }

    /// Until Envoy on `https_port` presents a valid certificate for `name` other than
    /// `old`; the new leaf.
    pub async fn wait_for_leaf(
        &self,
        https_port: u16,
        name: &str,
        old: Option<&[u8]>,
        deadline: Duration,
    ) -> Result<Vec<u8>> {
        eventually(deadline, || async {
            self.served_leaf(https_port, name)
                .await
                .ok()
                .flatten()
                .filter(|leaf| Some(leaf.as_slice()) != old)
        })
        .await
        .with_context(|| format!("Envoy on :{https_port} serving a new certificate for {name}"))
    }

    /// Every component's log, for failure messages.
    pub fn logs(&self) -> String {
        format!(
            "--- backend A\n{}\n--- backend B\n{}\n--- envoy A\n{}\n--- envoy B\n{}\n--- pebble\n{}",
            self.backend_a.log(),
            self.backend_b.log(),
            self.envoy_a.log(),
            self.envoy_b.log(),
            self.pebble.log()
        )
    }
}

async fn start_envoy(challenge: SocketAddr, sds: SocketAddr, https_port: u16) -> Result<Envoy> {
    let config = EnvoyConfig::edge(challenge)?
        .sds(sds)
        .with_https_port(https_port);
    // Envoy's start-up polls synchronously. Not on `spawn_blocking`: Envoy is sent SIGTERM
    // when the thread that started it exits (parent-death signal), and tokio retires idle
    // blocking threads after 10 s. A runtime worker thread lives as long as the test.
    tokio::task::block_in_place(move || config.start())
}

/// How many log lines with `message` each domain has (`domain=<name>` field).
pub fn per_domain(log: &str, message: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in strip_ansi(log).lines() {
        let Some((_, fields)) = line.split_once(&format!(" {message} ")) else {
            continue;
        };
        let domain = fields
            .split_whitespace()
            .find_map(|field| field.strip_prefix("domain="));
        if let Some(domain) = domain {
            *counts.entry(domain.to_owned()).or_insert(0) += 1;
        }
    }
    counts
}

/// The backend logs in colour; the tests read plain text.
fn strip_ansi(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

/// The counts of `a` and `b` added up.
pub fn merged(a: BTreeMap<String, usize>, b: &BTreeMap<String, usize>) -> BTreeMap<String, usize> {
    let mut all = a;
    for (name, n) in b {
        *all.entry(name.clone()).or_insert(0) += n;
    }
    all
}
