//! `cargo xtask bench sds`: certificates served through on-demand SDS.
//!
//! Measured in one run, on one machine, against a baseline from the same run:
//!
//! - **Issued -> served**: from handing a new domain's certificate to the SDS server to the
//!   first handshake presenting it (the first handshake is the one that subscribes: a cold
//!   fetch).
//! - **Renewed -> served**: from pushing a new certificate for a name Envoy already holds to
//!   the first handshake presenting it (handshakes are repeated back to back meanwhile).
//! - **Handshakes per second**: full TLS handshakes (no resumption, `Connection: close`,
//!   wrk) for a warm name on the on-demand listener of `envoy/sds-trial.yaml`, against the
//!   same listener with the certificate written into its configuration. Rounds alternate
//!   between the two; the ratio is of the medians.
//!
//! The SDS server runs in this process over an in-memory certificate source; the
//! certificates come from a throwaway CA.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use acme_edge::certs::CertificateSource;
use acme_edge::sds::HeldNames;
use acme_edge::sds::memory::MemorySource;
use acme_edge_tests::ports::free_port;
use acme_edge_tests::process::{ChildGuard, Spawn, eventually};
use acme_edge_tests::served_certificate;
use acme_edge_tests::test_ca::{Leaf, TestCa};
use acme_edge_tests::tls::handshake_within;
use acme_edge_tests::tools;
use anyhow::{Context, Result, bail};
use clap::Parser;
use tokio_rustls::TlsConnector;

/// The name throughput is measured with: wrk takes the SNI from the URL's host, and
/// `localhost` resolves without touching `/etc/hosts`.
pub(crate) const WARM_NAME: &str = "localhost";
/// Bound on anything expected to take milliseconds.
pub(crate) const DEADLINE: Duration = Duration::from_secs(30);
const ON_DEMAND_SECTION: &str = "on-demand certificates";

#[derive(Debug, Parser)]
#[command(name = "cargo xtask bench sds")]
struct Args {
    /// Alternating throughput rounds per listener.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds per throughput round.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrent wrk connections.
    #[arg(long, default_value_t = 8)]
    connections: u32,
    /// Latency samples (issued and renewed each).
    #[arg(long, default_value_t = 20)]
    samples: usize,
}

/// Run the benchmark with `args` (after `cargo xtask bench sds`).
pub fn run(args: Vec<String>) -> Result<()> {
    let args = Args::try_parse_from(std::iter::once("sds".to_owned()).chain(args))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(bench(args))
}

async fn bench(args: Args) -> Result<()> {
    let ca = TestCa::new("acme-edge bench CA")?;
    let client = ca.client()?;
    let source = Arc::new(MemorySource::new());
    let sds = start_sds(source.clone(), Default::default()).await?;
    let dir = tempfile::tempdir()?;
    let template = std::fs::read_to_string(tools::workspace_root().join("envoy/sds-trial.yaml"))?;

    let mut on_demand = Edge::start(&template, sds, dir.path(), "on-demand").await?;
    let warm = ca.issue(WARM_NAME)?;
    source.put(served_certificate!(&warm));
    presented(&client, on_demand.https, WARM_NAME, &warm.der).await?;

    let issued = issue_latency(&ca, &client, &source, on_demand.https, args.samples).await?;
    let renewed = renew_latency(&ca, &client, &source, on_demand.https, args.samples).await?;
    let warm = handshake_time(&client, on_demand.https, args.samples).await?;

    let latest = ca.issue(WARM_NAME)?;
    source.put(served_certificate!(&latest));
    presented(&client, on_demand.https, WARM_NAME, &latest.der).await?;
    let static_template = with_static_certificate(&template, &latest, dir.path())?;
    let mut fixed = Edge::start(&static_template, sds, dir.path(), "static").await?;
    presented(&client, fixed.https, WARM_NAME, &latest.der).await?;

    let mut rates: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for _ in 0..args.rounds {
        for edge in [&fixed, &on_demand] {
            let rate = wrk(edge.https, &args)?;
            rates.entry(edge.label).or_default().push(rate);
        }
    }
    on_demand.envoy.ensure_running()?;
    fixed.envoy.ensure_running()?;
    print_report(&args, &[&issued, &renewed, &warm], &rates);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Latency.

async fn issue_latency(
    ca: &TestCa,
    client: &TlsConnector,
    source: &MemorySource,
    https: SocketAddr,
    samples: usize,
) -> Result<Vec<Duration>> {
    let mut out = Vec::with_capacity(samples);
    for i in 0..samples {
        let leaf = ca.issue(&format!("new{i}.bench.example"))?;
        let started = Instant::now();
        source.put(served_certificate!(&leaf));
        presented(client, https, &leaf.name, &leaf.der).await?;
        out.push(started.elapsed());
    }
    Ok(out)
}

async fn renew_latency(
    ca: &TestCa,
    client: &TlsConnector,
    source: &MemorySource,
    https: SocketAddr,
    samples: usize,
) -> Result<Vec<Duration>> {
    let mut out = Vec::with_capacity(samples);
    for _ in 0..samples {
        let leaf = ca.issue(WARM_NAME)?;
        let started = Instant::now();
        source.put(served_certificate!(&leaf));
        presented(client, https, WARM_NAME, &leaf.der).await?;
        out.push(started.elapsed());
    }
    Ok(out)
}

/// One handshake with nothing changed, for scale: the latencies above include one.
async fn handshake_time(
    client: &TlsConnector,
    https: SocketAddr,
    samples: usize,
) -> Result<Vec<Duration>> {
    let mut out = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        handshake(client, https, WARM_NAME).await?;
        out.push(started.elapsed());
    }
    Ok(out)
}

/// Handshake back to back until `sni` presents `leaf`.
pub(crate) async fn presented(
    client: &TlsConnector,
    addr: SocketAddr,
    sni: &str,
    leaf: &[u8],
) -> Result<()> {
    let deadline = Instant::now() + DEADLINE;
    while Instant::now() < deadline {
        if handshake(client, addr, sni).await.ok().as_deref() == Some(leaf) {
            return Ok(());
        }
    }
    bail!("{sni} not presented within {DEADLINE:?}")
}

/// One handshake with `sni`, within [`DEADLINE`]; the leaf presented.
pub(crate) async fn handshake(
    client: &TlsConnector,
    addr: SocketAddr,
    sni: &str,
) -> Result<Vec<u8>> {
    handshake_within(client, addr, sni, DEADLINE).await
}

// ---------------------------------------------------------------------------------------
// Throughput.

/// Full handshakes per second (one request per connection) against `addr`.
fn wrk(addr: SocketAddr, args: &Args) -> Result<f64> {
    let url = format!("https://{WARM_NAME}:{}/", addr.port());
    let output = Command::new("wrk")
        .args(["-t1", &format!("-c{}", args.connections)])
        .arg(format!("-d{}s", args.seconds))
        .args(["-H", "Connection: close", &url])
        .output()
        .context("run wrk (cargo xtask install)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "wrk failed: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    if text.contains("Non-2xx") || text.contains("Socket errors") {
        bail!("wrk saw errors:\n{text}");
    }
    let line = text.lines().find(|l| l.starts_with("Requests/sec:"));
    let rate = line.and_then(|l| l.split_whitespace().nth(1));
    rate.context("no Requests/sec in wrk output")?
        .parse()
        .context("parse wrk rate")
}

// ---------------------------------------------------------------------------------------
// Report.

fn print_report(args: &Args, latencies: &[&[Duration]; 3], rates: &BTreeMap<&str, Vec<f64>>) {
    let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
    let labels = [
        "issued -> first handshake",
        "renewed -> first handshake",
        "one warm handshake (scale)",
    ];
    println!();
    println!(
        "SDS latency, {} samples each           min      p50      p90      max  (ms)",
        args.samples
    );
    for (label, samples) in labels.iter().zip(latencies) {
        let mut sorted: Vec<f64> = samples.iter().map(ms).collect();
        sorted.sort_by(f64::total_cmp);
        println!(
            "  {label:<32} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
            quantile(&sorted, 0.0),
            quantile(&sorted, 0.5),
            quantile(&sorted, 0.9),
            quantile(&sorted, 1.0),
        );
    }
    println!();
    println!(
        "Full TLS handshakes/s (wrk, {} connections, {} s rounds, Envoy 1 worker)",
        args.connections, args.seconds
    );
    let median = |label: &str| {
        let mut v = rates.get(label).cloned().unwrap_or_default();
        v.sort_by(f64::total_cmp);
        quantile(&v, 0.5)
    };
    for (label, values) in rates {
        let rounds: Vec<String> = values.iter().map(|v| format!("{v:.0}")).collect();
        println!(
            "  {label:<10} rounds {:<30} median {:>8.0}",
            rounds.join(" "),
            median(label)
        );
    }
    let (on_demand, fixed) = (median("on-demand"), median("static"));
    if fixed > 0.0 {
        println!("  ratio on-demand / static: {:.3}", on_demand / fixed);
    }
}

/// The `q` quantile of sorted values (nearest rank); 0 for none.
pub(crate) fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * (sorted.len() - 1) as f64).round() as usize;
    sorted.get(rank).copied().unwrap_or(0.0)
}

// ---------------------------------------------------------------------------------------
// Fixtures: SDS server, Envoy.

/// The SDS server on a free loopback port, for the rest of the process; `held` bounds the
/// names each Envoy holds.
pub(crate) async fn start_sds(
    source: Arc<dyn CertificateSource>,
    held: Arc<HeldNames>,
) -> Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) =
            acme_edge::sds::serve_on(listener, source, held, std::future::pending()).await
        {
            eprintln!("SDS server failed: {e}");
        }
    });
    Ok(addr)
}

/// The template with its on-demand selector replaced by `cert`, written next to it.
fn with_static_certificate(template: &str, cert: &Leaf, dir: &Path) -> Result<String> {
    let chain = dir.join("static-chain.pem");
    let key = dir.join("static-key.pem");
    std::fs::write(&chain, &cert.chain_pem)?;
    std::fs::write(&key, &cert.key_pem)?;
    let begin = format!("# --- {ON_DEMAND_SECTION} begin ---");
    let end = format!("# --- {ON_DEMAND_SECTION} end ---");
    let (head, rest) = template
        .split_once(&begin)
        .context("no on-demand section")?;
    let (_, tail) = rest
        .split_once(&end)
        .context("unterminated on-demand section")?;
    let indent = "            ";
    Ok(format!(
        "{head}tls_certificates:\n{indent}- certificate_chain: {{ filename: {} }}\n{indent}  private_key: {{ filename: {} }}{tail}",
        chain.display(),
        key.display()
    ))
}

pub(crate) struct Edge {
    label: &'static str,
    pub(crate) envoy: ChildGuard,
    pub(crate) https: SocketAddr,
    pub(crate) admin: SocketAddr,
}

impl Edge {
    pub(crate) async fn start(
        template: &str,
        sds: SocketAddr,
        dir: &Path,
        label: &'static str,
    ) -> Result<Self> {
        let https = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let values = [
            ("ADMIN_PORT", admin.port().to_string()),
            ("HTTPS_ADDRESS", https.ip().to_string()),
            ("HTTPS_PORT", https.port().to_string()),
            ("SDS_HOST", sds.ip().to_string()),
            ("SDS_PORT", sds.port().to_string()),
        ];
        let mut text = template.to_owned();
        for (key, value) in values {
            text = text.replace(&format!("${{{key}}}"), &value);
        }
        if text.contains("${") {
            bail!("unfilled placeholder in the SDS template");
        }
        let config = dir.join(format!("envoy-{label}.yaml"));
        std::fs::write(&config, text)?;
        let envoy = Spawn::new(format!("envoy-{label}"), tools::envoy()?)
            .arg("-c")
            .arg(&config)
            .args([
                "--concurrency",
                "1",
                "--disable-hot-restart",
                "-l",
                "warning",
            ])
            .start()?;
        let url = format!("http://{admin}/ready");
        eventually(DEADLINE, || async {
            let response = reqwest::get(&url).await.ok()?;
            response.status().is_success().then_some(())
        })
        .await
        .with_context(|| format!("{label} Envoy never became ready"))?;
        Ok(Edge {
            label,
            envoy,
            https,
            admin,
        })
    }
}
