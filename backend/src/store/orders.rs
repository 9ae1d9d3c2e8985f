//! The order log ([`OrderLog`]): every order placed with the CA, for the account-wide order
//! budget, for resuming an order cut short by a crash, and for auditing how many
//! certificates a domain was given.
//!
//! Every [`Store`](super::Store) is an [`OrderLog`]; the SQL for each implementation is here,
//! next to each other, because the queries are the same up to placeholders.

use async_trait::async_trait;
use sqlx::Row;
use time::OffsetDateTime;

use super::{PgStore, SqliteStore, StoreError};

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
    async fn close_orders(&self, name: &str, now: OffsetDateTime) -> Result<(), StoreError>;
    /// Orders placed at or after `since`, by every process sharing this store.
    async fn orders_since(&self, since: OffsetDateTime) -> Result<u64, StoreError>;
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// The same SQL for both databases: `$N` placeholders are understood by SQLite and
/// PostgreSQL alike.
mod sql {
    pub const RECORD: &str = "INSERT INTO orders (order_url, name, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (order_url) DO NOTHING";
    pub const SET_KEY: &str = "UPDATE orders SET key_pem = $1 WHERE order_url = $2";
    pub const OPEN: &str = "SELECT order_url, key_pem FROM orders \
         WHERE name = $1 AND closed_at IS NULL ORDER BY created_at DESC LIMIT 1";
    pub const CLOSE: &str =
        "UPDATE orders SET closed_at = $1 WHERE name = $2 AND closed_at IS NULL";
    pub const SINCE: &str = "SELECT COUNT(*) AS n FROM orders WHERE created_at >= $1";
}

macro_rules! order_log_for {
    ($store:ty) => {
        #[async_trait]
        impl OrderLog for $store {
            async fn record_order(
                &self,
                name: &str,
                order_url: &str,
                now: OffsetDateTime,
            ) -> Result<(), StoreError> {
                sqlx::query(sql::RECORD)
                    .bind(order_url)
                    .bind(name)
                    .bind(now.unix_timestamp())
                    .execute(self.pool())
                    .await?;
                Ok(())
            }

            async fn set_order_key(
                &self,
                order_url: &str,
                key_pem: &str,
            ) -> Result<(), StoreError> {
                sqlx::query(sql::SET_KEY)
                    .bind(key_pem)
                    .bind(order_url)
                    .execute(self.pool())
                    .await?;
                Ok(())
            }

            async fn open_order(&self, name: &str) -> Result<Option<OpenOrder>, StoreError> {
                let row = sqlx::query(sql::OPEN)
                    .bind(name)
                    .fetch_optional(self.pool())
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
                now: OffsetDateTime,
            ) -> Result<(), StoreError> {
                sqlx::query(sql::CLOSE)
                    .bind(now.unix_timestamp())
                    .bind(name)
                    .execute(self.pool())
                    .await?;
                Ok(())
            }

            async fn orders_since(&self, since: OffsetDateTime) -> Result<u64, StoreError> {
                let row = sqlx::query(sql::SINCE)
                    .bind(since.unix_timestamp())
                    .fetch_one(self.pool())
                    .await?;
                Ok(count(row.try_get("n")?))
            }
        }
    };
}

order_log_for!(SqliteStore);
order_log_for!(PgStore);
