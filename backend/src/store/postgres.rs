//! The PostgreSQL engine, for a fleet: several backend replicas share one database, so any
//! replica answers any challenge lookup and serves any certificate, whichever ran the order.
//!
//! The schema is SQLite's (Unix-second timestamps) plus a trigger that announces every
//! change to what is served on channel [`CHANNEL`] (`LISTEN`/`NOTIFY`, delivered on commit).
//! [`Store::follow_changes`](super::Store::follow_changes) listens on it and feeds this
//! replica's SDS announcements, so a certificate issued by one replica reaches the Envoys of
//! all the others at once, without polling the table. When the listening connection is lost
//! (database restart, network), the notifications sent meanwhile are gone: after
//! reconnecting, every name whose row changed since shortly before the loss is announced
//! again.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::Connection;
use sqlx::Postgres;
use sqlx::Row;
use sqlx::postgres::{
    PgConnection, PgListener, PgNotification, PgPool, PgPoolOptions, PgQueryResult,
};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use super::StoreError;
use super::engine::Engine;
use super::rows::ts;
use super::schema::{self, SchemaState};
use super::source::StoreSource;
use super::sql::SqlStore;
use crate::certs::CertEvent;

/// The notification channel the schema's trigger sends on; payload `<kind> <name>`.
pub const CHANNEL: &str = "acme_edge_certs";
/// The channel every change of a domain's row is announced on (payload: the name), for the
/// admin API's event stream.
pub const DOMAIN_CHANNEL: &str = "acme_edge_domains";
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

/// The PostgreSQL store.
pub type PgStore = SqlStore<Postgres>;

#[async_trait]
impl Engine for Postgres {
    /// The URL the change listener connects to, on a connection of its own.
    type Resources = String;

    const STATE_UNINDEXED: &'static str = "state";
    const BEGIN_TAKE: &'static str = "BEGIN";
    const LOCK_TAKEN: &'static str = "FOR UPDATE SKIP LOCKED";
    const EXCLUSIVE: bool = false;
    const TABLE_EXISTS: &'static str = "SELECT COUNT(*) AS n FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_name = $1";

    fn rows_affected(result: &PgQueryResult) -> u64 {
        result.rows_affected()
    }

    async fn follow_changes(
        pool: &PgPool,
        url: &String,
        source: StoreSource,
        stop: CancellationToken,
    ) -> Result<(), StoreError> {
        ChangeFollower { pool, url }.run(source, stop).await;
        Ok(())
    }
}

impl PgStore {
    /// What this release finds in the database at `url`, changing nothing.
    pub async fn inspect(url: &str) -> Result<SchemaState, StoreError> {
        let connect = PgConnection::connect(url);
        let mut conn = tokio::time::timeout(ACQUIRE_TIMEOUT, connect)
            .await
            .map_err(|_| {
                StoreError::Io(format!(
                    "no answer from the database in {ACQUIRE_TIMEOUT:?}"
                ))
            })??;
        let state =
            schema::inspect::<Postgres>(&mut conn, &sqlx::migrate!("./migrations/postgres")).await;
        conn.close().await?;
        state
    }

    /// Connect to `url` (`postgres://user@host:port/database`) and migrate the database.
    /// Replicas starting together are safe: migrations take a database-wide advisory lock.
    pub async fn connect(url: &str) -> Result<PgStore, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect(url)
            .await?;
        let state = schema::migrate::<Postgres>(
            &mut *pool.acquire().await?,
            sqlx::migrate!("./migrations/postgres"),
        )
        .await?;
        schema::log_state(&state);
        Ok(SqlStore {
            pool,
            resources: url.to_owned(),
        })
    }
}

/// What follows the other replicas' changes: the pool to catch up from and the URL its
/// listener connects to.
struct ChangeFollower<'a> {
    pool: &'a PgPool,
    url: &'a str,
}

impl ChangeFollower<'_> {
    /// Announce other replicas' changes until `stop` is cancelled, listening again (and
    /// catching up) whenever the connection is lost.
    async fn run(&self, source: StoreSource, stop: CancellationToken) {
        // Also caught up on start: changes between opening the store and listening.
        let mut since = OffsetDateTime::now_utc() - CATCH_UP_MARGIN;
        loop {
            let Some(mut listener) = self.listen_until_connected(&stop).await else {
                return;
            };
            // Listening before catching up: every change is either caught up or heard.
            self.catch_up_logged(&source, since).await;
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    received = listener.try_recv() => match received {
                        Ok(Some(notification)) if notification.channel() == DOMAIN_CHANNEL => {
                            source.announce_domain(notification.payload());
                        }
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

    /// A listener on [`CHANNEL`], on its own connection.
    async fn listener(&self) -> Result<PgListener, StoreError> {
        // Not from the pool: a connection the server drops must not come back to the pool's
        // other users, and a pool at its limit must not starve the listener.
        let mut listener = PgListener::connect(self.url).await?;
        // A lost connection is replaced by a new listener (then caught up), not patched.
        listener.eager_reconnect(false);
        listener.listen_all([CHANNEL, DOMAIN_CHANNEL]).await?;
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
        .fetch_all(self.pool)
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
    async fn listen_until_connected(&self, stop: &CancellationToken) -> Option<PgListener> {
        let mut retry = LISTEN_RETRY_MIN;
        loop {
            match self.listener().await {
                Ok(listener) => return Some(listener),
                Err(e) => {
                    tracing::warn!(error = %e, retry = ?retry, "change listener cannot connect")
                }
            }
            tokio::select! {
                () = stop.cancelled() => return None,
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
