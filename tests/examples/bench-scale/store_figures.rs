//! The store in this process, through its own API: the worker's due-claim, the gauge
//! recount, a scrape from memory, paging as `GET /v1/domains` pages, searches.

use std::sync::Arc;
use std::time::Instant;

use acme_edge::store::{Claim, DomainQuery, Store};
use anyhow::Result;
use time::OffsetDateTime;

use crate::report::{own_rss_mib, percentile, within_ms};

/// Domains a page, as the admin API's default.
pub const PAGE: usize = 100;
/// Due-claims measured (fewer when fewer are due), and domains each takes.
const CLAIMS: usize = 20;
const CLAIM_LIMIT: usize = 10;
/// The most a due-claim may take at 100,000 domains.
const CLAIM_TARGET_MS: f64 = 50.0;

/// Every figure but the due-claims ([`due_claims`]).
pub async fn measure(store: &Arc<dyn Store>, domains: usize) -> Result<()> {
    gauge_recount(store.as_ref()).await?;
    scrape_from_memory()?;
    paging(store.as_ref()).await?;
    searches(store.as_ref()).await?;
    let started = Instant::now();
    let one = store.domain(&crate::fill::name(domains / 2)).await?;
    println!(
        "one domain by name: {:.2?} (found: {})",
        started.elapsed(),
        one.is_some()
    );
    Ok(())
}

/// The worker's due-claim, up to [`CLAIMS`] times while `due` domains are due; returns the
/// claims (their domains are `validating` until recorded). `when` says in what state the
/// database is.
pub async fn due_claims(store: &dyn Store, due: usize, when: &str) -> Result<Vec<Claim>> {
    let claims = CLAIMS.min(due / CLAIM_LIMIT);
    let (mut times, mut held) = (Vec::new(), Vec::new());
    for i in 0..claims {
        let now = OffsetDateTime::now_utc();
        let started = Instant::now();
        let claimed = store
            .claim_due(
                now,
                CLAIM_LIMIT,
                &format!("bench-{i}"),
                now + time::Duration::minutes(5),
            )
            .await?;
        times.push(started.elapsed());
        anyhow::ensure!(claimed.len() == CLAIM_LIMIT, "claimed {}", claimed.len());
        held.extend(claimed);
    }
    let p99 = percentile(&mut times, 0.99);
    println!(
        "due-claim ({CLAIM_LIMIT} of the renewals due, {claims} times; {when}): p50 {:.2?}, \
         p99 {p99:.2?} {}",
        percentile(&mut times, 0.5),
        within_ms(p99, CLAIM_TARGET_MS)
    );
    Ok(held)
}

async fn gauge_recount(store: &dyn Store) -> Result<()> {
    let mut recounts = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let pacing = acme_edge::policy::capacity::Pacing {
            budget: acme_edge::policy::budget::OrderBudget::default(),
            renewals_exempt: true,
        };
        acme_edge::api::gauges::recount(store, pacing).await?;
        recounts.push(started.elapsed());
    }
    println!(
        "gauge recount, the capacity's included (in the background; formerly every scrape): \
         p50 {:.1?}",
        percentile(&mut recounts, 0.5)
    );
    Ok(())
}

fn scrape_from_memory() -> Result<()> {
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
        "scrape (memory only, in this process): p50 {:.1?}, p99 {:.1?}",
        percentile(&mut scrapes, 0.5),
        percentile(&mut scrapes, 0.99)
    );
    Ok(())
}

async fn paging(store: &dyn Store) -> Result<()> {
    let before = own_rss_mib();
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
        "every domain paged through the store ({PAGE} a page): {listed} in {} pages, \
         {total:.1?}; a page p50 {:.2?}, p99 {:.2?}; bench process RSS {before} -> {} MiB",
        pages.len(),
        percentile(&mut pages, 0.5),
        percentile(&mut pages, 0.99),
        own_rss_mib()
    );
    Ok(())
}

async fn searches(store: &dyn Store) -> Result<()> {
    for needle in ["d0500", "99.scale", "zzz"] {
        let query = DomainQuery {
            state: None,
            after: None,
            contains: Some(needle.to_owned()),
            limit: PAGE,
        };
        let started = Instant::now();
        let found = store.domain_page(&query).await?;
        let took = started.elapsed();
        println!(
            "store search {needle:?}: {} on the first page, {took:.2?}",
            found.len()
        );
    }
    Ok(())
}
