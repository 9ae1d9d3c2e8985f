//! The ARI walk (`ari_refresh`) over every issued domain, in the real backend process,
//! against a local CA that answers renewal information ([`AriFixture`]): how long a round
//! takes, how many requests were in flight at once (bounded by the walk's
//! `MAX_IN_FLIGHT` and `acme.max_concurrent_requests`), and what it costs the process in
//! CPU time and memory.
//!
//! A backend of its own is started on the database (the figures of `backend_figures` are
//! taken at rest; a walk under way would disturb them), with the shortest interval,
//! `acme.ari_check_interval_secs = 60`: the first round comes a minute after start-up. The
//! walk is timed from the fixture's first request until the backend logs the round's end.
//! The fixture answers on loopback, so the time is the walk's own work (store reads, parsing
//! each leaf, HTTP); a real CA's latency is projected from the bound on requests in flight,
//! or played by the fixture (`--ari-latency-ms`).

use std::time::{Duration, Instant};

use acme_edge::acme::ari;
use acme_edge::ari_refresh::MAX_IN_FLIGHT;
use acme_edge::config::acme::{DEFAULT_ARI_CHECK_INTERVAL, DEFAULT_MAX_CONCURRENT_REQUESTS};
use acme_edge_tests::backend::Backend;
use acme_edge_tests::pebble::Pebble;
use acme_edge_tests::usage::Usage;
use anyhow::{Context, Result, bail, ensure};

use crate::ari_fixture::{AriFixture, WINDOW_AHEAD};
use crate::fill::{Chain, Share};

/// `acme.ari_check_interval_secs`: its least value; the first round comes this long after
/// start-up.
const INTERVAL_SECS: u64 = 60;
/// How long the backend gets to become ready.
const READY_DEADLINE: Duration = Duration::from_secs(120);
/// How long after readiness the first renewal-information request may take to come.
const FIRST_REQUEST_DEADLINE: Duration = Duration::from_secs(INTERVAL_SECS + 60);
/// How long the walk may take before the bench gives up on it.
const WALK_DEADLINE: Duration = Duration::from_secs(20 * 60);
/// How often the walk's progress, the backend's memory and its log are looked at.
const POLL: Duration = Duration::from_millis(50);
/// What the backend logs at the end of a round, and on a failed round or request.
const ROUND_DONE: &str = "renewal information checked";
const ROUND_FAILED: &str = "checking renewal information";
/// A distant CA's latency, for the projection.
const PROJECTED_LATENCY: Duration = Duration::from_millis(50);

/// Start a backend on `storage_url` against the fixture, measure its first ARI round, stop
/// it. `latency` is how long the fixture waits before each answer.
pub async fn measure(
    pebble: &Pebble,
    storage_url: &str,
    domains: usize,
    chain: &Chain,
    latency: Duration,
) -> Result<()> {
    ensure!(
        ari::identifier(chain.chain_pem()).is_some(),
        "the stored leaf has no authority key identifier: the walk would ask nothing"
    );
    let issued = issued(domains) as u64;
    let fixture = AriFixture::start(pebble, latency).await?;
    let mut backend = Backend::builder()
        .ca(fixture.directory_url(), pebble.ca_root_file())
        .setting("acme", "allow_insecure_directory", true)
        .setting("acme", "ari_check_interval_secs", INTERVAL_SECS as i64)
        .storage_url(storage_url)
        .env("RUST_LOG", "info")
        .start()
        .await?;
    backend.wait_ready(READY_DEADLINE).await?;
    let ready = Instant::now();
    let pid = backend.pid().context("the backend is not running")?;

    let first = first_request(&backend, &fixture).await?;
    let before = Usage::of(pid)?;
    let walk = follow_round(&backend, &fixture, pid, before.rss_kib).await?;
    let after = Usage::of(pid)?;
    let seen = fixture.seen();
    backend.stop()?;

    ensure!(
        seen.requests == issued,
        "the walk asked {} times for {issued} issued domains\n{}",
        seen.requests,
        backend.log()
    );
    let bound = MAX_IN_FLIGHT.min(DEFAULT_MAX_CONCURRENT_REQUESTS) as u64;
    ensure!(
        seen.max_in_flight <= bound,
        "{} requests in flight at once, above the bound of {bound}",
        seen.max_in_flight
    );
    let total = walk.ended.duration_since(first);
    let answered = seen.last.map(|last| last.duration_since(first));
    let cpu = after.cpu.saturating_sub(before.cpu);
    println!(
        "ARI walk (local CA answering after {latency:?}, a window {} days ahead): first round \
         {:.1?} after /readyz; {} requests, one per issued domain; at most {} in flight \
         (bound {bound}); {} failed",
        WINDOW_AHEAD.whole_days(),
        first.duration_since(ready),
        seen.requests,
        seen.max_in_flight,
        walk.failures
    );
    println!(
        "ARI walk over {issued} issued domains: {total:.1?} from the first request to the \
         round's end (last request at {:.1?}; {:.0} domains/s); backend CPU {cpu:.1?} \
         ({:.2} ms a domain); RSS {} MiB before, peak {} MiB",
        answered.unwrap_or_default(),
        issued as f64 / total.as_secs_f64().max(f64::EPSILON),
        cpu.as_secs_f64() * 1000.0 / issued.max(1) as f64,
        before.rss_mib(),
        walk.peak_rss_kib / 1024
    );
    let projected = PROJECTED_LATENCY.mul_f64(issued as f64 / bound.max(1) as f64);
    println!(
        "ARI walk projected for a CA answering in {PROJECTED_LATENCY:?}: {issued} × \
         {PROJECTED_LATENCY:?} / {bound} in flight = {projected:.0?} a round (the default \
         interval is {:?})",
        DEFAULT_ARI_CHECK_INTERVAL
    );
    Ok(())
}

/// How many of `domains` the fill leaves issued: every one the walk asks about.
fn issued(domains: usize) -> usize {
    (0..domains)
        .filter(|&i| matches!(Share::of(i), Share::Issued | Share::RenewalDue))
        .count()
}

/// When the first renewal-information request came (as the fixture saw it).
async fn first_request(backend: &Backend, fixture: &AriFixture) -> Result<Instant> {
    let deadline = Instant::now() + FIRST_REQUEST_DEADLINE;
    loop {
        if let Some(first) = fixture.seen().first {
            return Ok(first);
        }
        if Instant::now() >= deadline {
            bail!(
                "no renewal-information request within {FIRST_REQUEST_DEADLINE:?}\n{}",
                backend.log()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// What following the round found.
struct Walk {
    /// When its end was seen in the log.
    ended: Instant,
    peak_rss_kib: u64,
    /// Requests (or rounds) the backend logged as failed.
    failures: usize,
}

/// Until the backend logs the round's end; its resident memory sampled meanwhile.
async fn follow_round(
    backend: &Backend,
    fixture: &AriFixture,
    pid: u32,
    rss_kib: u64,
) -> Result<Walk> {
    let deadline = Instant::now() + WALK_DEADLINE;
    let mut peak_rss_kib = rss_kib;
    loop {
        tokio::time::sleep(POLL).await;
        peak_rss_kib = peak_rss_kib.max(Usage::of(pid)?.rss_kib);
        let log = backend.log();
        if log.contains(ROUND_DONE) {
            return Ok(Walk {
                ended: Instant::now(),
                peak_rss_kib,
                failures: log.matches(ROUND_FAILED).count(),
            });
        }
        if Instant::now() >= deadline {
            bail!(
                "the round did not end within {WALK_DEADLINE:?} ({} requests so far)\n{log}",
                fixture.seen().requests
            );
        }
    }
}
