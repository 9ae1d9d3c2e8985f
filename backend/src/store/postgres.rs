//! The PostgreSQL [`Store`], for a fleet: several backend replicas share one database, so any
//! replica answers any challenge lookup and serves any certificate, whichever ran the order.
//!
//! The schema is SQLite's (Unix-second timestamps) plus a trigger that announces every
//! change to what is served on channel [`CHANNEL`] (`LISTEN`/`NOTIFY`, delivered on commit).
//! [`Store::follow_changes`] listens on it and feeds this replica's SDS announcements, so a
//! certificate issued by one replica reaches the Envoys of all the others at once, without
//! polling the table. When the listening connection is lost (database restart, network), the
//! notifications sent meanwhile are gone: after reconnecting, every name whose row changed
//! since shortly before the loss is announced again.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgListener, PgNotification, PgPool, PgPoolOptions};
use sqlx::{Postgres, Row, Transaction};
use time::OffsetDateTime;
use tokio::sync::watch;

use super::rows::{claim_from_row, domain_from_row, from_ts, opt_ts, ts};
use super::source::StoreSource;
use super::{
    Claim, Enabled, IssuedCertificate, Store, StoreError, StoredAccount, StoredCertificate,
};
use crate::certs::CertEvent;
use crate::model::{Domain, DomainState, KeyType, LastError};

/// The notification channel the schema's trigger sends on; payload `<kind> <name>`.
pub const CHANNEL: &str = "acme_edge_certs";
/// Connections per replica: the worker's claims and results, challenge lookups and SDS reads
/// are short queries; ten keep a burst of 50 orders from queueing behind each other without
/// exhausting the server's `max_connections` (100 by default) across a handful of replicas.
const MAX_CONNECTIONS: u32 = 10;
/// How long to wait for a connection before failing the query: a database that is down
/// surfaces as an error (retried by the caller) rather than a hang.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);
/// After the change listener loses its connection, rows changed since this long before the
/// loss are announced again. Covers the time it takes to notice a dead connection and the
/// clock difference between replicas (`updated_at` is written with the writer's clock).
const CATCH_UP_MARGIN: time::Duration = time::Duration::seconds(60);
/// Pause between attempts to re-establish the change listener, doubling up to the maximum.
const LISTEN_RETRY_MIN: Duration = Duration::from_millis(250);
const LISTEN_RETRY_MAX: Duration = Duration::from_secs(5);

const DOMAIN_COLUMNS: &str = "name, state, key_type, attempts, retry_at, renew_at, not_before, \
     not_after, last_error, created_at, updated_at";

/// States in which a domain may be picked up when due.
const CLAIMABLE: &str = "('pending', 'failed', 'issued')";

/// The PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// For the change listener, which holds a connection of its own outside the pool.
    url: String,
}

impl PgStore {
    /// For the order log ([`super::orders`]), which keeps its SQL for both stores together.
    pub(super) fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Connect to `url` (`postgres://user@host:port/database`) and migrate the database.
    /// Replicas starting together are safe: migrations take a database-wide advisory lock.
    pub async fn connect(url: &str) -> Result<PgStore, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect(url)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(PgStore {
            pool,
            url: url.to_owned(),
        })
    }

    async fn domain_in(
        tx: &mut Transaction<'_, Postgres>,
        name: &str,
    ) -> Result<Option<Domain>, StoreError> {
        let sql = format!("SELECT {DOMAIN_COLUMNS} FROM domains WHERE name = $1");
        let row = sqlx::query(&sql)
            .bind(name)
            .fetch_optional(&mut **tx)
            .await?;
        row.as_ref().map(domain_from_row).transpose()
    }

    /// A listener on [`CHANNEL`], on its own connection.
    async fn listener(&self) -> Result<PgListener, StoreError> {
        // Not from the pool: a connection the server drops must not come back to the pool's
        // other users, and a pool at its limit must not starve the listener.
        let mut listener = PgListener::connect(&self.url).await?;
        // A lost connection is replaced by a new listener (then caught up), not patched.
        listener.eager_reconnect(false);
        listener.listen(CHANNEL).await?;
        Ok(listener)
    }

    /// Announce every name whose row changed at or after `since`: what is served now, or
    /// its removal.
    async fn catch_up(
        &self,
        source: &StoreSource,
        since: OffsetDateTime,
    ) -> Result<usize, StoreError> {
        let rows = sqlx::query(
            "SELECT name, (state <> 'disabled' AND cert_version IS NOT NULL) AS served \
             FROM domains WHERE updated_at >= $1",
        )
        .bind(ts(since))
        .fetch_all(&self.pool)
        .await?;
        for row in &rows {
            let name: String = row.try_get("name")?;
            source.announce(if row.try_get::<bool, _>("served")? {
                CertEvent::Updated(name)
            } else {
                CertEvent::Removed(name)
            });
        }
        Ok(rows.len())
    }

    /// Listen on a connection of its own; retried until it works or `stop`.
    async fn listen_until_connected(&self, stop: &mut watch::Receiver<bool>) -> Option<PgListener> {
        let mut retry = LISTEN_RETRY_MIN;
        loop {
            match self.listener().await {
                Ok(listener) => return Some(listener),
                Err(e) => {
                    tracing::warn!(error = %e, retry = ?retry, "change listener cannot connect")
                }
            }
            tokio::select! {
                () = stopped(stop) => return None,
                () = tokio::time::sleep(retry) => {}
            }
            retry = (retry * 2).min(LISTEN_RETRY_MAX);
        }
    }

    async fn catch_up_logged(&self, source: &StoreSource, since: OffsetDateTime) {
        match self.catch_up(source, since).await {
            Ok(n) => tracing::debug!(announced = n, "change listener caught up"),
            Err(e) => tracing::warn!(error = %e, "catching up on changes"),
        }
    }
}

/// Completes once `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// `updated <name>` / `removed <name>`, as the schema's trigger sends them.
fn parse_notification(notification: &PgNotification) -> Option<CertEvent> {
    parse_payload(notification.payload())
}

fn parse_payload(payload: &str) -> Option<CertEvent> {
    match payload.split_once(' ')? {
        ("updated", name) if !name.is_empty() => Some(CertEvent::Updated(name.to_owned())),
        ("removed", name) if !name.is_empty() => Some(CertEvent::Removed(name.to_owned())),
        _ => None,
    }
}

fn limit_param(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

#[async_trait]
impl Store for PgStore {
    async fn account(&self, directory_url: &str) -> Result<Option<StoredAccount>, StoreError> {
        let row = sqlx::query(
            "SELECT directory_url, account_url, credentials, created_at \
             FROM accounts WHERE directory_url = $1",
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
        sqlx::query("DELETE FROM accounts WHERE directory_url = $1 AND account_url = $2")
            .bind(directory_url)
            .bind(account_url)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn save_account(&self, account: &StoredAccount) -> Result<StoredAccount, StoreError> {
        // Replicas starting together may each register: the first stored account wins and
        // all use it.
        sqlx::query(
            "INSERT INTO accounts (directory_url, account_url, credentials, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (directory_url) DO NOTHING",
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
        let inserted = sqlx::query(
            "INSERT INTO domains (name, state, key_type, due_at, attempts, created_at, updated_at) \
             VALUES ($1, 'pending', $2, $3, 0, $3, $3) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(key_type.as_str())
        .bind(ts(now))
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        let reenabled = !inserted
            && sqlx::query(
                "UPDATE domains SET state = 'pending', key_type = $1, due_at = $2, attempts = 0, \
                 retry_at = NULL, last_error = NULL, lease = NULL, lease_expires_at = NULL, \
                 updated_at = $2 WHERE name = $3 AND state = 'disabled'",
            )
            .bind(key_type.as_str())
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
            "UPDATE domains SET state = 'disabled', due_at = NULL, lease = NULL, \
             lease_expires_at = NULL, updated_at = $1 WHERE name = $2 AND state <> 'disabled'",
        )
        .bind(ts(now))
        .bind(name)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM challenges WHERE host = $1")
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
            "UPDATE domains SET state = 'pending', due_at = $1, attempts = 0, retry_at = NULL, \
             updated_at = $1 WHERE name = $2 AND state IN {CLAIMABLE}"
        ))
        .bind(ts(now))
        .bind(name)
        .execute(&mut *tx)
        .await?;
        let domain = Self::domain_in(&mut tx, name).await?;
        tx.commit().await?;
        Ok(domain)
    }

    async fn domain(&self, name: &str) -> Result<Option<Domain>, StoreError> {
        let sql = format!("SELECT {DOMAIN_COLUMNS} FROM domains WHERE name = $1");
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
                    format!("SELECT {DOMAIN_COLUMNS} FROM domains WHERE state = $1 ORDER BY name");
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
        // Replicas claim at the same time without waiting for each other: rows another
        // replica is claiming are skipped, not waited for. A row changed by another replica
        // after this statement's snapshot is re-checked against the WHERE clause when locked
        // (READ COMMITTED), so a domain issued meanwhile is no longer due and not claimed.
        let sql = format!(
            "WITH picked AS ( \
               SELECT name, (state = 'validating') AS resumed FROM domains \
               WHERE (due_at <= $1 AND state IN {CLAIMABLE}) \
                  OR (state = 'validating' AND COALESCE(lease_expires_at, 0) <= $1) \
               ORDER BY {order} LIMIT $2 \
               FOR UPDATE SKIP LOCKED) \
             UPDATE domains d SET state = 'validating', due_at = NULL, lease = $3, \
               lease_expires_at = $4, updated_at = $1 \
             FROM picked WHERE d.name = picked.name \
             RETURNING d.name, d.key_type, d.attempts, (d.chain_pem IS NOT NULL) AS renewal, \
               picked.resumed",
            order = super::due::claim_order("$1"),
        );
        let rows = sqlx::query(&sql)
            .bind(ts(now))
            .bind(limit_param(limit))
            .bind(lease)
            .bind(ts(lease_until))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|row| claim_from_row(row, lease)).collect()
    }

    async fn renew_lease(&self, claim: &Claim, until: OffsetDateTime) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE domains SET lease_expires_at = $1 \
             WHERE name = $2 AND lease = $3 AND state = 'validating'",
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
            "SELECT LEAST( \
               (SELECT MIN(due_at) FROM domains WHERE due_at IS NOT NULL AND state IN {CLAIMABLE}), \
               (SELECT MIN(COALESCE(lease_expires_at, 0)) FROM domains WHERE state = 'validating') \
             ) AS due"
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
            "UPDATE domains SET state = 'issued', chain_pem = $1, key_pem = $2, \
             cert_version = $3, not_before = $4, not_after = $5, renew_at = $6, due_at = $6, \
             retry_at = NULL, attempts = 0, last_error = NULL, lease = NULL, \
             lease_expires_at = NULL, updated_at = $7 \
             WHERE name = $8 AND lease = $9 AND state = 'validating'",
        )
        .bind(&cert.chain_pem)
        .bind(&cert.key_pem)
        .bind(&cert.version)
        .bind(ts(cert.not_before))
        .bind(ts(cert.not_after))
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
            "UPDATE domains SET state = 'failed', attempts = attempts + 1, last_error = $1, \
             retry_at = $2, due_at = $2, lease = NULL, lease_expires_at = NULL, \
             updated_at = $3 WHERE name = $4 AND lease = $5 AND state = 'validating'",
        )
        .bind(json)
        .bind(ts(retry_at))
        .bind(ts(now))
        .bind(&claim.name)
        .bind(&claim.lease)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(done == 1)
    }

    async fn release_in_flight(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Lock the expired rows first (skipping any another replica is taking over right
        // now), then drop their challenges and release them.
        let released: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM domains \
             WHERE state = 'validating' AND COALESCE(lease_expires_at, 0) <= $1 \
             FOR UPDATE SKIP LOCKED",
        )
        .bind(ts(now))
        .fetch_all(&mut *tx)
        .await?;
        if released.is_empty() {
            return Ok(0);
        }
        sqlx::query("DELETE FROM challenges WHERE host = ANY($1)")
            .bind(&released)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query(
            "UPDATE domains SET state = 'pending', due_at = $1, lease = NULL, \
             lease_expires_at = NULL, updated_at = $1 WHERE name = ANY($2)",
        )
        .bind(ts(now))
        .bind(&released)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(done)
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
             AND cert_version IS NOT NULL AND name > $1 ORDER BY name LIMIT $2",
                )
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(
                    "SELECT name, cert_version FROM domains WHERE state = 'issued' \
             AND cert_version IS NOT NULL ORDER BY name LIMIT $1",
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
            "UPDATE domains SET renew_at = $1, due_at = $1, updated_at = $2 \
             WHERE name = $3 AND cert_version = $4 AND state = 'issued' \
             AND (renew_at IS NULL OR renew_at > $1)",
        )
        .bind(ts(renew_at))
        .bind(ts(now))
        .bind(name)
        .bind(version)
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
             VALUES ($1, $2, $3, $4) ON CONFLICT (host, token) \
             DO UPDATE SET key_authorization = EXCLUDED.key_authorization",
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
        Ok(sqlx::query_scalar(
            "SELECT key_authorization FROM challenges WHERE host = $1 AND token = $2",
        )
        .bind(host)
        .bind(token)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn remove_challenges(&self, host: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM challenges WHERE host = $1")
            .bind(host)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn certificate(&self, name: &str) -> Result<Option<StoredCertificate>, StoreError> {
        let row = sqlx::query(
            "SELECT chain_pem, key_pem, cert_version FROM domains \
             WHERE name = $1 AND state <> 'disabled' AND chain_pem IS NOT NULL \
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
             WHERE state <> 'disabled' AND chain_pem IS NOT NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        opt_ts(&row, "t")
    }

    async fn follow_changes(
        &self,
        source: StoreSource,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), StoreError> {
        // Also caught up on start: changes between opening the store and listening.
        let mut since = OffsetDateTime::now_utc() - CATCH_UP_MARGIN;
        loop {
            let Some(mut listener) = self.listen_until_connected(&mut stop).await else {
                return Ok(());
            };
            // Listening before catching up: every change is either caught up or heard.
            self.catch_up_logged(&source, since).await;
            loop {
                tokio::select! {
                    () = stopped(&mut stop) => return Ok(()),
                    received = listener.try_recv() => match received {
                        Ok(Some(notification)) => match parse_notification(&notification) {
                            Some(event) => source.announce(event),
                            None => tracing::warn!(payload = notification.payload(), "unexpected change notification"),
                        },
                        Ok(None) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, "change listener failed");
                            break;
                        }
                    },
                }
            }
            tracing::warn!("change listener lost its database connection; reconnecting");
            since = OffsetDateTime::now_utc() - CATCH_UP_MARGIN;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_parse_to_events() {
        assert_eq!(
            parse_payload("updated a.example"),
            Some(CertEvent::Updated("a.example".into()))
        );
        assert_eq!(
            parse_payload("removed a.example"),
            Some(CertEvent::Removed("a.example".into()))
        );
        for bad in ["", "updated", "updated ", "renamed a.example", "a.example"] {
            assert_eq!(parse_payload(bad), None, "{bad:?}");
        }
    }
}
