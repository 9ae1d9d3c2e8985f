//! What the upgrade tests carry across a release: a database with a history in it, written by
//! one release and read by the next.
//!
//! - [`History`]: the history a release writes through the real stack (issued, renewed,
//!   failed, disabled, and an order left in flight by a crash), the same for the fixtures and
//!   for the upgrade made in place.
//! - [`Storage`]: the database, SQLite or PostgreSQL; dumped as a fixture and restored from one.
//! - [`Snapshot`]: every row that must survive an upgrade, secrets as digests only.
//! - [`Manifest`]: what a fixture holds besides its database (`<engine>.json` beside it):
//!   the release that wrote it, the history's names, the rows, the CA root of its
//!   certificates.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::{Connection, Row};

use crate::postgres::TempDatabase;
use crate::process::eventually;
use crate::stack::Stack;
use crate::tools;

/// One issuance through Pebble (with its 0-15 s validation delay) and Envoy, generously
/// bounded for a noisy 2-core machine.
pub const ISSUE_DEADLINE: Duration = Duration::from_secs(120);

/// Names tried for the order left in flight: a validation that Pebble happens to finish
/// before it is frozen leaves nothing in flight, and the next name is tried.
const IN_FLIGHT_TRIES: usize = 4;

/// The domains of the history, one per thing a release must carry across an upgrade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// Issued once.
    pub issued: String,
    /// Issued, then renewed (two orders, the second a renewal).
    pub renewed: String,
    /// Failed validation (its DNS answered SERVFAIL): `failed`, with the CA's problem.
    pub failed: String,
    /// Issued, then disabled (its key and certificate deleted).
    pub disabled: String,
    /// Its order was open, its challenge published, when the backend was killed.
    pub in_flight: String,
}

impl History {
    /// The names, under `zone`.
    pub fn under(zone: &str) -> History {
        History {
            issued: format!("issued.{zone}"),
            renewed: format!("renewed.{zone}"),
            failed: format!("failed.{zone}"),
            disabled: format!("disabled.{zone}"),
            in_flight: format!("in-flight.{zone}"),
        }
    }

    /// Write the history with the stack's backend (whatever release it runs) on `storage`:
    /// `stack` must run Pebble with its validation delay. Returns with Pebble frozen and the
    /// backend killed while [`in_flight`](Self::in_flight)'s order is open at the CA, its
    /// challenge published.
    pub async fn write(&mut self, stack: &mut Stack, storage: &Storage) -> Result<()> {
        let backend = &stack.backend;
        stack.pebble.fail_dns(&self.failed).await?;
        for name in [&self.issued, &self.renewed, &self.disabled, &self.failed] {
            backend.enable(name).await?;
        }
        for name in [&self.issued, &self.renewed, &self.disabled] {
            backend
                .wait_for_state(name, "issued", ISSUE_DEADLINE)
                .await?;
        }
        backend
            .wait_for_state(&self.failed, "failed", ISSUE_DEADLINE)
            .await?;
        let first = backend.certificate_pem(&self.renewed).await?;
        backend.renew(&self.renewed).await?;
        eventually(ISSUE_DEADLINE, || async {
            let pem = backend.certificate_pem(&self.renewed).await.ok()?;
            (pem != first).then_some(())
        })
        .await
        .context("the renewal")?;
        backend.disable(&self.disabled).await?;
        let in_flight = self.leave_in_flight(stack, storage).await?;
        self.in_flight = in_flight;
        stack.backend.kill()
    }

    /// Enable a name and freeze Pebble while its order is open and its challenge published:
    /// the name.
    async fn leave_in_flight(&self, stack: &mut Stack, storage: &Storage) -> Result<String> {
        for attempt in 0..IN_FLIGHT_TRIES {
            let name = match attempt {
                0 => self.in_flight.clone(),
                n => self
                    .in_flight
                    .replacen("in-flight", &format!("in-flight-{n}"), 1),
            };
            stack.backend.enable(&name).await?;
            let published = format!("{name} ");
            eventually(ISSUE_DEADLINE, || async {
                let rows = storage.snapshot().await.ok()?;
                let open = rows.open_order(&name).is_some();
                let token = rows.challenges.keys().any(|k| k.starts_with(&published));
                (open && token).then_some(())
            })
            .await
            .with_context(|| format!("an order for {name} with its challenge published"))?;
            stack.pebble.freeze()?;
            if stack.backend.domain(&name).await?["state"] == "validating" {
                return Ok(name);
            }
            // Validated before the freeze: nothing is in flight. Another name.
            stack.pebble.thaw()?;
        }
        bail!("every order finished before Pebble could be frozen")
    }
}

/// Where the fixtures written by `release` are: `tests/fixtures/upgrade/<release>/`.
pub fn fixture_dir(release: &str) -> PathBuf {
    tools::workspace_root()
        .join("tests/fixtures/upgrade")
        .join(release)
}

/// What a fixture holds besides its database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The release whose backend wrote the database.
    pub release: String,
    /// The history's names.
    pub history: History,
    /// The root of the CA (a Pebble run) that issued its certificates, to verify them.
    pub issuer_root_pem: String,
    /// Its rows, when it was written.
    pub snapshot: Snapshot,
}

impl Manifest {
    /// The manifest of `storage`'s engine in `dir`.
    pub fn load(dir: &Path, storage: &Storage) -> Result<Manifest> {
        let path = dir.join(storage.manifest_file());
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// Write it beside `storage`'s fixture in `dir`.
    pub fn save(&self, dir: &Path, storage: &Storage) -> Result<()> {
        let path = dir.join(storage.manifest_file());
        let text = serde_json::to_string_pretty(self)? + "\n";
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    }
}

/// A database a backend runs on.
#[derive(Debug)]
pub enum Storage {
    Sqlite(PathBuf),
    Postgres(TempDatabase),
}

impl Storage {
    /// A SQLite database at `path` (made by the backend on its first start).
    pub fn sqlite(path: impl Into<PathBuf>) -> Storage {
        Storage::Sqlite(path.into())
    }

    /// A PostgreSQL database of its own.
    pub async fn postgres() -> Result<Storage> {
        Ok(Storage::Postgres(TempDatabase::create().await?))
    }

    /// `storage.url`.
    pub fn url(&self) -> Result<String> {
        match self {
            Storage::Sqlite(path) => Ok(format!("sqlite://{}", path.display())),
            Storage::Postgres(db) => db.url(),
        }
    }

    /// The fixture file's name for this engine.
    pub fn fixture_file(&self) -> &'static str {
        match self {
            Storage::Sqlite(_) => "acme-edge.sqlite",
            Storage::Postgres(_) => "postgres.sql",
        }
    }

    /// The fixture's manifest's name for this engine.
    pub fn manifest_file(&self) -> &'static str {
        match self {
            Storage::Sqlite(_) => "sqlite.json",
            Storage::Postgres(_) => "postgres.json",
        }
    }

    /// Write the database to `file`: SQLite as a compacted copy (`VACUUM INTO`), PostgreSQL as
    /// a `pg_dump` script without owners or privileges.
    pub async fn dump(&self, file: &Path) -> Result<()> {
        if file.exists() {
            std::fs::remove_file(file)?;
        }
        match self {
            Storage::Sqlite(_) => {
                let mut conn = self.sqlite_connection().await?;
                sqlx::query("VACUUM INTO $1")
                    .bind(file.display().to_string())
                    .execute(&mut conn)
                    .await
                    .context("VACUUM INTO")?;
                conn.close().await?;
                Ok(())
            }
            Storage::Postgres(db) => {
                let out = tokio::process::Command::new("pg_dump")
                    .args(["--no-owner", "--no-privileges", "--dbname"])
                    .arg(db.url()?)
                    .arg("--file")
                    .arg(file)
                    .output()
                    .await
                    .context("running pg_dump")?;
                if !out.status.success() {
                    bail!("pg_dump: {}", String::from_utf8_lossy(&out.stderr));
                }
                Ok(())
            }
        }
    }

    /// Fill the (new, empty) database from `file`, written by [`dump`](Self::dump).
    pub async fn restore(&self, file: &Path) -> Result<()> {
        match self {
            Storage::Sqlite(path) => {
                std::fs::copy(file, path)
                    .with_context(|| format!("copying {} to {}", file.display(), path.display()))?;
                // The database holds private keys: readable by its owner only.
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
                Ok(())
            }
            Storage::Postgres(db) => {
                let out = tokio::process::Command::new("psql")
                    .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "--dbname"])
                    .arg(db.url()?)
                    .arg("--file")
                    .arg(file)
                    .output()
                    .await
                    .context("running psql")?;
                if !out.status.success() {
                    bail!("psql: {}", String::from_utf8_lossy(&out.stderr));
                }
                Ok(())
            }
        }
    }

    async fn sqlite_connection(&self) -> Result<sqlx::SqliteConnection> {
        let Storage::Sqlite(path) = self else {
            bail!("not a SQLite database");
        };
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(path)
            .busy_timeout(Duration::from_secs(10));
        Ok(sqlx::SqliteConnection::connect_with(&options).await?)
    }

    /// Every row an upgrade must keep.
    pub async fn snapshot(&self) -> Result<Snapshot> {
        match self {
            Storage::Sqlite(_) => {
                let mut conn = self.sqlite_connection().await?;
                let snapshot = Snapshot::read(&mut conn).await;
                conn.close().await?;
                snapshot
            }
            Storage::Postgres(db) => {
                let mut conn = db.connect().await?;
                let snapshot = Snapshot::read(&mut conn).await;
                conn.close().await?;
                snapshot
            }
        }
    }

    /// `(migrated_by, oldest_release)` of the schema's compatibility record, if it has one.
    pub async fn compatibility(&self) -> Result<Option<(String, String)>> {
        let query = "SELECT migrated_by, oldest_release FROM schema_compatibility";
        let row = match self {
            Storage::Sqlite(_) => {
                let mut conn = self.sqlite_connection().await?;
                let row: Result<Option<(String, String)>, _> =
                    sqlx::query_as(query).fetch_optional(&mut conn).await;
                conn.close().await?;
                row
            }
            Storage::Postgres(db) => {
                let mut conn = db.connect().await?;
                let row = sqlx::query_as(query).fetch_optional(&mut conn).await;
                conn.close().await?;
                row
            }
        };
        match row {
            Ok(row) => Ok(row),
            // The table is made by releases that know the record (0.2.0 on).
            Err(sqlx::Error::Database(e)) if e.message().contains("schema_compatibility") => {
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Run `sql` (statements, no results) on the database.
    pub async fn execute(&self, sql: &str) -> Result<()> {
        match self {
            Storage::Sqlite(_) => {
                let mut conn = self.sqlite_connection().await?;
                sqlx::raw_sql(sql).execute(&mut conn).await?;
                conn.close().await?;
            }
            Storage::Postgres(db) => {
                let mut conn = db.connect().await?;
                sqlx::raw_sql(sql).execute(&mut conn).await?;
                conn.close().await?;
            }
        }
        Ok(())
    }
}

/// An ACME account row; the credentials (the account key) as a digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRow {
    pub directory_url: String,
    pub account_url: String,
    pub credentials_sha256: String,
}

/// A domain row; the chain and the key as digests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainRow {
    pub state: String,
    pub key_type: String,
    pub cert_version: Option<String>,
    pub chain_sha256: Option<String>,
    pub key_sha256: Option<String>,
    pub last_error_reason: Option<String>,
}

/// An order of the order log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRow {
    pub name: String,
    pub kind: Option<String>,
    pub outcome: Option<String>,
    pub resumed: bool,
    pub key_made: bool,
}

/// Every row an upgrade must keep, by key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub accounts: Vec<AccountRow>,
    pub domains: BTreeMap<String, DomainRow>,
    pub orders: BTreeMap<String, OrderRow>,
    /// Published challenges: `host token` -> digest of the key authorization.
    pub challenges: BTreeMap<String, String>,
}

fn digest(text: &str) -> String {
    let hash = Sha256::digest(text.as_bytes());
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

impl Snapshot {
    /// Read every table (the same SQL on both engines).
    async fn read<C>(conn: &mut C) -> Result<Snapshot>
    where
        C: Connection,
        for<'c> &'c mut C: sqlx::Executor<'c, Database = C::Database>,
        for<'q> <C::Database as sqlx::Database>::Arguments<'q>:
            sqlx::IntoArguments<'q, C::Database>,
        for<'r> String: sqlx::Decode<'r, C::Database> + sqlx::Type<C::Database>,
        for<'r> Option<String>: sqlx::Decode<'r, C::Database> + sqlx::Type<C::Database>,
        for<'r> bool: sqlx::Decode<'r, C::Database> + sqlx::Type<C::Database>,
        for<'c> &'c str: sqlx::ColumnIndex<<C::Database as sqlx::Database>::Row>,
    {
        let accounts = sqlx::query(
            "SELECT directory_url, account_url, credentials FROM accounts ORDER BY directory_url",
        )
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| {
            Ok(AccountRow {
                directory_url: r.try_get("directory_url")?,
                account_url: r.try_get("account_url")?,
                credentials_sha256: digest(&r.try_get::<String, _>("credentials")?),
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
        let mut domains = BTreeMap::new();
        let rows = sqlx::query(
            "SELECT name, state, key_type, cert_version, chain_pem, key_pem, last_error \
             FROM domains",
        )
        .fetch_all(&mut *conn)
        .await?;
        for r in &rows {
            let last_error: Option<String> = r.try_get("last_error")?;
            let reason = last_error
                .and_then(|e| serde_json::from_str::<serde_json::Value>(&e).ok())
                .and_then(|e| e["reason"].as_str().map(str::to_owned));
            domains.insert(
                r.try_get("name")?,
                DomainRow {
                    state: r.try_get("state")?,
                    key_type: r.try_get("key_type")?,
                    cert_version: r.try_get("cert_version")?,
                    chain_sha256: r
                        .try_get::<Option<String>, _>("chain_pem")?
                        .as_deref()
                        .map(digest),
                    key_sha256: r
                        .try_get::<Option<String>, _>("key_pem")?
                        .as_deref()
                        .map(digest),
                    last_error_reason: reason,
                },
            );
        }
        let mut orders = BTreeMap::new();
        let rows =
            sqlx::query("SELECT order_url, name, kind, outcome, resumed, key_made FROM orders")
                .fetch_all(&mut *conn)
                .await?;
        for r in &rows {
            orders.insert(
                r.try_get("order_url")?,
                OrderRow {
                    name: r.try_get("name")?,
                    kind: r.try_get("kind")?,
                    outcome: r.try_get("outcome")?,
                    resumed: r.try_get("resumed")?,
                    key_made: r.try_get("key_made")?,
                },
            );
        }
        let mut challenges = BTreeMap::new();
        let rows = sqlx::query("SELECT host, token, key_authorization FROM challenges")
            .fetch_all(&mut *conn)
            .await?;
        for r in &rows {
            let host: String = r.try_get("host")?;
            let token: String = r.try_get("token")?;
            let authorization: String = r.try_get("key_authorization")?;
            challenges.insert(format!("{host} {token}"), digest(&authorization));
        }
        Ok(Snapshot {
            accounts,
            domains,
            orders,
            challenges,
        })
    }

    /// The open order of `name`: its URL.
    pub fn open_order(&self, name: &str) -> Option<&str> {
        self.orders
            .iter()
            .find(|(_, o)| o.name == name && o.outcome.is_none())
            .map(|(url, _)| url.as_str())
    }

    /// Orders of `name`.
    pub fn orders_of(&self, name: &str) -> usize {
        self.orders.values().filter(|o| o.name == name).count()
    }
}
