//! `cargo xtask bench held`: what one Envoy holds at 10,000 distinct names, without the bound
//! and with it (`sds.max_names_per_proxy` at its default), and the backend restarted while
//! Envoy holds them.
//!
//! For each case, the release backend (`ACME_EDGE_BIN`) serves `--names` certificates from
//! SQLite over SDS, as operators run it, and one Envoy (`envoy/sds-trial.yaml`, one worker)
//! takes one handshake per name, each a cold one (the name's first). Printed every
//! `--every` names: Envoy's RSS, the backend's RSS, the names held by the backend's account
//! (`acme_edge_sds_names_held`) and by Envoy's (its admin's active secrets), and the SDS
//! streams open (`acme_edge_sds_streams`).
//!
//! `--ads` has Envoy fetch every name over one ADS stream instead of a stream per name.
//!
//! Then the backend is stopped (SIGTERM) and started again on the same database and port,
//! while a client keeps handshaking names Envoy holds (the most recently served, so none
//! is one the bound evicted). Printed: how long until the new process has answered every
//! name Envoy holds (its `acme_edge_sds_names_held` back to what it was), its peak RSS and
//! CPU time over that burst, and the probe handshakes that succeeded and failed meanwhile
//! (Envoy serves held names from its cache while the backend is away; none may fail).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use acme_edge::config::sds::DEFAULT_MAX_NAMES_PER_PROXY;
use acme_edge_tests::backend::Backend;
use acme_edge_tests::envoy::secrets_held;
use acme_edge_tests::test_ca::{Leaf, TestCa};
use acme_edge_tests::tools;
use acme_edge_tests::usage::Usage;
use anyhow::{Context, Result, bail};
use clap::Parser;
use tokio_rustls::TlsConnector;

use crate::sds::{Edge, handshake};
use crate::served;

const NAMES_HELD: &str = "acme_edge_sds_names_held";
const STREAMS: &str = "acme_edge_sds_streams";
const EVICTIONS: &str = "acme_edge_sds_evictions_total";
/// How long the backend gets to answer every held name again after its restart.
const RESUBSCRIBE_DEADLINE: Duration = Duration::from_secs(180);
/// How often the backend's usage is read during the re-subscription burst.
const SAMPLE_EVERY: Duration = Duration::from_millis(10);
/// The design target for an Envoy's memory at the default bound, whatever the number of
/// distinct names it has served.
const ENVOY_RSS_TARGET_MIB: u64 = 300;

#[derive(Debug, Parser)]
#[command(name = "cargo xtask bench held")]
struct Args {
    /// Distinct names handshaken on the one Envoy.
    #[arg(long, default_value_t = 10_000)]
    names: usize,
    /// `sds.max_names_per_proxy` of the bounded case.
    #[arg(long, default_value_t = DEFAULT_MAX_NAMES_PER_PROXY)]
    bound: usize,
    /// Print a line of figures every this many names.
    #[arg(long, default_value_t = 2_000)]
    every: usize,
    /// Fetch secrets over ADS (one stream for every name) instead of one SDS stream per name.
    #[arg(long)]
    ads: bool,
}

/// Run the benchmark with `args` (after `cargo xtask bench held`).
pub fn run(args: Vec<String>) -> Result<()> {
    let args = Args::try_parse_from(std::iter::once("held".to_owned()).chain(args))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(bench(&args))
}

async fn bench(args: &Args) -> Result<()> {
    let started = Instant::now();
    let ca = TestCa::new("acme-edge bench CA")?;
    let client = ca.client()?;
    let leaves: Vec<Leaf> = (0..args.names)
        .map(|i| ca.issue(&format!("n{i}.held.example")))
        .collect::<Result<_>>()?;
    println!(
        "{} names, certificates from SQLite through the release backend, one Envoy (1 \
         worker), one cold handshake per name, {}",
        args.names,
        if args.ads {
            "over ADS (one stream)"
        } else {
            "one SDS stream per name"
        }
    );
    for bound in [0, args.bound] {
        let dir = tempfile::tempdir()?;
        let (backend, sds) = served::start(&ca, &leaves, bound, dir.path()).await?;
        let mut template =
            std::fs::read_to_string(tools::workspace_root().join("envoy/sds-trial.yaml"))?;
        if args.ads {
            template = crate::cold::with_ads(&template)?;
        }
        let edge = Edge::start(&template, sds, dir.path(), "held").await?;
        let case = Case {
            args,
            bound,
            client: &client,
            edge,
            backend,
        };
        case.run(&leaves).await?;
    }
    println!("benchmark took {:.0?}", started.elapsed());
    Ok(())
}

/// One Envoy and one backend at one bound.
struct Case<'a> {
    args: &'a Args,
    bound: usize,
    client: &'a TlsConnector,
    edge: Edge,
    backend: Backend,
}

impl Case<'_> {
    async fn run(self, leaves: &[Leaf]) -> Result<()> {
        println!();
        match self.bound {
            0 => println!("== no bound (sds.max_names_per_proxy = 0)"),
            n => println!("== bound {n} (sds.max_names_per_proxy, the default)"),
        }
        println!(
            "  {:>7} {:>11} {:>13} {:>12} {:>12} {:>8} {:>8}",
            "names", "Envoy MiB", "backend MiB", "held (srv)", "held (Envoy)", "streams", "evicted"
        );
        self.print_row(0).await?;
        let started = Instant::now();
        for (i, leaf) in leaves.iter().enumerate() {
            let der = handshake(self.client, self.edge.https, &leaf.name).await?;
            if der != leaf.der {
                bail!("{} presented another certificate", leaf.name);
            }
            if (i + 1) % self.args.every == 0 || i + 1 == leaves.len() {
                self.print_row(i + 1).await?;
            }
        }
        println!(
            "  {} cold handshakes in {:.1?} ({:.2} ms each)",
            leaves.len(),
            started.elapsed(),
            started.elapsed().as_secs_f64() * 1000.0 / leaves.len().max(1) as f64
        );
        let envoy_mib = self.envoy_usage()?.rss_mib();
        if self.bound > 0 {
            let verdict = if envoy_mib < ENVOY_RSS_TARGET_MIB {
                "met"
            } else {
                "MISSED"
            };
            println!(
                "  Envoy RSS {envoy_mib} MiB (target < {ENVOY_RSS_TARGET_MIB} MiB): {verdict}"
            );
        }
        self.restart(leaves).await
    }

    fn envoy_usage(&self) -> Result<Usage> {
        Usage::of(self.edge.envoy.id().context("Envoy is not running")?)
    }

    fn backend_usage(&self) -> Result<Usage> {
        Usage::of(self.backend.pid().context("the backend is not running")?)
    }

    async fn print_row(&self, names: usize) -> Result<()> {
        let metrics = served::metrics(&self.backend).await?;
        println!(
            "  {names:>7} {:>11} {:>13} {:>12} {:>12} {:>8} {:>8}",
            self.envoy_usage()?.rss_mib(),
            self.backend_usage()?.rss_mib(),
            value(&metrics, NAMES_HELD),
            secrets_held(self.edge.admin).await?,
            value(&metrics, STREAMS),
            value(&metrics, EVICTIONS),
        );
        Ok(())
    }

    /// Stop the backend and start it again while Envoy holds its names; see the module docs.
    async fn restart(mut self, leaves: &[Leaf]) -> Result<()> {
        let held = value(&served::metrics(&self.backend).await?, NAMES_HELD);
        // The names Envoy holds: the most recently served ones.
        let probed: Vec<&Leaf> = leaves.iter().rev().take(held as usize).collect();
        let probe = Probe::start(self.client.clone(), self.edge.https, &probed);
        tokio::time::sleep(Duration::from_millis(500)).await;

        let stopping = Instant::now();
        self.backend.stop()?;
        let stopped = stopping.elapsed();
        let starting = Instant::now();
        self.backend.start().await?;
        let healthy = starting.elapsed();
        let (all_answered, peak_rss_kib, cpu) = self.until_all_answered(held).await?;
        let since_start = starting.elapsed();
        // A little longer: failures show up after the burst too, if any.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (ok, failed, first_error) = probe.stop().await;

        println!(
            "  backend restarted while Envoy holds {held} names: stopped in {stopped:.1?}, \
             healthy {healthy:.1?} after its start"
        );
        match all_answered {
            true => println!(
                "  every held name subscribed again (and accounted) {since_start:.2?} after the \
                 start; until then the backend peaked at {} MiB RSS and used {:.0?} of CPU",
                peak_rss_kib / 1024,
                cpu
            ),
            false => println!(
                "  NOT every held name was answered again within {RESUBSCRIBE_DEADLINE:?} \
                 ({} of {held})",
                value(&served::metrics(&self.backend).await?, NAMES_HELD)
            ),
        }
        println!(
            "  probe handshakes to held names during the restart: {ok} succeeded, {failed} \
             failed{}",
            first_error
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default()
        );
        self.edge.envoy.ensure_running()?;
        self.backend.stop()?;
        Ok(())
    }

    /// Poll the restarted backend until it holds `held` names again (false: it did not within
    /// [`RESUBSCRIBE_DEADLINE`]); its peak RSS (KiB) and its CPU time until then.
    async fn until_all_answered(&self, held: u64) -> Result<(bool, u64, Duration)> {
        let deadline = Instant::now() + RESUBSCRIBE_DEADLINE;
        let mut peak = 0;
        let mut last_poll = Instant::now() - Duration::from_secs(1);
        loop {
            let usage = self.backend_usage()?;
            peak = peak.max(usage.rss_kib);
            if last_poll.elapsed() >= Duration::from_millis(50) {
                last_poll = Instant::now();
                let metrics = served::metrics(&self.backend).await?;
                if value(&metrics, NAMES_HELD) >= held {
                    return Ok((true, peak, usage.cpu));
                }
            }
            if Instant::now() >= deadline {
                return Ok((false, peak, usage.cpu));
            }
            tokio::time::sleep(SAMPLE_EVERY).await;
        }
    }
}

/// Handshakes to held names, one after another, until stopped.
struct Probe {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(u64, u64, Option<String>)>,
}

impl Probe {
    fn start(client: TlsConnector, https: std::net::SocketAddr, leaves: &[&Leaf]) -> Probe {
        let names: Vec<(String, Vec<u8>)> = leaves
            .iter()
            .map(|l| (l.name.clone(), l.der.clone()))
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let (mut ok, mut failed) = (0, 0);
            let mut first_error = None;
            for (name, der) in names.iter().cycle() {
                if flag.load(Ordering::Relaxed) || names.is_empty() {
                    break;
                }
                match handshake(&client, https, name).await {
                    Ok(presented) if presented == *der => ok += 1,
                    outcome => {
                        first_error.get_or_insert_with(|| match outcome {
                            Ok(_) => format!("{name} presented another certificate"),
                            Err(e) => format!("{name}: {e:#}"),
                        });
                        failed += 1;
                    }
                }
            }
            (ok, failed, first_error)
        });
        Probe { stop, task }
    }

    /// Stop; handshakes that succeeded and failed, and the first failure.
    async fn stop(self) -> (u64, u64, Option<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.task
            .await
            .unwrap_or_else(|e| (0, 0, Some(format!("the probe stopped: {e}"))))
    }
}

/// A gauge or counter of the Prometheus text `metrics` (0 when absent).
fn value(metrics: &str, name: &str) -> u64 {
    let prefix = format!("{name} ");
    let line = metrics.lines().find(|l| l.starts_with(&prefix));
    let number = line.and_then(|l| l.split_whitespace().nth(1));
    number.and_then(|n| n.parse::<f64>().ok()).unwrap_or(0.0) as u64
}
