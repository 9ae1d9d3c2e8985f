//! `cargo xtask bench filter`: what the challenge filter costs Envoy.
//!
//! Two comparisons, each between two Envoys started from the same `envoy/edge.yaml` (HTTP
//! listener only, one worker), measured with wrk on loopback in alternating rounds after a
//! warm-up, reported as the median of the per-round throughput ratios:
//!
//! - **Other traffic**: non-challenge requests through Envoy with the filter as shipped,
//!   against the same Envoy with the filter section removed. Target: at least 0.98.
//! - **Challenges**: a challenge fetch answered by the filter from its cache, against the
//!   filter-less Envoy answering the same path with its direct response.
//! - **Control**: non-challenge requests through a second filter-less Envoy against the
//!   first. Ideally 1.000; its spread shows how much of the other rows is the machine's noise.
//!
//! Then the same comparisons in instructions per request, Envoy under valgrind's callgrind
//! ([`crate::instructions`]): a count that repeats run after run, so it shows the filter's
//! cost where the machine's noise hides it in throughput. The ratio is baseline / measured
//! instructions, comparable with a throughput ratio.
//!
//! The backend is the harness's fake challenge backend. Not a test: the figures depend on the
//! machine; the output says how many rounds agree with the target.

use std::time::Duration;

use acme_edge_tests::envoy::{Envoy, EnvoyConfig, HttpResponse};
use acme_edge_tests::fixture::ChallengeBackend;
use anyhow::{Context, Result, ensure};
use clap::Parser;

use crate::instructions::{self, CallgrindEnvoy};
use crate::wrk::{parse_requests_per_sec, run_wrk};

const HOST: &str = "bench.example";
const TOKEN: &str = "bench_token-0123456789";
const KEY_AUTHORIZATION: &str = "bench_token-0123456789.thumbprint-abcdefghijklmnopqrstuvwxyz0123";
const OTHER_PATH: &str = "/static/app.js";
const CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";
/// The target for other traffic, from the design's performance targets.
const OTHER_TRAFFIC_TARGET: f64 = 0.98;

#[derive(Debug, Parser)]
#[command(name = "cargo xtask bench filter")]
struct Args {
    /// Measured rounds per side and comparison. Many short rounds resist a noisy machine
    /// better than a few long ones: the median ratio ignores the rounds that got disturbed.
    #[arg(long, default_value_t = 15)]
    rounds: usize,
    /// Seconds per round.
    #[arg(long, default_value_t = 2)]
    seconds: u64,
    /// Seconds of warm-up per side before measuring.
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// Concurrent wrk connections.
    #[arg(long, default_value_t = 16)]
    connections: u32,
    /// Seconds of load per instruction count (Envoy under callgrind).
    #[arg(long, default_value_t = 10)]
    instruction_seconds: u64,
    /// Skip the instruction counts (they need valgrind and take a few minutes).
    #[arg(long)]
    no_instructions: bool,
}

/// Run the benchmark with `args` (after `cargo xtask bench filter`).
pub fn run(args: Vec<String>) -> Result<()> {
    let args = Args::try_parse_from(std::iter::once("filter".to_owned()).chain(args))?;
    ensure!(
        args.rounds > 0 && args.seconds > 0,
        "--rounds and --seconds must be positive"
    );
    let backend = ChallengeBackend::start()?;
    backend.insert(HOST, TOKEN, KEY_AUTHORIZATION);
    // Two configurations from the same template, each on its own ports.
    let edge = || -> Result<EnvoyConfig> {
        Ok(EnvoyConfig::edge(backend.addr())?
            .http_only()?
            .concurrency(1))
    };
    let with_filter = edge()?.start()?;
    let without = edge()?.without_filter()?.start()?;
    let control = edge()?.without_filter()?.start()?;
    let challenge = format!("{CHALLENGE_PREFIX}{TOKEN}");
    check_answers(&with_filter, &without, &challenge)?;

    let other = compare(&args, &with_filter, &without, OTHER_PATH, "shop.example")?;
    let challenges = compare(&args, &with_filter, &without, &challenge, HOST)?;
    let noise = compare(&args, &control, &without, OTHER_PATH, "shop.example")?;
    let lookups = backend.requests();
    print_report(&args, &other, &challenges, &noise, lookups);

    if args.no_instructions {
        return Ok(());
    }
    if !instructions::available() {
        println!("\nvalgrind not found: no instruction counts (apt-get install valgrind)");
        return Ok(());
    }
    drop((with_filter, without, control));
    let counts = count_instructions(&args, &edge, &challenge)?;
    print_instructions(&counts);
    Ok(())
}

/// Instructions per request, each measured twice (the two should agree closely).
struct InstructionCounts {
    other: [(f64, f64); 2],
    challenge: [(f64, f64); 2],
}

fn count_instructions(
    args: &Args,
    edge: &dyn Fn() -> Result<EnvoyConfig>,
    challenge: &str,
) -> Result<InstructionCounts> {
    println!("\nstarting Envoy with and without the filter under callgrind...");
    let mut with_filter = CallgrindEnvoy::start(&edge()?)?;
    let mut without = CallgrindEnvoy::start(&edge()?.without_filter()?)?;
    let warmup = Duration::from_secs(2);
    let seconds = Duration::from_secs(args.instruction_seconds);
    let mut measure = |path: &str, host: &str| -> Result<[(f64, f64); 2]> {
        let mut pairs = [(0.0, 0.0); 2];
        for (i, pair) in pairs.iter_mut().enumerate() {
            let a = with_filter.per_request(path, host, warmup, seconds)?;
            let b = without.per_request(path, host, warmup, seconds)?;
            println!(
                "  {path}: count {}: {a:.0} instructions per request, baseline {b:.0}, ratio {:.4}",
                i + 1,
                b / a
            );
            *pair = (a, b);
        }
        Ok(pairs)
    };
    Ok(InstructionCounts {
        other: measure(OTHER_PATH, "shop.example")?,
        challenge: measure(challenge, HOST)?,
    })
}

fn print_instructions(counts: &InstructionCounts) {
    println!();
    println!(
        "Envoy 1.40 under callgrind, 1 worker, wrk -t1 -c4; instructions per request, all threads"
    );
    println!();
    println!("| requests | with filter | baseline | ratio (baseline / with) | second count |");
    println!("|---|---:|---:|---:|---:|");
    for (name, pairs) in [
        ("non-challenge (filter vs no filter)", &counts.other),
        (
            "challenge, cached (filter vs direct response)",
            &counts.challenge,
        ),
    ] {
        let [(a, b), (a2, b2)] = *pairs;
        println!(
            "| {name} | {a:.0} | {b:.0} | {:.4} | {:.4} |",
            b / a,
            b2 / a2
        );
    }
    let [(a, b), (a2, b2)] = counts.other;
    let ratio = (b / a).min(b2 / a2);
    let verdict = if ratio >= OTHER_TRAFFIC_TARGET {
        "met"
    } else {
        "NOT met"
    };
    println!();
    println!(
        "non-challenge target >= {OTHER_TRAFFIC_TARGET}, instructions: {verdict} ({ratio:.4}, the lower count)"
    );
}

/// Both Envoys answer what the benchmark expects, so it measures the right thing.
fn check_answers(with_filter: &Envoy, without: &Envoy, challenge: &str) -> Result<()> {
    let expect = |r: HttpResponse, body: &str, what: &str| -> Result<()> {
        ensure!(
            r.status == 200 && r.text() == body,
            "{what}: unexpected answer {r:?}"
        );
        Ok(())
    };
    expect(
        with_filter.request("GET", challenge, HOST)?,
        KEY_AUTHORIZATION,
        "filter, challenge",
    )?;
    expect(
        without.request("GET", challenge, HOST)?,
        "ok\n",
        "no filter, challenge",
    )?;
    expect(
        with_filter.request("GET", OTHER_PATH, HOST)?,
        "ok\n",
        "filter, other",
    )?;
    expect(
        without.request("GET", OTHER_PATH, HOST)?,
        "ok\n",
        "no filter, other",
    )
}

/// Requests per second, round by round, of each side.
struct Comparison {
    with_filter: Vec<f64>,
    without: Vec<f64>,
}

impl Comparison {
    fn ratios(&self) -> Vec<f64> {
        self.with_filter
            .iter()
            .zip(&self.without)
            .map(|(a, b)| a / b)
            .collect()
    }
}

fn compare(
    args: &Args,
    with_filter: &Envoy,
    without: &Envoy,
    path: &str,
    host: &str,
) -> Result<Comparison> {
    let warmup = Duration::from_secs(args.warmup);
    let round = Duration::from_secs(args.seconds);
    for envoy in [with_filter, without] {
        if !warmup.is_zero() {
            wrk(args, envoy, path, host, warmup)?;
        }
    }
    let mut comparison = Comparison {
        with_filter: Vec::new(),
        without: Vec::new(),
    };
    for i in 0..args.rounds {
        // Alternate which side goes first, so drift on a shared machine hits both alike.
        let (a, b) = if i % 2 == 0 {
            let a = wrk(args, with_filter, path, host, round)?;
            (a, wrk(args, without, path, host, round)?)
        } else {
            let b = wrk(args, without, path, host, round)?;
            (wrk(args, with_filter, path, host, round)?, b)
        };
        println!(
            "  {path}: round {}: measured {a:>9.0} req/s, baseline {b:>9.0} req/s, ratio {:.3}",
            i + 1,
            a / b
        );
        comparison.with_filter.push(a);
        comparison.without.push(b);
    }
    Ok(comparison)
}

/// One wrk run; requests per second. Fails if any answer was not 2xx/3xx.
fn wrk(args: &Args, envoy: &Envoy, path: &str, host: &str, duration: Duration) -> Result<f64> {
    let text = run_wrk(envoy.http_port(), args.connections, path, host, duration)?;
    parse_requests_per_sec(&text).with_context(|| format!("no Requests/sec in wrk output:\n{text}"))
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn print_report(
    args: &Args,
    other: &Comparison,
    challenges: &Comparison,
    noise: &Comparison,
    lookups: u64,
) {
    println!();
    println!(
        "Envoy 1.40, 1 worker, wrk -t1 -c{} on loopback, {} alternating rounds of {} s per side",
        args.connections, args.rounds, args.seconds
    );
    println!();
    println!("| requests | measured (req/s) | baseline (req/s) | median ratio | min..max ratio |");
    println!("|---|---:|---:|---:|---:|");
    for (name, c) in [
        ("non-challenge (filter vs no filter)", other),
        ("challenge, cached (filter vs direct response)", challenges),
        ("control: no filter vs no filter", noise),
    ] {
        let ratios = c.ratios();
        let (lo, hi) = ratios
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), r| {
                (lo.min(*r), hi.max(*r))
            });
        println!(
            "| {name} | {:.0} | {:.0} | {:.3} | {lo:.3}..{hi:.3} |",
            median(&c.with_filter),
            median(&c.without),
            median(&ratios),
        );
    }
    let other_ratio = median(&other.ratios());
    let verdict = if other_ratio >= OTHER_TRAFFIC_TARGET {
        "met"
    } else {
        "NOT met"
    };
    println!();
    println!("non-challenge target >= {OTHER_TRAFFIC_TARGET}: {verdict} ({other_ratio:.3})");
    println!("backend lookups during the whole run: {lookups} (the rest were cache hits)");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }
}
