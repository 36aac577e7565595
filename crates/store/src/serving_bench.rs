//! `bench-serving` measurements: a local arm's items per second and latency percentiles at
//! each batch size, kept with the run whose eval prompts they were measured on.

use domain::ServingBench;
use sqlx::Row as _;
use sqlx::sqlite::SqliteRow;

use crate::{Result, Store, db_err, from_i64};

impl Store {
    /// Records measurements of run `run`, replacing earlier ones of the same arm and size.
    pub async fn put_serving_bench(&self, run: i64, rows: &[ServingBench]) -> Result<()> {
        let err = db_err("recording a serving benchmark", Some(run));
        let mut tx = self.writer.begin().await.map_err(&err)?;
        for b in rows {
            sqlx::query(
                "INSERT OR REPLACE INTO serving_bench (run_id, arm, batch_size, items, \
                 items_per_second, latency_p50_ms, latency_p95_ms, measured_ms) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(run)
            .bind(b.arm.as_str())
            .bind(i64::from(b.batch_size))
            .bind(i64::from(b.items))
            .bind(b.items_per_second)
            .bind(b.latency_p50_ms)
            .bind(b.latency_p95_ms)
            .bind(b.measured_ms)
            .execute(&mut *tx)
            .await
            .map_err(&err)?;
        }
        tx.commit().await.map_err(&err)
    }
}

/// All of run `run`'s measurements, by arm then batch size.
pub(crate) async fn read_serving_bench(
    tx: &mut sqlx::SqliteConnection,
    run: i64,
) -> Result<Vec<ServingBench>> {
    let err = db_err("reading a run's serving benchmarks", Some(run));
    sqlx::query("SELECT * FROM serving_bench WHERE run_id = ? ORDER BY arm, batch_size")
        .bind(run)
        .fetch_all(tx)
        .await
        .map_err(&err)?
        .iter()
        .map(bench_from_row)
        .collect()
}

fn bench_from_row(row: &SqliteRow) -> Result<ServingBench> {
    let err = db_err("reading a run's serving benchmarks", None);
    let int = |column: &'static str| -> Result<u32> {
        from_i64("serving_bench", column, row.try_get(column).map_err(&err)?)
    };
    Ok(ServingBench {
        arm: row.try_get("arm").map_err(&err)?,
        batch_size: int("batch_size")?,
        items: int("items")?,
        items_per_second: row.try_get("items_per_second").map_err(&err)?,
        latency_p50_ms: row.try_get("latency_p50_ms").map_err(&err)?,
        latency_p95_ms: row.try_get("latency_p95_ms").map_err(&err)?,
        measured_ms: row.try_get("measured_ms").map_err(&err)?,
    })
}
