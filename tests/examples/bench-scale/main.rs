//! `cargo xtask bench scale`: 100,000 domains on SQLite and on PostgreSQL, measured in the
//! store (this process) and in the real backend process over HTTP. Prints figures beside the
//! targets; asserts nothing about time.
//!
//! # Layout
//!
//! - `fill`: the fleet, written through the store's own code (issued with a certificate
//!   chain and key, a few failed and pending).
//! - `store_figures`: the store's own calls: the worker's due-claim, the gauge recount,
//!   paging, searches.
//! - `backend_figures`: `acme-edge serve` (the binary `ACME_EDGE_BIN` names: `cargo xtask
//!   bench scale` builds it in release mode) on the same database, over HTTP with the admin
//!   token: start-up, memory, pages, searches, summary, the work of a scrape.
//! - `ari_figures` (with `ari_fixture`, a local CA answering renewal information): a second
//!   start of the backend on the database, its ARI walk over every issued domain.
//! - `report`: percentiles, figures against targets.
//!
//! Both databases are filled at once (the fill is most of the run's time, and the two
//! engines wait on different things); then, one engine after the other: measure the store,
//! renew what the measured claims took (so nothing is due and the backend rests), close the
//! store, start the backend on the database and measure it; start it again against a CA
//! with renewal information and measure its ARI walk.

mod ari_figures;
mod ari_fixture;
mod backend_figures;
mod fill;
mod report;
mod store_figures;

use std::sync::Arc;
use std::time::{Duration, Instant};

use acme_edge::store::{PgStore, SqliteStore, Store};
use acme_edge_tests::pebble::Pebble;
use acme_edge_tests::ports::free_addr;
use acme_edge_tests::postgres::TempDatabase;
use anyhow::Result;
use clap::Parser;

use crate::fill::Chain;
use crate::report::own_rss_mib;

/// Store calls in flight while filling. SQLite has one writer: concurrent writers only
/// queue on its lock. PostgreSQL overlaps the round trips of concurrent calls.
const SQLITE_FILL_CONCURRENCY: usize = 1;
const POSTGRES_FILL_CONCURRENCY: usize = 8;

#[derive(Debug, Parser)]
#[command(about = "100,000 domains: the store and the backend process, on SQLite and PostgreSQL")]
struct Options {
    /// Domains in the fleet.
    #[arg(long, default_value_t = 100_000)]
    domains: usize,
    /// Only this engine.
    #[arg(long, value_enum)]
    only: Option<EngineName>,
    /// How long the local CA waits before each renewal-information answer (the ARI walk).
    #[arg(long, default_value_t = 0)]
    ari_latency_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum EngineName {
    Sqlite,
    Postgres,
}

/// One database under test.
struct Engine {
    label: &'static str,
    store: Arc<dyn Store>,
    /// `storage.url` for the backend.
    url: String,
    concurrency: usize,
    /// Where the database is (a directory, a database on the server), removed when the
    /// engine is dropped.
    _dir: Option<tempfile::TempDir>,
    _db: Option<TempDatabase>,
}

impl Engine {
    async fn sqlite() -> Result<Engine> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("scale.db");
        Ok(Engine {
            label: "SQLite",
            store: Arc::new(SqliteStore::open(&path).await?),
            url: format!("sqlite://{}", path.display()),
            concurrency: SQLITE_FILL_CONCURRENCY,
            _dir: Some(dir),
            _db: None,
        })
    }

    /// `None` (said why) when no PostgreSQL server answers.
    async fn postgres() -> Result<Option<Engine>> {
        let db = match TempDatabase::create().await {
            Ok(db) => db,
            Err(e) => {
                println!("== PostgreSQL: skipped ({e:#})");
                return Ok(None);
            }
        };
        let url = db.url()?;
        Ok(Some(Engine {
            label: "PostgreSQL",
            store: Arc::new(PgStore::connect(&url).await?),
            url,
            concurrency: POSTGRES_FILL_CONCURRENCY,
            _dir: None,
            _db: Some(db),
        }))
    }

    async fn fill(&self, chain: &Chain, domains: usize) -> Result<()> {
        let filled = fill::fill(&self.store, chain, domains, self.concurrency).await?;
        println!(
            "{}: {domains} domains filled through the store ({} call(s) at a time): enabled \
             in {:.1?}, claimed and recorded in {:.1?}",
            self.label, self.concurrency, filled.enabled, filled.recorded
        );
        Ok(())
    }

    /// Measure the store, leave nothing due, close it; then the backend on the database.
    /// Then the ARI walk, in a second start, against a local CA that answers after
    /// `ari_latency`.
    async fn measure(
        self,
        chain: &Chain,
        domains: usize,
        pebble: &Pebble,
        ari_latency: Duration,
    ) -> Result<()> {
        println!("== {}: {domains} domains", self.label);
        let due = fill::renewals_due(domains);
        let store = self.store.as_ref();
        let mut held = store_figures::due_claims(store, due, "just after the fill").await?;
        if let Some(db) = &self._db {
            settle(db).await?;
            let left = due - held.len();
            held.extend(store_figures::due_claims(store, left, SETTLED).await?);
        }
        store_figures::measure(&self.store, domains).await?;
        let renewed = fill::renew_due(&self.store, chain, held, self.concurrency).await?;
        println!("renewed what was due ({renewed} domains): nothing is due now");
        let Engine {
            store,
            url,
            _dir,
            _db,
            ..
        } = self;
        // Closed: a SQLite file is the backend's alone now.
        drop(store);
        backend_figures::measure(pebble, &url, domains).await?;
        ari_figures::measure(pebble, &url, domains, chain, ari_latency).await
    }
}

/// What PostgreSQL's autovacuum does within minutes of a bulk change: dead row versions
/// removed, the planner's statistics gathered. Just after the fill the table has neither,
/// and the due-claim's plan depends on the statistics.
const SETTLED: &str = "after VACUUM ANALYZE, as autovacuum leaves it";

async fn settle(db: &TempDatabase) -> Result<()> {
    use sqlx::Executor;
    let started = Instant::now();
    db.connect()
        .await?
        .execute("VACUUM ANALYZE domains")
        .await?;
    println!("VACUUM ANALYZE domains: {:.1?}", started.elapsed());
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let options = Options::parse();
    let started = Instant::now();
    let chain = Chain::new()?;
    let (chain_bytes, key_bytes) = chain.sizes();
    println!(
        "{} domains: 98 % issued (chain {chain_bytes} bytes + key {key_bytes} bytes each, \
         1 % of them due for renewal), 1 % failed, 1 % pending (due in a day)",
        options.domains
    );
    let mut engines = Vec::new();
    if options.only != Some(EngineName::Postgres) {
        engines.push(Engine::sqlite().await?);
    }
    if options.only != Some(EngineName::Sqlite) {
        engines.extend(Engine::postgres().await?);
    }
    let rss = own_rss_mib();
    let fills = engines.iter().map(|e| e.fill(&chain, options.domains));
    futures::future::try_join_all(fills).await?;
    println!(
        "filled in {:.0?} (the engines at once); bench process RSS {rss} -> {} MiB",
        started.elapsed(),
        own_rss_mib()
    );
    // The backend needs a CA to load its account from (for /readyz); it orders nothing:
    // nothing is due while it is measured.
    let pebble = Pebble::builder(free_addr().port()).start().await?;
    for engine in engines {
        let ari_latency = Duration::from_millis(options.ari_latency_ms);
        engine
            .measure(&chain, options.domains, &pebble, ari_latency)
            .await?;
    }
    println!("benchmark took {:.0?}", started.elapsed());
    Ok(())
}
