//! The SQLite engine: one file, WAL journal (readers never wait for the writer),
//! `synchronous = FULL` (a committed transaction survives a power cut), and a busy timeout
//! so that concurrent writers queue instead of failing. One process holds the database, by a
//! lock on a file beside it.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions,
    SqliteQueryResult, SqliteSynchronous,
};
use sqlx::{Connection, Sqlite};

use super::StoreError;
use super::engine::Engine;
use super::schema::{self, SchemaState};
use super::sql::SqlStore;

/// How long a writer waits for the database lock before giving up: long enough to ride out a
/// burst of 50 concurrent job updates, short enough to surface a stuck database.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections: SQLite has one writer at a time; a few readers serve the API and the
/// challenge lookups alongside.
const MAX_CONNECTIONS: u32 = 8;

/// The SQLite store. It holds an exclusive lock on `<database>.lock` for as long as it is
/// open (the operating system drops it when the process dies), so that two backends can never
/// share one database file, and leases found at start-up are known to be stale.
pub type SqliteStore = SqlStore<Sqlite>;

impl Engine for Sqlite {
    /// The lock on `<database>.lock`, held while the store (or a clone of it) is open.
    type Resources = Arc<std::fs::File>;

    const STATE_UNINDEXED: &'static str = "+state";
    const BEGIN_TAKE: &'static str = "BEGIN IMMEDIATE";
    const LOCK_TAKEN: &'static str = "";
    const EXCLUSIVE: bool = true;
    const TABLE_EXISTS: &'static str =
        "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = $1";

    fn rows_affected(result: &SqliteQueryResult) -> u64 {
        result.rows_affected()
    }
}

/// Take the exclusive lock on `<path>.lock`, or say who cannot.
fn lock_database(path: &Path) -> Result<std::fs::File, StoreError> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = std::path::PathBuf::from(lock_path);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| StoreError::Io(format!("{}: {e}", lock_path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(StoreError::InUse(path.display().to_string()))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(StoreError::Io(format!(
            "locking {}: {e}",
            lock_path.display()
        ))),
    }
}

/// The database's directory, created readable by the service's user only. An existing
/// directory is left as it is (it may be shared, such as a working directory).
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// The database, its WAL and shared-memory files and its lock file hold every private key:
/// any that others can read is reported, and made private when this process owns it (a
/// database created before the service set its umask, or copied with a default mode).
fn keep_files_private(path: &Path) {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let user = nix::unistd::geteuid().as_raw();
    for suffix in ["", "-wal", "-shm", ".lock"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let file = Path::new(&name);
        let Ok(meta) = std::fs::metadata(file) else {
            continue;
        };
        let mode = meta.mode() & 0o777;
        if mode & 0o077 == 0 {
            continue;
        }
        let fixed = meta.uid() == user
            && std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)).is_ok();
        if fixed {
            tracing::warn!(file = %file.display(), mode = format!("{mode:03o}"), "database file was readable by others; made it 0600");
        } else {
            tracing::error!(file = %file.display(), mode = format!("{mode:03o}"), "database file is readable by others and not ours to fix; chmod 600 it");
        }
    }
}

impl SqliteStore {
    /// What this release finds in the database file at `path`, opened read-only (a running
    /// backend may hold it), or [`SchemaState::New`] when there is no file yet.
    pub async fn inspect(path: &Path) -> Result<SchemaState, StoreError> {
        if !path.exists() {
            return Ok(SchemaState::New);
        }
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .read_only(true)
            .busy_timeout(BUSY_TIMEOUT);
        let mut conn = SqliteConnection::connect_with(&options).await?;
        let state =
            schema::inspect::<Sqlite>(&mut conn, &sqlx::migrate!("./migrations/sqlite")).await;
        conn.close().await?;
        state
    }

    /// Open (creating it and its directory if needed) the database file at `path` and
    /// migrate it.
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir)
                .map_err(|e| StoreError::Io(format!("creating {}: {e}", dir.display())))?;
        }
        let lock = lock_database(path)?;
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            // Deleted keys are overwritten, not left in free pages of the file.
            .pragma("secure_delete", "ON");
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await?;
        let state = schema::migrate::<Sqlite>(
            &mut *pool.acquire().await?,
            sqlx::migrate!("./migrations/sqlite"),
        )
        .await?;
        schema::log_state(&state);
        keep_files_private(path);
        Ok(SqlStore {
            pool,
            resources: Arc::new(lock),
        })
    }
}

#[cfg(test)]
mod tests {
    //! What only SQLite has; the behaviour every store shares is in `store::suite`.
    use time::OffsetDateTime;
    use time::macros::datetime;

    use super::*;
    use crate::model::KeyType;
    use crate::store::{Published, Store};

    const NOW: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);

    #[tokio::test]
    async fn challenges_survive_reopen_and_the_directory_is_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("t.db");
        {
            let s = SqliteStore::open(&path).await.unwrap();
            s.enable_domain("a.example", KeyType::EcdsaP256, NOW)
                .await
                .unwrap();
            let claims = s
                .claim_due(NOW, 1, "L", NOW + time::Duration::seconds(30))
                .await
                .unwrap();
            assert_eq!(claims.len(), 1);
            assert_ne!(
                s.put_challenge("a.example", "L", "tok", "tok.thumb", NOW)
                    .await
                    .unwrap(),
                Published::LeaseLost
            );
        }
        let s = SqliteStore::open(&path).await.unwrap();
        assert_eq!(
            s.challenge("a.example", "tok").await.unwrap().as_deref(),
            Some("tok.thumb")
        );
    }

    #[tokio::test]
    async fn a_closed_order_keeps_no_key_in_the_file() {
        use crate::store::OrderLog;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let s = SqliteStore::open(&path).await.unwrap();
        s.record_order("a.example", "https://ca/order/1", NOW)
            .await
            .unwrap();
        s.set_order_key("https://ca/order/1", "-----BEGIN PRIVATE KEY----- SECRET")
            .await
            .unwrap();
        s.close_orders("a.example", crate::store::OrderOutcome::Issued, NOW)
            .await
            .unwrap();
        let keys: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders WHERE key_pem IS NOT NULL")
            .fetch_one(&s.pool)
            .await
            .unwrap();
        assert_eq!(keys, 0);
        // That the order got as far as a key (and maybe a certificate) is kept.
        let made: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders WHERE key_made")
            .fetch_one(&s.pool)
            .await
            .unwrap();
        assert_eq!(made, 1);
    }

    #[tokio::test]
    async fn database_files_are_private_and_repaired_when_they_are_not() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let path = data.join("t.db");
        {
            let s = SqliteStore::open(&path).await.unwrap();
            s.enable_domain("a.example", KeyType::EcdsaP256, NOW)
                .await
                .unwrap();
        }
        assert_eq!(mode(&data), 0o700);
        // Created with a careless mode (say, copied from a backup by hand).
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let _s = SqliteStore::open(&path).await.unwrap();
        assert_eq!(mode(&path), 0o600);
    }

    #[tokio::test]
    async fn rows_claimed_before_lease_expiry_existed_count_as_expired() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("t.db")).await.unwrap();
        s.enable_domain("a.example", KeyType::EcdsaP256, NOW)
            .await
            .unwrap();
        sqlx::query(
            "UPDATE domains SET state = 'validating', due_at = NULL, lease = 'old', \
             lease_expires_at = NULL",
        )
        .execute(&s.pool)
        .await
        .unwrap();
        assert_eq!(s.release_in_flight(NOW).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn one_database_file_serves_one_process() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let first = SqliteStore::open(&path).await.unwrap();
        let second = SqliteStore::open(&path).await.unwrap_err();
        assert!(matches!(second, StoreError::InUse(_)), "{second}");
        assert!(second.to_string().contains("use PostgreSQL"), "{second}");
        drop(first);
        SqliteStore::open(&path).await.unwrap();
    }
}
