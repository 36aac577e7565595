//! Multi-row `INSERT`s with a fixed set of statement texts: rows go in [`CHUNK`] at a time, the
//! tail row by row, so each table has exactly two statement texts. Both stay in the connection's
//! prepared-statement cache and are reused call after call; one statement per [`CHUNK`] rows
//! instead of one per row is what makes a 10,000-row write cost milliseconds.
//!
//! It knows no table: callers give the statement's head and tail and a function binding one row.

use sqlx::query::Query;
use sqlx::sqlite::{Sqlite, SqliteArguments, SqliteConnection};

/// Rows per multi-row `INSERT`. 64 rows × 13 columns = 832 parameters, far below SQLite's limit
/// of 32,766, and large enough that per-statement overhead stops mattering.
pub(crate) const CHUNK: usize = 64;

/// The two statement texts of one table's batched insert.
pub(crate) struct Insert {
    one: String,
    chunk: String,
}

impl Insert {
    /// `{head} VALUES (?, …), … {tail}` for one row and for [`CHUNK`] rows of `columns` each.
    pub(crate) fn new(head: &str, columns: usize, tail: &str) -> Insert {
        let row = format!("({})", vec!["?"; columns].join(", "));
        let sql = |rows: usize| {
            format!(
                "{head} VALUES {} {tail}",
                vec![row.as_str(); rows].join(", ")
            )
        };
        Insert {
            one: sql(1),
            chunk: sql(CHUNK),
        }
    }
}

pub(crate) type Q = Query<'static, Sqlite, SqliteArguments>;

/// Inserts `rows` with `insert`'s statements, `bind` adding one row's parameters in column order.
pub(crate) async fn insert_rows<T>(
    conn: &mut SqliteConnection,
    insert: &'static Insert,
    rows: &[T],
    bind: impl Fn(Q, &T) -> Q,
) -> Result<(), sqlx::Error> {
    let mut chunks = rows.chunks_exact(CHUNK);
    for chunk in &mut chunks {
        let query = chunk.iter().fold(sqlx::query(insert.chunk.as_str()), &bind);
        query.execute(&mut *conn).await?;
    }
    for row in chunks.remainder() {
        bind(sqlx::query(insert.one.as_str()), row)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}
