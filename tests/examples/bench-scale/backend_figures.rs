//! The real `acme-edge serve` process (the release build) on the filled database, over
//! HTTP with the admin token: start-up, memory at rest and after paging through every
//! domain, a page, searches, the summary, and the work of a `/metrics` scrape.
//!
//! Its memory is `VmRSS` and its work the CPU time of all its threads, both from `/proc`
//! (`acme_edge_tests::usage`). The work per scrape is the CPU time the scrapes added, less
//! what the process spends idle in as long (measured while it rests), divided by their
//! number.

use std::time::{Duration, Instant};

use acme_edge_tests::backend::Backend;
use acme_edge_tests::pebble::Pebble;
use acme_edge_tests::usage::Usage;
use anyhow::{Context, Result, bail, ensure};

use crate::report::{percentile, within, within_ms};
use crate::store_figures::PAGE;

/// How long the backend gets to become ready.
const READY_DEADLINE: Duration = Duration::from_secs(120);
/// Idle time before memory "at rest" is read.
const REST: Duration = Duration::from_secs(5);
/// Scrapes of `/metrics` measured.
const SCRAPES: u32 = 1000;
/// Requests of `GET /v1/summary` measured.
const SUMMARIES: usize = 5;

/// Targets at 100,000 domains.
const RSS_AT_REST_MIB: f64 = 64.0;
const RSS_AFTER_PAGING_MIB: f64 = 128.0;
const PAGE_TARGET_MS: f64 = 20.0;
const SCRAPE_WORK_TARGET_MS: f64 = 1.0;

/// Start the backend on `storage_url` (the store that filled it closed), measure, stop it.
pub async fn measure(pebble: &Pebble, storage_url: &str, domains: usize) -> Result<()> {
    let started = Instant::now();
    let mut backend = Backend::builder()
        .pebble(pebble)
        .storage_url(storage_url)
        // As operators run it: no debug logging.
        .env("RUST_LOG", "info")
        .start()
        .await?;
    backend.wait_ready(READY_DEADLINE).await?;
    println!(
        "backend start-up (spawn until /readyz answers 200): {:.0?}",
        started.elapsed()
    );
    let pid = backend.pid().context("the backend is not running")?;

    let idle_from = Usage::of(pid)?;
    tokio::time::sleep(REST).await;
    let rest = Usage::of(pid)?;
    let idle_cpu_per_sec =
        (rest.cpu.saturating_sub(idle_from.cpu)).as_secs_f64() / REST.as_secs_f64();
    println!(
        "backend RSS at rest ({REST:?} idle): {} MiB {}; idle CPU {:.1} ms/s",
        rest.rss_mib(),
        within(rest.rss_mib() as f64, RSS_AT_REST_MIB, "MiB"),
        idle_cpu_per_sec * 1000.0
    );

    page_through(&backend, domains).await?;
    let paged = Usage::of(pid)?;
    println!(
        "backend RSS after paging through every domain: {} MiB {}",
        paged.rss_mib(),
        within(paged.rss_mib() as f64, RSS_AFTER_PAGING_MIB, "MiB"),
    );
    searches(&backend).await?;
    summary(&backend, domains).await?;
    scrapes(&backend, pid, idle_cpu_per_sec).await?;
    println!("backend RSS at the end: {} MiB", Usage::of(pid)?.rss_mib());
    backend.stop()?;
    Ok(())
}

/// `GET url` with the token; the body, and how long until it was read.
async fn get(backend: &Backend, path_and_query: &str) -> Result<(bytes::Bytes, Duration)> {
    let url = format!("{}{path_and_query}", backend.admin_url());
    let started = Instant::now();
    let response = backend
        .client()
        .get(&url)
        .send()
        .await
        .with_context(|| url.clone())?;
    let status = response.status();
    let body = response.bytes().await.with_context(|| url.clone())?;
    let took = started.elapsed();
    if !status.is_success() {
        bail!("{url}: {status}: {}", String::from_utf8_lossy(&body));
    }
    Ok((body, took))
}

async fn get_json(
    backend: &Backend,
    path_and_query: &str,
) -> Result<(serde_json::Value, Duration)> {
    let (body, took) = get(backend, path_and_query).await?;
    let json =
        serde_json::from_slice(&body).with_context(|| format!("{path_and_query}: not JSON"))?;
    Ok((json, took))
}

/// Every domain, `PAGE` at a time, following the `next` cursor.
async fn page_through(backend: &Backend, domains: usize) -> Result<()> {
    let started = Instant::now();
    let (mut times, mut listed, mut after) = (Vec::new(), 0, None::<String>);
    loop {
        let mut path = format!("/v1/domains?limit={PAGE}");
        if let Some(cursor) = &after {
            path.push_str(&format!("&after={cursor}"));
        }
        let (page, took) = get_json(backend, &path).await?;
        times.push(took);
        listed += page["domains"].as_array().map_or(0, Vec::len);
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    let total = started.elapsed();
    ensure!(listed == domains, "listed {listed} of {domains} domains");
    let p99 = percentile(&mut times, 0.99);
    println!(
        "GET /v1/domains?limit={PAGE} through all {listed} ({} pages): total {total:.1?}; \
         a page p50 {:.2?}, p99 {p99:.2?} {}",
        times.len(),
        percentile(&mut times, 0.5),
        within_ms(p99, PAGE_TARGET_MS)
    );
    Ok(())
}

/// The first page of a few searches and state filters.
async fn searches(backend: &Backend) -> Result<()> {
    let queries = [
        "q=d0500",
        "q=99.scale",
        "q=d099999.scale.example",
        "q=zzz",
        "state=failed",
        "state=pending",
        "state=issued&q=d07",
    ];
    for query in queries {
        let (page, took) = get_json(backend, &format!("/v1/domains?limit={PAGE}&{query}")).await?;
        let found = page["domains"].as_array().map_or(0, Vec::len);
        println!("GET /v1/domains?{query}: {found} on the first page, {took:.2?}");
    }
    Ok(())
}

async fn summary(backend: &Backend, domains: usize) -> Result<()> {
    let mut times = Vec::new();
    let mut last = serde_json::Value::Null;
    for _ in 0..SUMMARIES {
        let (body, took) = get_json(backend, "/v1/summary").await?;
        times.push(took);
        last = body;
    }
    ensure!(
        last["total"].as_u64() == Some(domains as u64),
        "summary total: {}",
        last["total"]
    );
    let first = times[0];
    println!(
        "GET /v1/summary: first {first:.1?}, p50 {:.1?} ({SUMMARIES} requests); states {}",
        percentile(&mut times, 0.5),
        last["states"]
    );
    Ok(())
}

/// `SCRAPES` scrapes of `/metrics`, one after another: wall time each, and the backend's
/// CPU time per scrape.
async fn scrapes(backend: &Backend, pid: u32, idle_cpu_per_sec: f64) -> Result<()> {
    let mut times = Vec::new();
    let mut bytes = 0;
    let before = Usage::of(pid)?;
    let started = Instant::now();
    for _ in 0..SCRAPES {
        let (body, took) = get(backend, "/metrics").await?;
        bytes = body.len();
        times.push(took);
    }
    let wall = started.elapsed();
    let after = Usage::of(pid)?;
    let cpu = after.cpu.saturating_sub(before.cpu);
    let idle = Duration::from_secs_f64(idle_cpu_per_sec * wall.as_secs_f64());
    let work = cpu.saturating_sub(idle) / SCRAPES;
    // CPU time is counted in clock ticks: one tick more or less, over every scrape.
    let resolution = Usage::tick()? / SCRAPES;
    println!(
        "GET /metrics ({bytes} bytes): p50 {:.2?}, p99 {:.2?}; backend CPU {cpu:.0?} for \
         {SCRAPES} scrapes in {wall:.1?} (idle share {idle:.0?}): work per scrape \
         {work:.1?} ± {resolution:.1?} {}",
        percentile(&mut times, 0.5),
        percentile(&mut times, 0.99),
        within_ms(work, SCRAPE_WORK_TARGET_MS)
    );
    Ok(())
}
