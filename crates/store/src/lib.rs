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

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

mod batch;
mod lease;
mod multirow;
mod results;
mod runs;
mod training;
mod upgrade;

pub use batch::{CACHE_KEYS_PER_QUERY, CachedAnswer, WriteBatch};
pub use lease::{Claim, LeaseHolder, LeaseOwner, Liveness, NewRun};

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

/// A handle on the database. Cheap to clone: clones share the connection pools.
#[derive(Debug, Clone)]
pub struct Store {
    /// One connection: every write goes here, so in-process writers never contend for the lock.
    writer: SqlitePool,
    /// Connections for reads, which WAL lets run beside the writer.
    reader: SqlitePool,
}

/// Attempts after the first at opening a database (see [`Store::open`]).
const OPEN_RETRIES: u32 = 5;

/// Whether a failed open may succeed when tried again: another process held the lock while
/// this one set the journal mode, or both ran the same migration (SQLite gives sqlx's migrator
/// no lock, so the loser's transaction fails, rolls back, and finds it applied next time).
fn retryable(err: &Error) -> bool {
    match err {
        Error::Open { source, .. } => source
            .as_database_error()
            .is_some_and(|e| e.message().contains("locked") || e.message().contains("busy")),
        Error::Migrate { .. } => true,
        _ => false,
    }
}

impl Store {
    /// Opens the database at `path`, creating the file and its parent directory if missing, and
    /// migrates it to this version's schema. The connections use WAL, enforce foreign keys, wait
    /// up to [`BUSY_TIMEOUT`] for locks, and sync at `NORMAL` (durable across a process crash;
    /// a power cut may lose the last transactions, never corrupt the file).
    ///
    /// Two processes opening a new database at once race to create and migrate it; the loser
    /// tries again a few times (a database that is really broken fails every time alike).
    pub async fn open(path: &Path) -> Result<Store> {
        let mut attempt = 0u32;
        loop {
            match Self::open_once(path).await {
                Err(err) if attempt < OPEN_RETRIES && retryable(&err) => {
                    attempt += 1;
                    tracing::debug!(attempt, error = %err, "opening failed; another process may be opening it too");
                    tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                }
                done => return done,
            }
        }
    }

    async fn open_once(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| Error::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            .synchronous(SqliteSynchronous::Normal);
        let open_err = |source| Error::Open {
            path: path.to_path_buf(),
            source,
        };
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .map_err(open_err)?;
        MIGRATOR
            .run(&writer)
            .await
            .map_err(|source| Error::Migrate {
                path: path.to_path_buf(),
                source,
            })?;
        upgrade::price_legacy_arms(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(READ_CONNECTIONS)
            .connect_with(options)
            .await
            .map_err(open_err)?;
        tracing::debug!(path = %path.display(), "store opened");
        Ok(Store { writer, reader })
    }

    /// Closes every connection, checkpointing the WAL into the main file. Optional: dropping
    /// the last clone also closes the pools, but only this waits until they are closed.
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
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
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
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
                "arms",
                "cache",
                "calls",
                "items",
                "loss_points",
                "run_leases",
                "runs",
                "scores",
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
