//! A PostgreSQL database of its own for one test: created on the server
//! `ACME_EDGE_TEST_POSTGRES_URL` names (default [`DEFAULT_SERVER_URL`]: the local server,
//! trust authentication), dropped with its connections when the [`TempDatabase`] is dropped,
//! even when the test fails. `cargo xtask test` starts the server when it is not running.

use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, Result, bail};
use sqlx::Connection;

/// Where test databases are created unless `ACME_EDGE_TEST_POSTGRES_URL` says otherwise.
pub const DEFAULT_SERVER_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
/// Environment variable naming the PostgreSQL server for tests.
pub const SERVER_URL_ENV: &str = "ACME_EDGE_TEST_POSTGRES_URL";

static DATABASES: AtomicU32 = AtomicU32::new(0);

/// A uniquely named database, dropped on drop.
#[derive(Debug)]
pub struct TempDatabase {
    server: String,
    name: String,
}

impl TempDatabase {
    /// Create the database.
    pub async fn create() -> Result<TempDatabase> {
        let server = std::env::var(SERVER_URL_ENV).unwrap_or_else(|_| DEFAULT_SERVER_URL.into());
        let name = format!(
            "acme_edge_e2e_{}_{}_{}",
            std::process::id(),
            DATABASES.fetch_add(1, Ordering::Relaxed),
            rand::random::<u32>()
        );
        let mut admin = sqlx::PgConnection::connect(&server)
            .await
            .with_context(|| {
                format!(
                    "PostgreSQL at {server} (set {SERVER_URL_ENV}; start the local server with \
                 `cargo xtask install` or `pg_ctlcluster --skip-systemctl-redirect \
                 $(ls /etc/postgresql) main start`)"
                )
            })?;
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await
            .with_context(|| format!("create database {name}"))?;
        Ok(TempDatabase { server, name })
    }

    /// The database's URL, for `storage.url`.
    pub fn url(&self) -> Result<String> {
        match self.server.rsplit_once('/') {
            Some((base, _)) if base.contains("://") => Ok(format!("{base}/{}", self.name)),
            _ => bail!("{SERVER_URL_ENV} has no database path: {}", self.server),
        }
    }

    /// A connection to the database, for checks a test makes behind the backends' backs.
    pub async fn connect(&self) -> Result<sqlx::PgConnection> {
        sqlx::PgConnection::connect(&self.url()?)
            .await
            .with_context(|| format!("connect to {}", self.name))
    }

    /// The database's name (as `pg_stat_activity.datname` shows its sessions).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A connection to the server's own database, to watch or end this database's sessions
    /// from outside.
    pub async fn server(&self) -> Result<sqlx::PgConnection> {
        sqlx::PgConnection::connect(&self.server)
            .await
            .with_context(|| format!("connect to {}", self.server))
    }
}

impl Drop for TempDatabase {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        // Drop may run inside a runtime that cannot be blocked on: a thread and runtime of
        // its own.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                if let Ok(mut admin) = sqlx::PgConnection::connect(&server).await {
                    let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                    let _ = sqlx::query(&drop).execute(&mut admin).await;
                }
            });
        })
        .join();
    }
}
