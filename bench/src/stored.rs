//! Where `bench cold` keeps its certificates: in memory (the SDS server's part alone), or in
//! a SQLite store read through the backend's own source, as a single-node service serves them.

use std::path::Path;
use std::sync::Arc;

use acme_edge::certs::CertificateSource;
use acme_edge::model::KeyType;
use acme_edge::sds::memory::MemorySource;
use acme_edge::store::source::StoreSource;
use acme_edge::store::{IssuedCertificate, SqliteStore, Store};
use acme_edge_tests::served_certificate;
use acme_edge_tests::test_ca::Leaf;
use anyhow::{Result, bail};
use time::{Duration, OffsetDateTime};

/// Which certificate source the SDS server reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Storage {
    Memory,
    Sqlite,
}

/// A source serving `leaves` from `storage` (a SQLite file goes in `dir`).
pub async fn source(
    storage: Storage,
    leaves: &[Leaf],
    dir: &Path,
) -> Result<Arc<dyn CertificateSource>> {
    source_at(storage, leaves, &dir.join("bench.db")).await
}

/// [`source`] with the SQLite file at `db`.
pub async fn source_at(
    storage: Storage,
    leaves: &[Leaf],
    db: &Path,
) -> Result<Arc<dyn CertificateSource>> {
    match storage {
        Storage::Memory => {
            let memory = MemorySource::new();
            for leaf in leaves {
                memory.put(served_certificate!(leaf));
            }
            Ok(Arc::new(memory))
        }
        Storage::Sqlite => {
            let store: Arc<dyn Store> = Arc::new(SqliteStore::open(db).await?);
            issue_all(store.as_ref(), leaves).await?;
            Ok(Arc::new(StoreSource::new(store)))
        }
    }
}

/// Record `leaves` as issued, through the worker's own calls (enable, claim, record).
async fn issue_all(store: &dyn Store, leaves: &[Leaf]) -> Result<()> {
    let now = OffsetDateTime::now_utc();
    for leaf in leaves {
        store
            .enable_domain(&leaf.name, KeyType::EcdsaP256, now)
            .await?;
    }
    let claims = store
        .claim_due(now, leaves.len(), "bench", now + Duration::hours(1))
        .await?;
    if claims.len() != leaves.len() {
        bail!("claimed {} of {} domains", claims.len(), leaves.len());
    }
    for claim in &claims {
        let Some(leaf) = leaves.iter().find(|l| l.name == claim.name) else {
            bail!("claimed {}, which is not the benchmark's", claim.name);
        };
        let cert = IssuedCertificate {
            chain_pem: leaf.chain_pem.clone(),
            key_pem: leaf.key_pem.clone(),
            not_before: now,
            not_after: now + Duration::days(90),
            version: leaf.version(),
        };
        if !store
            .record_issued(claim, &cert, now + Duration::days(60), now)
            .await?
        {
            bail!("{}: lease lost", claim.name);
        }
    }
    Ok(())
}
