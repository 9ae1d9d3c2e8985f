//! The SQLite [`Store`]: one file, WAL journal (readers never wait for the writer),
//! `synchronous = FULL` (a committed transaction survives a power cut), and a busy timeout
//! so that concurrent writers queue instead of failing.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};
use time::OffsetDateTime;

use super::rows::{claim_from_row, domain_from_row, from_ts, opt_ts, ts};
use super::{
    Claim, Enabled, IssuedCertificate, Store, StoreError, StoredAccount, StoredCertificate,
};
use crate::model::{Domain, DomainState, KeyType, LastError};

/// How long a writer waits for the database lock before giving up: long enough to ride out a
/// burst of 50 concurrent job updates, short enough to surface a stuck database.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections: SQLite has one writer at a time; a few readers serve the API and the
/// challenge lookups alongside.
const MAX_CONNECTIONS: u32 = 8;

const DOMAIN_COLUMNS: &str = "name, state, key_type, attempts, retry_at, renew_at, not_before, \
     not_after, last_error, created_at, updated_at";

/// States in which a domain may be picked up when due. Queries write `+state IN ...`: the
/// unary plus keeps SQLite from searching `domains_state` (every issued domain) instead of
/// the due-time index (`store::due` proves the plan).
const CLAIMABLE: &str = "('pending', 'failed', 'issued')";

/// The SQLite store. It holds an exclusive lock on `<database>.lock` for as long as it is
/// open (the operating system drops it when the process dies), so that two backends can never
/// share one database file, and leases found at start-up are known to be stale.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    _lock: Arc<std::fs::File>,
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

impl SqliteStore {
    /// For the order log ([`super::orders`]), which keeps its SQL for both stores together.
    pub(super) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Open (creating it and its directory if needed) the database file at `path` and
    /// migrate it.
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| StoreError::Io(format!("creating {}: {e}", dir.display())))?;
        }
        let lock = lock_database(path)?;
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(SqliteStore {
            pool,
            _lock: Arc::new(lock),
        })
    }

    async fn domain_in(
        tx: &mut Transaction<'_, Sqlite>,
        name: &str,
    ) -> Result<Option<Domain>, StoreError> {
        let sql = format!("SELECT {DOMAIN_COLUMNS} FROM domains WHERE name = ?");
        let row = sqlx::query(&sql)
            .bind(name)
            .fetch_optional(&mut **tx)
            .await?;
        row.as_ref().map(domain_from_row).transpose()
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn account(&self, directory_url: &str) -> Result<Option<StoredAccount>, StoreError> {
        let row = sqlx::query(
            "SELECT directory_url, account_url, credentials, created_at \
             FROM accounts WHERE directory_url = ?",
        )
        .bind(directory_url)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(StoredAccount {
                directory_url: row.try_get("directory_url")?,
                account_url: row.try_get("account_url")?,
                credentials_json: row.try_get("credentials")?,
                created_at: from_ts(row.try_get("created_at")?)?,
            })
        })
        .transpose()
    }

    async fn forget_account(
        &self,
        directory_url: &str,
        account_url: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM accounts WHERE directory_url = ? AND account_url = ?")
            .bind(directory_url)
            .bind(account_url)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn save_account(&self, account: &StoredAccount) -> Result<StoredAccount, StoreError> {
        sqlx::query(
            "INSERT INTO accounts (directory_url, account_url, credentials, created_at) \
             VALUES (?, ?, ?, ?) ON CONFLICT (directory_url) DO NOTHING",
        )
        .bind(&account.directory_url)
        .bind(&account.account_url)
        .bind(&account.credentials_json)
        .bind(ts(account.created_at))
        .execute(&self.pool)
        .await?;
        self.account(&account.directory_url)
            .await?
            .ok_or_else(|| StoreError::Corrupt("account vanished after insert".into()))
    }

    async fn enable_domain(
        &self,
        name: &str,
        key_type: KeyType,
        now: OffsetDateTime,
    ) -> Result<Enabled, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Write first, so the transaction holds the write lock from its first statement.
        let inserted = sqlx::query(
            "INSERT INTO domains (name, state, key_type, due_at, attempts, created_at, updated_at) \
             VALUES (?, 'pending', ?, ?, 0, ?, ?) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(key_type.as_str())
        .bind(ts(now))
        .bind(ts(now))
        .bind(ts(now))
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        let reenabled = !inserted
            && sqlx::query(
                "UPDATE domains SET state = 'pending', key_type = ?, due_at = ?, attempts = 0, \
                 retry_at = NULL, last_error = NULL, lease = NULL, lease_expires_at = NULL, updated_at = ? \
                 WHERE name = ? AND state = 'disabled'",
            )
            .bind(key_type.as_str())
            .bind(ts(now))
            .bind(ts(now))
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
        let domain = Self::domain_in(&mut tx, name)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("domain {name} vanished")))?;
        tx.commit().await?;
        Ok(if inserted || reenabled {
            Enabled::Created(domain)
        } else {
            Enabled::Existing(domain)
        })
    }

    async fn disable_domain(
        &self,
        name: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Domain>, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE domains SET state = 'disabled', due_at = NULL, lease = NULL, lease_expires_at = NULL, \
             updated_at = ? WHERE name = ? AND state != 'disabled'",
        )
        .bind(ts(now))
        .bind(name)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM challenges WHERE host = ?")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let domain = Self::domain_in(&mut tx, name).await?;
        tx.commit().await?;
        Ok(domain)
    }

    async fn request_renewal(
        &self,
        name: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Domain>, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(&format!(
            "UPDATE domains SET state = 'pending', due_at = ?, attempts = 0, retry_at = NULL, \
             updated_at = ? WHERE name = ? AND state IN {CLAIMABLE}"
        ))
        .bind(ts(now))
        .bind(ts(now))
        .bind(name)
        .execute(&mut *tx)
        .await?;
        let domain = Self::domain_in(&mut tx, name).await?;
        tx.commit().await?;
        Ok(domain)
    }

    async fn domain(&self, name: &str) -> Result<Option<Domain>, StoreError> {
        let sql = format!("SELECT {DOMAIN_COLUMNS} FROM domains WHERE name = ?");
        let row = sqlx::query(&sql)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(domain_from_row).transpose()
    }

    async fn domains(&self, state: Option<DomainState>) -> Result<Vec<Domain>, StoreError> {
        let rows = match state {
            Some(state) => {
                let sql =
                    format!("SELECT {DOMAIN_COLUMNS} FROM domains WHERE state = ? ORDER BY name");
                sqlx::query(&sql)
                    .bind(state.as_str())
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                let sql = format!("SELECT {DOMAIN_COLUMNS} FROM domains ORDER BY name");
                sqlx::query(&sql).fetch_all(&self.pool).await?
            }
        };
        rows.iter().map(domain_from_row).collect()
    }

    async fn claim_due(
        &self,
        now: OffsetDateTime,
        limit: usize,
        lease: &str,
        lease_until: OffsetDateTime,
    ) -> Result<Vec<Claim>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // IMMEDIATE: the write lock is held from the first read, so the candidates cannot
        // change (another process sharing the file) between choosing and claiming them.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let sql = format!(
            "SELECT name, key_type, attempts, (chain_pem IS NOT NULL) AS renewal, \
             (state = 'validating') AS resumed FROM domains \
             WHERE (due_at IS NOT NULL AND due_at <= ? AND +state IN {CLAIMABLE}) \
                OR (state = 'validating' AND COALESCE(lease_expires_at, 0) <= ?) \
             ORDER BY {order} LIMIT ?",
            order = super::due::claim_order("?"),
        );
        let rows = sqlx::query(&sql)
            .bind(ts(now))
            .bind(ts(now))
            .bind(ts(now))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&mut *tx)
            .await?;
        let claims = rows
            .iter()
            .map(|row| claim_from_row(row, lease))
            .collect::<Result<Vec<_>, _>>()?;
        for claim in &claims {
            sqlx::query(
                "UPDATE domains SET state = 'validating', due_at = NULL, lease = ?, \
                 lease_expires_at = ?, updated_at = ? WHERE name = ?",
            )
            .bind(lease)
            .bind(ts(lease_until))
            .bind(ts(now))
            .bind(&claim.name)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(claims)
    }

    async fn renew_lease(&self, claim: &Claim, until: OffsetDateTime) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE domains SET lease_expires_at = ? \
             WHERE name = ? AND lease = ? AND state = 'validating'",
        )
        .bind(ts(until))
        .bind(&claim.name)
        .bind(&claim.lease)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(done == 1)
    }

    async fn next_due(&self) -> Result<Option<OffsetDateTime>, StoreError> {
        let sql = format!(
            "SELECT MIN(t) AS due FROM ( \
               SELECT MIN(due_at) AS t FROM domains \
                 WHERE due_at IS NOT NULL AND +state IN {CLAIMABLE} \
               UNION ALL \
               SELECT MIN(COALESCE(lease_expires_at, 0)) AS t FROM domains \
                 WHERE state = 'validating')"
        );
        let row = sqlx::query(&sql).fetch_one(&self.pool).await?;
        opt_ts(&row, "due")
    }

    async fn record_issued(
        &self,
        claim: &Claim,
        cert: &IssuedCertificate,
        renew_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE domains SET state = 'issued', chain_pem = ?, key_pem = ?, cert_version = ?, \
             not_before = ?, not_after = ?, renew_at = ?, due_at = ?, retry_at = NULL, \
             attempts = 0, last_error = NULL, lease = NULL, lease_expires_at = NULL, updated_at = ? \
             WHERE name = ? AND lease = ? AND state = 'validating'",
        )
        .bind(&cert.chain_pem)
        .bind(&cert.key_pem)
        .bind(&cert.version)
        .bind(ts(cert.not_before))
        .bind(ts(cert.not_after))
        .bind(ts(renew_at))
        .bind(ts(renew_at))
        .bind(ts(now))
        .bind(&claim.name)
        .bind(&claim.lease)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(done == 1)
    }

    async fn record_failed(
        &self,
        claim: &Claim,
        error: &LastError,
        retry_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let json = serde_json::to_string(error)
            .map_err(|e| StoreError::Corrupt(format!("last_error: {e}")))?;
        let done = sqlx::query(
            "UPDATE domains SET state = 'failed', attempts = attempts + 1, last_error = ?, \
             retry_at = ?, due_at = ?, lease = NULL, lease_expires_at = NULL, updated_at = ? \
             WHERE name = ? AND lease = ? AND state = 'validating'",
        )
        .bind(json)
        .bind(ts(retry_at))
        .bind(ts(retry_at))
        .bind(ts(now))
        .bind(&claim.name)
        .bind(&claim.lease)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(done == 1)
    }

    fn exclusive(&self) -> bool {
        true
    }

    async fn release_in_flight(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        // This process holds the database alone (the file lock): every lease in it was left
        // by a stop or a crash of this backend, whatever its expiry says.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        // Challenges first, while the interrupted domains are still recognisable.
        sqlx::query(
            "DELETE FROM challenges WHERE host IN (SELECT name FROM domains \
             WHERE state = 'validating')",
        )
        .execute(&mut *tx)
        .await?;
        let released = sqlx::query(
            "UPDATE domains SET state = 'pending', due_at = ?, lease = NULL, \
             lease_expires_at = NULL, updated_at = ? \
             WHERE state = 'validating'",
        )
        .bind(ts(now))
        .bind(ts(now))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(released)
    }

    async fn issued_after(
        &self,
        after_name: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = match after_name {
            Some(after) => {
                sqlx::query(
                    "SELECT name, cert_version FROM domains WHERE state = 'issued' \
             AND cert_version IS NOT NULL AND name > ? ORDER BY name LIMIT ?",
                )
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(
                    "SELECT name, cert_version FROM domains WHERE state = 'issued' \
             AND cert_version IS NOT NULL ORDER BY name LIMIT ?",
                )
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter()
            .map(|row| Ok((row.try_get("name")?, row.try_get("cert_version")?)))
            .collect()
    }

    async fn advance_renewal(
        &self,
        name: &str,
        version: &str,
        renew_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE domains SET renew_at = ?, due_at = ?, updated_at = ? \
             WHERE name = ? AND cert_version = ? AND state = 'issued' \
             AND (renew_at IS NULL OR renew_at > ?)",
        )
        .bind(ts(renew_at))
        .bind(ts(renew_at))
        .bind(ts(now))
        .bind(name)
        .bind(version)
        .bind(ts(renew_at))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(done == 1)
    }

    async fn put_challenge(
        &self,
        host: &str,
        token: &str,
        key_authorization: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO challenges (host, token, key_authorization, created_at) \
             VALUES (?, ?, ?, ?) ON CONFLICT (host, token) \
             DO UPDATE SET key_authorization = excluded.key_authorization",
        )
        .bind(host)
        .bind(token)
        .bind(key_authorization)
        .bind(ts(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn challenge(&self, host: &str, token: &str) -> Result<Option<String>, StoreError> {
        let row =
            sqlx::query("SELECT key_authorization FROM challenges WHERE host = ? AND token = ?")
                .bind(host)
                .bind(token)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|r| r.try_get("key_authorization")).transpose()?)
    }

    async fn remove_challenges(&self, host: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM challenges WHERE host = ?")
            .bind(host)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn certificate(&self, name: &str) -> Result<Option<StoredCertificate>, StoreError> {
        let row = sqlx::query(
            "SELECT chain_pem, key_pem, cert_version FROM domains \
             WHERE name = ? AND state != 'disabled' AND chain_pem IS NOT NULL \
             AND key_pem IS NOT NULL AND cert_version IS NOT NULL",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(StoredCertificate {
                chain_pem: row.try_get("chain_pem")?,
                key_pem: row.try_get("key_pem")?,
                version: row.try_get("cert_version")?,
            })
        })
        .transpose()
    }

    async fn count_by_state(&self) -> Result<Vec<(DomainState, u64)>, StoreError> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM domains GROUP BY state")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let state: String = row.try_get("state")?;
                let n: i64 = row.try_get("n")?;
                let state = DomainState::parse(&state)
                    .ok_or_else(|| StoreError::Corrupt(format!("domain state {state:?}")))?;
                Ok((state, u64::try_from(n).unwrap_or(0)))
            })
            .collect()
    }

    async fn earliest_expiry(&self) -> Result<Option<OffsetDateTime>, StoreError> {
        let row = sqlx::query(
            "SELECT MIN(not_after) AS t FROM domains \
             WHERE state != 'disabled' AND chain_pem IS NOT NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        opt_ts(&row, "t")
    }
}

#[cfg(test)]
mod tests {
    //! What only SQLite has; the behaviour every store shares is in `store::suite`.
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-03-01 12:00 UTC);

    #[tokio::test]
    async fn challenges_survive_reopen_and_the_directory_is_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("t.db");
        {
            let s = SqliteStore::open(&path).await.unwrap();
            s.put_challenge("a.example", "tok", "tok.thumb", NOW)
                .await
                .unwrap();
        }
        let s = SqliteStore::open(&path).await.unwrap();
        assert_eq!(
            s.challenge("a.example", "tok").await.unwrap().as_deref(),
            Some("tok.thumb")
        );
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
        assert!(first.exclusive());
        drop(first);
        SqliteStore::open(&path).await.unwrap();
    }
}
