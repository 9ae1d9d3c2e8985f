//! The [`Store`] on a SQL database: the state machine and its SQL, written once for every
//! [`Engine`].
//!
//! Both databases share one schema (Unix-second timestamps) and almost all of their SQL, so
//! the store is generic over the `sqlx` database rather than written once per database: a
//! state-machine fix is made here, once, and the storage suite checks it on every engine.
//! The few things the databases spell or do differently are the [`Engine`]'s, each under a
//! name that says what it is for; the engine's own file keeps only how a store is opened.
//!
//! Taking rows (claiming due work, releasing left-over work at start-up) is one text for
//! both: a transaction begun as the engine says ([`Engine::BEGIN_TAKE`]) reads the rows,
//! locking them as the engine says ([`Engine::LOCK_TAKEN`]), then changes exactly the rows
//! it read. PostgreSQL could do a claim in one statement (`UPDATE ... RETURNING`); two
//! statements in one transaction take the same rows, and the claim is one query per worker
//! tick, so one text for both engines is worth the extra round trip.
//!
//! The `where` clauses of the generic impls (here and in [`super::orders`]) say what the
//! shared SQL uses of `sqlx`: running statements, binding integers and text, reading them and
//! booleans back. `sqlx` states these per database, and Rust wants them written on each impl.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Pool, Row, Type};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use super::due::claim_order;
use super::engine::Engine;
use super::rows::{claim_from_row, domain_from_row, from_ts, opt_ts, ts};
use super::source::StoreSource;
use super::{
    Claim, Enabled, IssuedCertificate, Published, Store, StoreError, StoredAccount,
    StoredCertificate,
};
use crate::model::{Domain, DomainState, KeyType, LastError};

/// A domain as [`domain_from_row`] reads it.
pub(super) const SELECT_DOMAIN: &str = "SELECT name, state, key_type, profile, attempts, retry_at, renew_at, \
     not_before, not_after, last_error, created_at, updated_at FROM domains";

/// States in which a domain may be picked up when due.
const CLAIMABLE: &str = "('pending', 'failed', 'issued')";

/// The store on database `DB` (see [`super::SqliteStore`], [`super::PgStore`]).
#[derive(Debug)]
pub struct SqlStore<DB: Engine> {
    /// Also for what only one engine does, and for tests that look at the database itself.
    pub(super) pool: Pool<DB>,
    pub(super) resources: DB::Resources,
}

impl<DB: Engine> Clone for SqlStore<DB> {
    fn clone(&self) -> Self {
        SqlStore {
            pool: self.pool.clone(),
            resources: self.resources.clone(),
        }
    }
}

fn limit_param(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// `($first, $first+1, ...)`: `n` placeholders, for the `IN` list of the rows a transaction
/// read. They are few (the claim limit, or the domains left in flight), far below either
/// engine's limit on parameters.
fn placeholders(first: usize, n: usize) -> String {
    let list: Vec<String> = (first..first + n).map(|i| format!("${i}")).collect();
    format!("({})", list.join(", "))
}

#[async_trait]
impl<DB> Store for SqlStore<DB>
where
    DB: Engine,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'r> bool: Decode<'r, DB> + Type<DB>,
    for<'c> &'c str: ColumnIndex<DB::Row>,
{
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

    async fn save_account(&self, account: &StoredAccount) -> Result<StoredAccount, StoreError> {
        // Replicas starting together may each register: the first stored account wins and
        // all use it.
        sqlx::query(
            "INSERT INTO accounts (directory_url, account_url, credentials, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (directory_url) DO NOTHING",
        )
        .bind(account.directory_url.as_str())
        .bind(account.account_url.as_str())
        .bind(account.credentials_json.as_str())
        .bind(ts(account.created_at))
        .execute(&self.pool)
        .await?;
        self.account(&account.directory_url)
            .await?
            .ok_or_else(|| StoreError::Corrupt("account vanished after insert".into()))
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

    async fn enable_domain_as(
        &self,
        name: &str,
        key_type: KeyType,
        profile: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Enabled, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Write first, so that a SQLite transaction holds the write lock from its first
        // statement.
        let inserted = sqlx::query(
            "INSERT INTO domains \
             (name, state, key_type, profile, due_at, attempts, created_at, updated_at) \
             VALUES ($1, 'pending', $2, NULLIF($4, ''), $3, 0, $3, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(key_type.as_str())
        .bind(ts(now))
        // No profile is bound as '' (a profile name is never empty): NULL.
        .bind(profile.unwrap_or_default())
        .execute(&mut *tx)
        .await?;
        let inserted = DB::rows_affected(&inserted) == 1;
        let reenabled = !inserted && {
            let updated = sqlx::query(
                "UPDATE domains SET state = 'pending', key_type = $1, profile = NULLIF($4, ''), \
                 due_at = $2, \
                 attempts = 0, retry_at = NULL, last_error = NULL, lease = NULL, \
                 lease_expires_at = NULL, updated_at = $2 WHERE name = $3 AND state = 'disabled'",
            )
            .bind(key_type.as_str())
            .bind(ts(now))
            .bind(name)
            .bind(profile.unwrap_or_default())
            .execute(&mut *tx)
            .await?;
            DB::rows_affected(&updated) == 1
        };
        if !inserted
            && !reenabled
            && let Some(profile) = profile
        {
            // An enabled domain asked for another profile: its next order asks for it.
            sqlx::query(
                "UPDATE domains SET profile = $1, updated_at = $2 \
                 WHERE name = $3 AND (profile IS NULL OR profile <> $1)",
            )
            .bind(profile)
            .bind(ts(now))
            .bind(name)
            .execute(&mut *tx)
            .await?;
        }
        let row = sqlx::query(&format!("{SELECT_DOMAIN} WHERE name = $1"))
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("domain {name} vanished")))?;
        let domain = domain_from_row(&row)?;
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
             lease_expires_at = NULL, chain_pem = NULL, key_pem = NULL, cert_version = NULL, \
             not_before = NULL, not_after = NULL, renew_at = NULL, retry_at = NULL, \
             updated_at = $1 WHERE name = $2 AND state <> 'disabled'",
        )
        .bind(ts(now))
        .bind(name)
        .execute(&mut *tx)
        .await?;
        // The key can no longer be used: nothing of it stays, not even in the order log.
        sqlx::query(
            "UPDATE orders SET key_pem = NULL, closed_at = COALESCE(closed_at, $1) \
             WHERE name = $2 AND (key_pem IS NOT NULL OR closed_at IS NULL)",
        )
        .bind(ts(now))
        .bind(name)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM challenges WHERE host = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query(&format!("{SELECT_DOMAIN} WHERE name = $1"))
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        row.as_ref().map(domain_from_row).transpose()
    }

    async fn request_renewal(
        &self,
        name: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Domain>, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(&format!(
            "UPDATE domains SET state = 'pending', due_at = $1, retry_at = NULL, \
             updated_at = $1 WHERE name = $2 AND state IN {CLAIMABLE}"
        ))
        .bind(ts(now))
        .bind(name)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(&format!("{SELECT_DOMAIN} WHERE name = $1"))
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        row.as_ref().map(domain_from_row).transpose()
    }

    async fn domain(&self, name: &str) -> Result<Option<Domain>, StoreError> {
        let row = sqlx::query(&format!("{SELECT_DOMAIN} WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(domain_from_row).transpose()
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
        let mut tx = self.pool.begin_with(DB::BEGIN_TAKE).await?;
        let claims = take_due::<DB>(&mut tx, "", now, limit, lease, lease_until).await?;
        tx.commit().await?;
        Ok(claims)
    }

    async fn claim_due_capped(
        &self,
        now: OffsetDateTime,
        limit: usize,
        new_names: usize,
        lease: &str,
        lease_until: OffsetDateTime,
    ) -> Result<Vec<Claim>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin_with(DB::BEGIN_TAKE).await?;
        let mut claims = take_due::<DB>(
            &mut tx,
            RENEWALS_AND_TAKEOVERS,
            now,
            limit,
            lease,
            lease_until,
        )
        .await?;
        let room = (limit - claims.len()).min(new_names);
        if room > 0 {
            let new = take_due::<DB>(&mut tx, NEW_NAMES, now, room, lease, lease_until).await?;
            claims.extend(new);
        }
        tx.commit().await?;
        Ok(claims)
    }

    async fn renew_lease(&self, claim: &Claim, until: OffsetDateTime) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE domains SET lease_expires_at = $1 \
             WHERE name = $2 AND lease = $3 AND state = 'validating'",
        )
        .bind(ts(until))
        .bind(claim.name.as_str())
        .bind(claim.lease.as_str())
        .execute(&self.pool)
        .await?;
        Ok(DB::rows_affected(&done) == 1)
    }

    async fn next_due(&self) -> Result<Option<OffsetDateTime>, StoreError> {
        let sql = format!(
            "SELECT MIN(t) AS due FROM ( \
               SELECT MIN(due_at) AS t FROM domains \
                 WHERE due_at IS NOT NULL AND {state} IN {CLAIMABLE} \
               UNION ALL \
               SELECT MIN(COALESCE(lease_expires_at, 0)) AS t FROM domains \
                 WHERE state = 'validating') AS due_times",
            state = DB::STATE_UNINDEXED,
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
        .bind(cert.chain_pem.as_str())
        .bind(cert.key_pem.as_str())
        .bind(cert.version.as_str())
        .bind(ts(cert.not_before))
        .bind(ts(cert.not_after))
        .bind(ts(renew_at))
        .bind(ts(now))
        .bind(claim.name.as_str())
        .bind(claim.lease.as_str())
        .execute(&self.pool)
        .await?;
        Ok(DB::rows_affected(&done) == 1)
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
        // Only the domain's own failures count as its attempts (its backoff step).
        let counted = i64::from(error.class.counts_against_domain());
        let done = sqlx::query(
            "UPDATE domains SET state = 'failed', attempts = attempts + $6, last_error = $1, \
             failure_class = $7, retry_at = $2, due_at = $2, lease = NULL, \
             lease_expires_at = NULL, updated_at = $3 \
             WHERE name = $4 AND lease = $5 AND state = 'validating'",
        )
        .bind(json.as_str())
        .bind(ts(retry_at))
        .bind(ts(now))
        .bind(claim.name.as_str())
        .bind(claim.lease.as_str())
        .bind(counted)
        .bind(error.class.as_str())
        .execute(&self.pool)
        .await?;
        let recorded = DB::rows_affected(&done) == 1;
        if recorded {
            // The order's history keeps its last failure: the open order's, or the one the
            // CA has just declared invalid.
            sqlx::query(
                "UPDATE orders SET problem = $1 WHERE name = $2 \
                 AND (closed_at IS NULL OR (outcome = 'failed' AND problem IS NULL))",
            )
            .bind(json.as_str())
            .bind(claim.name.as_str())
            .execute(&self.pool)
            .await?;
        }
        Ok(recorded)
    }

    async fn wait_turn(
        &self,
        claim: &Claim,
        reason: &LastError,
        until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let json = serde_json::to_string(reason)
            .map_err(|e| StoreError::Corrupt(format!("last_error: {e}")))?;
        let done = sqlx::query(
            "UPDATE domains SET state = 'pending', last_error = $1, retry_at = $2, \
             due_at = $2, lease = NULL, lease_expires_at = NULL, updated_at = $3 \
             WHERE name = $4 AND lease = $5 AND state = 'validating'",
        )
        .bind(json.as_str())
        .bind(ts(until))
        .bind(ts(now))
        .bind(claim.name.as_str())
        .bind(claim.lease.as_str())
        .execute(&self.pool)
        .await?;
        Ok(DB::rows_affected(&done) == 1)
    }

    async fn release_waiting_on_ca(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE domains SET retry_at = $1, due_at = $1, updated_at = $1 \
             WHERE state = 'failed' AND failure_class IN ('ca', 'ours') AND due_at > $1",
        )
        .bind(ts(now))
        .execute(&self.pool)
        .await?;
        Ok(DB::rows_affected(&done))
    }

    async fn release_in_flight(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        // A database held alone has no live leases of other processes: every lease in it was
        // left by a stop or a crash of this one, whatever its expiry says.
        let stale_at = if DB::EXCLUSIVE { i64::MAX } else { ts(now) };
        let mut tx = self.pool.begin_with(DB::BEGIN_TAKE).await?;
        let left_over = format!(
            "SELECT name FROM domains \
             WHERE state = 'validating' AND COALESCE(lease_expires_at, 0) <= $1 {lock}",
            lock = DB::LOCK_TAKEN,
        );
        let rows = sqlx::query(&left_over)
            .bind(stale_at)
            .fetch_all(&mut *tx)
            .await?;
        let names = rows
            .iter()
            .map(|row| row.try_get("name"))
            .collect::<Result<Vec<String>, _>>()?;
        if names.is_empty() {
            return Ok(0);
        }
        // Their tokens stay published: the CA may be validating one right now, and the
        // resumed order (same authorizations, same tokens) publishes them again anyway.
        let release = format!(
            "UPDATE domains SET state = 'pending', due_at = $1, lease = NULL, \
             lease_expires_at = NULL, updated_at = $1 WHERE name IN {}",
            placeholders(2, names.len())
        );
        let mut release = sqlx::query(&release).bind(ts(now));
        for name in &names {
            release = release.bind(name.as_str());
        }
        let released = release.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(DB::rows_affected(&released))
    }

    async fn issued_after(
        &self,
        after_name: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let query = match after_name {
            Some(after) => sqlx::query(
                "SELECT name, cert_version FROM domains WHERE state = 'issued' \
                 AND cert_version IS NOT NULL AND name > $1 ORDER BY name LIMIT $2",
            )
            .bind(after),
            None => sqlx::query(
                "SELECT name, cert_version FROM domains WHERE state = 'issued' \
                 AND cert_version IS NOT NULL ORDER BY name LIMIT $1",
            ),
        };
        let rows = query.bind(limit_param(limit)).fetch_all(&self.pool).await?;
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
        .await?;
        Ok(DB::rows_affected(&done) == 1)
    }

    async fn put_challenge(
        &self,
        host: &str,
        lease: &str,
        token: &str,
        key_authorization: &str,
        now: OffsetDateTime,
    ) -> Result<Published, StoreError> {
        let row = sqlx::query(
            "INSERT INTO challenges (host, token, key_authorization, created_at) \
             SELECT $1, $2, $3, $4 WHERE EXISTS \
             (SELECT 1 FROM domains WHERE name = $1 AND lease = $5) \
             ON CONFLICT (host, token) DO UPDATE SET key_authorization = excluded.key_authorization \
             RETURNING told_ready_at",
        )
        .bind(host)
        .bind(token)
        .bind(key_authorization)
        .bind(ts(now))
        .bind(lease)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            None => Published::LeaseLost,
            Some(row) => Published::Answered {
                told_ready: opt_ts(&row, "told_ready_at")?,
            },
        })
    }

    async fn mark_told_ready(
        &self,
        host: &str,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE challenges SET told_ready_at = $1 WHERE host = $2 AND token = $3")
            .bind(ts(now))
            .bind(host)
            .bind(token)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn challenge(&self, host: &str, token: &str) -> Result<Option<String>, StoreError> {
        // Only while an order can still be validated: the domain enabled and not done.
        let row = sqlx::query(
            "SELECT c.key_authorization FROM challenges c JOIN domains d ON d.name = c.host \
             WHERE c.host = $1 AND c.token = $2 AND d.state IN ('pending', 'validating')",
        )
        .bind(host)
        .bind(token)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get("key_authorization")).transpose()?)
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
        stop: CancellationToken,
    ) -> Result<(), StoreError> {
        DB::follow_changes(&self.pool, &self.resources, source, stop).await
    }
}

/// Due domains that renew a certificate or take an order over (no new order for the CA's
/// count), as a filter of the claim query.
const RENEWALS_AND_TAKEOVERS: &str = "AND (chain_pem IS NOT NULL OR state = 'validating')";
/// Due domains without a certificate, not in flight: each is a new order.
const NEW_NAMES: &str = "AND chain_pem IS NULL AND state <> 'validating'";

/// In `tx` (begun as the engine takes rows), take up to `limit` due domains matching
/// `filter` (SQL appended to the due condition) in the claim order: they become `validating`
/// under `lease` until `lease_until`.
async fn take_due<DB>(
    tx: &mut sqlx::Transaction<'_, DB>,
    filter: &str,
    now: OffsetDateTime,
    limit: usize,
    lease: &str,
    lease_until: OffsetDateTime,
) -> Result<Vec<Claim>, StoreError>
where
    DB: Engine,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'r> bool: Decode<'r, DB> + Type<DB>,
    for<'c> &'c str: ColumnIndex<DB::Row>,
{
    let due = format!(
        "SELECT name, key_type, profile, attempts, (chain_pem IS NOT NULL) AS renewal, \
         (state = 'validating') AS resumed FROM domains \
         WHERE ((due_at IS NOT NULL AND due_at <= $1 AND {state} IN {CLAIMABLE}) \
            OR (state = 'validating' AND COALESCE(lease_expires_at, 0) <= $1)) {filter} \
         ORDER BY {order} LIMIT $2 {lock}",
        state = DB::STATE_UNINDEXED,
        order = claim_order("$1"),
        lock = DB::LOCK_TAKEN,
    );
    let rows = sqlx::query(&due)
        .bind(ts(now))
        .bind(limit_param(limit))
        .fetch_all(&mut **tx)
        .await?;
    let claims = rows
        .iter()
        .map(|row| claim_from_row(row, lease))
        .collect::<Result<Vec<_>, _>>()?;
    if !claims.is_empty() {
        let take = format!(
            "UPDATE domains SET state = 'validating', due_at = NULL, lease = $1, \
             lease_expires_at = $2, updated_at = $3 WHERE name IN {}",
            placeholders(4, claims.len())
        );
        let mut take = sqlx::query(&take)
            .bind(lease)
            .bind(ts(lease_until))
            .bind(ts(now));
        for claim in &claims {
            take = take.bind(claim.name.as_str());
        }
        take.execute(&mut **tx).await?;
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::placeholders;

    #[test]
    fn placeholders_number_from_the_first() {
        assert_eq!(placeholders(1, 1), "($1)");
        assert_eq!(placeholders(4, 3), "($4, $5, $6)");
    }
}
