//! `cargo xtask bench cold`: a name's first (cold) handshake against its second (warm), and
//! where the cold one's time goes.
//!
//! Envoy's on-demand secret selector subscribes to a name's secret on the first handshake
//! for it and pauses that handshake until the secret is applied; the backend's bound
//! (`sds.max_names_per_proxy`) makes such handshakes recur. For each of `--names` fresh
//! names (certificates in the source before timing starts), one handshake after another:
//!
//! 1. cold: the client's TCP connect and handshake, during which Envoy opens an SDS stream
//!    for the name, sends its request, gets the secret, applies it and acknowledges it;
//! 2. warm: the same name again, served from Envoy's cache.
//!
//! The cold one is split by moments and durations the in-process SDS server gives away:
//! the stream's opening and the name's lookup (through the certificate source), the
//! server's answer (`acme_edge_sds_response_seconds`) and Envoy's acknowledgement
//! (`acme_edge_sds_apply_seconds`); what is left is the rest of the handshake. Figures are
//! per name, then quantiles; ratios are against the warm handshake of the same run.
//!
//! `--bound N` sets `sds.max_names_per_proxy`: past N names, each subscription also evicts
//! the least recently requested name from Envoy (a removal on another stream, which Envoy
//! acts on while it serves the next names), as on a proxy at its bound.
//!
//! `--ads` has Envoy fetch secrets over ADS (`config_source: { ads: {} }`, one stream for all
//! names) instead of one SDS stream per name (`envoy/sds-trial.yaml`).
//!
//! `--process` runs the release backend binary (`ACME_EDGE_BIN`) in its own process over
//! SQLite instead, as operators do: cold and warm handshakes, and the two histograms' means
//! from its `/metrics` (the phases in between are not visible from outside).
//!
//! `--storage memory` (the default) serves from memory: the SDS server's own part.
//! `--storage sqlite` reads each certificate from a SQLite store through the backend's
//! `StoreSource`, as a single-node service does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use acme_edge::sds::HeldNames;
use acme_edge_tests::test_ca::{Leaf, TestCa};
use acme_edge_tests::tools;
use anyhow::{Context, Result, bail};
use clap::Parser;
use tokio_rustls::TlsConnector;

use crate::probe::{Samples, TimedSource};
use crate::sds::{DEADLINE, Edge, WARM_NAME, handshake, presented, quantile, start_sds};
use crate::served;
use crate::stored::{self, Storage};

const RESPONSE: &str = "acme_edge_sds_response_seconds";
const APPLY: &str = "acme_edge_sds_apply_seconds";
/// The design target: a cold handshake at most this much slower than a warm one.
const TARGET_EXTRA_MS: f64 = 3.0;

#[derive(Debug, Parser)]
#[command(name = "cargo xtask bench cold")]
struct Args {
    /// Distinct names, each handshaken cold then warm.
    #[arg(long, default_value_t = 200)]
    names: usize,
    /// Where the SDS server reads certificates from.
    #[arg(long, value_enum, default_value_t = Storage::Memory)]
    storage: Storage,
    /// `sds.max_names_per_proxy` (0: no bound, nothing evicted).
    #[arg(long, default_value_t = 0)]
    bound: usize,
    /// Fetch secrets over ADS (one stream) instead of one SDS stream per name.
    #[arg(long)]
    ads: bool,
    /// Run the backend binary (`ACME_EDGE_BIN`, built with `--release`) in its own process.
    #[arg(long)]
    process: bool,
}

/// Run the benchmark with `args` (after `cargo xtask bench cold`).
pub fn run(args: Vec<String>) -> Result<()> {
    let args = Args::try_parse_from(std::iter::once("cold".to_owned()).chain(args))?;
    let samples = Samples::install()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let (timings, metrics) = runtime.block_on(bench(&args, &samples))?;
    print_report(&args, &timings);
    if let Some(metrics) = metrics {
        print_served(&metrics);
    }
    Ok(())
}

/// One name's two handshakes; the cold one's phases, in order, add up to its total.
#[derive(Debug, Default, Clone, Copy)]
struct Timing {
    warm: f64,
    cold: f64,
    /// Client starts connecting -> Envoy opens the name's SDS stream (0 over ADS).
    to_stream: f64,
    /// Stream opened -> the server reads the subscription and looks the name up.
    to_request: f64,
    /// The server's answer (its histogram).
    response: f64,
    /// Answer -> Envoy's acknowledgement (its histogram).
    apply: f64,
    /// Acknowledged -> the client's handshake done (negative: done before the ACK arrived).
    rest: f64,
}

/// The timings, and the backend's `/metrics` when it ran in its own process.
async fn bench(args: &Args, samples: &Samples) -> Result<(Vec<Timing>, Option<String>)> {
    let ca = TestCa::new("acme-edge bench CA")?;
    let client = ca.client()?;
    let dir = tempfile::tempdir()?;
    let mut leaves = vec![ca.issue(WARM_NAME)?];
    for i in 0..args.names {
        leaves.push(ca.issue(&format!("cold{i}.bench.example"))?);
    }
    let (probe, sds, backend) = if args.process {
        let (backend, sds) = served::start(&ca, &leaves, args.bound, dir.path()).await?;
        (None, sds, Some(backend))
    } else {
        let source = stored::source(args.storage, &leaves, dir.path()).await?;
        let probe = Arc::new(TimedSource::new(source));
        let sds = start_sds(probe.clone(), Arc::new(HeldNames::new(args.bound))).await?;
        (Some(probe), sds, None)
    };
    let mut template =
        std::fs::read_to_string(tools::workspace_root().join("envoy/sds-trial.yaml"))?;
    if args.ads {
        template = with_ads(&template)?;
    }
    let mut edge = Edge::start(&template, sds, dir.path(), "on-demand").await?;

    // Envoy's SDS connection is up before timing starts, as in service.
    let (warm_up, leaves) = leaves.split_first().context("no leaves")?;
    presented(&client, edge.https, WARM_NAME, &warm_up.der).await?;
    match &probe {
        Some(probe) => {
            server_timings(samples, WARM_NAME).await?;
            probe.take();
        }
        None => tokio::time::sleep(Duration::from_millis(100)).await,
    }

    let mut timings = Vec::with_capacity(args.names);
    for leaf in leaves {
        timings.push(one_name(&client, &edge, probe.as_deref(), samples, leaf).await?);
    }
    edge.envoy.ensure_running()?;
    let metrics = match &backend {
        Some(backend) => Some(served::metrics(backend).await?),
        None => None,
    };
    Ok((timings, metrics))
}

/// The per-name SDS config source of `template` made ADS, and the ADS stream configured.
pub(crate) fn with_ads(template: &str) -> Result<String> {
    let per_name = "
                  api_config_source:
                    api_type: DELTA_GRPC
                    transport_api_version: V3
                    grpc_services:
                    - envoy_grpc: { cluster_name: acme_sds }
";
    if !template.contains(per_name) {
        bail!("no per-name SDS config source in the template");
    }
    let ads = "
dynamic_resources:
  ads_config:
    api_type: DELTA_GRPC
    transport_api_version: V3
    grpc_services:
    - envoy_grpc: { cluster_name: acme_sds }
";
    let text = template.replacen(per_name, "\n                  ads: {}\n", 1);
    Ok(format!("{text}{ads}"))
}

async fn one_name(
    client: &TlsConnector,
    edge: &Edge,
    probe: Option<&TimedSource>,
    samples: &Samples,
    leaf: &Leaf,
) -> Result<Timing> {
    let name = &leaf.name;
    let started = Instant::now();
    let presented = handshake(client, edge.https, name).await?;
    let cold = started.elapsed();
    if presented != leaf.der {
        bail!("{name}: the cold handshake presented another certificate");
    }
    let phases = match probe {
        Some(probe) => Some(phases(probe, samples, name, started).await?),
        // Out of process, let the backend finish with the name before the warm handshake.
        None => {
            tokio::time::sleep(Duration::from_millis(2)).await;
            None
        }
    };
    let started_warm = Instant::now();
    handshake(client, edge.https, name).await?;
    let warm = started_warm.elapsed();

    let cold = ms(cold);
    let mut timing = Timing {
        warm: ms(warm),
        cold,
        ..Timing::default()
    };
    if let Some([to_stream, to_request, response, apply]) = phases {
        timing.to_stream = to_stream;
        timing.to_request = to_request;
        timing.response = response;
        timing.apply = apply;
        timing.rest = cold - to_stream - to_request - response - apply;
    }
    Ok(timing)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A cold handshake begun at `started`, split: client -> stream, stream -> request, the
/// server's answer, Envoy's acknowledgement (ms).
async fn phases(
    probe: &TimedSource,
    samples: &Samples,
    name: &str,
    started: Instant,
) -> Result<[f64; 4]> {
    let (response, apply) = server_timings(samples, name).await?;
    let moments = probe.take();
    let looked_up = moments.looked_up.first().context("no lookup")?;
    // Over ADS the name's request comes on the stream already open.
    let opened = moments.opened.first().unwrap_or(&started);
    Ok([
        ms(opened.duration_since(started)),
        ms(looked_up.duration_since(*opened)),
        response,
        apply,
    ])
}

/// The server's answer to the name's subscription and Envoy's acknowledgement of it, in ms
/// (the acknowledgement may come just after the client's handshake ends).
async fn server_timings(samples: &Samples, name: &str) -> Result<(f64, f64)> {
    let deadline = Instant::now() + DEADLINE;
    let (mut response, mut apply) = (Vec::new(), Vec::new());
    while apply.is_empty() && Instant::now() < deadline {
        response.extend(samples.take(RESPONSE));
        apply.extend(samples.take(APPLY));
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    response.extend(samples.take(RESPONSE));
    match (response.as_slice(), apply.as_slice()) {
        ([response], [apply]) => Ok((response * 1000.0, apply * 1000.0)),
        _ => bail!(
            "{name}: expected one response and one acknowledgement, got {} and {}",
            response.len(),
            apply.len()
        ),
    }
}

fn print_report(args: &Args, timings: &[Timing]) {
    let column = |f: fn(&Timing) -> f64| {
        let mut v: Vec<f64> = timings.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let warm = quantile(&column(|t| t.warm), 0.5);
    let row = |label: &str, f: fn(&Timing) -> f64| {
        let v = column(f);
        let p50 = quantile(&v, 0.5);
        let ratio = if warm > 0.0 { p50 / warm } else { 0.0 };
        println!(
            "  {label:<56} {p50:>7.2} {:>7.2} {ratio:>9.2}",
            quantile(&v, 0.9)
        );
    };
    println!();
    println!(
        "Cold vs warm handshakes, {} names, certificates in {:?}, bound {}, {} (a name's \
         first handshake is cold, its second warm)",
        args.names,
        if args.process {
            "a backend process (SQLite)".to_owned()
        } else {
            format!("{:?}", args.storage)
        },
        args.bound,
        if args.ads { "ADS" } else { "a stream per name" }
    );
    println!(
        "  {:<56} {:>7} {:>7} {:>9}",
        "(ms)", "p50", "p90", "p50/warm"
    );
    row("warm handshake", |t| t.warm);
    row("cold handshake", |t| t.cold);
    row("cold - warm, per name", |t| t.cold - t.warm);
    let extra = quantile(&column(|t| t.cold), 0.5) - warm;
    let verdict = if extra <= TARGET_EXTRA_MS {
        "within"
    } else {
        "over"
    };
    println!("  cold p50 - warm p50 = {extra:.2} ms: {verdict} the target of {TARGET_EXTRA_MS} ms");
    if args.process {
        return;
    }
    println!("  where a cold handshake's time goes (per name, in order):");
    row(
        "  client connects -> Envoy opens a stream for the name",
        |t| t.to_stream,
    );
    row("  (stream opened ->) backend reads the subscription", |t| {
        t.to_request
    });
    row(
        "  backend: subscription -> response (response_seconds)",
        |t| t.response,
    );
    row(
        "  Envoy: response -> ACK, secret applied (apply_seconds)",
        |t| t.apply,
    );
    row("  ACK -> client's handshake done (rest)", |t| t.rest);
}

/// The backend process's own account of the run (means over every subscription).
fn print_served(metrics: &str) {
    println!("  the backend process's histograms (means over the run):");
    for (label, name) in [
        ("backend: subscription -> response", RESPONSE),
        ("Envoy: response -> ACK, secret applied", APPLY),
    ] {
        match served::histogram_mean(metrics, name) {
            Some((mean, count)) => println!("    {label:<54} {mean:>7.2} ms ({count} samples)"),
            None => println!("    {label:<54} no samples"),
        }
    }
}
