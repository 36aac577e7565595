//! Opening a database: for writing (`run`), which creates and migrates it, and for reading
//! (`leaderboard`, `report`, `runs`, `compare`), which changes nothing in the file.
//!
//! Both first look at what the file is: a SQLite file of some other program, or a database of a
//! newer orchestrator, is refused with a message that says so, before a single table is added.
//! Reading opens the connections read-only and never migrates; only a database of an earlier
//! orchestrator, which this version cannot read without upgrading, is handed back as
//! [`Error::OlderSchema`] so the caller can decide to upgrade it with [`Store::open`].

use std::path::Path;
use std::time::Duration;

use sqlx::Row as _;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::{BUSY_TIMEOUT, Error, MIGRATOR, READ_CONNECTIONS, Result, Store, upgrade};

/// Attempts after the first at opening a database (see [`Store::open`]).
const OPEN_RETRIES: u32 = 5;

/// The newest schema version this build knows: its last migration's.
pub fn known_schema() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

/// What a file holds, as far as opening it is concerned.
enum Contents {
    /// No tables at all: a new file.
    Empty,
    /// An orchestrator database whose newest applied migration is this version.
    Ours { schema: i64 },
    /// Tables, but not ours.
    Foreign,
}

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
    /// A SQLite file of another program is refused ([`Error::NotOurs`]), and so is a database
    /// of a newer orchestrator ([`Error::NewerSchema`]); neither is changed.
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

    /// Opens an existing database for reading only: the connections are read-only, nothing is
    /// migrated, and the file is left exactly as it was. A missing file is [`Error::Missing`];
    /// a database of an earlier orchestrator is [`Error::OlderSchema`] (open it with
    /// [`Store::open`] to upgrade it first).
    pub async fn open_read_only(path: &Path) -> Result<Store> {
        if !path.is_file() {
            return Err(Error::Missing {
                path: path.to_path_buf(),
            });
        }
        let pool = match read_pool(path, false).await {
            Ok(pool) => pool,
            // A WAL database in a folder this process cannot write, with no `-shm` file left
            // beside it, opens only as immutable (nobody can be writing it from here).
            Err(_) => read_pool(path, true).await?,
        };
        match contents(&pool, path).await? {
            Contents::Ours { schema } if schema == known_schema() => {}
            Contents::Ours { schema } => {
                pool.close().await;
                return Err(Error::OlderSchema {
                    path: path.to_path_buf(),
                    found: schema,
                    known: known_schema(),
                });
            }
            Contents::Empty | Contents::Foreign => {
                pool.close().await;
                return Err(Error::NotOurs {
                    path: path.to_path_buf(),
                });
            }
        }
        tracing::debug!(path = %path.display(), "store opened read-only");
        Ok(Store {
            writer: pool.clone(),
            reader: pool,
        })
    }

    /// Closes every connection, checkpointing the WAL into the main file. Optional: dropping
    /// the last clone also closes the pools, but only this waits until they are closed.
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }

    async fn open_once(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| Error::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        if path.metadata().is_ok_and(|m| m.len() > 0) {
            // Look before writing anything: even switching to WAL would change another
            // program's file.
            let pool = read_pool(path, false).await?;
            let seen = contents(&pool, path).await;
            pool.close().await;
            if let Contents::Foreign = seen? {
                return Err(Error::NotOurs {
                    path: path.to_path_buf(),
                });
            }
        }
        let options = write_options(path);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .map_err(open_err(path))?;
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
            .map_err(open_err(path))?;
        tracing::debug!(path = %path.display(), "store opened");
        Ok(Store { writer, reader })
    }
}

fn write_options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT)
        .synchronous(SqliteSynchronous::Normal)
}

/// Read-only connections. The journal mode is left as the file has it: setting it is a write.
async fn read_pool(path: &Path, immutable: bool) -> Result<SqlitePool> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .immutable(immutable)
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT);
    let pool = SqlitePoolOptions::new()
        .max_connections(READ_CONNECTIONS)
        .connect_with(options)
        .await
        .map_err(open_err(path))?;
    // Connecting is lazy about the file's header: the first query is what finds a file that is
    // not a database at all.
    sqlx::query("SELECT count(*) FROM sqlite_schema")
        .fetch_one(&pool)
        .await
        .map_err(open_err(path))?;
    Ok(pool)
}

fn open_err(path: &Path) -> impl Fn(sqlx::Error) -> Error + '_ {
    move |source| Error::Open {
        path: path.to_path_buf(),
        source,
    }
}

/// Looks at the tables: ours have sqlx's migration table and `runs`; a newer schema than this
/// build knows is refused here, before the migrator would fail on it.
async fn contents(pool: &SqlitePool, path: &Path) -> Result<Contents> {
    let names: Vec<String> = sqlx::query(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    )
    .fetch_all(pool)
    .await
    .map_err(open_err(path))?
    .iter()
    .map(|row| row.try_get(0))
    .collect::<Result<_, _>>()
    .map_err(open_err(path))?;
    // sqlx creates its migration table before, and outside, the transaction of the first
    // migration: a file holding only that table is a database another process is creating
    // right now, not another program's file.
    if names.iter().all(|n| n == "_sqlx_migrations") {
        return Ok(Contents::Empty);
    }
    let has = |t: &str| names.iter().any(|n| n == t);
    if !has("_sqlx_migrations") || !has("runs") {
        return Ok(Contents::Foreign);
    }
    let schema: Option<i64> =
        sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(pool)
            .await
            .map_err(open_err(path))?;
    let schema = schema.unwrap_or(0);
    if schema > known_schema() {
        return Err(Error::NewerSchema {
            path: path.to_path_buf(),
            found: schema,
            known: known_schema(),
        });
    }
    Ok(Contents::Ours { schema })
}
