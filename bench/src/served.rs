//! `bench cold --process`: the SDS server as operators run it, the release backend binary
//! (`ACME_EDGE_BIN`) in its own process over a SQLite store filled beforehand, read only
//! through its `/metrics`.

use std::net::SocketAddr;
use std::path::Path;

use acme_edge_tests::backend::Backend;
use acme_edge_tests::test_ca::{Leaf, TestCa};
use anyhow::{Context, Result};

use crate::stored::{self, Storage};

/// Log filter for the backend process unless `RUST_LOG` says otherwise: what an operator runs.
const LOG: &str = "info";

/// The backend serving `leaves` on a TCP SDS listener, bounded to `bound` names per proxy.
pub async fn start(
    ca: &TestCa,
    leaves: &[Leaf],
    bound: usize,
    dir: &Path,
) -> Result<(Backend, SocketAddr)> {
    let db = dir.join("served.db");
    // Written through the store's own calls, then closed before the backend opens it.
    drop(stored::source_at(Storage::Sqlite, leaves, &db).await?);
    // The backend never reaches this CA; issuance is not what is measured.
    let root = dir.join("unused-ca.pem");
    std::fs::write(&root, ca.root_pem())?;
    let log = std::env::var("RUST_LOG").unwrap_or_else(|_| LOG.to_owned());
    let backend = Backend::builder()
        .ca("https://127.0.0.1:9/directory", &root)
        .storage_url(format!("sqlite://{}", db.display()))
        .setting("sds", "max_names_per_proxy", i64::try_from(bound)?)
        .env("RUST_LOG", log)
        .start()
        .await?;
    let sds = backend
        .sds()
        .tcp()
        .context("the backend's SDS is not on TCP")?;
    Ok((backend, sds))
}

/// Mean of the histogram `name` in the Prometheus text `metrics`, in ms, and its count.
pub fn histogram_mean(metrics: &str, name: &str) -> Option<(f64, f64)> {
    let value = |suffix: &str| -> Option<f64> {
        let prefix = format!("{name}_{suffix} ");
        let line = metrics.lines().find(|l| l.starts_with(&prefix))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    let (sum, count) = (value("sum")?, value("count")?);
    (count > 0.0).then(|| (sum / count * 1000.0, count))
}

/// The backend's `/metrics`.
pub async fn metrics(backend: &Backend) -> Result<String> {
    let url = format!("{}/metrics", backend.admin_url());
    Ok(backend.client().get(url).send().await?.text().await?)
}
