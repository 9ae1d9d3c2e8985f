//! The order log ([`OrderLog`]): every order placed with the CA, for the account-wide order
//! budget, for resuming an order cut short by a crash, and for auditing how many
//! certificates a domain was given.
//!
//! Every [`Store`](super::Store) is an [`OrderLog`]; the SQL store ([`SqlStore`]) keeps it
//! with one text of SQL for every engine.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Row, Type};
use time::OffsetDateTime;

use super::StoreError;
use super::engine::Engine;
use super::rows::{from_ts, opt_ts};
use super::sql::SqlStore;

/// An order that was placed and not closed: the worker resumes it instead of placing another.
#[derive(Clone, PartialEq, Eq)]
pub struct OpenOrder {
    pub order_url: String,
    /// The certificate key, once the CSR was (about to be) sent.
    pub key_pem: Option<String>,
}

impl std::fmt::Debug for OpenOrder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenOrder")
            .field("order_url", &self.order_url)
            .field("has_key", &self.key_pem.is_some())
            .finish()
    }
}

/// How an order ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderOutcome {
    /// Its certificate is stored.
    Issued,
    /// The CA declared it invalid.
    Failed,
    /// Of no more use: the CA no longer has it, or it cannot be taken up again.
    Abandoned,
}

impl OrderOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderOutcome::Issued => "issued",
            OrderOutcome::Failed => "failed",
            OrderOutcome::Abandoned => "abandoned",
        }
    }
}

/// One order of a domain's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRecord {
    pub order_url: String,
    pub created_at: OffsetDateTime,
    pub closed_at: Option<OffsetDateTime>,
    /// `new` or `renewal`; `None` for orders logged before kinds were.
    pub kind: Option<String>,
    /// Taken up again after the process stopped mid-order.
    pub resumed: bool,
    /// How it ended ([`OrderOutcome::as_str`]); `None` while open, or for orders closed
    /// before outcomes were logged.
    pub outcome: Option<String>,
    /// The last failure while it ran (JSON of a `LastError`).
    pub problem: Option<String>,
}

/// Orders placed with the CA.
#[async_trait]
pub trait OrderLog {
    /// Log a new order for `name`, placed at `now`: it counts against the budget and is the
    /// domain's open order until closed.
    async fn record_order(
        &self,
        name: &str,
        order_url: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// Keep the key the order's CSR is made from, before the CSR is sent.
    async fn set_order_key(&self, order_url: &str, key_pem: &str) -> Result<(), StoreError>;
    /// The most recent open order of `name`.
    async fn open_order(&self, name: &str) -> Result<Option<OpenOrder>, StoreError>;
    /// Close every open order of `name` (certificate stored, order invalid or abandoned).
    async fn close_orders(
        &self,
        name: &str,
        outcome: OrderOutcome,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// Note that `order_url` was taken up again after the process stopped mid-order.
    async fn mark_resumed(&self, order_url: &str) -> Result<(), StoreError>;
    /// `name`'s orders, newest first, at most `limit`.
    async fn order_history(&self, name: &str, limit: usize)
    -> Result<Vec<OrderRecord>, StoreError>;
    /// Orders placed at or after `since`, by every process sharing this store.
    async fn orders_since(&self, since: OffsetDateTime) -> Result<u64, StoreError>;
    /// Of those, the orders for names that had no certificate (not renewals); orders logged
    /// before kinds were count too.
    async fn new_orders_since(&self, since: OffsetDateTime) -> Result<u64, StoreError>;
    /// When each new order for a name under `registered_domain` (the name itself or one
    /// ending in `.registered_domain`) placed at or after `since` was placed, leaving out
    /// those that gave no certificate (the CA declared them invalid, or they were
    /// abandoned).
    async fn registered_domain_orders(
        &self,
        registered_domain: &str,
        since: OffsetDateTime,
    ) -> Result<Vec<OffsetDateTime>, StoreError>;
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[async_trait]
impl<DB> OrderLog for SqlStore<DB>
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
    async fn record_order(
        &self,
        name: &str,
        order_url: &str,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        // A renewal when the domain has a certificate already.
        sqlx::query(
            "INSERT INTO orders (order_url, name, created_at, kind) VALUES ($1, $2, $3, \
             COALESCE((SELECT CASE WHEN chain_pem IS NOT NULL THEN 'renewal' ELSE 'new' END \
             FROM domains WHERE name = $2), 'new')) \
             ON CONFLICT (order_url) DO NOTHING",
        )
        .bind(order_url)
        .bind(name)
        .bind(now.unix_timestamp())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn set_order_key(&self, order_url: &str, key_pem: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE orders SET key_pem = $1, key_made = TRUE WHERE order_url = $2")
            .bind(key_pem)
            .bind(order_url)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn open_order(&self, name: &str) -> Result<Option<OpenOrder>, StoreError> {
        let row = sqlx::query(
            "SELECT order_url, key_pem FROM orders \
             WHERE name = $1 AND closed_at IS NULL ORDER BY created_at DESC LIMIT 1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(OpenOrder {
                order_url: row.try_get("order_url")?,
                key_pem: row.try_get("key_pem")?,
            })
        })
        .transpose()
    }

    async fn close_orders(
        &self,
        name: &str,
        outcome: OrderOutcome,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        // A closed order's key is of no further use (an issued certificate's key is kept with
        // the certificate): it is deleted with the order's end.
        sqlx::query(
            "UPDATE orders SET closed_at = $1, key_pem = NULL, outcome = $3 \
             WHERE name = $2 AND closed_at IS NULL",
        )
        .bind(now.unix_timestamp())
        .bind(name)
        .bind(outcome.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn mark_resumed(&self, order_url: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE orders SET resumed = TRUE WHERE order_url = $1")
            .bind(order_url)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn order_history(
        &self,
        name: &str,
        limit: usize,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT order_url, created_at, closed_at, kind, resumed, outcome, problem \
             FROM orders WHERE name = $1 ORDER BY created_at DESC, order_url DESC LIMIT $2",
        )
        .bind(name)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(OrderRecord {
                    order_url: row.try_get("order_url")?,
                    created_at: from_ts(row.try_get("created_at")?)?,
                    closed_at: opt_ts(row, "closed_at")?,
                    kind: row.try_get("kind")?,
                    resumed: row.try_get("resumed")?,
                    outcome: row.try_get("outcome")?,
                    problem: row.try_get("problem")?,
                })
            })
            .collect()
    }

    async fn orders_since(&self, since: OffsetDateTime) -> Result<u64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM orders WHERE created_at >= $1")
            .bind(since.unix_timestamp())
            .fetch_one(&self.pool)
            .await?;
        Ok(count(row.try_get("n")?))
    }

    async fn new_orders_since(&self, since: OffsetDateTime) -> Result<u64, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM orders \
             WHERE created_at >= $1 AND (kind IS NULL OR kind <> 'renewal')",
        )
        .bind(since.unix_timestamp())
        .fetch_one(&self.pool)
        .await?;
        Ok(count(row.try_get("n")?))
    }

    async fn registered_domain_orders(
        &self,
        registered_domain: &str,
        since: OffsetDateTime,
    ) -> Result<Vec<OffsetDateTime>, StoreError> {
        // Names are LDH labels: neither `%` nor `_` can occur in them to be read as a
        // pattern.
        let rows = sqlx::query(
            "SELECT created_at FROM orders \
             WHERE created_at >= $1 AND (kind IS NULL OR kind <> 'renewal') \
               AND (outcome IS NULL OR outcome = 'issued') \
               AND (name = $2 OR name LIKE $3)",
        )
        .bind(since.unix_timestamp())
        .bind(registered_domain)
        .bind(format!("%.{registered_domain}").as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let at: i64 = row.try_get("created_at")?;
                OffsetDateTime::from_unix_timestamp(at)
                    .map_err(|e| StoreError::Corrupt(format!("orders.created_at {at}: {e}")))
            })
            .collect()
    }
}
