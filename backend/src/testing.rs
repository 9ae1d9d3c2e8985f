//! Test support for the worker's and the ARI walk's tests: a SQLite store on a temporary
//! file that takes no time on tokio's paused clock, and a clock to go with it.
//!
//! Under `tokio::time::pause` the runtime moves the clock forward to the next timer as soon
//! as every task waits. SQLite answers from threads of its own, so a task waiting for the
//! database looks idle, and a heartbeat or a lease could expire "during" a query. The
//! [`PausedStore`] holds the clock while each call runs (a blocking task in flight keeps the
//! paused clock from moving on), so a query takes no time, as the worker's timing assumes of
//! a healthy database, and a test's timeline is exact.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use async_trait::async_trait;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::model::{Domain, DomainState, KeyType, LastError};
use crate::policy::schedule::Clock;
use crate::store::{
    Claim, DomainQuery, Enabled, ExpiryCounts, IssuedCertificate, OpenOrder, OrderLog,
    OrderOutcome, OrderRecord, Overview, Published, SqliteStore, Store, StoreError, StoredAccount,
    StoredCertificate, source::StoreSource,
};

/// Where the tests' clocks start: a whole second, like the times the store keeps.
pub const START: OffsetDateTime = time::macros::datetime!(2026-03-01 12:00 UTC);

/// A clock at [`START`] that moves with tokio's clock.
pub fn clock() -> Clock {
    Clock::following_tokio(START)
}

/// A [`SqliteStore`] whose calls take no time on tokio's paused clock, and are counted.
pub struct PausedStore {
    inner: SqliteStore,
    calls: AtomicU64,
}

impl PausedStore {
    pub async fn open(path: &Path) -> Arc<PausedStore> {
        let _hold = hold_clock();
        let inner = SqliteStore::open(path)
            .await
            .expect("opening the test database");
        Arc::new(PausedStore {
            inner,
            calls: AtomicU64::new(0),
        })
    }

    /// Calls made so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
}

/// Keeps tokio's paused clock where it is until dropped.
struct Hold {
    _release: mpsc::Sender<()>,
}

fn hold_clock() -> Hold {
    let (release, held) = mpsc::channel::<()>();
    // Ends when the sender is dropped.
    tokio::task::spawn_blocking(move || held.recv().is_ok());
    Hold { _release: release }
}

macro_rules! with_clock_held {
    ($store:ident . $method:ident ( $($arg:expr),* )) => {{
        $store.calls.fetch_add(1, Ordering::Relaxed);
        let _hold = hold_clock();
        $store.inner.$method($($arg),*).await
    }};
}

#[async_trait]
impl OrderLog for PausedStore {
    async fn record_order(
        &self,
        name: &str,
        order_url: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        with_clock_held!(self.record_order(name, order_url, now))
    }
    async fn set_order_key(&self, order_url: &str, key_pem: &str) -> Result<(), StoreError> {
        with_clock_held!(self.set_order_key(order_url, key_pem))
    }
    async fn open_order(&self, name: &str) -> Result<Option<OpenOrder>, StoreError> {
        with_clock_held!(self.open_order(name))
    }
    async fn close_orders(
        &self,
        name: &str,
        outcome: OrderOutcome,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        with_clock_held!(self.close_orders(name, outcome, now))
    }
    async fn mark_resumed(&self, order_url: &str) -> Result<(), StoreError> {
        with_clock_held!(self.mark_resumed(order_url))
    }
    async fn order_history(
        &self,
        name: &str,
        limit: usize,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        with_clock_held!(self.order_history(name, limit))
    }
    async fn orders_since(&self, since: OffsetDateTime) -> Result<u64, StoreError> {
        with_clock_held!(self.orders_since(since))
    }
    async fn new_orders_since(&self, since: OffsetDateTime) -> Result<u64, StoreError> {
        with_clock_held!(self.new_orders_since(since))
    }
    async fn registered_domain_orders(
        &self,
        registered_domain: &str,
        since: OffsetDateTime,
    ) -> Result<Vec<OffsetDateTime>, StoreError> {
        with_clock_held!(self.registered_domain_orders(registered_domain, since))
    }
}

#[async_trait]
impl Overview for PausedStore {
    async fn domain_page(&self, query: &DomainQuery) -> Result<Vec<Domain>, StoreError> {
        with_clock_held!(self.domain_page(query))
    }
    async fn expiry_by_day(
        &self,
        now: OffsetDateTime,
        days: u32,
    ) -> Result<ExpiryCounts, StoreError> {
        with_clock_held!(self.expiry_by_day(now, days))
    }
    async fn failure_reasons(&self) -> Result<Vec<(String, u64)>, StoreError> {
        with_clock_held!(self.failure_reasons())
    }
    async fn lifetimes(&self) -> Result<(Vec<(std::time::Duration, u64)>, u64), StoreError> {
        with_clock_held!(self.lifetimes())
    }
}

#[async_trait]
impl Store for PausedStore {
    async fn account(&self, directory_url: &str) -> Result<Option<StoredAccount>, StoreError> {
        with_clock_held!(self.account(directory_url))
    }
    async fn save_account(&self, account: &StoredAccount) -> Result<StoredAccount, StoreError> {
        with_clock_held!(self.save_account(account))
    }
    async fn forget_account(
        &self,
        directory_url: &str,
        account_url: &str,
    ) -> Result<(), StoreError> {
        with_clock_held!(self.forget_account(directory_url, account_url))
    }
    async fn enable_domain_as(
        &self,
        name: &str,
        key_type: KeyType,
        profile: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Enabled, StoreError> {
        with_clock_held!(self.enable_domain_as(name, key_type, profile, now))
    }
    async fn disable_domain(
        &self,
        name: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Domain>, StoreError> {
        with_clock_held!(self.disable_domain(name, now))
    }
    async fn request_renewal(
        &self,
        name: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Domain>, StoreError> {
        with_clock_held!(self.request_renewal(name, now))
    }
    async fn domain(&self, name: &str) -> Result<Option<Domain>, StoreError> {
        with_clock_held!(self.domain(name))
    }
    async fn claim_due(
        &self,
        now: OffsetDateTime,
        limit: usize,
        lease: &str,
        lease_until: OffsetDateTime,
    ) -> Result<Vec<Claim>, StoreError> {
        with_clock_held!(self.claim_due(now, limit, lease, lease_until))
    }
    async fn claim_due_capped(
        &self,
        now: OffsetDateTime,
        limit: usize,
        new_names: usize,
        lease: &str,
        lease_until: OffsetDateTime,
    ) -> Result<Vec<Claim>, StoreError> {
        with_clock_held!(self.claim_due_capped(now, limit, new_names, lease, lease_until))
    }
    async fn renew_lease(&self, claim: &Claim, until: OffsetDateTime) -> Result<bool, StoreError> {
        with_clock_held!(self.renew_lease(claim, until))
    }
    async fn next_due(&self) -> Result<Option<OffsetDateTime>, StoreError> {
        with_clock_held!(self.next_due())
    }
    async fn record_issued(
        &self,
        claim: &Claim,
        cert: &IssuedCertificate,
        renew_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        with_clock_held!(self.record_issued(claim, cert, renew_at, now))
    }
    async fn record_failed(
        &self,
        claim: &Claim,
        error: &LastError,
        retry_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        with_clock_held!(self.record_failed(claim, error, retry_at, now))
    }
    async fn wait_turn(
        &self,
        claim: &Claim,
        reason: &LastError,
        until: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        with_clock_held!(self.wait_turn(claim, reason, until, now))
    }
    async fn release_waiting_on_ca(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        with_clock_held!(self.release_waiting_on_ca(now))
    }
    async fn release_in_flight(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        with_clock_held!(self.release_in_flight(now))
    }
    async fn issued_after(
        &self,
        after_name: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, String)>, StoreError> {
        with_clock_held!(self.issued_after(after_name, limit))
    }
    async fn advance_renewal(
        &self,
        name: &str,
        version: &str,
        renew_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        with_clock_held!(self.advance_renewal(name, version, renew_at, now))
    }
    async fn put_challenge(
        &self,
        host: &str,
        lease: &str,
        token: &str,
        key_authorization: &str,
        now: OffsetDateTime,
    ) -> Result<Published, StoreError> {
        with_clock_held!(self.put_challenge(host, lease, token, key_authorization, now))
    }
    async fn mark_told_ready(
        &self,
        host: &str,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        with_clock_held!(self.mark_told_ready(host, token, now))
    }
    async fn challenge(&self, host: &str, token: &str) -> Result<Option<String>, StoreError> {
        with_clock_held!(self.challenge(host, token))
    }
    async fn remove_challenges(&self, host: &str) -> Result<(), StoreError> {
        with_clock_held!(self.remove_challenges(host))
    }
    async fn certificate(&self, name: &str) -> Result<Option<StoredCertificate>, StoreError> {
        with_clock_held!(self.certificate(name))
    }
    async fn count_by_state(&self) -> Result<Vec<(DomainState, u64)>, StoreError> {
        with_clock_held!(self.count_by_state())
    }
    async fn earliest_expiry(&self) -> Result<Option<OffsetDateTime>, StoreError> {
        with_clock_held!(self.earliest_expiry())
    }
    async fn follow_changes(
        &self,
        source: StoreSource,
        stop: CancellationToken,
    ) -> Result<(), StoreError> {
        self.inner.follow_changes(source, stop).await
    }
}

/// Store an issued certificate for `name` as the worker would: enabled, claimed, recorded,
/// renewal at `renew_at`. No other domain may be due at `now`. Returns the version.
pub async fn issue_directly(
    store: &dyn Store,
    name: &str,
    cert: &IssuedCertificate,
    renew_at: OffsetDateTime,
    now: OffsetDateTime,
) -> String {
    store
        .enable_domain(name, KeyType::EcdsaP256, now)
        .await
        .expect("enabling");
    let claim = store
        .claim_due(now, 1, "setup", now + time::Duration::minutes(5))
        .await
        .expect("claiming")
        .pop()
        .expect("the domain is due");
    assert_eq!(claim.name, name, "another domain was due");
    assert!(
        store
            .record_issued(&claim, cert, renew_at, now)
            .await
            .expect("recording")
    );
    cert.version.clone()
}

/// What was logged while a [`capture_logs`] guard was held, as text.
#[derive(Clone, Default)]
pub struct Logs(Arc<std::sync::Mutex<Vec<u8>>>);

impl Logs {
    pub fn text(&self) -> String {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut bytes) = self.0.lock() {
            bytes.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Collect this thread's log lines (a `current_thread` test runtime runs every task on it)
/// until the guard is dropped.
pub fn capture_logs() -> (tracing::subscriber::DefaultGuard, Logs) {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || writer.clone())
        .finish();
    (tracing::subscriber::set_default(subscriber), logs)
}
