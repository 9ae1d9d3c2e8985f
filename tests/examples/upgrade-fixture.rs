//! Writes the upgrade fixtures of the previous release: `cargo xtask upgrade-fixture` runs it
//! with that release's backend (`ACME_EDGE_PREVIOUS_BIN`), once per engine, through the real
//! stack (Pebble, Envoy), and writes into `tests/fixtures/upgrade/<release>/`:
//!
//! - `acme-edge.sqlite`: the SQLite database, compacted;
//! - `postgres.sql`: the PostgreSQL database, as `pg_dump` writes it;
//! - `sqlite.json`, `postgres.json`: each one's manifest (the names, the rows as digests, the
//!   root of the throwaway CA that issued its certificates).
//!
//! The history each holds: a domain issued, one renewed, one whose validation failed, one
//! disabled, and one whose order was in flight when the backend was killed.

use std::path::PathBuf;

use acme_edge_tests::stack::Stack;
use acme_edge_tests::tools;
use acme_edge_tests::upgrade::{History, Manifest, Storage, fixture_dir};
use anyhow::{Context, Result};

/// The names, under a zone of their own.
const ZONE: &str = "upgrade.acme-edge.test";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let out = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| fixture_dir(tools::PREVIOUS_RELEASE));
    std::fs::create_dir_all(&out)?;
    let scratch = tempfile::tempdir()?;
    let engines = [
        Storage::sqlite(scratch.path().join("acme-edge.db")),
        Storage::postgres().await?,
    ];
    for storage in engines {
        write(&storage, &out)
            .await
            .with_context(|| format!("writing {}", storage.fixture_file()))?;
        println!("wrote {}", out.join(storage.fixture_file()).display());
    }
    Ok(())
}

/// One engine's history, through the previous release's backend.
async fn write(storage: &Storage, out: &std::path::Path) -> Result<()> {
    let previous = tools::previous_backend_bin()?;
    let url = storage.url()?;
    let mut stack = Stack::builder()
        .pebble(|p| p.va_sleep(true))
        .backend(move |b| b.binary(previous).storage_url(url))
        .start()
        .await?;
    let issuer_root_pem = stack.pebble.issuer_roots_pem().await?;
    let mut history = History::under(ZONE);
    history
        .write(&mut stack, storage)
        .await
        .with_context(|| stack.logs())?;
    storage.dump(&out.join(storage.fixture_file())).await?;
    let manifest = Manifest {
        release: tools::PREVIOUS_RELEASE.to_owned(),
        history,
        issuer_root_pem,
        snapshot: storage.snapshot().await?,
    };
    manifest.save(out, storage)
}
