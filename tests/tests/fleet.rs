//! A fleet: two backend replicas and two Envoys sharing one PostgreSQL database, with the
//! real Pebble validating through Envoy B only (its `httpPort` can name one Envoy).
//!
//! Envoy A asks backend A for challenge answers and certificates, Envoy B asks backend B.
//! Whatever one replica does must show through the other: tokens stored by A are answered
//! by B, certificates issued by one are served by both Envoys, work is shared without
//! double issuance, and a replica killed mid-order is taken over once its leases expire.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use acme_edge_tests::backend::Backend;
use acme_edge_tests::envoy::{Envoy, EnvoyConfig};
use acme_edge_tests::pebble::{PEBBLE_SAFE_CONCURRENT_REQUESTS, Pebble};
use acme_edge_tests::ports::{free_addr, free_port};
use acme_edge_tests::postgres::TempDatabase;
use acme_edge_tests::process::eventually;
use anyhow::{Context, Result, bail};

/// One issuance through Pebble and Envoy, generously bounded for a noisy 2-core machine.
const ISSUE_DEADLINE: Duration = Duration::from_secs(120);
/// Bound on one HTTPS request through Envoy (a first handshake waits for SDS).
const HTTPS_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a certificate change may take to reach the other replica's Envoy before the
/// test fails; the measured figure is printed (the target is about a second).
const PUSH_DEADLINE: Duration = Duration::from_secs(20);
/// Leases in these tests: short, so a killed replica's work is taken over quickly.
const TEST_LEASE_SECS: i64 = 3;

/// Two replicas, two Envoys, one database, one CA. Drops Envoys first, the database last.
struct Fleet {
    envoy_a: Envoy,
    envoy_b: Envoy,
    https_a: u16,
    https_b: u16,
    backend_a: Backend,
    backend_b: Backend,
    pebble: Pebble,
    db: TempDatabase,
}

/// Options of [`Fleet::start`].
#[derive(Clone, Copy)]
struct FleetOptions {
    max_in_flight_orders: u64,
    /// Pebble's random 0-15 s validation delay: keeps orders in flight a while.
    va_sleep: bool,
}

impl Default for FleetOptions {
    fn default() -> Self {
        FleetOptions {
            max_in_flight_orders: 10,
            va_sleep: false,
        }
    }
}

impl Fleet {
    async fn start(options: FleetOptions) -> Result<Fleet> {
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
        let backend_a = replica(challenge_a, sds_a).start().await?;
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
    async fn served_leaf(&self, https_port: u16, name: &str) -> Result<Option<Vec<u8>>> {
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
    async fn wait_for_leaf(
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

    fn logs(&self) -> String {
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
fn per_domain(log: &str, message: &str) -> BTreeMap<String, usize> {
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

fn merged(a: BTreeMap<String, usize>, b: &BTreeMap<String, usize>) -> BTreeMap<String, usize> {
    let mut all = a;
    for (name, n) in b {
        *all.entry(name.clone()).or_insert(0) += n;
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enabled_through_a_validated_through_b_served_by_both() -> Result<()> {
    let fleet = Fleet::start(FleetOptions::default()).await?;
    let name = "both.fleet.acme-edge.test";
    fleet.backend_a.enable(name).await?;
    // Pebble only reaches Envoy B, whose filter asks backend B: the tokens backend A's
    // order stored must be answered by B.
    fleet
        .backend_a
        .wait_for_state(name, "issued", ISSUE_DEADLINE)
        .await
        .with_context(|| fleet.logs())?;
    assert_eq!(fleet.backend_b.domain(name).await?["state"], "issued");
    let ordered_by_a = per_domain(&fleet.backend_a.log(), "ordering");
    let ordered_by_b = per_domain(&fleet.backend_b.log(), "ordering");
    eprintln!("orders: A {ordered_by_a:?}, B {ordered_by_b:?}");

    let leaf_a = fleet
        .wait_for_leaf(fleet.https_a, name, None, ISSUE_DEADLINE)
        .await?;
    let leaf_b = fleet
        .wait_for_leaf(fleet.https_b, name, None, ISSUE_DEADLINE)
        .await?;
    assert_eq!(
        leaf_a, leaf_b,
        "both Envoys serve the one issued certificate"
    );
    assert!(
        fleet
            .served_leaf(fleet.https_a, "unknown.fleet.acme-edge.test")
            .await?
            .is_none(),
        "a name nobody enabled gets no certificate"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_domains_across_two_replicas_are_each_issued_once() -> Result<()> {
    const DOMAINS: usize = 50;
    let fleet = Fleet::start(FleetOptions {
        max_in_flight_orders: 20,
        ..FleetOptions::default()
    })
    .await?;
    let names: Vec<String> = (0..DOMAINS)
        .map(|i| format!("n{i}.fleet.acme-edge.test"))
        .collect();
    let enables = names.iter().enumerate().map(|(i, name)| {
        let backend = if i % 2 == 0 {
            &fleet.backend_a
        } else {
            &fleet.backend_b
        };
        backend.enable(name)
    });
    for enabled in futures::future::join_all(enables).await {
        enabled?;
    }
    let started = Instant::now();
    for name in &names {
        fleet
            .backend_b
            .wait_for_state(name, "issued", ISSUE_DEADLINE)
            .await
            .with_context(|| fleet.logs())?;
    }
    eprintln!(
        "{DOMAINS} domains issued by the fleet in {:?}",
        started.elapsed()
    );

    let (log_a, log_b) = (fleet.backend_a.log(), fleet.backend_b.log());
    let (orders_a, orders_b) = (
        per_domain(&log_a, "ordering"),
        per_domain(&log_b, "ordering"),
    );
    let issued = merged(per_domain(&log_a, "issued"), &per_domain(&log_b, "issued"));
    let orders = merged(orders_a.clone(), &orders_b);
    eprintln!(
        "orders run by A: {}, by B: {}",
        orders_a.values().sum::<usize>(),
        orders_b.values().sum::<usize>()
    );
    for name in &names {
        assert_eq!(
            orders.get(name),
            Some(&1),
            "{name} ordered once: {orders:?}"
        );
        assert_eq!(issued.get(name), Some(&1), "{name} issued once: {issued:?}");
    }
    // The database agrees: every row issued, no lease left behind.
    let mut conn = fleet.db.connect().await?;
    let held: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM domains WHERE lease IS NOT NULL")
        .fetch_one(&mut conn)
        .await?;
    assert_eq!(held, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_order_is_taken_over_when_its_leases_expire() -> Result<()> {
    const DOMAINS: usize = 4;
    // Pebble's validation delay keeps A's orders in flight when it dies.
    let mut fleet = Fleet::start(FleetOptions {
        va_sleep: true,
        ..FleetOptions::default()
    })
    .await?;
    let names: Vec<String> = (0..DOMAINS)
        .map(|i| format!("k{i}.fleet.acme-edge.test"))
        .collect();
    for name in &names {
        fleet.backend_a.enable(name).await?;
    }
    // Enabling wakes A's worker at once; B's may take some too (the change feed wakes it):
    // what is tested is that whatever A holds when killed is taken over.
    let ordering = eventually(ISSUE_DEADLINE, || async {
        let by_a = per_domain(&fleet.backend_a.log(), "ordering");
        let by_b = per_domain(&fleet.backend_b.log(), "ordering");
        let all = (names.iter()).all(|n| by_a.contains_key(n) || by_b.contains_key(n));
        all.then_some(by_a)
    })
    .await
    .with_context(|| fleet.logs())?;
    let mut in_flight = Vec::new();
    for name in ordering.keys() {
        if fleet.backend_a.domain(name).await?["state"] == "validating" {
            in_flight.push(name.clone());
        }
    }
    if in_flight.is_empty() {
        bail!("every order finished before the kill ({ordering:?}); nothing to take over");
    }
    fleet.backend_a.kill()?;
    let killed = Instant::now();
    eprintln!(
        "backend A killed holding {} leases: {in_flight:?}",
        in_flight.len()
    );

    for name in &names {
        fleet
            .backend_b
            .wait_for_state(name, "issued", ISSUE_DEADLINE)
            .await
            .with_context(|| fleet.logs())?;
    }
    eprintln!(
        "backend B finished A's domains {:?} after the kill (lease {TEST_LEASE_SECS} s)",
        killed.elapsed()
    );
    let resumed = per_domain(&fleet.backend_b.log(), "resuming");
    for name in &in_flight {
        assert!(
            resumed.contains_key(name),
            "B took {name} over from the expired lease: {resumed:?}\n{}",
            fleet.logs()
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_by_b_reaches_the_envoy_connected_to_a() -> Result<()> {
    let fleet = Fleet::start(FleetOptions::default()).await?;
    let name = "push.fleet.acme-edge.test";
    fleet.backend_b.enable(name).await?;
    fleet
        .backend_b
        .wait_for_state(name, "issued", ISSUE_DEADLINE)
        .await
        .with_context(|| fleet.logs())?;
    // Envoy A holds the name (its SDS stream to backend A is subscribed to it).
    let first = fleet
        .wait_for_leaf(fleet.https_a, name, None, ISSUE_DEADLINE)
        .await?;
    let old_pem = fleet.backend_b.certificate_pem(name).await?;

    fleet.backend_b.renew(name).await?;
    // The moment the renewed certificate is committed, as the API shows it.
    eventually(ISSUE_DEADLINE, || async {
        let pem = fleet.backend_b.certificate_pem(name).await.ok()?;
        (pem != old_pem).then_some(())
    })
    .await
    .with_context(|| fleet.logs())?;
    let stored = Instant::now();
    let renewed = fleet
        .wait_for_leaf(fleet.https_a, name, Some(&first), PUSH_DEADLINE)
        .await
        .with_context(|| fleet.logs())?;
    let latency = stored.elapsed();
    eprintln!("renewal by backend B served by Envoy A {latency:?} after it was stored");
    assert_ne!(renewed, first);
    let via_b = fleet
        .wait_for_leaf(fleet.https_b, name, Some(&first), PUSH_DEADLINE)
        .await?;
    assert_eq!(renewed, via_b, "both Envoys serve the renewed certificate");
    Ok(())
}
