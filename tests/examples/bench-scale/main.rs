//! `cargo xtask bench scale`: the store and the metrics with 100,000 domains, on SQLite and
//! PostgreSQL. Prints figures; asserts nothing about time.
//!
//! Domains are enabled through the store's own code. 99 % are enabled with a due time a day
//! ahead and 1 % due now, so the worker's claim looks for 1 % due among 100,000.

use std::sync::Arc;
use std::time::{Duration, Instant};

use acme_edge::model::KeyType;
use acme_edge::store::{DomainQuery, PgStore, SqliteStore, Store};
use acme_edge_tests::postgres::TempDatabase;
use anyhow::Result;
use time::OffsetDateTime;

const DOMAINS: usize = 100_000;
const DUE_EVERY: usize = 100;

fn rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = (status.lines().find(|l| l.starts_with("VmRSS:")))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    kib / 1024
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples.get(index).copied().unwrap_or_default()
}

async fn fill(store: &dyn Store) -> Result<Duration> {
    let now = OffsetDateTime::now_utc();
    let later = now + time::Duration::days(1);
    let started = Instant::now();
    for i in 0..DOMAINS {
        let due = if i % DUE_EVERY == 0 { now } else { later };
        let name = format!("d{i:06}.scale.example");
        store.enable_domain(&name, KeyType::default(), due).await?;
    }
    Ok(started.elapsed())
}

async fn measure(label: &str, store: Arc<dyn Store>) -> Result<()> {
    println!(
        "== {label}: {DOMAINS} domains ({} due now)",
        DOMAINS / DUE_EVERY
    );
    let rss0 = rss_mib();
    let took = fill(store.as_ref()).await?;
    println!(
        "enabled through the store in {took:.1?}; bench process RSS {rss0} -> {} MiB",
        rss_mib()
    );

    let mut claims = Vec::new();
    for i in 0..20 {
        let now = OffsetDateTime::now_utc();
        let started = Instant::now();
        let claimed = store
            .claim_due(
                now,
                10,
                &format!("bench-{i}"),
                now + time::Duration::minutes(5),
            )
            .await?;
        claims.push(started.elapsed());
        anyhow::ensure!(claimed.len() == 10, "claimed {}", claimed.len());
    }
    println!(
        "due-claim (10 of the due): p50 {:.2?}, p99 {:.2?}",
        percentile(&mut claims, 0.5),
        percentile(&mut claims, 0.99)
    );

    let mut recounts = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        acme_edge::api::gauges::recount(store.as_ref()).await?;
        recounts.push(started.elapsed());
    }
    println!(
        "gauge recount (in the background; formerly every scrape): p50 {:.1?}",
        percentile(&mut recounts, 0.5)
    );
    let handle = acme_edge::metrics::install()?;
    let mut scrapes = Vec::new();
    for _ in 0..100 {
        let started = Instant::now();
        let _served = acme_edge::metrics::refresh_expiry_gauge();
        handle.run_upkeep();
        let text = handle.render();
        std::hint::black_box(text);
        scrapes.push(started.elapsed());
    }
    println!(
        "scrape (memory only): p50 {:.1?}, p99 {:.1?}",
        percentile(&mut scrapes, 0.5),
        percentile(&mut scrapes, 0.99)
    );

    let before = rss_mib();
    let started = Instant::now();
    let (mut pages, mut listed, mut after) = (Vec::new(), 0, None);
    loop {
        let query = DomainQuery {
            state: None,
            after: after.take(),
            contains: None,
            limit: PAGE,
        };
        let page_started = Instant::now();
        let page = store.domain_page(&query).await?;
        pages.push(page_started.elapsed());
        listed += page.len();
        match page.last() {
            Some(last) if page.len() == PAGE => after = Some(last.name.clone()),
            _ => break,
        }
    }
    let total = started.elapsed();
    println!(
        "every domain paged through ({PAGE} a page, as GET /v1/domains): {listed} in {} pages, \
         {total:.1?}; a page p50 {:.2?}, p99 {:.2?}; RSS {before} -> {} MiB",
        pages.len(),
        percentile(&mut pages, 0.5),
        percentile(&mut pages, 0.99),
        rss_mib()
    );
    let mut searches = Vec::new();
    for needle in ["d0500", "99.scale", "zzz"] {
        let query = DomainQuery {
            state: None,
            after: None,
            contains: Some(needle.to_owned()),
            limit: PAGE,
        };
        let search_started = Instant::now();
        let found = store.domain_page(&query).await?;
        searches.push(search_started.elapsed());
        println!("?q={needle}: {} on the first page", found.len());
    }
    println!(
        "substring search (first page): p50 {:.2?}, max {:.2?}",
        percentile(&mut searches, 0.5),
        percentile(&mut searches, 1.0)
    );
    let started = Instant::now();
    let one = store.domain("d050000.scale.example").await?;
    println!(
        "one domain by name: {:.2?} (found: {})",
        started.elapsed(),
        one.is_some()
    );
    Ok(())
}

/// Domains a page, as the admin API's default.
const PAGE: usize = 100;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let sqlite: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.path().join("scale.db")).await?);
    measure("SQLite", sqlite).await?;
    match TempDatabase::create().await {
        Ok(db) => {
            let pg: Arc<dyn Store> = Arc::new(PgStore::connect(&db.url()?).await?);
            measure("PostgreSQL", pg).await?;
        }
        Err(e) => println!("== PostgreSQL: skipped ({e:#})"),
    }
    Ok(())
}
