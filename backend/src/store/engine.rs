//! What differs between the databases a store runs on, each difference in one named place.
//! Everything else, the state machine and its SQL, is written once in [`super::sql`].
//!
//! An engine is a `sqlx` database: [`sqlx::Sqlite`] ([`super::sqlite`]) and
//! [`sqlx::Postgres`] ([`super::postgres`]) implement [`Engine`], and the engine's file adds
//! only how a store is opened (connection settings, migrations, how two processes are kept
//! apart). What both databases spell alike needs no entry here:
//!
//! - placeholders: `$1`, `$2`, ... everywhere (SQLite reads `$N` as parameter `N`, and a
//!   placeholder used twice is bound once, as in PostgreSQL);
//! - upserts: `ON CONFLICT (...) DO NOTHING` / `DO UPDATE SET c = excluded.c`;
//! - timestamps: Unix seconds in 64-bit integers, booleans read from comparisons.

use async_trait::async_trait;
use sqlx::{Database, Pool};
use tokio_util::sync::CancellationToken;

use super::StoreError;
use super::source::StoreSource;

/// A database the SQL store runs on.
#[async_trait]
pub trait Engine: Database {
    /// What an open store keeps besides its pool (SQLite: the lock on the database file;
    /// PostgreSQL: the URL its change listener connects to).
    type Resources: std::fmt::Debug + Clone + Send + Sync + 'static;

    /// How the due-work queries name the `state` column so that the planner keeps to the
    /// due-time index (`domains_due`) instead of `domains_state`, which would read every
    /// issued domain (`store::due` proves the plan). SQLite: `+state`, a unary plus that
    /// hides the column from its index chooser; PostgreSQL plans by statistics and has no
    /// unary plus for text.
    const STATE_UNINDEXED: &'static str;

    /// Taking rows, so that one caller only gets each however many ask at once: how the
    /// transaction that reads rows and then takes them begins ...
    const BEGIN_TAKE: &'static str;
    /// ... and what ends the query that reads them. SQLite has no row locks: the
    /// transaction begins `IMMEDIATE`, holding the write lock from the first read, so what
    /// is read cannot change before it is taken. PostgreSQL locks each row as it reads it
    /// and skips rows another replica is taking meanwhile (`FOR UPDATE SKIP LOCKED`); a row
    /// changed after the query's snapshot is checked against its condition again when
    /// locked, so a domain finished meanwhile is no longer taken.
    const LOCK_TAKEN: &'static str;

    /// Whether no other process can use the database while this one holds it (SQLite, by a
    /// lock on the database file). Leases found at start-up are then all left over from a
    /// stop or a crash of this same process, whatever their expiry says.
    const EXCLUSIVE: bool;

    /// How many tables named `$1` the database has (0 or 1), as `n`: whether the schema's
    /// bookkeeping tables exist yet ([`super::schema`]).
    const TABLE_EXISTS: &'static str;

    /// Rows a statement changed (`sqlx` has no trait for it).
    fn rows_affected(result: &Self::QueryResult) -> u64;

    /// Until `stop` is cancelled, announce on `source` the certificate changes committed by
    /// other processes sharing the database ([`super::Store::follow_changes`]), reading them
    /// from `pool` and the store's `resources`. An engine without such processes has nothing
    /// to follow.
    async fn follow_changes(
        pool: &Pool<Self>,
        resources: &Self::Resources,
        source: StoreSource,
        stop: CancellationToken,
    ) -> Result<(), StoreError> {
        let _ = (pool, resources, source, stop);
        Ok(())
    }
}
