//! Durable state: domains, their certificates and keys, challenge tokens, ACME accounts.
//!
//! The ACME logic and the API talk to the [`Store`] trait only; SQL lives in its one
//! implementation, [`SqlStore`](sql::SqlStore), which runs on SQLite (one backend) and on
//! PostgreSQL (a fleet of replicas sharing one database). Every state change is one
//! transaction. Work is found in the store (due time, indexed), never only in memory, so a
//! restart resumes it.
//!
//! # Leases
//!
//! A claimed domain carries a lease with an expiry. The worker renews it while the order runs
//! ([`Store::renew_lease`]); results from a worker whose lease no longer matches (the domain
//! was disabled, re-enabled or taken over meanwhile) are discarded. A lease that was not
//! renewed in time belongs to a dead (or cut off) replica: [`Store::claim_due`] takes such
//! domains over like due work, and [`Store::release_in_flight`] at start-up releases only
//! those, never the live leases of another replica (a SQLite store, which one process holds
//! alone, releases them all: there is no other replica). Claiming checks the domain's state
//! in the same transaction that takes the lease, with the rows it reads locked
//! (PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite: the write lock, from the first read), so a
//! domain another replica finished meanwhile is no longer due and is not ordered twice.
//!
//! # Layout
//!
//! - [`sql`]: the store's state machine and its SQL, written once, generic over the engine.
//! - [`engine`]: what differs between databases, one named item per difference (how the
//!   planner is kept on the due index, how rows are taken, whether one process holds the
//!   database, following other processes' changes).
//! - [`sqlite`], [`postgres`]: the two engines, each its [`engine::Engine`] items and how a
//!   store is opened ([`SqliteStore`]: a file, locked against a second process;
//!   [`PgStore`]: a server, with change notifications between replicas).
//! - [`orders`]: the order log (budget, resuming, audit), on the same store.
//! - [`overview`]: the fleet for the admin API (pages of domains, expiry, failures).
//! - [`schema`]: migrating, and which releases can run on the schema (the expand-only rule).
//! - `rows`, `due`: reading rows back into the model; the order in which due work is claimed.
//! - [`source`]: the store seen as a [`CertificateSource`](crate::certs::CertificateSource).

mod due;
pub mod engine;
pub mod orders;
pub mod overview;
pub mod postgres;
mod rows;
pub mod schema;
pub mod source;
pub mod sql;
pub mod sqlite;
#[cfg(test)]
mod suite;

use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::config::StorageConfig;
use crate::model::{Domain, DomainState, KeyType, LastError};

pub use orders::{OpenOrder, OrderLog, OrderOutcome, OrderRecord};
pub use overview::{DomainQuery, ExpiryCounts, Overview};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// Storage failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database file: {0}")]
    Io(String),
    #[error(
        "{0} is in use by another acme-edge process; a SQLite database serves one backend \
         (use PostgreSQL for several)"
    )]
    InUse(String),
    #[error("storage.url must be sqlite://PATH or postgres://...")]
    Url,
    #[error(
        "the database was migrated by acme-edge {migrated_by}; this is acme-edge {release}, \
         and {}: upgrade this replica, or restore the database from the backup taken before \
         the upgrade (migrations this release does not know: {unknown:?})",
        match oldest_release {
            Some(oldest) => format!("releases before {oldest} cannot run on it"),
            None => "it records no release that can run on it".to_owned(),
        },
        release = schema::RELEASE
    )]
    SchemaTooNew {
        migrated_by: String,
        oldest_release: Option<String>,
        unknown: Vec<i64>,
    },
}

/// Open the store `config.url` names (`sqlite://PATH` or `postgres://...`), migrated.
pub async fn open(config: &StorageConfig) -> Result<Arc<dyn Store>, StoreError> {
    if let Some(path) = config.sqlite_path() {
        return Ok(Arc::new(SqliteStore::open(path).await?));
    }
    if let Some(url) = config.postgres_url() {
        return Ok(Arc::new(PgStore::connect(url).await?));
    }
    Err(StoreError::Url)
}

/// What this release finds in the database `config.url` names, changing nothing (not even
/// creating it): `acme-edge check-config`.
pub async fn inspect(config: &StorageConfig) -> Result<schema::SchemaState, StoreError> {
    if let Some(path) = config.sqlite_path() {
        return SqliteStore::inspect(path).await;
    }
    if let Some(url) = config.postgres_url() {
        return PgStore::inspect(url).await;
    }
    Err(StoreError::Url)
}

/// The ACME account kept for one CA directory.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredAccount {
    pub directory_url: String,
    pub account_url: String,
    /// instant-acme `AccountCredentials` as JSON: holds the account key.
    pub credentials_json: String,
    pub created_at: OffsetDateTime,
}

impl std::fmt::Debug for StoredAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredAccount")
            .field("directory_url", &self.directory_url)
            .field("account_url", &self.account_url)
            .finish_non_exhaustive()
    }
}

/// Outcome of enabling a domain.
#[derive(Debug, Clone, PartialEq)]
pub enum Enabled {
    /// The domain is new (or was disabled): an issuance job is due now.
    Created(Domain),
    /// The domain was already enabled: nothing changed.
    Existing(Domain),
}

/// Outcome of publishing a challenge token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// The lease was lost (the domain was disabled or taken over): nothing written.
    LeaseLost,
    /// The token is answered; `told_ready` is when a worker recorded telling the CA about
    /// it (`None`: never).
    Answered { told_ready: Option<OffsetDateTime> },
}

/// A domain a worker has taken: state `validating`, lease held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub name: String,
    pub key_type: KeyType,
    /// The certificate profile to ask for; `None`: `acme.profile`.
    pub profile: Option<String>,
    pub lease: String,
    /// Consecutive failures before this attempt.
    pub attempts: u32,
    /// A certificate is stored already: this is a renewal.
    pub renewal: bool,
    /// Taken over from a worker whose lease expired (it stopped mid-order).
    pub resumed: bool,
}

/// A certificate fresh from the CA, ready to store and serve.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedCertificate {
    /// Leaf first, then intermediates.
    pub chain_pem: String,
    /// PKCS#8 PEM.
    pub key_pem: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// The leaf's serial number, hex: the served version.
    pub version: String,
}

impl std::fmt::Debug for IssuedCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCertificate")
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// The stored certificate of a domain, with its key.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredCertificate {
    pub chain_pem: String,
    pub key_pem: String,
    pub version: String,
}

impl std::fmt::Debug for StoredCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredCertificate")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// Durable state of the service.
#[async_trait]
pub trait Store: orders::OrderLog + overview::Overview + Send + Sync + 'static {
    // ---- accounts
    async fn account(&self, directory_url: &str) -> Result<Option<StoredAccount>, StoreError>;
    /// Keep `account` unless one is already stored for its directory; returns the stored one.
    async fn save_account(&self, account: &StoredAccount) -> Result<StoredAccount, StoreError>;
    /// Drop the stored account `account_url` of `directory_url` (the CA no longer knows it);
    /// a different account stored meanwhile (another replica re-registered) is kept.
    async fn forget_account(
        &self,
        directory_url: &str,
        account_url: &str,
    ) -> Result<(), StoreError>;

    // ---- operator actions
    /// Enable `name` (idempotent). New or disabled domains become `pending`, due `now`,
    /// with the configured profile.
    async fn enable_domain(
        &self,
        name: &str,
        key_type: KeyType,
        now: OffsetDateTime,
    ) -> Result<Enabled, StoreError> {
        self.enable_domain_as(name, key_type, None, now).await
    }
    /// [`Store::enable_domain`] with the certificate `profile` its orders ask for (`None`:
    /// `acme.profile`). An enabled domain given another profile keeps its state and
    /// certificate; its next order asks for the new one.
    async fn enable_domain_as(
        &self,
        name: &str,
        key_type: KeyType,
        profile: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Enabled, StoreError>;
    /// Disable `name`: no more jobs, nothing served, its challenges dropped.
    async fn disable_domain(
        &self,
        name: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Domain>, StoreError>;
    /// Make an issued, failed or pending domain due `now` with a fresh attempt count. A
    /// domain in flight or disabled is left as it is. `None` when there is no such domain.
    async fn request_renewal(
        &self,
        name: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Domain>, StoreError>;
    async fn domain(&self, name: &str) -> Result<Option<Domain>, StoreError>;

    // ---- the worker
    /// Take up to `limit` domains due at `now` (earliest first), and domains in flight whose
    /// lease expired by `now`: they become `validating` under `lease`, which expires at
    /// `lease_until` unless renewed. A domain is claimed by one caller only, however many
    /// replicas ask at once.
    async fn claim_due(
        &self,
        now: OffsetDateTime,
        limit: usize,
        lease: &str,
        lease_until: OffsetDateTime,
    ) -> Result<Vec<Claim>, StoreError>;
    /// [`Store::claim_due`], with at most `new_names` of the `limit` domains without a
    /// certificate (orders a CA counts as new); renewals and domains taken over first, in
    /// the claim order, then new names by due time.
    async fn claim_due_capped(
        &self,
        now: OffsetDateTime,
        limit: usize,
        new_names: usize,
        lease: &str,
        lease_until: OffsetDateTime,
    ) -> Result<Vec<Claim>, StoreError>;
    /// Extend `claim`'s lease to `until`; `false` when the lease was lost (the domain was
    /// disabled, re-enabled or taken over): the holder must stop working on it.
    async fn renew_lease(&self, claim: &Claim, until: OffsetDateTime) -> Result<bool, StoreError>;
    /// The earliest time work is due: a due domain, or an in-flight lease expiring.
    async fn next_due(&self) -> Result<Option<OffsetDateTime>, StoreError>;
    /// Store a new certificate; `false` when the lease was lost (result discarded).
    async fn record_issued(
        &self,
        claim: &Claim,
        cert: &IssuedCertificate,
        renew_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Record a failed attempt, due again at `retry_at`; `false` when the lease was lost.
    /// Counts as one of the domain's attempts only when the failure was the domain's own
    /// ([`crate::model::FailureClass::counts_against_domain`]).
    async fn record_failed(
        &self,
        claim: &Claim,
        error: &LastError,
        retry_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Hand a claimed domain back unattempted, due at `until` and `pending`, with why it
    /// waits in `last_error` (its attempts and failure class untouched): a limit of the CA's
    /// would refuse it now. `false` when the lease was lost.
    async fn wait_turn(
        &self,
        claim: &Claim,
        reason: &LastError,
        until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// The CA is back: failed domains that were waiting on it (their last failure the CA's
    /// or ours, not the domain's) become due `now` instead of at their retry times. Returns
    /// how many.
    async fn release_waiting_on_ca(&self, now: OffsetDateTime) -> Result<u64, StoreError>;
    /// At start-up: domains left `validating` whose lease expired by `now` (their worker
    /// stopped) become due `now`; their challenge tokens stay answerable (the CA may be
    /// validating one; the resumed order publishes the same ones). Leases still live belong to running replicas and are left alone, unless the
    /// store is this process's alone ([`engine::Engine::EXCLUSIVE`]): then every lease is
    /// stale.
    async fn release_in_flight(&self, now: OffsetDateTime) -> Result<u64, StoreError>;

    // ---- renewal information
    /// Issued domains whose name sorts after `after_name` (from the first when `None`), by
    /// name, at most `limit`: `(name, certificate version)`. Pages through every issued
    /// domain without holding anything open between pages.
    async fn issued_after(
        &self,
        after_name: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, String)>, StoreError>;
    /// Bring `name`'s renewal (renewal time and due time) forward to `renew_at`, only while
    /// it is still `issued` with certificate `version` and `renew_at` is earlier than the
    /// stored renewal time; `true` when it changed. A renewal or a disable that happened
    /// meanwhile wins, and a renewal is never moved later.
    async fn advance_renewal(
        &self,
        name: &str,
        version: &str,
        renew_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    // ---- challenges
    /// Publish `token` for `host`, only while `lease` still holds the domain
    /// ([`Published::LeaseLost`] when the domain was disabled or taken over: the token is not
    /// written). Says whether a worker recorded telling the CA about it already.
    async fn put_challenge(
        &self,
        host: &str,
        lease: &str,
        token: &str,
        key_authorization: &str,
        now: OffsetDateTime,
    ) -> Result<Published, StoreError>;
    /// Record that `token` is about to be reported ready to the CA (written before the
    /// request, so that no later worker reports it a second time).
    async fn mark_told_ready(
        &self,
        host: &str,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// The key authorization for `token`, only if it was issued for `host`.
    async fn challenge(&self, host: &str, token: &str) -> Result<Option<String>, StoreError>;
    async fn remove_challenges(&self, host: &str) -> Result<(), StoreError>;

    // ---- serving
    /// The certificate to serve for `name`: `None` when not issued yet or disabled.
    async fn certificate(&self, name: &str) -> Result<Option<StoredCertificate>, StoreError>;
    /// Number of domains per state (states with none are absent).
    async fn count_by_state(&self) -> Result<Vec<(DomainState, u64)>, StoreError>;
    /// The earliest `not_after` among served certificates.
    async fn earliest_expiry(&self) -> Result<Option<OffsetDateTime>, StoreError>;

    // ---- replicas
    /// Until `stop` is cancelled, announce on `source` the certificate changes committed by
    /// any process sharing this store, so that every replica's SDS clients follow them. A
    /// store only one process uses has nothing to follow and returns at once.
    async fn follow_changes(
        &self,
        source: source::StoreSource,
        stop: CancellationToken,
    ) -> Result<(), StoreError> {
        let _ = (source, stop);
        Ok(())
    }
}
