//! The orchestrator's database: one SQLite file, opened through sqlx, holding runs, their arms and
//! eval items, every call and score, the provider response cache, and training records with
//! their loss curves.
//!
//! This is the only crate with SQL. It offers one method per query on [`Store`], speaks
//! `domain` types at its boundary, and keeps the schema in embedded, forward-only migrations
//! (`migrations/<VERSION>_<description>.sql`) that run on [`Store::open`]. It deliberately knows
//! nothing of providers, scoring or reports, and makes no decisions: it records what the runner
//! tells it and hands back what was recorded, in a deterministic order.
//!
//! Runs and arms carry what the report needs (each arm's pricing, each run's cost assumptions
//! and decision), so the report reads records, never the spec. A database of an earlier version
//! is upgraded on open: migration 0002 backfills those from the stored `spec_json`, and
//! `upgrade` prices hosted arms by the built-in table as that version did.
//!
//! Invariants it keeps:
//! - a call for an (run, arm, item) that already succeeded is never overwritten; a failed one is
//!   replaced by the next attempt, so a resumed run retries failures only;
//! - inserts of arms, items and cache entries are idempotent, so a rerun never duplicates a row;
//! - one [`Store::write_batch`] is one transaction: a batch lands whole or not at all.
//!
//! All writes go through a single pooled connection, so writers inside one process queue on the
//! pool instead of on SQLite's lock; reads use a few more connections and, thanks to WAL, never
//! wait for a writer. Another process on the same file is handled by `BEGIN IMMEDIATE` and the
//! busy timeout.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::migrate::Migrator;
use sqlx::sqlite::SqlitePool;

mod api_batches;
mod batch;
mod choice_columns;
mod lease;
mod multirow;
mod open;
mod results;
mod runs;
mod searches;
mod serving_bench;
mod training;
mod upgrade;

pub use api_batches::ApiBatch;
pub use batch::{CACHE_KEYS_PER_QUERY, CachedAnswer, WriteBatch};
pub use lease::{Claim, LeaseHolder, LeaseOwner, Liveness, NewRun};
pub use open::known_schema;

/// How long a connection waits for another process's lock before failing with `SQLITE_BUSY`.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Read connections per store. Reads are short; a few let the leaderboard read while the runner
/// writes and a report renders.
const READ_CONNECTIONS: u32 = 4;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// What went wrong in the store. Each variant says what was being done; the sqlx error, where
/// there is one, is the `source`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot create the database directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the database {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot migrate the database {path} to this version's schema")]
    Migrate {
        path: PathBuf,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    #[error("no database at {path}")]
    Missing { path: PathBuf },
    /// A SQLite file (or an empty one) without this program's tables: never changed.
    #[error("{path} is not an orchestrator database (it holds other tables, or none)")]
    NotOurs { path: PathBuf },
    #[error(
        "{path} was created by a newer orchestrator (schema {found}, this one knows {known}): \
         use that version, or a new --db"
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    /// A database of an earlier version, which a read-only open cannot upgrade.
    #[error("{path} has schema {found} of an earlier orchestrator; this one reads {known}")]
    OlderSchema {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("run {run} is not in the database")]
    NotFound { run: i64 },
    #[error("database error while {op}")]
    Query {
        /// What the store was doing, e.g. "writing a batch of results".
        op: &'static str,
        #[source]
        source: sqlx::Error,
    },
    /// A stored value this version cannot read back (an unknown enum spelling, a negative count).
    #[error("{table}.{column} holds {value:?}, which this version cannot read")]
    Corrupt {
        table: &'static str,
        column: &'static str,
        value: String,
    },
    /// A value too large for SQLite's 64-bit signed integers.
    #[error("{field} = {value} is too large to store")]
    TooLarge { field: &'static str, value: u64 },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether the user can fix this (another file, a folder they may write, a newer binary),
    /// as opposed to a fault of the program or the machine.
    pub fn is_user_fixable(&self) -> bool {
        match self {
            Error::Missing { .. }
            | Error::NotOurs { .. }
            | Error::NewerSchema { .. }
            | Error::OlderSchema { .. }
            | Error::NotFound { .. } => true,
            Error::CreateDir { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::PermissionDenied
                    | std::io::ErrorKind::ReadOnlyFilesystem
                    | std::io::ErrorKind::NotADirectory
                    | std::io::ErrorKind::AlreadyExists
            ),
            Error::Open { source, .. } | Error::Query { source, .. } => user_fixable_sqlite(source),
            Error::Migrate { source, .. } => match source {
                sqlx::migrate::MigrateError::Execute(e)
                | sqlx::migrate::MigrateError::ExecuteMigration(e, _) => user_fixable_sqlite(e),
                _ => false,
            },
            Error::Corrupt { .. } | Error::TooLarge { .. } => false,
        }
    }
}

/// SQLite's answers that mean "this path is not a database you may write": not a database
/// (26), cannot open (14), read-only (8), permission denied (3), authorisation (23). The
/// primary code is the low byte of the extended one.
fn user_fixable_sqlite(err: &sqlx::Error) -> bool {
    let code = err
        .as_database_error()
        .and_then(|e| e.code())
        .and_then(|c| c.parse::<i64>().ok());
    matches!(code.map(|c| c & 0xff), Some(3 | 8 | 14 | 23 | 26))
        || matches!(err, sqlx::Error::Io(e) if e.kind() == std::io::ErrorKind::PermissionDenied)
}

/// A handle on the database. Cheap to clone: clones share the connection pools.
#[derive(Debug, Clone)]
pub struct Store {
    /// One connection: every write goes here, so in-process writers never contend for the lock.
    writer: SqlitePool,
    /// Connections for reads, which WAL lets run beside the writer.
    reader: SqlitePool,
}

/// Turns a sqlx error into [`Error::Query`], or into [`Error::NotFound`] when it is a
/// foreign-key violation, which for a per-run row means the run does not exist.
pub(crate) fn db_err(op: &'static str, run: Option<i64>) -> impl Fn(sqlx::Error) -> Error {
    move |source| match (&source, run) {
        (sqlx::Error::Database(e), Some(run))
            if e.kind() == sqlx::error::ErrorKind::ForeignKeyViolation =>
        {
            Error::NotFound { run }
        }
        _ => Error::Query { op, source },
    }
}

/// Now, in Unix milliseconds. A clock set before 1970 reads as 0 rather than failing a write.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Converts an unsigned count to SQLite's INTEGER, refusing values that would wrap.
pub(crate) fn to_i64(field: &'static str, value: u64) -> Result<i64> {
    i64::try_from(value).map_err(|_| Error::TooLarge { field, value })
}

/// Reads a stored INTEGER back into a narrower unsigned type, reporting a corrupt value.
pub(crate) fn from_i64<T: TryFrom<i64>>(
    table: &'static str,
    column: &'static str,
    value: i64,
) -> Result<T> {
    T::try_from(value).map_err(|_| Error::Corrupt {
        table,
        column,
        value: value.to_string(),
    })
}

/// Parses a TEXT enum column with the domain type's own parser.
pub(crate) fn parse_enum<T>(
    table: &'static str,
    column: &'static str,
    value: String,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<T> {
    parse(&value).ok_or(Error::Corrupt {
        table,
        column,
        value,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use sqlx::Row as _;

    use super::*;

    /// sqlx skips migration files whose names do not parse, silently; every `.sql` file in
    /// `migrations/` must have become a migration.
    #[test]
    fn every_migration_file_is_embedded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let files = std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                let path = e.as_ref().unwrap().path();
                path.extension().is_some_and(|x| x == "sql")
            })
            .count();
        assert!(files > 0);
        assert_eq!(MIGRATOR.iter().count(), files);
    }

    #[tokio::test]
    async fn open_creates_every_table() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("x.db")).await.unwrap();
        let tables: Vec<String> = sqlx::query(
            "SELECT name FROM sqlite_schema WHERE type = 'table' \
             AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx%' ORDER BY name",
        )
        .fetch_all(&store.reader)
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
        assert_eq!(
            tables,
            [
                "api_batch_items",
                "api_batches",
                "arms",
                "cache",
                "calls",
                "items",
                "loss_points",
                "run_leases",
                "runs",
                "scores",
                "searches",
                "serving_bench",
                "training"
            ]
        );
    }

    #[tokio::test]
    async fn every_connection_has_the_pragmas() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("x.db")).await.unwrap();
        for pool in [&store.writer, &store.reader] {
            let pragma = |sql: &'static str| async move {
                let row = sqlx::query(sql).fetch_one(pool).await.unwrap();
                // journal_mode answers in text, the others in numbers.
                row.try_get::<String, _>(0)
                    .unwrap_or_else(|_| row.get::<i64, _>(0).to_string())
            };
            assert_eq!(pragma("PRAGMA journal_mode").await, "wal");
            assert_eq!(pragma("PRAGMA foreign_keys").await, "1");
            assert_eq!(pragma("PRAGMA busy_timeout").await, "5000");
            // 1 is NORMAL.
            assert_eq!(pragma("PRAGMA synchronous").await, "1");
        }
    }
}
