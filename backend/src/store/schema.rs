//! The schema, and which releases can run on it.
//!
//! # The rule
//!
//! Migrations are expand-only across one release: a release's schema still serves the queries
//! of the release before it. A migration adds tables, columns with defaults and indexes, and
//! the application backfills; what a release stops using is removed (dropped, renamed, made
//! `NOT NULL`) a release later, by a migration that says which release stopped using it, in a
//! line of its own:
//!
//! ```sql
//! -- unused since: 0.3.0
//! ```
//!
//! Releases before that one cannot run on a schema that migration was applied to.
//! `cargo xtask lint` refuses a migration that drops, renames or adds a `NOT NULL` column
//! without a default unless it carries the line (see `docs/contributing.md`).
//!
//! # The record
//!
//! A replica of an older release can meet a database a newer release migrated: in a rolling
//! upgrade, or when it restarts before it is upgraded. `sqlx` refuses a database with
//! migrations it does not know; this module decides instead. After migrating, a release writes
//! in [`RECORD_TABLE`] (one row) which release migrated the database and the oldest release
//! that can run on it (the newest `unused since` of the applied migrations). A release that
//! finds migrations it does not know reads the record: when it is not older than the oldest
//! release named there, it runs on the schema as it is; otherwise it refuses to start
//! ([`SchemaState::AheadIncompatible`]), and the service exits with a code its service
//! manager does not restart on.
//!
//! The record's table is made by this module, not by a migration: a release that knows
//! nothing of it (0.1.0) keeps starting on a database that has it.

use std::fmt;
use std::str::FromStr;

use sqlx::migrate::{Migrate, Migrator};
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Row, Type};
use time::OffsetDateTime;

use super::StoreError;
use super::engine::Engine;
use super::rows::ts;

/// This build's release (the crate's version).
pub const RELEASE: &str = env!("CARGO_PKG_VERSION");

/// The line a contracting migration carries, followed by the release that stopped using what
/// it removes.
pub const UNUSED_SINCE_MARKER: &str = "-- unused since:";

/// The compatibility record's table.
pub const RECORD_TABLE: &str = "schema_compatibility";

/// `sqlx`'s table of applied migrations.
const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

/// A release number, `MAJOR.MINOR.PATCH`, ordered as numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Release {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
}

impl Release {
    /// Before every release: what a schema without contracting migrations needs.
    pub const ANY: Release = Release {
        major: 0,
        minor: 0,
        patch: 0,
    };

    /// This build's release.
    pub fn current() -> Release {
        // The crate's version is `MAJOR.MINOR.PATCH` (Cargo refuses anything else); a
        // pre-release suffix (`-rc.1`) is not part of the comparison.
        RELEASE.parse().unwrap_or(Release::ANY)
    }
}

impl FromStr for Release {
    type Err = String;

    fn from_str(text: &str) -> Result<Release, String> {
        let core = text.trim().split(['-', '+']).next().unwrap_or_default();
        let mut parts = core.split('.').map(str::parse::<u64>);
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(Ok(major)), Some(Ok(minor)), Some(Ok(patch)), None) => Ok(Release {
                major,
                minor,
                patch,
            }),
            _ => Err(format!("{text:?} is not a release (MAJOR.MINOR.PATCH)")),
        }
    }
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The release after which a migration's schema no longer serves older releases, from its
/// `-- unused since: X.Y.Z` line; `None` for an expand-only migration.
pub fn unused_since(sql: &str) -> Result<Option<Release>, String> {
    let mut found = None;
    for line in sql.lines() {
        if let Some(release) = line.trim().strip_prefix(UNUSED_SINCE_MARKER) {
            let release: Release = release.parse()?;
            found = found.max(Some(release));
        }
    }
    Ok(found)
}

/// What the compatibility record says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The release that last migrated the database (or found it current).
    pub migrated_by: Release,
    /// The oldest release that can run on the schema.
    pub oldest_release: Release,
}

/// What a release finds in a database, before it migrates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaState {
    /// No migration applied yet: a new database.
    New,
    /// Every migration this release knows is applied, and no other.
    Current,
    /// An older release migrated it: these migrations of this release are still to apply.
    Behind { pending: Vec<i64> },
    /// A newer release migrated it, and this release can still run on the schema.
    AheadCompatible {
        migrated_by: Option<Release>,
        unknown: Vec<i64>,
    },
    /// A newer release migrated it past what this release can run on (or left no record of
    /// which releases can).
    AheadIncompatible {
        migrated_by: Option<Release>,
        oldest_release: Option<Release>,
        unknown: Vec<i64>,
    },
}

impl SchemaState {
    /// What `applied` migrations (and the `record`, when there is one) mean for release
    /// `release`, which knows the migrations `known`.
    pub fn classify(
        known: &[i64],
        applied: &[i64],
        record: Option<&Record>,
        release: Release,
    ) -> SchemaState {
        let unknown: Vec<i64> = (applied.iter())
            .filter(|v| !known.contains(v))
            .copied()
            .collect();
        let pending: Vec<i64> = (known.iter())
            .filter(|v| !applied.contains(v))
            .copied()
            .collect();
        if applied.is_empty() {
            return SchemaState::New;
        }
        if unknown.is_empty() {
            return if pending.is_empty() {
                SchemaState::Current
            } else {
                SchemaState::Behind { pending }
            };
        }
        match record {
            Some(record) if record.oldest_release <= release => SchemaState::AheadCompatible {
                migrated_by: Some(record.migrated_by),
                unknown,
            },
            _ => SchemaState::AheadIncompatible {
                migrated_by: record.map(|r| r.migrated_by),
                oldest_release: record.map(|r| r.oldest_release),
                unknown,
            },
        }
    }

    /// Whether this release may run on the schema (after migrating it, when behind).
    pub fn runs(&self) -> bool {
        !matches!(self, SchemaState::AheadIncompatible { .. })
    }

    /// The refusal an incompatible schema makes: what happened and what to do.
    pub fn refusal(&self) -> Option<StoreError> {
        match self {
            SchemaState::AheadIncompatible {
                migrated_by,
                oldest_release,
                unknown,
            } => Some(StoreError::SchemaTooNew {
                migrated_by: migrated_by
                    .map_or_else(|| "a newer release".to_owned(), |r| r.to_string()),
                oldest_release: oldest_release.map(|r| r.to_string()),
                unknown: unknown.clone(),
            }),
            _ => None,
        }
    }
}

impl fmt::Display for SchemaState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchemaState::New => write!(f, "new (no migration applied yet)"),
            SchemaState::Current => write!(f, "current (as acme-edge {RELEASE} migrates it)"),
            SchemaState::Behind { pending } => write!(
                f,
                "behind: acme-edge {RELEASE} will apply {} migration(s) ({})",
                pending.len(),
                list(pending)
            ),
            SchemaState::AheadCompatible {
                migrated_by,
                unknown,
            } => write!(
                f,
                "ahead and compatible: migrated by acme-edge {} ({} migration(s) this release \
                 does not know: {}); acme-edge {RELEASE} runs on it",
                migrated_by.map_or_else(|| "?".to_owned(), |r| r.to_string()),
                unknown.len(),
                list(unknown)
            ),
            SchemaState::AheadIncompatible { .. } => match self.refusal() {
                Some(refusal) => write!(f, "ahead and incompatible: {refusal}"),
                None => Ok(()),
            },
        }
    }
}

/// Say at start-up what was found, when it is not the usual.
pub fn log_state(state: &SchemaState) {
    match state {
        SchemaState::Current => {}
        SchemaState::New | SchemaState::Behind { .. } => {
            tracing::info!(schema = %state, "database migrated");
        }
        SchemaState::AheadCompatible { .. } => {
            tracing::warn!(schema = %state, "running on a schema a newer release migrated; upgrade this replica");
        }
        SchemaState::AheadIncompatible { .. } => {
            tracing::error!(schema = %state, "refusing the database");
        }
    }
}

fn list(versions: &[i64]) -> String {
    let versions: Vec<String> = versions.iter().map(i64::to_string).collect();
    versions.join(", ")
}

/// The oldest release that can run on a schema with `migrator`'s migrations applied.
fn oldest_release(migrator: &Migrator) -> Result<Release, StoreError> {
    let mut oldest = Release::ANY;
    for migration in migrator.iter() {
        let since = unused_since(&migration.sql)
            .map_err(|e| StoreError::Corrupt(format!("migration {}: {e}", migration.version)))?;
        oldest = oldest.max(since.unwrap_or(Release::ANY));
    }
    Ok(oldest)
}

/// Migrate the database on `conn` with `migrator` (this release's migrations) when it may:
/// behind, migrated; ahead and compatible, left as it is; ahead and incompatible, refused
/// with [`StoreError::SchemaTooNew`]. The whole decision runs under the migration lock
/// (PostgreSQL: an advisory lock), so replicas starting together take turns. Returns what was
/// found.
pub async fn migrate<DB>(
    conn: &mut DB::Connection,
    migrator: Migrator,
) -> Result<SchemaState, StoreError>
where
    DB: Engine,
    DB::Connection: Migrate,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'c> &'c str: ColumnIndex<DB::Row>,
{
    conn.lock().await?;
    let migrated = migrate_locked::<DB>(conn, migrator).await;
    conn.unlock().await?;
    migrated
}

async fn migrate_locked<DB>(
    conn: &mut DB::Connection,
    mut migrator: Migrator,
) -> Result<SchemaState, StoreError>
where
    DB: Engine,
    DB::Connection: Migrate,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'c> &'c str: ColumnIndex<DB::Row>,
{
    let state = inspect::<DB>(conn, &migrator).await?;
    if let Some(refusal) = state.refusal() {
        return Err(refusal);
    }
    let ahead = matches!(state, SchemaState::AheadCompatible { .. });
    // A newer release's migrations are its own: kept, not refused.
    migrator.set_ignore_missing(ahead);
    // Held already, by `migrate`.
    migrator.set_locking(false);
    // On the connection that holds the lock. (`run` wants an `Acquire`, which a generic
    // connection does not name; `run_direct` is what `run` calls.)
    migrator.run_direct(&mut *conn).await?;
    if !ahead {
        write_record::<DB>(conn, oldest_release(&migrator)?).await?;
    }
    Ok(state)
}

/// What release [`RELEASE`] finds in the database on `conn`, changing nothing.
pub async fn inspect<DB>(
    conn: &mut DB::Connection,
    migrator: &Migrator,
) -> Result<SchemaState, StoreError>
where
    DB: Engine,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'c> &'c str: ColumnIndex<DB::Row>,
{
    let known: Vec<i64> = (migrator.iter())
        .filter(|m| !m.migration_type.is_down_migration())
        .map(|m| m.version)
        .collect();
    let applied: Vec<i64> = if table_exists::<DB>(conn, MIGRATIONS_TABLE).await? {
        let rows =
            sqlx::query("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
                .fetch_all(&mut *conn)
                .await?;
        rows.iter()
            .map(|row| row.try_get::<i64, _>("version"))
            .collect::<Result<_, _>>()?
    } else {
        Vec::new()
    };
    let record = read_record::<DB>(conn).await?;
    Ok(SchemaState::classify(
        &known,
        &applied,
        record.as_ref(),
        Release::current(),
    ))
}

async fn table_exists<DB>(conn: &mut DB::Connection, table: &str) -> Result<bool, StoreError>
where
    DB: Engine,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'c> &'c str: ColumnIndex<DB::Row>,
{
    let row = sqlx::query(DB::TABLE_EXISTS)
        .bind(table)
        .fetch_one(&mut *conn)
        .await?;
    Ok(row.try_get::<i64, _>("n")? > 0)
}

async fn read_record<DB>(conn: &mut DB::Connection) -> Result<Option<Record>, StoreError>
where
    DB: Engine,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'c> &'c str: ColumnIndex<DB::Row>,
{
    if !table_exists::<DB>(conn, RECORD_TABLE).await? {
        return Ok(None);
    }
    let row =
        sqlx::query("SELECT migrated_by, oldest_release FROM schema_compatibility WHERE id = 1")
            .fetch_optional(&mut *conn)
            .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let release = |column: &str| -> Result<Release, StoreError> {
        let text: String = row.try_get(column)?;
        text.parse()
            .map_err(|e| StoreError::Corrupt(format!("{RECORD_TABLE}: {e}")))
    };
    Ok(Some(Record {
        migrated_by: release("migrated_by")?,
        oldest_release: release("oldest_release")?,
    }))
}

/// Record that this release migrated the database and that releases from `oldest` on can run
/// on it, unless a newer release recorded itself already (a replica of it migrated first).
async fn write_record<DB>(conn: &mut DB::Connection, oldest: Release) -> Result<(), StoreError>
where
    DB: Engine,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'c> &'c str: ColumnIndex<DB::Row>,
{
    let release = Release::current();
    if let Some(record) = read_record::<DB>(conn).await?
        && (record.migrated_by > release
            || (record.migrated_by == release && record.oldest_release == oldest))
    {
        return Ok(());
    }
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_compatibility (\
             id INTEGER PRIMARY KEY CHECK (id = 1), \
             migrated_by TEXT NOT NULL, \
             oldest_release TEXT NOT NULL, \
             recorded_at INTEGER NOT NULL)",
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO schema_compatibility (id, migrated_by, oldest_release, recorded_at) \
         VALUES (1, $1, $2, $3) \
         ON CONFLICT (id) DO UPDATE SET migrated_by = excluded.migrated_by, \
         oldest_release = excluded.oldest_release, recorded_at = excluded.recorded_at",
    )
    .bind(release.to_string().as_str())
    .bind(oldest.to_string().as_str())
    .bind(ts(OffsetDateTime::now_utc()))
    .execute(&mut *conn)
    .await?;
    tracing::info!(release = %release, oldest_release = %oldest, "schema compatibility recorded");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(text: &str) -> Release {
        text.parse().unwrap()
    }

    #[test]
    fn releases_order_as_numbers() {
        assert!(r("0.10.0") > r("0.9.3"));
        assert!(r("1.0.0") > r("0.99.99"));
        assert_eq!(r("0.2.0-rc.1"), r("0.2.0"));
        assert!("0.2".parse::<Release>().is_err());
        assert!("a.b.c".parse::<Release>().is_err());
        assert_eq!(r("0.2.0").to_string(), "0.2.0");
    }

    #[test]
    fn the_marker_names_the_release_that_stopped_using_it() {
        assert_eq!(unused_since("ALTER TABLE d ADD COLUMN x TEXT;"), Ok(None));
        let sql = "-- The old column goes.\n-- unused since: 0.3.0\nALTER TABLE d DROP COLUMN x;";
        assert_eq!(unused_since(sql), Ok(Some(r("0.3.0"))));
        assert!(unused_since("-- unused since: soon\n").is_err());
    }

    #[test]
    fn every_migration_of_this_release_parses() {
        for migrator in [
            sqlx::migrate!("./migrations/sqlite"),
            sqlx::migrate!("./migrations/postgres"),
        ] {
            let oldest = oldest_release(&migrator).unwrap();
            assert!(oldest <= Release::current(), "{oldest}");
        }
    }

    #[test]
    fn the_state_says_what_a_release_may_do() {
        let known = [1, 2, 3];
        let mine = r("0.2.0");
        assert_eq!(
            SchemaState::classify(&known, &[], None, mine),
            SchemaState::New
        );
        assert_eq!(
            SchemaState::classify(&known, &[1, 2, 3], None, mine),
            SchemaState::Current
        );
        assert_eq!(
            SchemaState::classify(&known, &[1], None, mine),
            SchemaState::Behind {
                pending: vec![2, 3]
            }
        );
        let newer = Record {
            migrated_by: r("0.3.0"),
            oldest_release: r("0.1.0"),
        };
        let ahead = SchemaState::classify(&known, &[1, 2, 3, 4], Some(&newer), mine);
        assert_eq!(
            ahead,
            SchemaState::AheadCompatible {
                migrated_by: Some(r("0.3.0")),
                unknown: vec![4]
            }
        );
        assert!(ahead.runs());

        let contracted = Record {
            oldest_release: r("0.3.0"),
            ..newer
        };
        let refused = SchemaState::classify(&known, &[1, 2, 3, 4], Some(&contracted), mine);
        assert!(!refused.runs());
        let message = refused.refusal().unwrap().to_string();
        assert!(
            message.contains("0.3.0") && message.contains(RELEASE),
            "{message}"
        );
        assert!(
            !SchemaState::classify(&known, &[1, 2, 3, 4], None, mine).runs(),
            "without a record, unknown migrations are not trusted"
        );
    }
}

/// The rule on real databases: a release records itself, runs on a newer schema that says it
/// may, and refuses (changing nothing) one that says it may not.
#[cfg(test)]
mod on_engines {
    use std::sync::Arc;

    use acme_edge_tests::postgres::TempDatabase;
    use sqlx::{Connection, Database, Encode, Executor, IntoArguments, Type};
    use time::OffsetDateTime;

    use super::{RELEASE, Release};
    use crate::model::KeyType;
    use crate::store::{PgStore, SqliteStore, Store, StoreError};

    /// A version no migration of ours will have.
    const NEWER_MIGRATION: i64 = 99_991_231_000_001;

    /// A database and what keeps it alive.
    struct Db {
        url: String,
        _dir: Option<tempfile::TempDir>,
        _pg: Option<TempDatabase>,
    }

    async fn sqlite() -> Db {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        Db {
            url,
            _dir: Some(dir),
            _pg: None,
        }
    }

    async fn postgres() -> Db {
        let db = TempDatabase::create()
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
        Db {
            url: db.url().unwrap(),
            _dir: None,
            _pg: Some(db),
        }
    }

    async fn open(db: &Db) -> Result<Arc<dyn Store>, StoreError> {
        Ok(match db.url.strip_prefix("sqlite://") {
            Some(path) => Arc::new(SqliteStore::open(std::path::Path::new(path)).await?),
            None => Arc::new(PgStore::connect(&db.url).await?),
        })
    }

    /// What a newer release leaves: a migration this one does not know (an added column) and
    /// the record, naming `oldest` as the oldest release that runs on it (none: no record).
    async fn migrate_as_a_newer_release<DB>(db: &Db, oldest: Option<&str>)
    where
        DB: Database,
        for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
        for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
        for<'q> i64: Encode<'q, DB> + Type<DB>,
        for<'q> Vec<u8>: Encode<'q, DB> + Type<DB>,
        for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    {
        let mut conn = DB::Connection::connect(&db.url).await.unwrap();
        sqlx::query("ALTER TABLE domains ADD COLUMN newer_release_column TEXT")
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
             execution_time) VALUES ($1, 'newer release', (1 = 1), $2, 0)",
        )
        .bind(NEWER_MIGRATION)
        .bind(vec![0u8; 48])
        .execute(&mut conn)
        .await
        .unwrap();
        match oldest {
            Some(oldest) => sqlx::query(
                "UPDATE schema_compatibility SET migrated_by = '9.0.0', oldest_release = $1",
            )
            .bind(oldest)
            .execute(&mut conn)
            .await
            .unwrap(),
            None => sqlx::query("DROP TABLE schema_compatibility")
                .execute(&mut conn)
                .await
                .unwrap(),
        };
        conn.close().await.unwrap();
    }

    async fn record<DB>(db: &Db) -> (String, String)
    where
        DB: Database,
        for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
        for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
        for<'r> (String, String): sqlx::FromRow<'r, DB::Row>,
    {
        let mut conn = DB::Connection::connect(&db.url).await.unwrap();
        let row = sqlx::query_as("SELECT migrated_by, oldest_release FROM schema_compatibility")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        row
    }

    async fn a_release_records_itself_and_runs_on_a_compatible_newer_schema<DB>(db: Db)
    where
        DB: Database,
        for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
        for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
        for<'q> i64: Encode<'q, DB> + Type<DB>,
        for<'q> Vec<u8>: Encode<'q, DB> + Type<DB>,
        for<'q> &'q str: Encode<'q, DB> + Type<DB>,
        for<'r> (String, String): sqlx::FromRow<'r, DB::Row>,
    {
        let now = OffsetDateTime::now_utc();
        let store = open(&db).await.unwrap();
        store
            .enable_domain("before.example", KeyType::EcdsaP256, now)
            .await
            .unwrap();
        drop(store);
        assert_eq!(
            record::<DB>(&db).await,
            (RELEASE.to_owned(), "0.0.0".to_owned())
        );

        migrate_as_a_newer_release::<DB>(&db, Some(RELEASE)).await;
        let store = open(&db)
            .await
            .expect("a compatible newer schema is run on");
        assert!(store.domain("before.example").await.unwrap().is_some());
        store
            .enable_domain("after.example", KeyType::EcdsaP256, now)
            .await
            .unwrap();
        drop(store);
        assert_eq!(
            record::<DB>(&db).await,
            ("9.0.0".to_owned(), RELEASE.to_owned()),
            "the newer release's record stays"
        );
    }

    async fn a_newer_schema_past_this_release_is_refused_and_left_as_it_is<DB>(db: Db)
    where
        DB: Database,
        for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
        for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
        for<'q> i64: Encode<'q, DB> + Type<DB>,
        for<'q> Vec<u8>: Encode<'q, DB> + Type<DB>,
        for<'q> &'q str: Encode<'q, DB> + Type<DB>,
        for<'r> (String, String): sqlx::FromRow<'r, DB::Row>,
    {
        drop(open(&db).await.unwrap());
        let next = Release {
            minor: Release::current().minor + 1,
            ..Release::current()
        }
        .to_string();
        migrate_as_a_newer_release::<DB>(&db, Some(&next)).await;
        let Err(refused) = open(&db).await else {
            panic!("a schema past this release must be refused");
        };
        let message = refused.to_string();
        assert!(
            matches!(refused, StoreError::SchemaTooNew { .. }),
            "{message}"
        );
        assert!(
            message.contains("9.0.0") && message.contains(&next) && message.contains(RELEASE),
            "{message}"
        );
        assert_eq!(record::<DB>(&db).await, ("9.0.0".to_owned(), next));
    }

    async fn without_a_record_unknown_migrations_are_refused<DB>(db: Db)
    where
        DB: Database,
        for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
        for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
        for<'q> i64: Encode<'q, DB> + Type<DB>,
        for<'q> Vec<u8>: Encode<'q, DB> + Type<DB>,
        for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    {
        drop(open(&db).await.unwrap());
        migrate_as_a_newer_release::<DB>(&db, None).await;
        let refused = open(&db).await.err().map(|e| e.to_string());
        assert!(
            refused
                .as_deref()
                .is_some_and(|m| m.contains("records no release")),
            "{refused:?}"
        );
    }

    macro_rules! on_both {
        ($($test:ident),* $(,)?) => {
            mod sqlite {
                $(
                    #[tokio::test]
                    async fn $test() {
                        super::$test::<sqlx::Sqlite>(super::sqlite().await).await;
                    }
                )*
            }
            mod postgres {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $test() {
                        super::$test::<sqlx::Postgres>(super::postgres().await).await;
                    }
                )*
            }
        };
    }

    on_both![
        a_release_records_itself_and_runs_on_a_compatible_newer_schema,
        a_newer_schema_past_this_release_is_refused_and_left_as_it_is,
        without_a_record_unknown_migrations_are_refused,
    ];
}
